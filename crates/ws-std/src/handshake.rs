//! The opening handshake over a blocking stream. The driver runs it
//! ([`Op::Open`]), bounded by its timer (the handshake timeout, performed as
//! read timeouts); this module only connects sockets.

use std::{
    io,
    net::{TcpStream, ToSocketAddrs},
    time::Instant,
};

use ws_proto::adapter::{self, check_request};
use ws_proto::{ClientRequest, ClientResponse, Driver, Op};

use crate::{MaybeTlsStream, Options, Result, Transport, WebSocket};

/// Runs the opening handshake of `ws`'s driver ([`Op::Open`]) to the
/// application's turn.
fn open<S: Transport>(ws: &mut WebSocket<S>) -> Result<()> {
    ws.run(Op::Open, None)?;
    Ok(ws.driver.handshake_result()?)
}

/// Connects to a `ws://` (or, with the `rustls` feature, `wss://`) URL with
/// the default [`Options`]: name resolution, TCP connect, TLS and handshake,
/// bounded by the 10 s handshake timeout.
pub fn connect(url: &str) -> Result<(WebSocket<MaybeTlsStream>, ClientResponse)> {
    connect_with(ClientRequest::new(url)?, &Options::default())
}

/// Connects with a prepared request (subprotocols, headers) and options.
/// Each resolved address is tried in turn; connecting and the handshake
/// together take at most `handshake_timeout`. `wss://` needs the `rustls`
/// feature (then it verifies the server against Mozilla's roots; see
/// `connect_with_tls` for other roots or settings); without it, connect
/// a TLS stream yourself and use [`client`].
pub fn connect_with(
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<MaybeTlsStream>, ClientResponse)> {
    #[cfg(feature = "rustls")]
    if request.is_secure() {
        return connect_with_tls(request, options, adapter::tls::default_client_config()?);
    }
    adapter::plain_tcp_target(&request)?;
    let start = Instant::now();
    let stream = tcp_connect(&request, options, start)?;
    client(
        MaybeTlsStream::Plain(stream),
        request,
        &options.after(start.elapsed())?,
    )
}

/// [`connect_with`] over TLS with the client configuration given (roots,
/// client certificates, ALPN: keep `http/1.1` or none), whatever the URL's
/// scheme. `client_config` builds the usual ones.
#[cfg(feature = "rustls")]
pub fn connect_with_tls(
    request: ClientRequest,
    options: &Options,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> Result<(WebSocket<MaybeTlsStream>, ClientResponse)> {
    let start = Instant::now();
    let stream = tcp_connect(&request, options, start)?;
    let stream = crate::TlsStream::client(stream, config, request.host())?;
    client(
        MaybeTlsStream::Rustls(Box::new(stream)),
        request,
        &options.after(start.elapsed())?,
    )
}

/// A TCP connection to the request's host and port, trying each address in
/// turn within what is left of the handshake timeout.
fn tcp_connect(request: &ClientRequest, options: &Options, start: Instant) -> Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for addr in (request.host(), request.port()).to_socket_addrs()? {
        let attempt = match options.after(start.elapsed())?.handshake_timeout {
            Some(left) => TcpStream::connect_timeout(&addr, left),
            None => TcpStream::connect(addr),
        };
        match attempt.and_then(|stream| stream.set_nodelay(true).map(|()| stream)) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last.into())
}

/// Runs the client handshake over an already connected stream (any
/// transport, TLS included; `wss://` requests are fine here). A non-101
/// answer is `Error::Handshake(HandshakeError::Rejected(..))` with the
/// status, headers and body.
pub fn client<S: Transport>(
    stream: S,
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<S>, ClientResponse)> {
    let mut ws = WebSocket::from_driver(stream, Driver::client(&request, options)?);
    open(&mut ws)?;
    let response = ws.driver.take_response()?;
    Ok((ws, response))
}

/// Accepts a WebSocket with the default options and no subprotocol.
pub fn accept<S: Transport>(stream: S) -> Result<WebSocket<S>> {
    accept_with(stream, &Options::default())
}

/// Accepts a WebSocket with the given options and no subprotocol.
pub fn accept_with<S: Transport>(stream: S, options: &Options) -> Result<WebSocket<S>> {
    let mut ws = WebSocket::from_driver(stream, Driver::accepting(options));
    open(&mut ws)?;
    Ok(ws)
}

/// Reads the opening request with the default [`Options`]; see
/// [`read_request_with`].
pub fn read_request<S: Transport>(stream: S) -> Result<Incoming<S>> {
    read_request_with(stream, &Options::default())
}

/// Reads the opening request (within `handshake_timeout`), leaving the
/// decision to the caller: [`Incoming::accept`] or [`Incoming::reject`].
/// A malformed request is answered (400, 426 or 431) before the error is
/// returned.
pub fn read_request_with<S: Transport>(stream: S, options: &Options) -> Result<Incoming<S>> {
    let mut ws = WebSocket::from_driver(stream, Driver::server(options));
    open(&mut ws)?;
    check_request(&ws.driver)?;
    Ok(Incoming(ws))
}

/// A valid opening request waiting for the application's answer.
#[derive(Debug)]
pub struct Incoming<S>(
    /// The stream, and the driver holding the request and the bytes read
    /// past it.
    WebSocket<S>,
);

impl<S: Transport> Incoming<S> {
    ws_proto::incoming_methods!(S, WebSocket<S>);
}
