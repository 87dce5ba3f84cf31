//! The opening handshake: connecting as a client, accepting as a server.

use alloc::boxed::Box;
use core::{future::Future, pin::Pin, time::Duration};
use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use ws_proto::{AcceptOptions, ClientHandshake, ClientRequest, ClientResponse, Config, Driver};
use ws_proto::{HandshakeError, ServerHandshake, ServerRequest};

use crate::{Options, Result, WebSocket};

/// Runs `fut` within `limit`; running out is [`io::ErrorKind::TimedOut`].
///
/// The handshake's state (the timer, the request being parsed) is boxed: it
/// lives on the heap only while the handshake runs, instead of staying in
/// every connection task's future for the connection's whole life (a task is
/// as large as its largest state). That halves an idle connection's memory.
fn within<'a, T: 'a>(
    limit: Option<Duration>,
    fut: impl Future<Output = Result<T>> + 'a,
) -> Pin<Box<impl Future<Output = Result<T>> + 'a>> {
    Box::pin(async move {
        let Some(limit) = limit else { return fut.await };
        let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "the handshake timed out");
        tokio::time::timeout(limit, fut)
            .await
            .unwrap_or_else(|_| Err(timed_out().into()))
    })
}

/// Reads more handshake bytes into `buf`; `false` at the end of the stream.
async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) -> Result<bool> {
    buf.reserve(4096);
    Ok(stream.read_buf(buf).await? > 0)
}

/// Connects to a `ws://` URL with the default [`Options`]: DNS, TCP (with
/// `TCP_NODELAY`) and the handshake, all within the handshake timeout.
///
/// `wss://` fails with [`HandshakeError::InvalidRequest`]: there is no TLS
/// yet; connect a TLS stream yourself and use [`client`].
///
/// Cancelling (dropping the future) abandons the connection attempt.
pub async fn connect(url: &str) -> Result<(WebSocket<TcpStream>, ClientResponse)> {
    connect_with(ClientRequest::new(url)?, &Options::default()).await
}

/// Like [`connect`], with a prepared request (subprotocols, headers) and
/// options. Cancelling abandons the connection attempt.
pub async fn connect_with(
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<TcpStream>, ClientResponse)> {
    if request.is_secure() {
        let why =
            "wss:// needs TLS, which ws-tokio does not provide: use client() over a TLS stream";
        return Err(HandshakeError::InvalidRequest(why).into());
    }
    within(options.handshake_timeout, async {
        let stream = TcpStream::connect((request.host(), request.port())).await?;
        stream.set_nodelay(true)?;
        client_handshake(stream, &request, options).await
    })
    .await
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
    let handshake = client_handshake(stream, &request, options);
    within(options.handshake_timeout, handshake).await
}

async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &ClientRequest,
    options: &Options,
) -> Result<(WebSocket<S>, ClientResponse)> {
    let mut handshake = ClientHandshake::new(request)?.with_config(options.handshake.clone());
    stream.write_all(handshake.request()).await?;
    stream.flush().await?;
    let mut buf = BytesMut::new();
    loop {
        if !read_more(&mut stream, &mut buf).await? {
            // A 401 whose body was cut short is still a 401.
            return Err(handshake.receive_eof(&mut buf).into());
        }
        if let Some(response) = handshake.receive(&mut buf)? {
            let driver = Driver::with_buffer(response.connection(options.config.clone()), buf);
            return Ok((WebSocket::from_driver(stream, driver), response));
        }
    }
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
    // Boxed for the reason `within` gives.
    let accept = async move {
        read_request_with(stream, options)
            .await?
            .accept(&AcceptOptions::new())
            .await
    };
    Box::pin(accept).await
}

/// Reads the opening request with the default [`Options`]; see
/// [`read_request_with`].
pub async fn read_request<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Result<Incoming<S>> {
    read_request_with(stream, &Options::default()).await
}

/// Reads the opening request, within the handshake timeout, for the
/// application to inspect before it [accepts](Incoming::accept) or
/// [rejects](Incoming::reject) it (it may await anything in between).
///
/// A malformed request gets its HTTP error response (400, 426, 431) written
/// before the error is returned. Cancelling drops the stream.
pub async fn read_request_with<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    options: &Options,
) -> Result<Incoming<S>> {
    let mut handshake = ServerHandshake::with_config(options.handshake.clone());
    let mut buf = BytesMut::new();
    let request = within(options.handshake_timeout, async {
        loop {
            if !read_more(&mut stream, &mut buf).await? {
                let why = "the peer closed the connection during the handshake";
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, why).into());
            }
            match handshake.receive(&mut buf) {
                Ok(Some(request)) => return Ok(request),
                Ok(None) => {}
                Err(e) => {
                    if let Some(response) = e.response() {
                        let _ = stream.write_all(&response).await;
                        let _ = stream.shutdown().await;
                    }
                    return Err(e.into());
                }
            }
        }
    })
    .await?;
    let config = options.config.clone();
    Ok(Incoming {
        stream,
        buf,
        request,
        config,
    })
}

/// A valid opening request waiting for the application's answer.
#[derive(Debug)]
pub struct Incoming<S> {
    stream: S,
    /// Bytes read past the request head: the connection's first input.
    buf: BytesMut,
    request: ServerRequest,
    config: Config,
}

impl<S> Incoming<S> {
    /// The request: path, headers, offered subprotocols.
    pub const fn request(&self) -> &ServerRequest {
        &self.request
    }

    /// The underlying stream (e.g. for the peer address).
    pub const fn get_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Incoming<S> {
    /// Accepts: writes the `101` response (with the chosen subprotocol and
    /// headers) and returns the connection. An `options` the request does
    /// not allow (an unoffered subprotocol) is an error and nothing is
    /// written. Cancelling drops the stream, possibly mid-response.
    pub async fn accept(mut self, options: &AcceptOptions) -> Result<WebSocket<S>> {
        let accepted = self.request.accept(options)?;
        self.stream.write_all(accepted.response()).await?;
        self.stream.flush().await?;
        let driver = Driver::with_buffer(accepted.connection(self.config), self.buf);
        Ok(WebSocket::from_driver(self.stream, driver))
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
        let response = self.request.reject(status, headers, body);
        self.stream.write_all(&response).await?;
        Ok(self.stream.shutdown().await?)
    }
}
