//! The opening handshake: connecting as a client, accepting as a server.
//! The driver runs it ([`Op::Open`]); this module only connects sockets.

use core::future::poll_fn;
use core::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use ws_proto::{AcceptOptions, ClientRequest, ClientResponse, Driver, HandshakeError, Op};
use ws_proto::{ServerRequest, adapter, adapter::exports::Options};

use crate::socket::{Timer, poll_op};
use crate::{MaybeTlsStream, Result, WebSocket};

/// Runs the opening handshake of `ws`'s driver ([`Op::Open`]) to the
/// application's turn.
async fn open<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>) -> Result<()> {
    poll_fn(|cx| poll_op(ws, cx, Op::Open)).await?;
    // The handshake's sleep is not the connection's: free it.
    ws.timer = Timer::default();
    Ok(ws.driver.handshake_result()?)
}

/// Like [`connect`], with a prepared request (subprotocols, headers) and
/// options. Cancelling abandons the connection attempt.
pub async fn connect_with(
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<MaybeTlsStream>, ClientResponse)> {
    #[cfg(feature = "rustls")]
    if request.is_secure() {
        let config = adapter::tls::default_client_config()?;
        return crate::tls::connect_with_tls(request, options, config).await;
    }
    adapter::plain_tcp_target(&request)?;
    let (stream, start) = tcp_connect(&request, options).await?;
    let options = options.after(start.elapsed())?;
    client(MaybeTlsStream::Plain(stream), request, &options).await
}

/// A TCP connection (with `TCP_NODELAY`) to the request's host and port,
/// within the handshake timeout; and when the attempt started.
pub(crate) async fn tcp_connect(
    request: &ClientRequest,
    options: &Options,
) -> Result<(TcpStream, Instant)> {
    let start = Instant::now();
    let limit = options.handshake_timeout.unwrap_or(Duration::MAX);
    let target = (request.host(), request.port());
    let connect = tokio::time::timeout(limit, TcpStream::connect(target));
    let stream = connect.await.map_err(|_| HandshakeError::TimedOut)??;
    stream.set_nodelay(true)?;
    Ok((stream, start))
}

/// Connects to a `ws://` URL (with the `rustls` feature, `wss://` too,
/// verified against Mozilla's roots) with the default [`Options`]: DNS,
/// TCP (with `TCP_NODELAY`), TLS and the handshake, all within the
/// handshake timeout. Without the feature, `wss://` fails with
/// [`HandshakeError::InvalidRequest`]: connect a TLS stream yourself and
/// use [`client`].
///
/// Cancelling (dropping the future) abandons the connection attempt.
pub async fn connect(url: &str) -> Result<(WebSocket<MaybeTlsStream>, ClientResponse)> {
    connect_with(ClientRequest::new(url)?, &Options::default()).await
}

/// Runs the client handshake over an already connected stream (TLS, a
/// proxy tunnel, ...), within the handshake timeout. A refusal (any status
/// but 101) is [`HandshakeError::Rejected`] with the response.
///
/// Cancelling drops the stream mid-handshake.
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<S>, ClientResponse)> {
    let mut ws = WebSocket::from_driver(stream, Driver::client(&request, options)?);
    open(&mut ws).await?;
    let response = ws.driver.take_response()?;
    Ok((ws, response))
}

/// Accepts a WebSocket connection with the default [`Options`] and no
/// subprotocol, within the handshake timeout for reading the request.
/// Cancelling drops the stream mid-handshake.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Result<WebSocket<S>> {
    accept_with(stream, &Options::default()).await
}

/// Accepts a WebSocket connection with `options` and no subprotocol.
/// Cancelling drops the stream mid-handshake.
pub async fn accept_with<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    options: &Options,
) -> Result<WebSocket<S>> {
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

/// A valid opening request waiting for the application's answer.
#[derive(Debug)]
pub struct Incoming<S> {
    /// The stream, and the driver holding bytes read past the request.
    ws: WebSocket<S>,
    request: ServerRequest,
}

/// Reads the opening request, within the handshake timeout, for the
/// application to inspect before it [accepts](Incoming::accept) or
/// [rejects](Incoming::reject) it (it may await anything in between).
///
/// A malformed request gets its HTTP error response (400, 426, 431) written
/// before the error is returned. Cancelling drops the stream.
pub async fn read_request_with<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    options: &Options,
) -> Result<Incoming<S>> {
    let mut ws = WebSocket::from_driver(stream, Driver::server(options));
    open(&mut ws).await?;
    let request = ws.driver.take_request()?;
    Ok(Incoming { ws, request })
}

impl<S> Incoming<S> {
    /// The request: path, headers, offered subprotocols.
    pub const fn request(&self) -> &ServerRequest {
        &self.request
    }

    /// The underlying stream (e.g. for the peer address).
    pub const fn get_ref(&self) -> &S {
        self.ws.get_ref()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Incoming<S> {
    /// Accepts: writes the `101` response (with the chosen subprotocol and
    /// headers) and returns the connection. An `options` the request does
    /// not allow (an unoffered subprotocol) is an error and nothing is
    /// written. Cancelling drops the stream, possibly mid-response.
    pub async fn accept(mut self, options: &AcceptOptions) -> Result<WebSocket<S>> {
        self.ws.driver.accept(&self.request, options)?;
        open(&mut self.ws).await?;
        Ok(self.ws)
    }

    /// Refuses: writes a response with `status`, `headers` and `body` (a
    /// `Content-Length` is added), then shuts the stream down. Cancelling
    /// drops the stream, possibly mid-response.
    pub async fn reject(
        mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<()> {
        let request = &self.request;
        self.ws.driver.reject(request, status, headers, body);
        open(&mut self.ws).await
    }
}
