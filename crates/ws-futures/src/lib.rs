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
//! ## TLS
//! With the `rustls` feature, [`connect`] speaks `wss://` too (futures-rustls,
//! verified against Mozilla's roots; `connect_with_tls` takes your own rustls
//! `ClientConfig`), and `accept_tls` serves it with your `ServerConfig`.
//! [`connect`] returns a [`MaybeTlsStream`] either way.
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
//!
//! For fan-out (chat rooms, game state), [`WriteHalf::try_send`] queues
//! without waiting and fails fast ([`Error::is_full`]) once the
//! connection's queue is at its high-water mark
//! ([`Config::max_write_buffer`]); [`WriteHalf::try_close`] closes from any
//! task; [`broadcast`] sends one message to many connections and skips, or
//! closes ([`WhenFull`]), those that fall behind. Each connection's read
//! half writes what was queued: keep it receiving.
//!
//! ## Streaming: messages of any size in bounded memory
//! With [`Config::streaming`] on ([`Streaming::Always`], or
//! [`Streaming::Above`] a size), received messages arrive in pieces as they
//! come off the wire, never held whole: [`WebSocket::recv_stream`] (and
//! [`ReadHalf::recv_stream`]) returns a [`MessageStream`], a `Stream` of
//! `Bytes` pieces and a `futures_io::AsyncRead` / `AsyncBufRead`. (`recv`
//! answers such a message with [`Error::Streamed`] and leaves it for
//! `recv_stream`.) Dropping the stream half way drops the rest of the
//! message. [`WebSocket::send_stream`] (and [`WriteHalf::send_stream`])
//! returns a [`MessageWriter`], a `futures_io::AsyncWrite` whose writes are
//! the message's frames (`close` or [`MessageWriter::finish`] ends it;
//! [`MessageWriter::send`] takes owned pieces without a copy); dropping it
//! unfinished closes the connection with 1011.
//!
//! ```no_run
//! use futures_util::io::{AsyncReadExt, AsyncWriteExt};
//! use ws_futures::{Config, Options, Streaming, TcpStream};
//!
//! # async fn demo(stream: TcpStream) -> ws_futures::Result<()> {
//! let config = Config::default().with_streaming(Streaming::Always);
//! let mut ws = ws_futures::accept_with(stream, &Options::default().with_config(config)).await?;
//! // Count each message's bytes as they arrive, holding 64 KiB at a time.
//! while let Some(message) = ws.recv_stream().await {
//!     let mut message = message?;
//!     let (mut buf, mut len) = (vec![0; 64 * 1024], 0);
//!     loop {
//!         match message.read(&mut buf).await? {
//!             0 => break,
//!             n => len += n,
//!         }
//!     }
//!     println!("{len} bytes");
//! }
//! // Send one message piece by piece.
//! let mut writer = ws.send_stream(true);
//! writer.write_all("hello, ".as_bytes()).await?;
//! writer.write_all("world".as_bytes()).await?;
//! writer.finish().await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Layout
//! The run loop, the split halves and the handshake functions are
//! [`ws_async`]'s, shared with `ws-tokio`; this crate implements its runtime
//! trait for `futures-io` streams ([`FuturesIo`]) and names its types for
//! them ([`WebSocket<S>`] is `ws_async::WebSocket<S, FuturesIo>`).
//!
//! ## Transport shutdown
//! The write side is shut down with `AsyncWrite::poll_close`. async-std's
//! `TcpStream` only flushes there; its socket closes when dropped.

#![forbid(unsafe_code)]

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::time::Instant;

use async_io::Timer;
use futures_io::{AsyncRead, AsyncWrite};
use futures_util::io::{self, AsyncReadExt};
use ws_async::{Clock, Read};
use ws_proto::driver::ReadBuffer;

pub use async_net::TcpStream;
pub use ws_proto::{self, adapter::exports::*};

/// The `futures-io` runtime: its streams (any `AsyncRead + AsyncWrite +
/// Unpin`), `futures_util::io::split`, [`async_io::Timer`] and
/// `async-net`'s `TcpStream`, for the shared run loop of [`ws_async`],
/// whose types this crate names for `futures-io`.
#[derive(Debug, Clone, Copy)]
pub struct FuturesIo;

/// `futures-io` reads into initialised bytes: the room the driver planned
/// (its read size, or the read-ahead of a large frame), zero-filled.
impl<T: AsyncRead + Unpin> Read<T> for FuturesIo {
    fn poll_read(
        io: &mut T,
        cx: &mut Context<'_>,
        buf: &mut ReadBuffer,
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(io).poll_read(cx, buf.room_mut())
    }

    #[inline]
    fn poll_read_driver(
        io: &mut T,
        cx: &mut Context<'_>,
        d: &mut Driver,
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(io).poll_read(cx, d.read_slice())
    }
}

impl Clock for FuturesIo {
    type Instant = Instant;
    type Sleep = Timer;

    fn now() -> Instant {
        Instant::now()
    }

    fn sleep_until(at: Instant) -> Timer {
        Timer::at(at)
    }

    fn reset(sleep: &mut Timer, at: Instant) {
        sleep.set_at(at);
    }

    fn poll_sleep(sleep: &mut Timer, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(sleep).poll(cx).map(drop)
    }
}

// The write side is shut down with `poll_close`: async-std's `TcpStream`
// only flushes there; its socket closes when dropped.
ws_async::adapter!(
    FuturesIo,
    io: AsyncRead, AsyncWrite, poll_close,
    halves: io::ReadHalf<S>, io::WriteHalf<S>, AsyncReadExt::split,
    |read: io::ReadHalf<S>, write| read.reunite(write).ok(),
    connects: MaybeTlsStream,
);

ws_async::tls!(
    FuturesIo,
    tcp: TcpStream,
    tls: futures_rustls,
    read: AsyncRead, &mut [u8] => usize,
    write: AsyncWrite, poll_close,
);
