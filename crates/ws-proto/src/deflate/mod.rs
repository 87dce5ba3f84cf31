//! permessage-deflate (RFC 7692): the configuration, the negotiation of its
//! four parameters in the opening handshake, and the codec the
//! [`Connection`](crate::Connection) runs once it was negotiated.
//!
//! Enable it with [`HandshakeConfig::with_deflate`](crate::HandshakeConfig::with_deflate)
//! (client: [`ClientHandshake::with_config`](crate::ClientHandshake::with_config);
//! server: [`ServerHandshake::with_config`](crate::ServerHandshake::with_config)
//! or [`AcceptOptions::deflate`](crate::AcceptOptions::deflate)). What was
//! agreed travels in [`Negotiated::deflate`](crate::Negotiated::deflate) to the
//! connection.
//!
//! ```
//! use ws_proto::bytes::{Buf, BytesMut};
//! use ws_proto::{
//!     AcceptOptions, ClientHandshake, ClientRequest, Config, DeflateConfig, Event,
//!     HandshakeConfig, Message, ServerHandshake,
//! };
//!
//! let config = HandshakeConfig::default().with_deflate(DeflateConfig::default());
//! let request = ClientRequest::new("ws://example.com/")?;
//! let mut client_hs = ClientHandshake::with_entropy(&request, &mut |d: &mut [u8]| d.fill(7))?
//!     .with_config(config.clone());
//! let mut to_server = BytesMut::from(client_hs.request());
//! let request = ServerHandshake::with_config(config)
//!     .receive(&mut to_server)?
//!     .expect("complete");
//! let accepted = request.accept(&AcceptOptions::new())?;
//! let mut to_client = BytesMut::from(accepted.response());
//! let response = client_hs.receive(&mut to_client)?.expect("complete");
//! assert_eq!(
//!     response.extensions,
//!     ["permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"]
//! );
//!
//! let mut client = response.connection_with_entropy(Config::default(), |d: &mut [u8]| d.fill(7));
//! let mut server = accepted.connection(Config::default());
//! let text = "compressible ".repeat(20);
//! client.send(Message::text(text.as_str()))?;
//! let out = client.outgoing();
//! let wire = out.copy_to_bytes(out.remaining());
//! assert!(wire.len() < 60, "{} bytes on the wire for {}", wire.len(), text.len());
//! let mut buf = BytesMut::from(&wire[..]);
//! assert_eq!(server.next_event(&mut buf)?, Some(Event::Message(Message::text(text))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Memory
//! Compression state is large (zlib-rs: 134 to 371 KiB for a compressor,
//! 46 KiB for a decompressor, whatever the window), and setting one up costs
//! more than compressing a chat message with it. So a connection keeps its
//! contexts while messages flow, and frees them once no compressed message
//! went either way for [`DeflateConfig::release_contexts_after`] (1 s by
//! default; the connection's timer does it, so an embedder that never calls
//! [`Connection::handle_timeout`](crate::Connection::handle_timeout) keeps
//! them). With context takeover it also keeps the last `2^window_bits`
//! bytes of each direction's uncompressed data, and primes the next fresh
//! context with them ("set dictionary"): the peer sees exactly the LZ77
//! window RFC 7692 section 7.1.1 describes. An idle connection therefore
//! holds `2^client_bits + 2^server_bits` bytes with takeover (8 KiB at the
//! default 12 bits), and nothing without it.
//!
//! ## Window bits 8
//! zlib (and zlib-rs) cannot compress with an 8-bit window: raw deflate
//! silently uses 9. So this crate never agrees to *compress* with 8: a
//! server declines an offer whose `server_max_window_bits=8` would bind it,
//! and a client fails the handshake with
//! [`DeflateError::UnsupportedWindowBits`] when the server answers
//! `client_max_window_bits=8`. Decompressing with 8 is fine, so 8 is
//! accepted for the peer's direction.

mod codec;
mod negotiate;

pub(crate) use self::codec::{Codec, TAIL_ROOM};
pub(crate) use self::negotiate::{NAME, accept_offers, check_response, is_deflate, offers};

use core::{fmt, time::Duration};

use alloc::string::String;

/// Whether permessage-deflate is used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeflatePolicy {
    /// Never offered (client) nor accepted (server).
    #[default]
    Off,
    /// A client offers it; a server accepts an acceptable offer. Without
    /// agreement the connection runs uncompressed.
    Offer,
    /// Like `Offer`, but the handshake fails without agreement: a server
    /// rejects the request (400), a client fails with
    /// [`DeflateError::Required`].
    Require,
}

/// The permessage-deflate settings of one endpoint: what it offers or
/// accepts, and how it compresses.
///
/// `client_*` and `server_*` name the direction as RFC 7692 does (the
/// client's messages, the server's messages), whichever role uses this.
/// [`DeflateConfig::default`] enables deflate ([`DeflatePolicy::Offer`])
/// with lean defaults; [`HandshakeConfig`](crate::HandshakeConfig) starts
/// from [`DeflateConfig::OFF`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Off, offer-or-accept, or require. Default: `Offer`.
    pub policy: DeflatePolicy,
    /// zlib compression level, 0 (stored) to 9. Default: 1, the speed end
    /// (as gorilla/websocket's default and nginx's `gzip_comp_level`),
    /// chosen by measurement (ws-bench scenario `l`: a server echoing
    /// ~1 KiB chat JSON / 64 KiB logs, inflating and compressing each):
    ///
    /// | level | instructions per echo | bytes sent per echo |
    /// |---|---|---|
    /// | 1 | 79 k / 1.53 M | 359 / 11,190 |
    /// | 3 | 170 k / 3.45 M | 291 / 7,764 |
    /// | 6 (zlib's default) | 177 k / 3.90 M | 281 / 6,659 |
    ///
    /// Level 6 sends 22% (JSON) to 40% (logs) fewer bytes for 2.2 to 2.5
    /// times the CPU: choose it where bandwidth costs more than CPU.
    pub level: u8,
    /// zlib memory level for the compressor, 1 to 9: smaller costs a
    /// little ratio and saves transient memory while a message is being
    /// compressed (the compressor is freed after each message). Default: 5.
    pub mem_level: u8,
    /// Messages shorter than this go out uncompressed. Default: 64 bytes.
    /// Measured on chat JSON (benches/backends): without takeover, output
    /// is no smaller than input up to 32 bytes and 3% smaller at 64 (82
    /// of 96 at 96); with takeover even 8 bytes shrink (to 5), but every
    /// compressed message pays a context set-up of about 10 µs, so tiny
    /// messages are not worth it.
    pub min_size: usize,
    /// The largest LZ77 window the client compresses with, 9 to 15 (8 is
    /// refused: see the module doc). A client offers
    /// `client_max_window_bits` without a value (it honours whatever limit
    /// the server answers, and never compresses with more than this); a
    /// server asks for this value in its answer when the offer allows.
    /// Default: 12 (4 KiB).
    pub client_max_window_bits: u8,
    /// The largest LZ77 window the server compresses with, 9 to 15. A
    /// client asks for it (`server_max_window_bits`, when below 15); a
    /// server compresses with the smaller of this and the client's value.
    /// Default: 12.
    pub server_max_window_bits: u8,
    /// The client does not keep its compression context between messages.
    /// A client offers it and resets; a server answers it (the client must
    /// then reset, and the server keeps no receive window). Default: false.
    pub client_no_context_takeover: bool,
    /// The server does not keep its compression context between messages.
    /// A client asks for it; a server answers it and resets. Default: false.
    pub server_no_context_takeover: bool,
    /// How long compression contexts outlive the last compressed message:
    /// a connection that sends or receives none for this long frees them
    /// (they are rebuilt, primed with the kept window, on the next one).
    /// Measured (callgrind) on a server echoing ~1 KiB chat JSON at the
    /// defaults: with kept contexts an echo (inflate and compress) costs
    /// about 54,000 instructions, with fresh primed ones about 141,000,
    /// while a connection's contexts hold about 210 KiB.
    /// Freed by the connection's timer, between one and two times this
    /// after the last message. `None`: kept for the connection's life.
    /// Local only: nothing is negotiated. Default: 1 second.
    pub release_contexts_after: Option<Duration>,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        // The same settings as `OFF`, offered.
        Self {
            policy: DeflatePolicy::Offer,
            ..Self::OFF
        }
    }
}

impl DeflateConfig {
    /// Deflate disabled; the other fields are the defaults.
    pub const OFF: Self = Self {
        policy: DeflatePolicy::Off,
        level: 1,
        mem_level: 5,
        min_size: 64,
        client_max_window_bits: 12,
        server_max_window_bits: 12,
        client_no_context_takeover: false,
        server_no_context_takeover: false,
        release_contexts_after: Some(Duration::from_secs(1)),
    };

    /// Sets [`policy`](Self::policy).
    #[must_use]
    pub const fn with_policy(mut self, policy: DeflatePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets [`level`](Self::level) (clamped to 0..=9).
    #[must_use]
    pub const fn with_level(mut self, level: u8) -> Self {
        self.level = if level > 9 { 9 } else { level };
        self
    }

    /// Sets [`mem_level`](Self::mem_level) (clamped to 1..=9).
    #[must_use]
    pub const fn with_mem_level(mut self, mem_level: u8) -> Self {
        self.mem_level = clamp(mem_level, 1, 9);
        self
    }

    /// Sets [`min_size`](Self::min_size).
    #[must_use]
    pub const fn with_min_size(mut self, bytes: usize) -> Self {
        self.min_size = bytes;
        self
    }

    /// Sets both window sizes (clamped to 9..=15).
    #[must_use]
    pub const fn with_window_bits(mut self, client: u8, server: u8) -> Self {
        self.client_max_window_bits = clamp(client, 9, 15);
        self.server_max_window_bits = clamp(server, 9, 15);
        self
    }

    /// Sets both no-context-takeover flags.
    #[must_use]
    pub const fn with_no_context_takeover(mut self, client: bool, server: bool) -> Self {
        self.client_no_context_takeover = client;
        self.server_no_context_takeover = server;
        self
    }

    /// Sets [`release_contexts_after`](Self::release_contexts_after).
    #[must_use]
    pub const fn with_release_contexts_after(mut self, idle: Option<Duration>) -> Self {
        self.release_contexts_after = idle;
        self
    }

    /// The window bits as used: fields set out of range by hand are clamped.
    pub(crate) const fn client_bits(&self) -> u8 {
        clamp(self.client_max_window_bits, 9, 15)
    }

    pub(crate) const fn server_bits(&self) -> u8 {
        clamp(self.server_max_window_bits, 9, 15)
    }
}

const fn clamp(value: u8, min: u8, max: u8) -> u8 {
    if value < min {
        min
    } else if value > max {
        max
    } else {
        value
    }
}

/// What the handshake agreed for permessage-deflate, from this endpoint's
/// point of view, plus its own compression settings. Carried by
/// [`Negotiated::deflate`](crate::Negotiated::deflate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeflateParams {
    /// Window bits we compress with (9..=15).
    pub(crate) send_bits: u8,
    /// Window bits the peer may compress with (8..=15).
    pub(crate) recv_bits: u8,
    /// Whether we keep our compression context between messages.
    pub(crate) send_takeover: bool,
    /// Whether the peer may keep its context (so we keep our window).
    pub(crate) recv_takeover: bool,
    pub(crate) level: u8,
    pub(crate) mem_level: u8,
    pub(crate) min_size: usize,
    /// See [`DeflateConfig::release_contexts_after`].
    pub(crate) release_after: Option<Duration>,
}

impl DeflateParams {
    /// The LZ77 window (in bits) our compressor uses.
    pub const fn send_window_bits(&self) -> u8 {
        self.send_bits
    }

    /// The largest LZ77 window (in bits) the peer may compress with.
    pub const fn receive_window_bits(&self) -> u8 {
        self.recv_bits
    }

    /// Whether our compressor keeps its context between messages.
    pub const fn send_context_takeover(&self) -> bool {
        self.send_takeover
    }

    /// Whether the peer may keep its context between messages.
    pub const fn receive_context_takeover(&self) -> bool {
        self.recv_takeover
    }

    /// Parameters for tests and custom handshakes: we compress with
    /// `send_bits` (9..=15), the peer with `recv_bits` (8..=15), and each
    /// keeps its context or not; compression settings from `config`.
    pub fn new(
        config: &DeflateConfig,
        send_bits: u8,
        recv_bits: u8,
        send_takeover: bool,
        recv_takeover: bool,
    ) -> Self {
        Self {
            send_bits: clamp(send_bits, 9, 15),
            recv_bits: clamp(recv_bits, 8, 15),
            send_takeover,
            recv_takeover,
            level: if config.level > 9 { 9 } else { config.level },
            mem_level: clamp(config.mem_level, 1, 9),
            min_size: config.min_size,
            release_after: config.release_contexts_after,
        }
    }
}

/// Why a permessage-deflate negotiation failed the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeflateError {
    /// The server's answer has a parameter RFC 7692 does not define.
    UnknownParameter(String),
    /// The server's answer repeats a parameter (RFC 7692 section 7).
    DuplicateParameter(String),
    /// A parameter's value is missing, malformed or out of range (window
    /// bits are 8 to 15; the takeover flags take no value).
    InvalidValue(String),
    /// The server's answer does not fit our offer: a parameter the offer did
    /// not allow (a `client_max_window_bits` larger than offered, RFC 7692
    /// section 7.1.2.2), or without one the offer required (the
    /// `server_no_context_takeover` we asked for, section 7.1.1.1).
    NotOffered(String),
    /// The server accepted permessage-deflate more than once, or with
    /// another extension that also uses RSV1.
    DuplicateExtension,
    /// The server answered `client_max_window_bits=8`: zlib cannot compress
    /// with an 8-bit window.
    UnsupportedWindowBits(u8),
    /// Deflate is required ([`DeflatePolicy::Require`]) and was not agreed.
    Required,
}

impl fmt::Display for DeflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownParameter(p) => write!(f, "unknown permessage-deflate parameter {p:?}"),
            Self::DuplicateParameter(p) => {
                write!(f, "duplicate permessage-deflate parameter {p:?}")
            }
            Self::InvalidValue(p) => write!(f, "invalid value for permessage-deflate {p:?}"),
            Self::NotOffered(p) => write!(f, "permessage-deflate {p:?} was not offered"),
            Self::DuplicateExtension => {
                f.write_str("permessage-deflate accepted twice, or with another RSV1 extension")
            }
            Self::UnsupportedWindowBits(bits) => {
                write!(f, "cannot compress with a {bits}-bit window")
            }
            Self::Required => f.write_str("permessage-deflate is required and was not agreed"),
        }
    }
}

impl core::error::Error for DeflateError {}
