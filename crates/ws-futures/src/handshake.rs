//! The opening handshake: [`connect`], [`client`], [`accept`],
//! [`read_request`] and [`Incoming`]. The driver runs it ([`Op::Open`]);
//! this module only connects sockets.

use core::{future::poll_fn, pin::pin};
use std::time::Instant;

use async_io::Timer;
use async_net::TcpStream;
use futures_io::{AsyncRead, AsyncWrite};
use futures_util::future::{Either, select};
use ws_proto::{AcceptOptions, ClientRequest, ClientResponse, Driver, HandshakeError, Op};
use ws_proto::{ServerRequest, adapter};

use crate::socket::{Clock, poll_op};
use crate::{Options, Result, WebSocket};

/// Runs the opening handshake of `ws`'s driver ([`Op::Open`]) to the
/// application's turn.
async fn open<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>) -> Result<()> {
    poll_fn(|cx| poll_op(&mut ws.0, cx, Op::Open)).await?;
    // The handshake's sleep is not the connection's.
    ws.0.timer = Clock::new();
    Ok(ws.0.driver.handshake_result()?)
}

/// Connects to a `ws://` URL with the default [`Options`].
///
/// Cancelling (dropping the future) drops the stream: the handshake cannot resume.
pub async fn connect(url: &str) -> Result<(WebSocket<TcpStream>, ClientResponse)> {
    connect_with(ClientRequest::new(url)?, &Options::default()).await
}

/// Resolves the host, connects over TCP (no Nagle) and runs the client
/// handshake, all within `options.handshake_timeout`. `wss://` is refused:
/// there is no TLS yet. A non-101 answer is
/// `Error::Handshake(HandshakeError::Rejected(..))`.
///
/// Cancelling (dropping the future) drops the stream: the handshake cannot resume.
pub async fn connect_with(
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<TcpStream>, ClientResponse)> {
    let target = adapter::plain_tcp_target(&request)?;
    let start = Instant::now();
    let timer = options
        .handshake_timeout
        .map_or_else(Timer::never, Timer::after);
    let stream = match select(pin!(TcpStream::connect(target)), timer).await {
        Either::Left((stream, _)) => stream?,
        Either::Right(_) => return Err(HandshakeError::TimedOut.into()),
    };
    stream.set_nodelay(true)?;
    client(stream, request, &options.after(start.elapsed())?).await
}

/// Runs the client handshake over an already-connected stream, within
/// `options.handshake_timeout`.
///
/// Cancelling (dropping the future) drops the stream: the handshake cannot resume.
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<S>, ClientResponse)> {
    let mut ws = WebSocket::from_driver(stream, Driver::client(&request, options)?);
    open(&mut ws).await?;
    let response = ws.0.driver.take_response()?;
    Ok((ws, response))
}

/// Accepts a connection with the default [`Options`] and no subprotocol.
///
/// Cancelling (dropping the future) drops the stream: the handshake cannot resume.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Result<WebSocket<S>> {
    accept_with(stream, &Options::default()).await
}

/// Accepts a connection with `options` and no subprotocol.
///
/// Cancelling (dropping the future) drops the stream: the handshake cannot resume.
pub async fn accept_with<S>(stream: S, options: &Options) -> Result<WebSocket<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Boxed: the handshake's state lives on the heap only while it runs,
    // not in the connection task's future for the connection's whole life
    // (a task is as large as its largest state).
    Box::pin(async move {
        let incoming = read_request_with(stream, options).await?;
        incoming.accept(&AcceptOptions::new()).await
    })
    .await
}

/// Reads the opening request with the default [`Options`]; see
/// [`read_request_with`].
pub async fn read_request<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Result<Incoming<S>> {
    read_request_with(stream, &Options::default()).await
}

/// Reads the opening request, within `options.handshake_timeout`, for the
/// application to inspect before [`Incoming::accept`] or
/// [`Incoming::reject`]. A malformed request gets its 400/426/431 answer
/// before the error is returned.
///
/// Cancelling (dropping the future) drops the stream: the handshake cannot resume.
pub async fn read_request_with<S>(stream: S, options: &Options) -> Result<Incoming<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut ws = WebSocket::from_driver(stream, Driver::server(options));
    open(&mut ws).await?;
    let request = ws.0.driver.take_request()?;
    Ok(Incoming(ws, request))
}

/// A client's valid opening request, waiting for the application's answer:
/// the stream (with bytes read past the request) and the request.
#[derive(Debug)]
pub struct Incoming<S>(WebSocket<S>, ServerRequest);

impl<S: AsyncRead + AsyncWrite + Unpin> Incoming<S> {
    /// The request: path, headers, offered subprotocols.
    pub const fn request(&self) -> &ServerRequest {
        &self.1
    }

    /// Writes the `101` response and starts the connection; bytes the
    /// client sent after its request are kept. Cancelling drops the stream.
    pub async fn accept(self, options: &AcceptOptions) -> Result<WebSocket<S>> {
        let Self(mut ws, request) = self;
        ws.0.driver.accept(&request, options)?;
        open(&mut ws).await?;
        Ok(ws)
    }

    /// Writes a refusal (e.g. 401 or 403) with extra headers and a body,
    /// then shuts the stream down. Cancelling drops the stream.
    pub async fn reject(self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<()> {
        let Self(mut ws, request) = self;
        ws.0.driver.reject(&request, status, headers, body);
        open(&mut ws).await
    }
}
