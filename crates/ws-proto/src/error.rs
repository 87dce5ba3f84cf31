//! Error types. Each says who is at fault and what goes on the wire.

use alloc::{boxed::Box, string::String};
use core::fmt;

use bytes::Bytes;

use crate::{close::CloseCode, event::Message, handshake::HttpResponse};

/// The peer broke RFC 6455.
///
/// By the time a `ProtocolError` is returned, the Close frame with
/// [`close_code`](Self::close_code) is already queued in the connection's
/// outgoing bytes: flush them, then close the transport.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV1-3 bits set although no extension that defines them was negotiated
    /// (RFC 6455 section 5.2).
    ReservedBits(u8),
    /// An opcode reserved for future use (0x3-0x7, 0xB-0xF; RFC 6455
    /// section 5.2).
    ReservedOpcode(u8),
    /// A control frame (close, ping, pong) without the FIN bit (RFC 6455
    /// section 5.5: control frames must not be fragmented).
    FragmentedControlFrame,
    /// A control frame with a payload longer than 125 bytes (RFC 6455
    /// section 5.5).
    ControlFrameTooLong(u64),
    /// A 64-bit payload length with its most significant bit set (RFC 6455
    /// section 5.2).
    InvalidLength,
    /// A client sent a frame without a mask (RFC 6455 section 5.1).
    UnmaskedFrameFromClient,
    /// A server sent a masked frame (RFC 6455 section 5.1).
    MaskedFrameFromServer,
    /// A continuation frame arrived while no fragmented message was in
    /// progress (RFC 6455 section 5.4).
    UnexpectedContinuation,
    /// A new text or binary frame arrived inside a fragmented message (RFC
    /// 6455 section 5.4).
    ExpectedContinuation,
    /// A text message, or a close reason, was not valid UTF-8 (RFC 6455
    /// sections 5.6 and 8.1; close code 1007).
    InvalidUtf8,
    /// A close frame with a 1-byte payload (RFC 6455 section 5.5.1: a body
    /// starts with a 2-byte status code).
    InvalidClosePayload,
    /// A close frame with a status code that may not appear on the wire (RFC
    /// 6455 section 7.4).
    InvalidCloseCode(u16),
    /// A frame announced a payload longer than the configured
    /// `max_frame_size` (RFC 6455 section 10.4; close code 1009).
    FrameTooBig {
        /// The announced payload length.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// A message grew beyond the configured `max_message_size` (RFC 6455
    /// section 10.4; close code 1009).
    MessageTooBig {
        /// The message length the frame would reach.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// A compressed message did not inflate: corrupt deflate data, or a
    /// reference beyond the negotiated window (RFC 7692 section 7.2.2;
    /// close code 1007).
    #[cfg(feature = "deflate")]
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code this error sends to the peer (RFC 6455 section 7.4.1).
    pub const fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            #[cfg(feature = "deflate")]
            Self::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            Self::FrameTooBig { .. } | Self::MessageTooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// A short reason, suitable as the close frame's reason text.
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::ReservedBits(_) => "reserved bits set",
            Self::ReservedOpcode(_) => "reserved opcode",
            Self::FragmentedControlFrame => "fragmented control frame",
            Self::ControlFrameTooLong(_) => "control frame too long",
            Self::InvalidLength => "invalid payload length",
            Self::UnmaskedFrameFromClient => "unmasked frame from client",
            Self::MaskedFrameFromServer => "masked frame from server",
            Self::UnexpectedContinuation => "unexpected continuation frame",
            Self::ExpectedContinuation => "expected continuation frame",
            Self::InvalidUtf8 => "invalid UTF-8",
            Self::InvalidClosePayload => "invalid close payload",
            Self::InvalidCloseCode(_) => "invalid close code",
            Self::FrameTooBig { .. } => "frame too big",
            Self::MessageTooBig { .. } => "message too big",
            #[cfg(feature = "deflate")]
            Self::InvalidCompressedData => "invalid compressed data",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedBits(bits) => write!(f, "reserved bits {bits:#05b} set"),
            Self::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            Self::ControlFrameTooLong(len) => {
                write!(f, "control frame payload of {len} bytes (max 125)")
            }
            Self::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            Self::FrameTooBig { len, max } => {
                write!(f, "frame of {len} bytes exceeds max_frame_size {max}")
            }
            Self::MessageTooBig { len, max } => {
                write!(f, "message of {len} bytes exceeds max_message_size {max}")
            }
            other => f.write_str(other.reason()),
        }?;
        write!(f, " (close code {})", self.close_code().0)
    }
}

impl core::error::Error for ProtocolError {}

/// The opening handshake failed at the HTTP level.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The HTTP message could not be parsed; says what was wrong (e.g.
    /// `"invalid header name"`).
    MalformedHttp(&'static str),
    /// The head has more header lines than the configured `max_headers`.
    TooManyHeaders {
        /// The configured limit.
        max: usize,
    },
    /// The request or response head is larger than the configured limit.
    TooLarge {
        /// The configured limit in bytes.
        max: usize,
    },
    /// The request method is not GET.
    Method(String),
    /// The HTTP version is not 1.1 or later.
    Version,
    /// The request has no `Host` header.
    MissingHost,
    /// A required header is missing or lacks the required token
    /// (`Upgrade: websocket`, `Connection: upgrade`).
    MissingUpgrade(&'static str),
    /// `Sec-WebSocket-Key` is missing or does not decode to 16 bytes.
    InvalidKey,
    /// `Sec-WebSocket-Version` is missing or not 13.
    UnsupportedVersion,
    /// The server answered with something other than 101; the whole response
    /// is kept so the caller can see a 401 or follow a redirect.
    Rejected(Box<HttpResponse>),
    /// `Sec-WebSocket-Accept` does not match the key we sent.
    InvalidAccept,
    /// The server chose a subprotocol the client did not offer.
    UnofferedSubprotocol(String),
    /// The server accepted an extension the client did not offer.
    UnofferedExtension(String),
    /// The client request could not be built (bad URI, bad header).
    InvalidRequest(&'static str),
    /// The transport ended before the HTTP head was complete.
    UnexpectedEof,
    /// The handshake took longer than its timeout
    /// ([`Options::handshake_timeout`](crate::driver::Options::handshake_timeout)).
    TimedOut,
    /// permessage-deflate could not be agreed: the server's answer broke
    /// RFC 7692 (client), or deflate is required and no offer was
    /// acceptable (server: 400; client: the server declined).
    #[cfg(feature = "deflate")]
    Deflate(crate::deflate::DeflateError),
}

impl HandshakeError {
    /// The HTTP status a server answers this error with (400, 426 or 431),
    /// or `None` for errors only a client meets (a rejected or invalid
    /// response). Errors both sides can meet, such as malformed HTTP, have a
    /// status even when a client met them; a client simply ignores it.
    pub const fn status(&self) -> Option<u16> {
        match self {
            Self::TooLarge { .. } | Self::TooManyHeaders { .. } => Some(431),
            Self::UnsupportedVersion => Some(426),
            Self::MalformedHttp(_)
            | Self::Method(_)
            | Self::Version
            | Self::MissingHost
            | Self::MissingUpgrade(_)
            | Self::InvalidKey => Some(400),
            #[cfg(feature = "deflate")]
            Self::Deflate(crate::deflate::DeflateError::Required) => Some(400),
            _ => None,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedHttp(what) => write!(f, "malformed HTTP: {what}"),
            Self::TooLarge { max } => write!(f, "HTTP head exceeds {max} bytes"),
            Self::TooManyHeaders { max } => write!(f, "more than {max} header lines"),
            Self::Method(m) => write!(f, "method {m} is not GET"),
            Self::Version => f.write_str("HTTP version is not 1.1"),
            Self::MissingHost => f.write_str("missing Host header"),
            Self::MissingUpgrade(what) => write!(f, "missing or invalid {what}"),
            Self::InvalidKey => f.write_str("missing or invalid Sec-WebSocket-Key"),
            Self::UnsupportedVersion => f.write_str("Sec-WebSocket-Version is not 13"),
            Self::Rejected(resp) => {
                write!(f, "server answered {} {}", resp.status, resp.reason)?;
                write_body_excerpt(f, &resp.body)
            }
            Self::InvalidAccept => f.write_str("Sec-WebSocket-Accept does not match the key"),
            Self::UnofferedSubprotocol(p) => write!(f, "server chose unoffered subprotocol {p:?}"),
            Self::UnofferedExtension(e) => write!(f, "server accepted unoffered extension {e:?}"),
            Self::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            Self::UnexpectedEof => f.write_str("the transport ended during the handshake"),
            Self::TimedOut => f.write_str("the opening handshake timed out"),
            #[cfg(feature = "deflate")]
            Self::Deflate(e) => write!(f, "permessage-deflate: {e}"),
        }
    }
}

impl core::error::Error for HandshakeError {}

/// How much of a refusal's body `Display` shows.
const BODY_EXCERPT: usize = 200;

/// Appends `: "<body>"` (lossy UTF-8, escaped like `Debug` so control
/// characters from the peer cannot reach a terminal, at most
/// [`BODY_EXCERPT`] bytes) unless the body is blank.
fn write_body_excerpt(f: &mut fmt::Formatter<'_>, body: &[u8]) -> fmt::Result {
    let cut = body.len().min(BODY_EXCERPT);
    let text = String::from_utf8_lossy(&body[..cut]);
    let text = text.trim();
    if text.is_empty() {
        return Ok(());
    }
    write!(f, ": {text:?}")?;
    if cut < body.len() {
        write!(f, " (and {} more bytes)", body.len() - cut)?;
    }
    Ok(())
}

/// The caller misused the API. Never caused by peer data.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// A Close frame was already sent (or the connection failed): no more
    /// frames can be sent.
    Closed,
    /// The outgoing buffer is at `max_write_buffer`; flush and try again.
    /// The message is handed back.
    Full(Message),
    /// The outgoing buffer is at `max_write_buffer` and a ping or pong was
    /// refused; flush and try again. The payload is handed back.
    ControlFull(Bytes),
    /// A ping or pong payload longer than 125 bytes, or a close reason longer
    /// than 123 bytes.
    ControlTooLong(usize),
    /// A close code that may not be sent (1004-1006, 1015, <1000, ...).
    InvalidCloseCode(CloseCode),
    /// `send` was called while a fragmented message started with
    /// `send_fragment` is unfinished, or a continuation changed the type.
    FragmentInProgress,
    /// Bytes written to a streamed text message
    /// ([`PieceSender`](crate::PieceSender)) are not UTF-8, or the message
    /// was finished inside a code point. Nothing of the offending write was
    /// queued.
    InvalidUtf8,
    /// A piece was written to a streamed message
    /// ([`PieceSender`](crate::PieceSender)) that was finished or
    /// abandoned: it would begin another message.
    Finished,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("the connection is closing or closed"),
            Self::Full(_) | Self::ControlFull(_) => f.write_str("the outgoing buffer is full"),
            Self::ControlTooLong(len) => {
                write!(
                    f,
                    "control payload of {len} bytes exceeds 125 (close reason: 123)"
                )
            }
            Self::InvalidCloseCode(code) => write!(f, "close code {} may not be sent", code.0),
            Self::FragmentInProgress => f.write_str("a fragmented message is in progress"),
            Self::InvalidUtf8 => f.write_str("text written to a streamed message is not UTF-8"),
            Self::Finished => f.write_str("the streamed message was finished"),
        }
    }
}

impl core::error::Error for SendError {}
