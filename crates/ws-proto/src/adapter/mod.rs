//! Shared types for code that drives a [`Driver`](crate::Driver) over
//! `std` I/O: the runtime adapters (`ws-tokio`, `ws-futures`, `ws-std`)
//! re-export them, so every adapter has the same error type and options, and
//! an embedder with a loop of their own can use them too.

use core::fmt;
use std::io;

pub use crate::driver::Options;
use crate::error::{HandshakeError, ProtocolError, SendError};

#[cfg(feature = "rustls")]
pub mod tls;

/// What every runtime adapter re-exports from the core (`pub use
/// ws_proto::adapter::exports::*`), so that an application finds the same
/// names, `bytes` types included, under whichever adapter it uses.
pub mod exports {
    pub use super::{Error, Options, Result};
    pub use crate::{
        AcceptOptions, Accepted, Broadcast, ClientRequest, ClientResponse, CloseCode, CloseFrame,
        Config, Connection, Driver, Event, HandshakeConfig, HandshakeError, Message, Negotiated,
        Offer, Offered, ProtocolError, Role, SendError, ServerRequest, Streaming, Utf8Bytes,
        WhenFull, broadcast,
        bytes::{self, Buf, BufMut, Bytes, BytesMut},
    };
    /// permessage-deflate settings, for [`Options::handshake`]'s `deflate`.
    #[cfg(feature = "deflate")]
    pub use crate::{DeflateConfig, DeflateError, DeflateParams, DeflatePolicy};
}

/// Everything that can go wrong on a WebSocket connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed. A blocking read that ran into the stream's own
    /// read timeout (`WouldBlock` / `TimedOut`) can be retried.
    Io(io::Error),
    /// The peer broke RFC 6455. The matching Close frame was sent (as far as
    /// the transport allowed) and the transport was shut down.
    Protocol(ProtocolError),
    /// The opening handshake failed; a server's refusal is
    /// [`HandshakeError::Rejected`] with the whole HTTP response, a
    /// handshake that took longer than [`Options::handshake_timeout`] is
    /// [`HandshakeError::TimedOut`].
    Handshake(HandshakeError),
    /// A command was refused: the connection is closing, a control payload is
    /// too long, a close code may not be sent, ...
    Send(SendError),
    /// A whole-message receive (`recv`) met a streamed message
    /// ([`Config::streaming`](crate::Config::streaming)): receive it with
    /// the adapter's `recv_stream` (or `recv_event`). Its first piece is
    /// kept for that call.
    Streamed,
    /// The connection ended (closed, failed, or reset) inside a message
    /// being received piece by piece: what was read of it is not the whole
    /// message. As an `io::Error` (an adapter's `AsyncRead` or `io::Read`),
    /// of kind `UnexpectedEof`.
    CutShort,
}

impl Error {
    /// Whether a send that does not wait (`try_send`) found the outgoing
    /// queue at its high-water mark (`Config::max_write_buffer`): the peer
    /// reads more slowly than it is sent to. The message is in the error
    /// ([`SendError::Full`]).
    pub fn is_full(&self) -> bool {
        matches!(
            self,
            Self::Send(SendError::Full(_) | SendError::ControlFull(_))
        )
    }

    /// Whether a deadline passed: a read or write timeout the application
    /// set (`WouldBlock` / `TimedOut` from a blocking stream), or the
    /// handshake timeout. The connection is still usable after a read
    /// timeout: the call can be retried.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Io(e) => is_timeout(e),
            Self::Handshake(e) => *e == HandshakeError::TimedOut,
            _ => false,
        }
    }
}

/// What a whole-message receive (an adapter's `recv`) makes of what
/// [`Op::RecvMessage`](crate::Op::RecvMessage) returned: the data message;
/// `None` once the connection is over; the receive's error; or, for a
/// streamed message's piece, [`Error::Streamed`], the piece given back with
/// `put_back` ([`Driver::put_back`](crate::Driver::put_back)) for the
/// stream receive.
#[inline]
pub fn whole_message(
    received: Result<Option<crate::Event>>,
    put_back: impl FnOnce(crate::Event),
) -> Option<Result<crate::Message>> {
    match received {
        Ok(Some(crate::Event::Message(message))) => Some(Ok(message)),
        Ok(event) => not_a_message(event, put_back),
        Err(e) => Some(Err(e)),
    }
}

/// [`whole_message`] when the receive delivered no data message: the end
/// of the connection (`None`), or a streamed message's piece, given back.
/// Apart, so that a hot receive loop can match the common case itself.
#[cold]
#[inline(never)]
pub fn not_a_message(
    event: Option<crate::Event>,
    put_back: impl FnOnce(crate::Event),
) -> Option<Result<crate::Message>> {
    match event? {
        event @ crate::Event::Fragment { .. } => {
            put_back(event);
            Some(Err(Error::Streamed))
        }
        // `Op::RecvMessage` delivers nothing else.
        _ => None,
    }
}

/// The receiving end of one streamed message, for an adapter's message
/// stream (`recv_stream`): the piece in hand, the message's type, and
/// whether the last piece came. What each receive means for the stream is
/// decided here, once for every adapter: the first event starts the message
/// (a whole message is a stream of one piece); a later one is its next
/// piece, or the connection ended inside it, or another message began
/// (the core delivers none inside a message), which is given back to the
/// driver for the next receive. A message cut short is
/// [`Error::CutShort`], never a short message.
///
/// The adapter receives with [`Op::RecvMessage`](crate::Op::RecvMessage)
/// while [`wants_more`](Self::wants_more), hands each result to
/// [`receive`](Self::receive), hands out [`take_piece`](Self::take_piece),
/// and calls [`abandon`](Self::abandon) when its stream is dropped.
#[derive(Debug)]
pub struct PieceReader {
    text: bool,
    piece: bytes::Bytes,
    ended: bool,
}

impl PieceReader {
    /// Starts a stream from what a receive of the next data message
    /// returned: `None` when the connection ended (or was over) first.
    pub fn start(received: Result<Option<crate::Event>>) -> Option<Result<Self>> {
        let (piece, ended) = match received {
            Err(e) => return Some(Err(e)),
            Ok(Some(crate::Event::Message(message))) => (message, true),
            Ok(Some(crate::Event::Fragment { piece, last, .. })) => (piece, last),
            // `Op::RecvMessage` delivers nothing else.
            Ok(_) => return None,
        };
        let text = piece.is_text();
        let piece = piece.into_bytes();
        Some(Ok(Self { text, piece, ended }))
    }

    /// Whether the message is text (its pieces are UTF-8, each whole code
    /// points).
    pub const fn is_text(&self) -> bool {
        self.text
    }

    /// Whether a receive is needed before there is anything to hand out:
    /// no piece in hand, and more to come.
    pub fn wants_more(&self) -> bool {
        self.piece.is_empty() && !self.ended
    }

    /// Takes in what the next receive returned: the next piece, or the end
    /// of the stream with [`Error::CutShort`] (the connection ended, or an
    /// event of another message, given back to `driver`), or the receive's
    /// own error. The stream ends with any error.
    pub fn receive(
        &mut self,
        received: Result<Option<crate::Event>>,
        driver: &mut crate::Driver,
    ) -> Result<()> {
        let error = match received {
            Ok(Some(crate::Event::Fragment {
                piece,
                first: false,
                last,
            })) => {
                (self.piece, self.ended) = (piece.into_bytes(), last);
                return Ok(());
            }
            Ok(Some(other)) => {
                driver.put_back(other);
                Error::CutShort
            }
            Ok(None) => Error::CutShort,
            Err(e) => e,
        };
        self.ended = true;
        Err(error)
    }

    /// The piece in hand, if not empty; `None` once the stream has ended
    /// or while a receive is needed ([`wants_more`](Self::wants_more)).
    pub fn take_piece(&mut self) -> Option<bytes::Bytes> {
        (!self.piece.is_empty()).then(|| core::mem::take(&mut self.piece))
    }

    /// The piece in hand, for reading part of it (an `io::Read` or
    /// `BufRead` over the stream): advance it by what was consumed.
    pub fn piece_mut(&mut self) -> &mut bytes::Bytes {
        &mut self.piece
    }

    /// For a stream dropped before its end: the rest of the message is
    /// read and discarded by the driver, not delivered. `with_driver` lends
    /// the driver (behind a lock, in a split half) only when there is a
    /// rest to discard.
    pub fn abandon(&self, with_driver: impl FnOnce(fn(&mut crate::Driver))) {
        if !self.ended {
            with_driver(crate::Driver::discard_message);
        }
    }
}

/// For an adapter's `read_request`, after a server's
/// [`Op::Open`](crate::Op::Open) succeeded: that the driver holds the
/// request for the application to answer (it always does then; this makes
/// [`unanswered`] safe to call on the adapter's `Incoming`).
pub fn check_request(driver: &crate::Driver) -> Result<(), HandshakeError> {
    match driver.request() {
        Some(_) => Ok(()),
        None => Err(HandshakeError::InvalidRequest("no request was read")),
    }
}

/// The request an adapter's `Incoming` waits to answer: held by `driver`
/// from [`check_request`] until the answer, which consumes the `Incoming`.
///
/// # Panics
/// If `driver` holds no request: `Incoming` is made only after
/// [`check_request`].
pub fn unanswered(driver: &crate::Driver) -> &crate::ServerRequest {
    driver
        .request()
        .expect("an Incoming's driver holds its request until the answer")
}

/// Where an adapter's `connect` opens its plain TCP connection: `request`'s
/// host and port. A `wss://` request is refused (before any connection is
/// made): an adapter calls this only where it speaks no TLS (built without
/// its `rustls` feature); connect the TLS stream yourself and pass it to the
/// adapter's `client`, or enable the feature.
pub fn plain_tcp_target(request: &crate::ClientRequest) -> Result<(&str, u16), HandshakeError> {
    if request.is_secure() {
        let why = "wss:// needs the adapter's `rustls` feature, or a TLS stream of your own \
                   passed to client()";
        return Err(HandshakeError::InvalidRequest(why));
    }
    Ok((request.host(), request.port()))
}

/// Whether an I/O error is a deadline passing: `WouldBlock` or `TimedOut`
/// from a stream with a read or write timeout.
pub fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Handshake(e) => write!(f, "handshake failed: {e}"),
            Self::Send(e) => write!(f, "cannot send: {e}"),
            Self::Streamed => {
                f.write_str("a streamed message arrived: receive it with recv_stream or recv_event")
            }
            Self::CutShort => f.write_str("the connection ended inside a streamed message"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        Some(match self {
            Self::Io(e) => e,
            Self::Protocol(e) => e,
            Self::Handshake(e) => e,
            Self::Send(e) => e,
            Self::Streamed | Self::CutShort => return None,
        })
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Self::Handshake(e)
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        Self::Send(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Io(_) => io::ErrorKind::Other,
            Error::Protocol(_) | Error::Handshake(_) => io::ErrorKind::InvalidData,
            Error::Send(SendError::Closed) => io::ErrorKind::NotConnected,
            Error::Send(_) | Error::Streamed => io::ErrorKind::InvalidInput,
            Error::CutShort => io::ErrorKind::UnexpectedEof,
        };
        match e {
            Error::Io(inner) => inner,
            other => Self::new(kind, other),
        }
    }
}

/// The accessors every runtime adapter's socket has over its
/// [`Driver`](crate::Driver), written once so that they behave, and are
/// documented, the same in every adapter: `close_frame`, `connection` and
/// `connection_mut`. `$($driver).+` is the driver's field path from `self`.
/// For adapters: not a stable API.
#[doc(hidden)]
#[macro_export]
macro_rules! driver_accessors {
    ($($driver:tt).+) => {
        /// Why the connection ended: the peer's Close frame, or code 1006
        /// ([`CloseCode::ABNORMAL`](ws_proto::CloseCode::ABNORMAL)) when it
        /// ended without one (the transport ended or failed, or a keepalive or
        /// close timeout gave up on the peer). `None` while the connection is
        /// open, and after a protocol error, which was returned instead.
        pub fn close_frame(&self) -> Option<&$crate::CloseFrame> {
            self.$($driver).+.close_frame()
        }

        /// The sans-IO connection: state, role, configuration, what was
        /// negotiated.
        pub fn connection(&self) -> &$crate::Connection {
            self.$($driver).+.connection()
        }

        /// The connection, for commands this adapter does not wrap
        /// ([`send_fragment`](ws_proto::Connection::send_fragment),
        /// [`pong`](ws_proto::Connection::pong)). Commands only queue bytes:
        /// call `flush` afterwards.
        pub fn connection_mut(&mut self) -> &mut $crate::Connection {
            self.$($driver).+.connection_mut()
        }
    };
}

/// The methods of every runtime adapter's `Incoming` (a newtype over its
/// socket, whose driver holds the request until it is answered), written
/// once so that they behave, and are documented, the same in every adapter:
/// `request`, `get_ref`, `accept` and `reject`. `$stream` and `$socket` are
/// the stream and socket types; an async adapter adds `async await` and any
/// doc lines on cancelling. The caller's `open(&mut socket)` runs the
/// handshake operation to its end and `Result` is its result type. For
/// adapters: not a stable API.
#[doc(hidden)]
#[macro_export]
macro_rules! incoming_methods {
    ($stream:ty, $socket:ty $(, $async:ident $await:ident $(#[$cancel:meta])*)?) => {
        /// The request: path, query, headers, offered subprotocols.
        pub fn request(&self) -> &$crate::ServerRequest {
            $crate::adapter::unanswered(&self.0.driver)
        }

        /// The underlying stream (e.g. for the peer address).
        pub const fn get_ref(&self) -> &$stream {
            self.0.get_ref()
        }

        /// Accepts: writes the `101` response (with the chosen subprotocol
        /// and headers), within `handshake_timeout`, and returns the
        /// WebSocket; bytes the client sent after its request are kept. An
        /// `options` the request does not allow (a subprotocol the client
        /// did not offer) is an error, and nothing is written.
        $($(#[$cancel])*)?
        pub $($async)? fn accept(mut self, options: &$crate::AcceptOptions) -> Result<$socket> {
            self.0.driver.accept(options)?;
            (open(&mut self.0)$(.$await)?)?;
            Ok(self.0)
        }

        /// Refuses: writes a response with `status` (e.g. 401, 403), extra
        /// `headers` and `body` (a `Content-Length` is added), then shuts
        /// the stream down.
        $($(#[$cancel])*)?
        pub $($async)? fn reject(
            mut self,
            status: u16,
            headers: &[(&str, &str)],
            body: &[u8],
        ) -> Result<()> {
            self.0.driver.reject(status, headers, body);
            open(&mut self.0)$(.$await)?
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_told_apart_from_other_failures() {
        assert!(Error::Io(io::ErrorKind::WouldBlock.into()).is_timeout());
        assert!(Error::Io(io::ErrorKind::TimedOut.into()).is_timeout());
        assert!(!Error::Io(io::ErrorKind::ConnectionReset.into()).is_timeout());
        assert!(!Error::Send(SendError::Closed).is_timeout());
        assert!(Error::Handshake(HandshakeError::TimedOut).is_timeout());
    }

    #[test]
    fn a_whole_message_receive_gives_a_streamed_piece_back() {
        use crate::{Event, Message};
        let keep = |e: Event| panic!("nothing to give back: {e:?}");
        let message = Message::text("hi");
        let got = whole_message(Ok(Some(Event::Message(message.clone()))), keep);
        assert_eq!(got.unwrap().unwrap(), message);
        assert!(whole_message(Ok(None), keep).is_none(), "the end");
        let failed = Err(Error::Send(SendError::Closed));
        assert!(matches!(
            whole_message(failed, keep),
            Some(Err(Error::Send(_)))
        ));
        let piece = Event::Fragment {
            piece: Message::binary(&b"ab"[..]),
            first: true,
            last: false,
        };
        let mut given_back = None;
        let got = whole_message(Ok(Some(piece.clone())), |e| given_back = Some(e));
        assert!(matches!(got, Some(Err(Error::Streamed))));
        assert_eq!(given_back, Some(piece), "kept for the stream receive");
    }

    #[test]
    fn a_streamed_message_is_never_cut_short_silently() {
        use crate::{Config, Connection, Driver, Event, Message, Role};
        let piece = |first, last| Event::Fragment {
            piece: Message::binary(&b"ab"[..]),
            first,
            last,
        };
        let mut driver = Driver::new(Connection::new(Role::Server, Config::default()));
        let Some(Ok(mut reader)) = PieceReader::start(Ok(Some(piece(true, false)))) else {
            panic!("a first piece starts a stream");
        };
        assert!(!reader.is_text() && !reader.wants_more());
        assert_eq!(
            reader.take_piece().unwrap(),
            bytes::Bytes::from_static(b"ab")
        );
        assert!(reader.wants_more() && reader.take_piece().is_none());
        reader
            .receive(Ok(Some(piece(false, false))), &mut driver)
            .unwrap();
        assert_eq!(
            reader.take_piece().unwrap(),
            bytes::Bytes::from_static(b"ab")
        );
        // Another message's start: given back, and this one is cut short.
        let cut = reader.receive(Ok(Some(piece(true, false))), &mut driver);
        assert!(matches!(cut, Err(Error::CutShort)));
        assert!(!reader.wants_more(), "the stream ended");
        assert_eq!(driver.take_event(), Some(piece(true, false)));
        reader.abandon(|_| panic!("nothing left to discard"));
        // The end of the connection inside a message.
        let Some(Ok(mut reader)) = PieceReader::start(Ok(Some(piece(true, false)))) else {
            panic!("a first piece starts a stream");
        };
        let mut lent = false;
        reader.abandon(|_| lent = true);
        assert!(lent, "dropped half way: the rest is discarded");
        assert!(matches!(
            reader.receive(Ok(None), &mut driver),
            Err(Error::CutShort)
        ));
        // A whole message is a stream of one piece; no message, no stream.
        let whole = Ok(Some(Event::Message(Message::text("hi"))));
        let Some(Ok(mut reader)) = PieceReader::start(whole) else {
            panic!("a whole message starts a stream");
        };
        assert!(reader.is_text());
        assert_eq!(
            reader.take_piece().unwrap(),
            bytes::Bytes::from_static(b"hi")
        );
        assert!(!reader.wants_more());
        assert!(PieceReader::start(Ok(None)).is_none());
        let as_io = io::Error::from(Error::CutShort);
        assert_eq!(as_io.kind(), io::ErrorKind::UnexpectedEof);
    }
}
