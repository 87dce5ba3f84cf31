//! The opening handshake: [`connect`], [`client`], [`accept`],
//! [`read_request`] and [`Incoming`].

use core::{future::Future, pin::pin, time::Duration};
use std::io;

use async_io::Timer;
use async_net::TcpStream;
use bytes::BytesMut;
use futures_io::{AsyncRead, AsyncWrite};
use futures_util::future::{Either, select};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use ws_proto::{AcceptOptions, ClientHandshake, ClientRequest, ClientResponse};
use ws_proto::{Driver, HandshakeError, ServerHandshake, ServerRequest};

use crate::{Options, Result, WebSocket};

/// Bytes read per handshake read.
const HANDSHAKE_READ: usize = 4096;

/// Races `future` against the handshake timeout (`Timer::after` of a huge
/// duration never fires: no overflow).
async fn timeout<T>(limit: Option<Duration>, future: impl Future<Output = Result<T>>) -> Result<T> {
    let timer = limit.map_or_else(Timer::never, Timer::after);
    match select(pin!(future), timer).await {
        Either::Left((out, _)) => out,
        Either::Right(_) => Err(io::Error::from(io::ErrorKind::TimedOut).into()),
    }
}

/// Writes all of `data` and flushes.
async fn write_all<S: AsyncWrite + Unpin>(stream: &mut S, data: &[u8]) -> io::Result<()> {
    stream.write_all(data).await?;
    stream.flush().await
}

/// Reads once more of the handshake into `buf`; `false` at end of stream.
async fn read_some<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) -> io::Result<bool> {
    let start = buf.len();
    buf.resize(start + HANDSHAKE_READ, 0);
    let read = stream.read(&mut buf[start..]).await;
    buf.truncate(start + *read.as_ref().unwrap_or(&0));
    Ok(read? > 0)
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
    let why = "wss:// needs TLS, which ws-futures does not provide";
    if request.is_secure() {
        return Err(HandshakeError::InvalidRequest(why).into());
    }
    timeout(options.handshake_timeout, async move {
        let stream = TcpStream::connect((request.host(), request.port())).await?;
        stream.set_nodelay(true)?;
        client(stream, request, options).await
    })
    .await
}

/// Runs the client handshake over an already-connected stream, within
/// `options.handshake_timeout`.
///
/// Cancelling (dropping the future) drops the stream: the handshake cannot resume.
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<S>, ClientResponse)> {
    let mut handshake = ClientHandshake::new(&request)?.with_config(options.handshake.clone());
    let (mut buf, io) = (BytesMut::new(), &mut stream);
    let exchange = async {
        write_all(io, handshake.request()).await?;
        loop {
            if let Some(response) = handshake.receive(&mut buf)? {
                return Ok(response);
            }
            if !read_some(io, &mut buf).await? {
                // A 401 whose body was cut short is still a 401.
                return Err(handshake.receive_eof(&mut buf).into());
            }
        }
    };
    let response = timeout(options.handshake_timeout, exchange).await?;
    let driver = Driver::with_buffer(response.connection(options.config.clone()), buf);
    Ok((WebSocket::from_driver(stream, driver), response))
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
    let incoming = read_request_with(stream, options).await?;
    incoming.accept(&AcceptOptions::new()).await
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
pub async fn read_request_with<S>(mut stream: S, options: &Options) -> Result<Incoming<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut handshake = ServerHandshake::with_config(options.handshake.clone());
    let mut buf = BytesMut::new();
    let read = async {
        loop {
            match handshake.receive(&mut buf) {
                Ok(Some(request)) => return Ok(request),
                Ok(None) if read_some(&mut stream, &mut buf).await? => {}
                Ok(None) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
                Err(error) => {
                    // Best effort: the client may be gone already.
                    if let Some(response) = error.response() {
                        let _ = write_all(&mut stream, &response).await;
                        let _ = stream.close().await;
                    }
                    return Err(error.into());
                }
            }
        }
    };
    let request = timeout(options.handshake_timeout, read).await?;
    Ok(Incoming(stream, request, buf, options.clone()))
}

/// A client's valid opening request, waiting for the application's answer:
/// the stream, the request, bytes read past it, and the options.
#[derive(Debug)]
pub struct Incoming<S>(S, ServerRequest, BytesMut, Options);

impl<S: AsyncRead + AsyncWrite + Unpin> Incoming<S> {
    /// The request: path, headers, offered subprotocols.
    pub const fn request(&self) -> &ServerRequest {
        &self.1
    }

    /// Writes the `101` response and starts the connection; bytes the
    /// client sent after its request are kept. Cancelling drops the stream.
    pub async fn accept(self, options: &AcceptOptions) -> Result<WebSocket<S>> {
        let Self(mut stream, request, buf, options_) = self;
        let accepted = request.accept(options)?;
        let write = async { Ok(write_all(&mut stream, accepted.response()).await?) };
        timeout(options_.handshake_timeout, write).await?;
        let driver = Driver::with_buffer(accepted.connection(options_.config), buf);
        Ok(WebSocket::from_driver(stream, driver))
    }

    /// Writes a refusal (e.g. 401 or 403) with extra headers and a body,
    /// then shuts the stream down. Cancelling drops the stream.
    pub async fn reject(self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<()> {
        let Self(mut stream, request, _, options) = self;
        let response = request.reject(status, headers, body);
        let write = async {
            write_all(&mut stream, &response).await?;
            Ok(stream.close().await?)
        };
        timeout(options.handshake_timeout, write).await
    }
}
