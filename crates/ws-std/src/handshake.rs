//! The opening handshake over a blocking stream, bounded by a deadline.

use core::time::Duration;
use std::{
    io,
    net::{Shutdown, TcpStream, ToSocketAddrs},
    time::Instant,
};

use bytes::BytesMut;
use ws_proto::{
    AcceptOptions, ClientHandshake, ClientRequest, ClientResponse, HandshakeError, Request, Role,
    ServerHandshake,
};

use crate::{Options, Result, Transport, WebSocket};

/// Time left until `deadline`; an error once it has passed.
fn left(deadline: Option<Instant>) -> io::Result<Option<Duration>> {
    let Some(deadline) = deadline else {
        return Ok(None);
    };
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(Some(left)),
        _ => Err(timed_out()),
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the opening handshake timed out")
}

/// Bounds the next read or write by the time left.
fn arm<S: Transport>(stream: &S, deadline: Option<Instant>) -> io::Result<()> {
    if let Some(left) = left(deadline)? {
        stream.set_read_timeout(Some(left))?;
        stream.set_write_timeout(Some(left))?;
    }
    Ok(())
}

fn map_timeout(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(),
        _ => e,
    }
}

fn write_head<S: Transport>(stream: &mut S, head: &[u8], deadline: Option<Instant>) -> Result<()> {
    arm(stream, deadline)?;
    stream.write_all(head).map_err(map_timeout)?;
    Ok(stream.flush()?)
}

/// Reads more of the head; end of stream is an error.
fn read_head<S: Transport>(
    stream: &mut S,
    buf: &mut BytesMut,
    deadline: Option<Instant>,
) -> Result<()> {
    arm(stream, deadline)?;
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk) {
        Ok(n @ 1..) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Ok(0) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the peer closed the connection during the opening handshake",
        )
        .into()),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(map_timeout(e).into()),
    }
}

/// Runs `f` with the stream's timeouts driven by `deadline`, then restores them.
fn bounded<S: Transport, T>(
    stream: &mut S,
    deadline: Option<Instant>,
    f: impl FnOnce(&mut S) -> Result<T>,
) -> Result<T> {
    if deadline.is_none() {
        return f(stream);
    }
    let saved = (stream.read_timeout()?, stream.write_timeout()?);
    let result = f(stream);
    let restored = stream
        .set_read_timeout(saved.0)
        .and_then(|()| stream.set_write_timeout(saved.1));
    let value = result?;
    restored?;
    Ok(value)
}

fn deadline(options: &Options) -> Option<Instant> {
    options.handshake_timeout.map(|t| Instant::now() + t)
}

/// Connects to a `ws://` URL with the default [`Options`]: name resolution,
/// TCP connect and handshake, bounded by the 10 s handshake timeout.
pub fn connect(url: &str) -> Result<(WebSocket<TcpStream>, ClientResponse)> {
    connect_with(ClientRequest::new(url)?, &Options::default())
}

/// Connects with a prepared request (subprotocols, headers) and options.
/// Each resolved address is tried in turn; connecting and the handshake
/// together take at most `handshake_timeout`. `wss://` is refused (no TLS
/// here: connect a TLS stream yourself and use [`client`]).
pub fn connect_with(
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<TcpStream>, ClientResponse)> {
    if request.is_secure() {
        return Err(HandshakeError::InvalidRequest(
            "wss:// needs TLS, which ws-std does not provide (use client() over a TLS stream)",
        )
        .into());
    }
    let deadline = deadline(options);
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for addr in (request.host(), request.port()).to_socket_addrs()? {
        let attempt = match left(deadline)? {
            Some(left) => TcpStream::connect_timeout(&addr, left),
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return client_until(stream, &request, options, deadline);
            }
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
    client_until(stream, &request, options, deadline(options))
}

fn client_until<S: Transport>(
    mut stream: S,
    request: &ClientRequest,
    options: &Options,
    deadline: Option<Instant>,
) -> Result<(WebSocket<S>, ClientResponse)> {
    let mut handshake = ClientHandshake::new(request)?.with_config(options.handshake.clone());
    let mut buf = BytesMut::new();
    let response = bounded(&mut stream, deadline, |stream| {
        write_head(stream, handshake.request(), deadline)?;
        loop {
            if let Some(response) = handshake.receive(&mut buf)? {
                return Ok(response);
            }
            read_head(stream, &mut buf, deadline)?;
        }
    })?;
    let config = options.config.clone();
    let ws = WebSocket::from_raw_with_buffer(stream, Role::Client, config, buf);
    Ok((ws, response))
}

/// Accepts a WebSocket with the default options and no subprotocol.
pub fn accept<S: Transport>(stream: S) -> Result<WebSocket<S>> {
    accept_with(stream, &Options::default())
}

/// Accepts a WebSocket with the given options and no subprotocol.
pub fn accept_with<S: Transport>(stream: S, options: &Options) -> Result<WebSocket<S>> {
    read_request(stream, options)?.accept(&AcceptOptions::new())
}

/// Reads the opening request (within `handshake_timeout`), leaving the
/// decision to the caller: [`Incoming::accept`] or [`Incoming::reject`].
/// A malformed request is answered (400, 426 or 431) before the error is
/// returned.
pub fn read_request<S: Transport>(mut stream: S, options: &Options) -> Result<Incoming<S>> {
    let mut handshake = ServerHandshake::with_config(options.handshake.clone());
    let mut buf = BytesMut::new();
    let deadline = deadline(options);
    let request = bounded(&mut stream, deadline, |stream| {
        loop {
            match handshake.receive(&mut buf) {
                Ok(Some(request)) => return Ok(request),
                Ok(None) => read_head(stream, &mut buf, deadline)?,
                Err(e) => {
                    if let Some(response) = e.response() {
                        let _ = write_head(stream, &response, deadline);
                        let _ = stream.shutdown(Shutdown::Write);
                    }
                    return Err(e.into());
                }
            }
        }
    })?;
    Ok(Incoming {
        stream,
        request,
        buf,
        options: options.clone(),
    })
}

/// A valid opening request waiting for the application's answer.
#[derive(Debug)]
pub struct Incoming<S> {
    stream: S,
    request: Request,
    /// Bytes read past the request head: the connection's first input.
    buf: BytesMut,
    options: Options,
}

impl<S: Transport> Incoming<S> {
    /// The request: path, headers, offered subprotocols.
    pub const fn request(&self) -> &Request {
        &self.request
    }

    /// The underlying stream (e.g. for the peer address).
    pub const fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Writes the `101` response (within `handshake_timeout`) and returns
    /// the WebSocket. A subprotocol the client did not offer is an error
    /// and nothing is written.
    pub fn accept(mut self, options: &AcceptOptions) -> Result<WebSocket<S>> {
        let response = self.request.accept(options)?;
        let deadline = deadline(&self.options);
        bounded(&mut self.stream, deadline, |stream| {
            write_head(stream, &response, deadline)
        })?;
        let config = self.options.config;
        Ok(WebSocket::from_raw_with_buffer(
            self.stream,
            Role::Server,
            config,
            self.buf,
        ))
    }

    /// Refuses with `status` (e.g. 401, 403), extra headers and a body, then
    /// shuts the stream down.
    pub fn reject(mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<()> {
        let response = self.request.reject(status, headers, body);
        let deadline = deadline(&self.options);
        bounded(&mut self.stream, deadline, |stream| {
            write_head(stream, &response, deadline)
        })?;
        let _ = self.stream.shutdown(Shutdown::Write);
        Ok(())
    }
}
