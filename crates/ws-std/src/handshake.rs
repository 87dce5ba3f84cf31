//! The opening handshake over a blocking stream, bounded by a deadline.

use core::time::Duration;
use std::{
    io,
    net::{Shutdown, TcpStream, ToSocketAddrs},
    time::Instant,
};

use bytes::BytesMut;
use ws_proto::{
    AcceptOptions, ClientHandshake, ClientRequest, ClientResponse, Driver, HandshakeError,
    ServerHandshake, ServerRequest,
};

use crate::{Options, Result, Transport, WebSocket};

/// Time left until `deadline`; an error once it has passed.
fn left(deadline: Option<Instant>) -> io::Result<Option<Duration>> {
    match deadline.map(|d| d.saturating_duration_since(Instant::now())) {
        Some(Duration::ZERO) => Err(timed_out(io::ErrorKind::TimedOut.into())),
        left => Ok(left),
    }
}

/// A timeout as the handshake's own error; other errors as they are.
fn timed_out(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            io::Error::new(io::ErrorKind::TimedOut, "the opening handshake timed out")
        }
        _ => e,
    }
}

/// A stream during (one step of) the handshake: each read and write bounded
/// by the time left until the deadline; its own timeouts restored after.
struct Head<S: Transport> {
    stream: S,
    deadline: Option<Instant>,
    saved: (Option<Duration>, Option<Duration>),
}

impl<S: Transport> Head<S> {
    fn new(stream: S, deadline: Option<Instant>) -> io::Result<Self> {
        let saved = (stream.read_timeout()?, stream.write_timeout()?);
        Ok(Self {
            stream,
            deadline,
            saved,
        })
    }

    fn arm(&self) -> io::Result<()> {
        if let Some(left) = left(self.deadline)? {
            self.stream.set_read_timeout(Some(left))?;
            self.stream.set_write_timeout(Some(left))?;
        }
        Ok(())
    }

    fn write(&mut self, head: &[u8]) -> io::Result<()> {
        self.arm()?;
        self.stream
            .write_all(head)
            .and_then(|()| self.stream.flush())
            .map_err(timed_out)
    }

    /// Reads more of the head; the end of the stream is an error.
    fn read(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        self.arm()?;
        let mut chunk = [0u8; 4096];
        let n = match self.stream.read(&mut chunk) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer left",
            ))?,
            read => read.map_err(timed_out)?,
        };
        buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// The stream, with its own timeouts back.
    fn finish(self) -> io::Result<S> {
        if self.deadline.is_some() {
            self.stream.set_read_timeout(self.saved.0)?;
            self.stream.set_write_timeout(self.saved.1)?;
        }
        Ok(self.stream)
    }
}

fn deadline(options: &Options) -> Option<Instant> {
    options
        .handshake_timeout
        .and_then(|t| Instant::now().checked_add(t))
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
        let why =
            "wss:// needs TLS, which ws-std does not provide (use client() over a TLS stream)";
        return Err(HandshakeError::InvalidRequest(why).into());
    }
    let deadline = deadline(options);
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for addr in (request.host(), request.port()).to_socket_addrs()? {
        let attempt = match left(deadline)? {
            Some(left) => TcpStream::connect_timeout(&addr, left),
            None => TcpStream::connect(addr),
        };
        match attempt.and_then(|stream| stream.set_nodelay(true).map(|()| stream)) {
            Ok(stream) => return client_until(stream, &request, options, deadline),
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
    stream: S,
    request: &ClientRequest,
    options: &Options,
    deadline: Option<Instant>,
) -> Result<(WebSocket<S>, ClientResponse)> {
    let mut handshake = ClientHandshake::new(request)?.with_config(options.handshake.clone());
    let (mut head, mut buf) = (Head::new(stream, deadline)?, BytesMut::new());
    head.write(handshake.request())?;
    let response = loop {
        match handshake.receive(&mut buf)? {
            Some(response) => break response,
            None => head.read(&mut buf)?,
        }
    };
    let stream = head.finish()?;
    let driver = Driver::with_buffer(response.connection(options.config.clone()), buf);
    let ws = WebSocket::from_driver(stream, driver);
    Ok((ws, response))
}

/// Accepts a WebSocket with the default options and no subprotocol.
pub fn accept<S: Transport>(stream: S) -> Result<WebSocket<S>> {
    accept_with(stream, &Options::default())
}

/// Accepts a WebSocket with the given options and no subprotocol.
pub fn accept_with<S: Transport>(stream: S, options: &Options) -> Result<WebSocket<S>> {
    read_request_with(stream, options)?.accept(&AcceptOptions::new())
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
    let mut handshake = ServerHandshake::with_config(options.handshake.clone());
    let (mut head, mut buf) = (Head::new(stream, deadline(options))?, BytesMut::new());
    let request = loop {
        match handshake.receive(&mut buf) {
            Ok(Some(request)) => break request,
            Ok(None) => head.read(&mut buf)?,
            Err(e) => {
                if let Some(response) = e.response() {
                    let _ = head.write(&response);
                    let _ = head.stream.shutdown(Shutdown::Write);
                }
                return Err(e.into());
            }
        }
    };
    let (stream, options) = (head.finish()?, options.clone());
    Ok(Incoming {
        stream,
        request,
        buf,
        options,
    })
}

/// A valid opening request waiting for the application's answer.
#[derive(Debug)]
pub struct Incoming<S> {
    stream: S,
    request: ServerRequest,
    /// Bytes read past the request head: the connection's first input.
    buf: BytesMut,
    options: Options,
}

impl<S: Transport> Incoming<S> {
    /// The request: path, headers, offered subprotocols.
    pub const fn request(&self) -> &ServerRequest {
        &self.request
    }

    /// The underlying stream (e.g. for the peer address).
    pub const fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Writes a response head (within `handshake_timeout`).
    fn answer(self, response: &[u8]) -> Result<(S, BytesMut, Options)> {
        let mut head = Head::new(self.stream, deadline(&self.options))?;
        head.write(response)?;
        Ok((head.finish()?, self.buf, self.options))
    }

    /// Writes the `101` response (within `handshake_timeout`) and returns
    /// the WebSocket. A subprotocol the client did not offer is an error
    /// and nothing is written.
    pub fn accept(self, options: &AcceptOptions) -> Result<WebSocket<S>> {
        let accepted = self.request.accept(options)?;
        let (stream, buf, options) = self.answer(accepted.response())?;
        let driver = Driver::with_buffer(accepted.connection(options.config), buf);
        Ok(WebSocket::from_driver(stream, driver))
    }

    /// Refuses with `status` (e.g. 401, 403), extra headers and a body, then
    /// shuts the stream down.
    pub fn reject(self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<()> {
        let response = self.request.reject(status, headers, body);
        let (stream, ..) = self.answer(&response)?;
        let _ = stream.shutdown(Shutdown::Write);
        Ok(())
    }
}
