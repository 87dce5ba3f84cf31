//! # ws-futures: WebSocket over `futures-io`
//!
//! Runs the sans-IO [`ws_proto`] core over any
//! `futures_io::AsyncRead + AsyncWrite + Unpin` stream, so it works on smol,
//! async-std or any other executor. Timers come from [`async_io::Timer`].
//! The run loop itself (what to read, write and wait for) is the core's
//! [`Driver`]: every method here asks it what to do,
//! performs that on the stream and reports back.
//!
//! ```no_run
//! use ws_futures::{CloseCode, Message, connect};
//!
//! # fn main() -> Result<(), ws_futures::Error> {
//! smol::block_on(async {
//!     let (mut ws, _response) = connect("ws://127.0.0.1:9002/").await?;
//!     ws.send(Message::text("hello")).await?;
//!     if let Some(reply) = ws.recv().await {
//!         println!("echo: {:?}", reply?);
//!     }
//!     ws.close(CloseCode::NORMAL, "bye").await
//! })
//! # }
//! ```
//!
//! A server accepts connections with [`accept`], or in two steps with
//! [`read_request`] and [`Incoming::accept`] / [`Incoming::reject`].
//!
//! ## Cancellation
//! [`WebSocket::recv`] and [`WebSocket::recv_event`] (and those of
//! [`ReadHalf`]) are cancel-safe: all state lives in the driver, so
//! dropping the future loses nothing. `flush` is cancel-safe too. The
//! sending methods wait for room, then queue the message, then write: a
//! future dropped while it waits for room drops its message unsent; one
//! dropped while writing leaves the message queued, and it goes out with
//! the next write. `close` is cancel-safe: calling it again (or `recv`)
//! continues the handshake.
//!
//! ## Progress
//! Reading, automatic replies (pongs, close echoes), keepalive pings and the
//! close timeout advance inside `recv` / `recv_event` (and `close`, which
//! runs the handshake to its end). Keep one of them running, e.g. in a loop
//! or on a [`ReadHalf`], for the connection to stay healthy.
//!
//! A whole [`WebSocket`] also answers pings and echoes Close frames while
//! the application only sends: once its flush (`send`, `ping`, `flush`,
//! `Sink::poll_flush`) has written everything, it reads what already
//! arrived, without waiting, and writes the replies. Messages read then wait
//! for the next `recv`. A [`WriteHalf`] never reads: its [`ReadHalf`] does.
//!
//! ## Split
//! [`WebSocket::split`] gives a [`ReadHalf`] and a [`WriteHalf`] for two
//! tasks. No lock is held across I/O: the read half keeps receiving (and
//! answering pings) while the write half waits for a peer that does not
//! read, and automatic replies go out in order with the writer's messages.
//! [`WebSocket`], [`ReadHalf`] and [`WriteHalf`] are one type, [`Socket`],
//! over a whole connection or a half ([`link`]): each method exists once,
//! on the halves that receive or send.
//!
//! ## Transport shutdown
//! The write side is shut down with `AsyncWrite::poll_close`. async-std's
//! `TcpStream` only flushes there; its socket closes when dropped.

#![forbid(unsafe_code)]

mod handshake;
mod socket;
mod split;

pub use async_net::TcpStream;
pub use ws_proto::{self, adapter::exports::*};

pub use crate::handshake::*;
pub use crate::socket::{Socket, WebSocket};
pub use crate::split::{ReadHalf, WriteHalf};

/// The transports behind a [`Socket`]: a whole connection or a split half.
/// Their methods are internal; they appear in the docs of [`Socket`].
pub mod link {
    pub use crate::socket::{Link, Receiver, Sender, Whole};
    pub use crate::split::Half;
}
