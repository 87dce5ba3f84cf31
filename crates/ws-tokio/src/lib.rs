//! # ws-tokio: WebSockets on tokio
//!
//! A thin adapter that drives the sans-IO [`ws_proto`] core over any tokio
//! `AsyncRead + AsyncWrite` stream: it moves bytes, arms one timer and maps
//! types. Pings are answered, Close frames echoed, keepalive pings sent and
//! the close timeout enforced while you [`recv`](WebSocket::recv).
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
//! - Client: [`connect`], [`connect_with`], or [`client`] over a stream you
//!   connected (TLS).
//! - Server: [`accept`], [`accept_with`], or [`read_request`] then
//!   [`Incoming::accept`] / [`Incoming::reject`] to decide asynchronously.
//! - A stream upgraded elsewhere (hyper, axum): [`WebSocket::from_raw`].
//! - Two tasks: [`WebSocket::split`].
//! - `futures` combinators: [`WebSocket`] is a `Stream` of messages and a
//!   `Sink<Message>`.
//!
//! The timer is a `tokio::time::Sleep`: the runtime needs time enabled.

#![forbid(unsafe_code)]

extern crate alloc;

mod handshake;
mod socket;
mod split;

pub use ws_proto::{
    self, AcceptOptions, ClientRequest, ClientResponse, CloseCode, CloseFrame, Config, Connection,
    Event, HandshakeConfig, HandshakeError, Message, ProtocolError, Role, SendError, ServerRequest,
    Utf8Bytes, bytes::Bytes,
};

pub use ws_proto::adapter::{Error, Options, Result};

pub use crate::{
    handshake::{Incoming, accept, accept_with, client, connect, connect_with, read_request},
    socket::WebSocket,
    split::{ReadHalf, WriteHalf},
};
