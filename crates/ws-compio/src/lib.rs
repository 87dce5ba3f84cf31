//! # ws-compio: WebSockets on compio (io_uring)
//!
//! A thin adapter that runs the sans-IO [`ws_proto::Driver`] on
//! [compio](https://docs.rs/compio), a completion-based runtime: io_uring on
//! Linux, or compio's polling driver where io_uring is unavailable (this
//! crate enables both; compio picks at runtime). It performs the reads,
//! writes, shutdown and the one timer the driver asks for and maps types;
//! every policy (what to read and when, what a transport error means, the
//! close handshake) is the core's.
//!
//! ```no_run
//! use compio::net::TcpListener;
//! use ws_compio::{CloseCode, Message};
//!
//! # async fn demo() -> ws_compio::Result<()> {
//! // Server: accept and echo, one task per connection.
//! let listener = TcpListener::bind("127.0.0.1:9002").await?;
//! compio::runtime::spawn(async move {
//!     while let Ok((stream, _)) = listener.accept().await {
//!         compio::runtime::spawn(async move {
//!             let mut ws = ws_compio::accept(stream).await?;
//!             while let Some(message) = ws.recv().await {
//!                 ws.send(message?).await?;
//!             }
//!             Ok::<(), ws_compio::Error>(())
//!         })
//!         .detach();
//!     }
//! })
//! .detach();
//!
//! // Client.
//! let (mut ws, _response) = ws_compio::connect("ws://127.0.0.1:9002/").await?;
//! ws.send(Message::text("hello")).await?;
//! if let Some(echo) = ws.recv().await {
//!     println!("{:?}", echo?);
//! }
//! ws.close(CloseCode::NORMAL, "bye").await?;
//! # Ok(())
//! # }
//! ```
//!
//! - Client: [`connect`], [`connect_with`] (`ws://` only: no TLS), or
//!   [`client`] over a stream you connected.
//! - Server: [`accept`], [`accept_with`], or [`read_request`] then
//!   [`Incoming::accept`] / [`Incoming::reject`].
//! - A stream upgraded elsewhere: [`WebSocket::from_raw`] or
//!   [`WebSocket::from_driver`].
//! - Two tasks: [`WebSocket::split`] into a [`ReadHalf`] and a
//!   [`WriteHalf`] (tasks of one runtime: compio's futures are not `Send`).
//!   [`WriteHalf::try_send`], [`WriteHalf::try_close`] and [`broadcast`]
//!   queue without waiting, for fan-out (one slow peer never holds up the
//!   others).
//! - `futures` traits: [`WebSocket`] and [`ReadHalf`] are `Stream`s of
//!   messages, [`WebSocket`] and [`WriteHalf`] `Sink<Message>`s.
//!
//! ## Owned buffers
//! Completion I/O hands buffers to the kernel until the operation ends, so
//! the reads, writes, the shutdown and the timer's sleep are kept in flight
//! in the socket across calls, and every receive and flush is cancel-safe.
//! Writes pass the driver's own chunks ([`Driver::pop_chunk`], `Bytes`) to
//! the kernel without a copy.
//!
//! Between messages, when the driver holds nothing, a read lands in a
//! buffer the kernel picks when bytes arrive, from the runtime's pool
//! (io_uring's provided buffers): an idle connection lends the kernel no
//! memory of its own, and what arrives is copied into the driver
//! ([`Driver::filled_from`]). Within a frame, reads land straight in the
//! driver's buffer: its spare room is lent to the kernel as an owned
//! `BytesMut` ([`Driver::take_read_room`]) and rejoins it without a copy.
//! compio's pool holds 8 buffers of 8 KiB unless the runtime is built with
//! another size (`ProactorBuilder::buffer_pool_size`); a read that finds it
//! empty (`ENOBUFS`) is made again with its own room, so nothing is lost,
//! but each costs a second operation. Size the pool for the connections
//! that receive at once: with 100 busy connections, 40% of such reads
//! found compio's default pool empty, none found a pool of 128.
//! With compio's polling driver every read lends its room.
//!
//! A read that must not wait ([`flush`](WebSocket::flush) answering pings
//! while the application only sends) is submitted and polled once; it
//! stays in flight, and the next call collects it. So pings that arrive
//! while the application only sends are answered by its next `flush`.

#![forbid(unsafe_code)]

mod handshake;
mod socket;
mod split;

pub use ws_proto::{self, adapter::exports::*};

pub use crate::{
    handshake::*,
    socket::{Transport, WebSocket},
    split::{ReadHalf, WriteHalf},
};
