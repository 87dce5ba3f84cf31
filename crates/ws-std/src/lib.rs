//! # ws-std: blocking WebSocket over `std::io`
//!
//! A thin adapter that drives the sans-IO [`ws_proto`] core over any
//! blocking [`Read`](std::io::Read) + [`Write`](std::io::Write) stream: it
//! moves bytes, arms the core's one timer through the stream's read timeout,
//! and maps types. No threads are spawned: keepalive pings and the close
//! timeout run inside the blocking receive calls (`recv`, `recv_event`,
//! `close`, and [`WriteHalf::close`]), so an application that needs them
//! while it only sends should split the socket and keep a thread receiving.
//!
//! Pings from the peer are answered, and its Close frame echoed, while
//! receiving, and also when an unsplit [`WebSocket`] only sends: after each
//! successful [`flush`](WebSocket::flush) (so in `send` and `ping` too) it
//! reads what already arrived, without waiting, through
//! [`Transport::read_nonblocking`]. That reading stops at the first data
//! message or Close, which the next receive call returns first (so memory
//! stays bounded and nothing is lost), and the first Ping or Pong read this
//! way is kept for `recv_event` only while nothing else waits. It needs a
//! stream with that capability, such as `TcpStream` and `UnixStream`: over
//! [`Plain`] (or a [`Transport`] keeping the default), pings are answered
//! only while receiving. A [`WriteHalf`] never reads: its [`ReadHalf`] does.
//!
//! The receiving side never blocks on writing those automatic replies: it
//! writes them with [`Transport::write_nonblocking`], and what the stream
//! does not take at once stays queued (bounded by the core: one pong queued,
//! one waiting) for the next write. So a peer that floods pings and never
//! reads cannot stall the receiving thread. Over a stream without the
//! capability, such as [`Plain`], replies are written with blocking writes.
//!
//! - Client: [`connect`] (DNS + TCP + handshake, bounded by
//!   [`Options::handshake_timeout`]), [`connect_with`], or [`client`] over a
//!   stream you connected yourself (TLS included).
//! - Server: [`accept`], [`accept_with`], or [`read_request`] then
//!   [`Incoming::accept`] / [`Incoming::reject`] to decide in between.
//! - Then [`WebSocket::recv`] / [`WebSocket::send`] / [`WebSocket::close`],
//!   or [`WebSocket::split`] into a [`ReadHalf`] and a [`WriteHalf`] for two
//!   threads.
//!
//! Streams implement the small [`Transport`] trait, which gives the adapter
//! read and write timeouts (for the core's deadline and the handshake
//! timeout), shutdown, and non-blocking reads and writes. It is implemented for
//! [`TcpStream`](std::net::TcpStream) (and `UnixStream`); wrap any other
//! stream in [`Plain`], or implement the trait with no methods: the timer
//! then runs whenever a read returns.
//!
//! ```no_run
//! use std::{net::TcpListener, thread};
//!
//! fn main() -> Result<(), ws_std::Error> {
//!     let listener = TcpListener::bind("127.0.0.1:9002")?;
//!     thread::spawn(move || {
//!         for stream in listener.incoming().flatten() {
//!             thread::spawn(move || -> Result<(), ws_std::Error> {
//!                 let mut ws = ws_std::accept(stream)?;
//!                 while let Some(message) = ws.recv() {
//!                     ws.send(message?)?;
//!                 }
//!                 Ok(())
//!             });
//!         }
//!     });
//!
//!     let (mut ws, _response) = ws_std::connect("ws://127.0.0.1:9002/")?;
//!     ws.send(ws_std::Message::text("hello"))?;
//!     if let Some(echo) = ws.recv() {
//!         println!("{:?}", echo?);
//!     }
//!     ws.close(ws_std::CloseCode::NORMAL, "bye")?;
//!     Ok(())
//! }
//! ```
//!
//! ## Timeouts
//! With a read timeout set on the stream (before the handshake, or later with
//! [`WebSocket::set_read_timeout`]), a `recv` that waits longer returns
//! [`Error::Io`] of kind `WouldBlock` / `TimedOut`; nothing is lost (a
//! partly received frame stays in the read buffer) and the call can be
//! retried. Write timeouts are left to the stream: a timed-out flush keeps
//! the unwritten bytes queued for the next flush.
//!
//! Writes that end the connection (a Close sent by `close`, a Close echo, a
//! protocol error's Close) block at most until the core's close deadline
//! ([`Config::close_timeout`]), through the stream's write timeout (restored
//! afterwards; the stream's own is kept when shorter): a peer that never
//! reads cannot hold the thread longer. Past that deadline, and when a
//! keepalive or close timeout gives up on the peer, the last Close is sent
//! only if the stream takes it without waiting, then the transport is shut
//! down.
//!
//! ## How a connection ended
//! [`WebSocket::close_frame`] holds the peer's Close frame, or code 1006
//! ([`CloseCode::ABNORMAL`]) when the connection ended without one: the
//! transport ended, a timeout gave up on the peer, or an I/O error (its
//! kind as the reason, e.g. "connection reset"). The I/O error itself is
//! returned once by the receive call that met it; the next one returns
//! `None`.

#![forbid(unsafe_code)]

extern crate alloc;

mod handshake;
mod socket;

use core::time::Duration;
use std::{io, net::Shutdown};

pub use bytes::{Bytes, BytesMut};
pub use ws_proto::{
    self, AcceptOptions, ClientRequest, ClientResponse, CloseCode, CloseFrame, Config, Connection,
    Event, HandshakeConfig, HandshakeError, Message, ProtocolError, Role, SendError, ServerRequest,
};

pub use ws_proto::adapter::{Error, Options, Result};

pub use crate::{
    handshake::{Incoming, accept, accept_with, client, connect, connect_with, read_request},
    socket::{ReadHalf, WebSocket, WriteHalf},
};

/// A blocking byte stream with the few socket controls the adapter uses.
///
/// Every method has a default that does nothing, so any stream can opt in
/// with `impl Transport for MyStream {}` (or be wrapped in [`Plain`]). Without
/// timeouts, keepalive and the close timeout are checked whenever a read
/// returns, and neither the handshake timeout nor the bound on the final
/// flush of a closing connection is enforced; without
/// [`read_nonblocking`](Self::read_nonblocking), pings are answered only
/// while receiving; without [`write_nonblocking`](Self::write_nonblocking),
/// replies written while receiving use blocking writes, so a peer that stops
/// reading can block the receiving thread.
pub trait Transport: io::Read + io::Write {
    /// Bounds each following read (`None`: wait forever). Called with the
    /// time left until the core's next deadline, never with zero.
    fn set_read_timeout(&self, _timeout: Option<Duration>) -> io::Result<()> {
        Ok(())
    }

    /// The current read timeout (restored after the handshake).
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(None)
    }

    /// Bounds each following write (`None`: wait forever). Used during the
    /// handshake, and to bound the final flush of a closing connection by
    /// the core's close deadline; the previous timeout is restored after.
    fn set_write_timeout(&self, _timeout: Option<Duration>) -> io::Result<()> {
        Ok(())
    }

    /// The current write timeout (restored after the handshake and after a
    /// bounded flush).
    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(None)
    }

    /// Shuts down one or both directions: `Write` when the core says the
    /// transport is done, `Both` to wake a blocked reader after a timeout.
    fn shutdown(&self, _how: Shutdown) -> io::Result<()> {
        Ok(())
    }

    /// Reads what has already arrived, without waiting: `Ok(Some(n))` for
    /// `n` bytes read into `buf` (`0`: end of stream), `Ok(None)` when
    /// nothing can be read without waiting. A stream that would block must
    /// return `Ok(None)`, not an error, and must be left as it was (e.g. in
    /// blocking mode).
    ///
    /// An unsplit [`WebSocket`] calls it after each successful
    /// [`flush`](WebSocket::flush) (so also in `send` and `ping`) to answer
    /// pings and echo Close frames while the application only sends. The
    /// default returns `Ok(None)` (the capability is not supported): pings
    /// are then answered only while receiving. The halves of a split socket
    /// never call it.
    fn read_nonblocking(&mut self, _buf: &mut [u8]) -> io::Result<Option<usize>> {
        Ok(None)
    }

    /// Writes what the stream takes now from `bufs` (one vectored write),
    /// without waiting: `Ok(Some(n))` for `n` bytes written, `Ok(None)` when
    /// nothing can be written without waiting. A stream that would block must
    /// return `Ok(None)`, not an error, and must be left as it was (e.g. in
    /// blocking mode).
    ///
    /// The receive calls (`recv`, `recv_event`, a [`ReadHalf`], and the
    /// reading after a [`WebSocket::flush`]) write automatic replies (pongs,
    /// keepalive pings) with it, so that a peer that floods pings and never
    /// reads cannot block the receiving thread: what does not fit stays
    /// queued (bounded by the core) for the next write. A connection given up
    /// on (close or keepalive timeout) also sends its last Close with it,
    /// best effort.
    ///
    /// It takes `&self`, like [`shutdown`](Self::shutdown), because the
    /// reader of a split socket writes through a shared reference. The
    /// default returns an error of kind [`Unsupported`]: replies are then
    /// written with blocking writes, and a given-up connection's Close is
    /// dropped.
    ///
    /// [`Unsupported`]: io::ErrorKind::Unsupported
    fn write_nonblocking(&self, _bufs: &[io::IoSlice<'_>]) -> io::Result<Option<usize>> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

macro_rules! socket_transport {
    ($ty:ty) => {
        impl Transport for $ty {
            fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
                <$ty>::set_read_timeout(self, timeout)
            }
            fn read_timeout(&self) -> io::Result<Option<Duration>> {
                <$ty>::read_timeout(self)
            }
            fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
                <$ty>::set_write_timeout(self, timeout)
            }
            fn write_timeout(&self) -> io::Result<Option<Duration>> {
                <$ty>::write_timeout(self)
            }
            fn shutdown(&self, how: Shutdown) -> io::Result<()> {
                <$ty>::shutdown(self, how)
            }
            /// Switches the socket to non-blocking mode for one read, then
            /// back to blocking mode (the mode is shared with `try_clone`d
            /// handles, which must not be used meanwhile).
            fn read_nonblocking(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
                self.set_nonblocking(true)?;
                let read = loop {
                    match io::Read::read(self, buf) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        read => break read,
                    }
                };
                let restored = self.set_nonblocking(false);
                match read {
                    // The bytes are consumed: returning them beats reporting
                    // a failed restore (which no valid socket produces).
                    Ok(n) => Ok(Some(n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => restored.map(|()| None),
                    Err(e) => Err(e),
                }
            }
            /// Switches the socket to non-blocking mode for one vectored
            /// write, then back to blocking mode (as for `read_nonblocking`;
            /// the adapter calls it while holding its write lock).
            fn write_nonblocking(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<Option<usize>> {
                self.set_nonblocking(true)?;
                let mut stream = self;
                let written = loop {
                    match io::Write::write_vectored(&mut stream, bufs) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        written => break written,
                    }
                };
                let restored = self.set_nonblocking(false);
                match written {
                    // The bytes are gone: reporting them beats reporting a
                    // failed restore (which no valid socket produces).
                    Ok(n) => Ok(Some(n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => restored.map(|()| None),
                    Err(e) => Err(e),
                }
            }
        }
    };
}

socket_transport!(std::net::TcpStream);
#[cfg(unix)]
socket_transport!(std::os::unix::net::UnixStream);

/// Wraps any `Read + Write` stream as a [`Transport`] without timeouts,
/// shutdown or non-blocking reads and writes (so pings are answered only
/// while receiving, with blocking writes).
#[derive(Debug, Default)]
pub struct Plain<S>(pub S);

impl<S: io::Read> io::Read for Plain<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<S: io::Write> io::Write for Plain<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<S: io::Read + io::Write> Transport for Plain<S> {}
