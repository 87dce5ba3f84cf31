//! # ws-proto: a sans-IO WebSocket core
//!
//! An implementation of RFC 6455 that does no I/O: **bytes in, events out;
//! commands in, bytes out**. It reads no clock, spawns no threads, uses no
//! global randomness, and works without `std` (with `alloc`). Runtime adapters
//! (`ws-tokio`, `ws-futures`, `ws-std`) and your own event loop all drive it
//! through the same public API.
//!
//! ```text
//!            transport bytes                       application
//!  read ──► BytesMut ──► Connection::next_event ──► Event (Message, Ping, Pong, Close)
//!  write ◄── Outgoing (Buf) ◄── Connection::send / ping / close ◄── commands
//!  timer ◄── poll_timeout(now)          handle_timeout(now) ◄── timer fired
//! ```
//!
//! ## The two steps
//! 1. The opening handshake: [`ClientHandshake`] (write its request, feed the
//!    response to [`ClientHandshake::receive`]) or [`ServerHandshake`] (feed the
//!    request to [`ServerHandshake::receive`], or build it from a request
//!    your HTTP library parsed with [`ServerRequest::from_parts`], then answer
//!    [`ServerRequest::accept`] or [`ServerRequest::reject`]). Bytes after the
//!    HTTP head stay in your buffer.
//! 2. The [`Connection`]: the framing, masking, fragmentation, UTF-8 checks,
//!    ping/pong and the close handshake.
//!
//! ## The run loop
//! After every input (bytes read, EOF, timer) or command (send, close):
//! drain [`Connection::next_event`] until `Ok(None)`, write
//! [`Connection::outgoing`], re-arm the timer from [`Connection::poll_timeout`],
//! and close the transport once [`Connection::should_close_transport`].
//! Pings and Close frames are answered automatically: don't do it again.
//! Before a read, [`Connection::read_ahead`] says how much room the frame in
//! progress still needs (bounded by what the peer has actually sent), so a
//! large message can be read into one reservation instead of a buffer that
//! doubles and copies its contents again and again.
//!
//! ```
//! use bytes::{Buf, BytesMut};
//! use ws_proto::{
//!     AcceptOptions, ClientHandshake, ClientRequest, Config, Event, Message, ServerHandshake,
//! };
//!
//! // A deterministic "network": two buffers standing in for the two directions.
//! let fixed = |dest: &mut [u8]| dest.fill(7);
//! let request = ClientRequest::new("ws://example.com/chat")?.protocol("chat");
//! let mut client_hs = ClientHandshake::with_entropy(&request, &mut { fixed })?;
//! let mut to_server = BytesMut::from(client_hs.request());
//!
//! let mut server_hs = ServerHandshake::new();
//! let request = server_hs.receive(&mut to_server)?.expect("the request is complete");
//! assert_eq!(request.path(), "/chat");
//! // The first of the server's subprotocols that the client offered.
//! let accepted = request.accept(&AcceptOptions::new().protocols(["chat.v2", "chat"]))?;
//! let mut to_client = BytesMut::from(accepted.response());
//! let response = client_hs.receive(&mut to_client)?.expect("the response is complete");
//! assert_eq!(response.protocol.as_deref(), Some("chat"));
//!
//! // The connections, which know what the handshake negotiated.
//! let mut client = response.connection_with_entropy(Config::default(), fixed);
//! let mut server = accepted.connection(Config::default());
//! assert_eq!((client.protocol(), server.protocol()), (Some("chat"), Some("chat")));
//!
//! client.send(Message::text("hello"))?;
//! // "Write" the client's outgoing bytes into the server's read buffer.
//! let out = client.outgoing();
//! while out.has_remaining() {
//!     let chunk = out.chunk().to_vec();
//!     to_server.extend_from_slice(&chunk);
//!     out.advance(chunk.len());
//! }
//! match server.next_event(&mut to_server)? {
//!     Some(Event::Message(Message::Text(text))) => assert_eq!(text, "hello"),
//!     other => panic!("unexpected {other:?}"),
//! }
//! assert_eq!(server.next_event(&mut to_server)?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Messages of any size: streaming
//! With [`Config::streaming`] set ([`Streaming::Always`], or
//! [`Streaming::Above`] a size), a data message arrives as
//! [`Event::Fragment`] pieces as its bytes come in, instead of one
//! [`Event::Message`] once complete: no reassembly buffer, so memory stays
//! bounded by the read buffer and one piece whatever the size (bounded only
//! by [`Config::max_streamed_message_size`], if set). Pieces are zero-copy
//! splits of the read buffer; text pieces are whole code points, checked as
//! they arrive (a bad byte fails with 1007 before its piece is delivered);
//! a compressed message is inflated at most 64 KiB at a time, from partial
//! frames. To send one piece by piece, [`PieceSender`] writes byte slices as
//! frames ([`Connection::send_fragment`] underneath), keeping text whole code
//! points, and closes with 1011 if abandoned half way.
//!
//! ## Features
//! - `std` (default): `std::io::IoSlice` support in [`Outgoing`]'s
//!   `chunks_vectored`, SIMD UTF-8 validation with run-time CPU detection,
//!   and [`adapter`]: the error type and options shared by the adapters.
//! - `getrandom` (default): [`OsEntropy`], [`Connection::new`] and
//!   [`ClientHandshake::new`]. Without it, inject an [`Entropy`] source.
//! - `deflate` (off by default): permessage-deflate (RFC 7692), see the
//!   `deflate` module. Works without `std`.

#![cfg_attr(not(feature = "std"), no_std)]
// Three audited exceptions, each a small module with its SAFETY comment and
// tests: `mask::wide` (an AVX2 build of the safe masking loop, called after a
// CPU check), `utf8::valid_str` (O(1) `Utf8Bytes::as_str` over bytes checked
// on the way in), and `driver::read_buffer` (a `BufMut` that forwards to
// `BytesMut`'s, so a transport can only append to the driver's buffer).
// Everything else is safe code.
#![deny(unsafe_code)]
#![warn(missing_docs)]
// The library must build without std: reach for core and alloc first.
#![warn(
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::alloc_instead_of_core
)]

extern crate alloc;

#[cfg(feature = "std")]
pub mod adapter;
pub mod close;
pub mod config;
pub mod connection;
#[cfg(feature = "deflate")]
pub mod deflate;
pub mod driver;
pub mod entropy;
pub mod error;
pub mod event;
mod frame;
pub mod handshake;
mod mask;
mod utf8;

/// Internals for the fuzz targets, benchmarks and tests: frame headers,
/// masking, the incremental UTF-8 validator, read-ahead constants. Not part
/// of the API: they may change in any release.
#[doc(hidden)]
pub mod internals {
    pub use crate::{
        connection::{READ_AHEAD_EARN, READ_AHEAD_FREE},
        frame::{FrameHeader, MAX_HEADER_LEN, OpCode},
        mask::{apply_mask, apply_mask_bytewise},
        utf8::Utf8Validator,
    };
}

pub use bytes::{self, Buf, BufMut, Bytes, BytesMut};

#[cfg(feature = "deflate")]
pub use crate::deflate::{DeflateConfig, DeflateError, DeflateParams, DeflatePolicy};
#[cfg(feature = "getrandom")]
pub use crate::entropy::OsEntropy;
pub use crate::{
    close::{CloseCode, CloseFrame},
    config::{Config, Streaming},
    connection::{Connection, Outgoing, PieceSender, Role, State},
    driver::{Action, Broadcast, Driver, Offer, Offered, Op, Options, WhenFull, broadcast},
    entropy::Entropy,
    error::{HandshakeError, ProtocolError, SendError},
    event::{Event, Message},
    handshake::{
        AcceptOptions, Accepted, ClientHandshake, ClientRequest, ClientResponse, HandshakeConfig,
        HttpResponse, Negotiated, ServerHandshake, ServerRequest, accept_key,
    },
    utf8::{InvalidUtf8, Utf8Bytes},
};
