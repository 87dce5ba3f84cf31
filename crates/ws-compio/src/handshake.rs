//! The opening handshake. The driver runs it ([`Op::Open`]), bounded by its
//! timer (the handshake timeout); this module only connects sockets.

use core::future::Future;
use std::time::Instant;

use compio::net::TcpStream;
use ws_proto::adapter::{Options, Result, check_request, plain_tcp_target};
use ws_proto::{ClientRequest, ClientResponse, Driver, HandshakeError, Op};

use crate::socket::{Timer, Transport, WebSocket};

/// Runs the opening handshake of `ws`'s driver to the application's turn.
async fn open<S: Transport>(ws: &mut WebSocket<S>) -> Result<()> {
    ws.run(Op::Open).await?;
    // The handshake's sleep is not the connection's.
    ws.timer = Timer::default();
    Ok(ws.driver.handshake_result()?)
}

/// Connects to a `ws://` URL with the default [`Options`]: name
/// resolution, TCP connect and handshake, within the handshake timeout.
pub async fn connect(url: &str) -> Result<(WebSocket<TcpStream>, ClientResponse)> {
    connect_with(ClientRequest::new(url)?, &Options::default()).await
}

/// Connects with a prepared request (subprotocols, headers) and options;
/// connecting and the handshake together take at most
/// `handshake_timeout`. `wss://` is refused: this adapter speaks no TLS
/// (connect a TLS stream yourself and use [`client`]).
pub async fn connect_with(
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<TcpStream>, ClientResponse)> {
    let (host, port) = plain_tcp_target(&request)?;
    let start = Instant::now();
    let connecting = TcpStream::connect((host, port));
    let stream = match options.handshake_timeout {
        Some(limit) => compio::time::timeout(limit, connecting)
            .await
            .map_err(|_| HandshakeError::TimedOut)??,
        None => connecting.await?,
    };
    stream.set_nodelay(true)?;
    client(stream, request, &options.after(start.elapsed())?).await
}

/// Runs the client handshake over an already connected stream. A non-101
/// answer is `Error::Handshake(HandshakeError::Rejected(..))` with the
/// status, headers and body.
pub async fn client<S: Transport>(
    stream: S,
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<S>, ClientResponse)> {
    let mut ws = WebSocket::from_driver(stream, Driver::client(&request, options)?);
    open(&mut ws).await?;
    let response = ws.driver.take_response()?;
    Ok((ws, response))
}

/// Accepts a WebSocket with the default options and no subprotocol.
pub fn accept<S: Transport>(stream: S) -> impl Future<Output = Result<WebSocket<S>>> {
    accept_with(stream, &Options::default())
}

/// Accepts a WebSocket with the given options and no subprotocol.
///
/// The options are read at once, and the handshake's future is boxed: a
/// connection task that awaits it carries one pointer for it, not the
/// handshake's state for the connection's whole life.
pub fn accept_with<S: Transport>(
    stream: S,
    options: &Options,
) -> impl Future<Output = Result<WebSocket<S>>> + use<S> {
    let mut ws = WebSocket::from_driver(stream, Driver::accepting(options));
    Box::pin(async move {
        open(&mut ws).await?;
        Ok(ws)
    })
}

/// Reads the opening request with the default [`Options`]; see
/// [`read_request_with`].
pub async fn read_request<S: Transport>(stream: S) -> Result<Incoming<S>> {
    read_request_with(stream, &Options::default()).await
}

/// Reads the opening request (within `handshake_timeout`), leaving the
/// decision to the caller: [`Incoming::accept`] or [`Incoming::reject`].
/// A malformed request is answered (400, 426 or 431) before the error is
/// returned.
pub async fn read_request_with<S: Transport>(stream: S, options: &Options) -> Result<Incoming<S>> {
    let mut ws = WebSocket::from_driver(stream, Driver::server(options));
    open(&mut ws).await?;
    check_request(&ws.driver)?;
    Ok(Incoming(ws))
}

/// A valid opening request waiting for the application's answer.
#[derive(Debug)]
pub struct Incoming<S = TcpStream>(
    /// The stream, and the driver holding the request and the bytes read
    /// past it.
    WebSocket<S>,
);

impl<S: Transport> Incoming<S> {
    ws_proto::incoming_methods!(S, WebSocket<S>, async await
        ///
        /// Cancelling drops the stream, possibly mid-response.
    );
}
