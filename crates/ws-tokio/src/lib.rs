//! # ws-tokio: WebSockets on tokio
//!
//! A thin adapter that runs the sans-IO [`ws_proto::Driver`] over any tokio
//! `AsyncRead + AsyncWrite` stream: it performs the reads, writes and the one
//! timer the driver asks for, and maps types; every policy (what to read and
//! when, what a transport error means, the close handshake) is the core's.
//! Pings are answered, Close frames echoed, keepalive pings sent and the
//! close timeout enforced while you [`recv`](WebSocket::recv).
//!
//! ```no_run
//! use ws_tokio::{CloseCode, Message};
//!
//! # async fn demo() -> ws_tokio::Result<()> {
//! // Server: accept on a listener and echo.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9002").await?;
//! tokio::spawn(async move {
//!     while let Ok((stream, _)) = listener.accept().await {
//!         tokio::spawn(async move {
//!             let mut ws = ws_tokio::accept(stream).await?;
//!             while let Some(message) = ws.recv().await {
//!                 ws.send(message?).await?;
//!             }
//!             Ok::<(), ws_tokio::Error>(())
//!         });
//!     }
//! });
//!
//! // Client.
//! let (mut ws, _response) = ws_tokio::connect("ws://127.0.0.1:9002/chat").await?;
//! ws.send(Message::text("hello")).await?;
//! if let Some(echo) = ws.recv().await {
//!     println!("{:?}", echo?);
//! }
//! ws.close(CloseCode::NORMAL, "bye").await?;
//! # Ok(())
//! # }
//! ```
//!
//! - Client: [`connect`], [`connect_with`] (`ws://`, and with the `rustls`
//!   feature `wss://`, verified against Mozilla's roots; `connect_with_tls`
//!   takes your own rustls `ClientConfig`), or [`client`] over a stream you
//!   connected. `connect` returns a [`MaybeTlsStream`].
//! - Server: [`accept`], [`accept_with`], or [`read_request`] then
//!   [`Incoming::accept`] / [`Incoming::reject`] to decide asynchronously;
//!   `accept_tls` (feature `rustls`) with your rustls `ServerConfig`.
//! - A stream upgraded elsewhere (hyper, axum): [`WebSocket::from_raw`], or
//!   [`WebSocket::from_driver`] with the connection the handshake negotiated
//!   (the `tokio_hyper_server` and `tokio_axum_server` examples).
//! - Two tasks: [`WebSocket::split`]; the read half keeps receiving (and
//!   answering pings) even while the write half is blocked on a slow peer.
//! - Fan-out (chat rooms, game state): [`WriteHalf::try_send`] queues
//!   without waiting and fails fast ([`Error::is_full`]) once the
//!   connection's queue is at its high-water mark
//!   ([`Config::max_write_buffer`]); [`WriteHalf::try_close`] closes from
//!   any task; [`broadcast`] sends one message to many connections and
//!   skips, or closes ([`WhenFull`]), those that fall behind. Each
//!   connection's read half writes what was queued: keep it receiving. A
//!   task that broadcasts from a busy receive loop should yield now and
//!   then (`tokio::task::yield_now`), so that the receivers' tasks run.
//! - Cancellation: `recv`, `recv_event`, `flush` and `close` are
//!   cancel-safe; `send`, `feed` and `ping` lose their message only if
//!   dropped while waiting for room in a full outgoing buffer.
//! - `futures` combinators: [`WebSocket`] is a `Stream` of messages and a
//!   `Sink<Message>`.
//!
//! The timer is a `tokio::time::Sleep`: the runtime needs time enabled.
//!
//! ## Streaming: messages of any size in bounded memory
//! With [`Config::streaming`] on ([`Streaming::Always`], or
//! [`Streaming::Above`] a size), received messages arrive in pieces as they
//! come off the wire, never held whole: [`WebSocket::recv_stream`] (and
//! [`ReadHalf::recv_stream`]) returns a [`MessageStream`], a `Stream` of
//! `Bytes` pieces and a `tokio::io::AsyncRead` / `AsyncBufRead`. (`recv`
//! answers such a message with [`Error::Streamed`] and leaves it for
//! `recv_stream`.) Dropping the stream half way drops the rest of the
//! message. [`WebSocket::send_stream`] (and [`WriteHalf::send_stream`])
//! returns a [`MessageWriter`], a `tokio::io::AsyncWrite` whose writes are
//! the message's frames (`shutdown` or [`MessageWriter::finish`] ends it;
//! [`MessageWriter::send`] takes owned pieces without a copy); dropping it
//! unfinished closes the connection with 1011.
//!
//! ```no_run
//! use tokio::io::AsyncWriteExt;
//! use ws_tokio::{Config, Options, Streaming};
//!
//! # async fn demo(stream: tokio::net::TcpStream) -> ws_tokio::Result<()> {
//! let config = Config::default().with_streaming(Streaming::Always);
//! let mut ws = ws_tokio::accept_with(stream, &Options::default().with_config(config)).await?;
//! // Copy each message into a file as it arrives.
//! while let Some(message) = ws.recv_stream().await {
//!     let mut message = message?;
//!     let mut file = tokio::fs::File::create("upload").await?;
//!     tokio::io::copy(&mut message, &mut file).await?;
//! }
//! // Send one message from a file, piece by piece.
//! let mut file = tokio::fs::File::open("download").await?;
//! let mut writer = ws.send_stream(false);
//! tokio::io::copy(&mut file, &mut writer).await?;
//! writer.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The run loop, the split halves and the handshake functions are
//! [`ws_async`]'s, shared with `ws-futures`; this crate implements its
//! runtime trait for tokio streams ([`Tokio`]) and names its types for them
//! ([`WebSocket<S>`] is `ws_async::WebSocket<S, Tokio>`).

#![forbid(unsafe_code)]

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use ws_async::{Clock, Read};
use ws_proto::driver::ReadBuffer;

pub use ws_proto::{self, adapter::exports::*};

/// The tokio runtime: its streams (any `AsyncRead + AsyncWrite + Unpin`),
/// `tokio::io::split`, `tokio::time::Sleep` and `TcpStream`, for the
/// shared run loop of [`ws_async`], whose types this crate names for tokio.
#[derive(Debug, Clone, Copy)]
pub struct Tokio;

impl<T: AsyncRead + Unpin> Read<T> for Tokio {
    #[inline]
    fn poll_read(
        io: &mut T,
        cx: &mut Context<'_>,
        buf: &mut ReadBuffer,
    ) -> Poll<io::Result<usize>> {
        tokio_util::io::poll_read_buf(Pin::new(io), cx, buf)
    }
}

impl Clock for Tokio {
    type Instant = Instant;
    type Sleep = Pin<Box<Sleep>>;

    fn now() -> Instant {
        Instant::now()
    }

    fn sleep_until(at: Instant) -> Self::Sleep {
        Box::pin(tokio::time::sleep_until(at))
    }

    fn reset(sleep: &mut Self::Sleep, at: Instant) {
        sleep.as_mut().reset(at);
    }

    fn poll_sleep(sleep: &mut Self::Sleep, cx: &mut Context<'_>) -> Poll<()> {
        sleep.as_mut().poll(cx)
    }
}

ws_async::adapter!(
    Tokio,
    io: AsyncRead, AsyncWrite, poll_shutdown,
    halves: tokio::io::ReadHalf<S>, tokio::io::WriteHalf<S>, tokio::io::split,
    |read: tokio::io::ReadHalf<S>, write| read.is_pair_of(&write).then(|| read.unsplit(write)),
    connects: MaybeTlsStream,
);

ws_async::tls!(
    Tokio,
    tcp: tokio::net::TcpStream,
    tls: tokio_rustls,
    read: AsyncRead, &mut tokio::io::ReadBuf<'_> => (),
    write: AsyncWrite, poll_shutdown, is_write_vectored,
);
