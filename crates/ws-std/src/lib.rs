//! # ws-std: blocking WebSocket over `std::io`
//!
//! A thin adapter that runs the sans-IO [`ws_proto`] core's
//! [`Driver`] over any blocking
//! [`Read`](std::io::Read) + [`Write`](std::io::Write) stream: it performs
//! what the driver asks (read, write, wait for the timer, shut down), reports
//! what happened, and maps types. The driver owns every policy: which events
//! end a receive call, answering pings while the application only sends,
//! read sizes, the one timer (keepalive and close), and what a transport
//! failure means (1006).
//!
//! No threads are spawned. The core's timer is the stream's read timeout,
//! so keepalive pings and the close timeout run inside the blocking receive
//! calls (`recv`, `recv_event`, `close`). An application that only sends
//! still answers pings: after each [`flush`](WebSocket::flush) (so in `send`
//! and `ping` too) the socket reads what already arrived, without waiting,
//! through [`Transport::read_nonblocking`]; what it reads is kept for the next
//! receive call.
//!
//! Receive calls never block on writing automatic replies (pongs, the Close
//! echo): they write through [`Transport::write_nonblocking`], and what the
//! stream does not take stays queued (bounded by the core) and is retried
//! every few milliseconds, so a peer that floods pings and never reads cannot
//! stall the receiving thread.
//!
//! - Client: [`connect`] (DNS + TCP + handshake, bounded by
//!   [`Options::handshake_timeout`]; with the `rustls` feature `wss://` too,
//!   verified against Mozilla's roots), [`connect_with`], or [`client`] over
//!   a stream you connected yourself. `connect` returns a
//!   [`MaybeTlsStream`]: plain TCP, or TLS.
//! - TLS server (feature `rustls`): wrap the accepted `TcpStream` in
//!   `TlsStream::server(tcp, server_config)` and [`accept`] it. A
//!   `TlsStream` keeps what plain TCP has: read timeouts (so keepalive and
//!   the close timeout), and [`split`](WebSocket::split) halves that read
//!   and write at once.
//! - Server: [`accept`], [`accept_with`], or [`read_request`] then
//!   [`Incoming::accept`] / [`Incoming::reject`] to decide in between.
//! - Then [`WebSocket::recv`] / [`WebSocket::send`] / [`WebSocket::close`],
//!   or [`WebSocket::split`] into a [`ReadHalf`] and a [`WriteHalf`] for two
//!   threads.
//! - Fan-out: [`WriteHalf::try_send`] queues without waiting and fails fast
//!   ([`Error::is_full`]) at the queue's high-water mark
//!   ([`Config::max_write_buffer`]); [`WriteHalf::try_close`];
//!   [`broadcast`] to many connections, skipping or closing ([`WhenFull`])
//!   those that fall behind. The read half writes what was queued within
//!   100 ms (or the write half's `flush` at once): keep it receiving.
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
//! ## Messages of any size
//! With [`Config::streaming`] on, a large message is received in pieces as
//! they arrive, in memory bounded by the read buffer and one piece:
//! [`WebSocket::recv_stream`] returns a [`MessageReader`], which yields the
//! pieces ([`next_piece`](MessageReader::next_piece)) or reads them as an
//! [`io::Read`]; `recv` answers such a message with [`Error::Streamed`] and
//! keeps it for `recv_stream`. [`WebSocket::send_stream`] returns a
//! [`MessageWriter`], an [`io::Write`] each write of which sends a frame,
//! until [`finish`](MessageWriter::finish). Both work on the split halves
//! too. A reader dropped half way skips the rest of its message; a writer
//! dropped unfinished closes the connection with 1011.
//!
//! ```no_run
//! use std::{fs::File, io};
//!
//! use ws_std::{ClientRequest, Config, Options, ws_proto::Streaming};
//!
//! fn main() -> Result<(), ws_std::Error> {
//!     let config = Config::default().with_streaming(Streaming::Above(1 << 20));
//!     let request = ClientRequest::new("ws://127.0.0.1:9002/")?;
//!     let (mut ws, _) = ws_std::connect_with(request, &Options::new().with_config(config))?;
//!     let mut upload = ws.send_stream(false);
//!     io::copy(&mut File::open("big.bin")?, &mut upload)?;
//!     upload.finish()?;
//!     if let Some(download) = ws.recv_stream() {
//!         io::copy(&mut download?, &mut File::create("echo.bin")?)?;
//!     }
//!     Ok(())
//! }
//! ```
//!
//! ## Timeouts
//! A receive deadline bounds one receive call: [`WebSocket::recv_timeout`],
//! or a default for every `recv` with [`WebSocket::set_read_timeout`] (a read
//! timeout set on the stream before the handshake becomes that default). A
//! call that runs into it returns [`Error::Io`] of kind `TimedOut` and loses
//! nothing (a partly received frame stays buffered): call again. It does not
//! apply to [`close`](WebSocket::close), which is bounded by the core's close
//! timeout ([`Config::close_timeout`]) alone. Write timeouts are left to the
//! stream: a timed-out `flush` keeps the unwritten bytes queued for the next
//! one.
//!
//! ## How a connection ended
//! [`WebSocket::close_frame`] holds the peer's Close frame, or code 1006
//! ([`CloseCode::ABNORMAL`]) when the connection ended without one: the
//! transport ended or failed, or a timeout gave up on the peer. An I/O error
//! is returned once by the call that met it; later receive calls return
//! `None`.

#![forbid(unsafe_code)]

mod handshake;
mod socket;
mod split;
mod stream;
#[cfg(feature = "rustls")]
mod tls;

use core::time::Duration;
use std::{io, net::Shutdown};

pub use ws_proto::{self, adapter::exports::*};

#[cfg(feature = "rustls")]
pub use crate::tls::TlsStream;
pub use crate::{
    handshake::*,
    socket::WebSocket,
    split::{ReadHalf, WriteHalf},
    stream::{MessageReader, MessageWriter},
};
#[cfg(feature = "rustls")]
pub use rustls;
#[cfg(feature = "rustls")]
pub use ws_proto::adapter::tls::{Roots, client_config};

/// A blocking byte stream with the few socket controls the adapter uses.
///
/// Every method has a default that does nothing, so any stream can opt in
/// with `impl Transport for MyStream {}` (or be wrapped in [`Plain`]). Without
/// [`set_read_timeout`](Self::set_read_timeout), keepalive, the close timeout
/// and receive deadlines are checked only when a read returns, and the
/// handshake timeout is not enforced; without
/// [`read_nonblocking`](Self::read_nonblocking), pings are answered only
/// while receiving; without [`write_nonblocking`](Self::write_nonblocking),
/// replies written while receiving use blocking writes, so a peer that stops
/// reading can block the receiving thread.
pub trait Transport: io::Read + io::Write {
    /// Bounds each following read (`None`: wait forever). Called before each
    /// waiting read with the time left until the nearest deadline (the
    /// core's timer or the caller's receive deadline), never with zero.
    fn set_read_timeout(&self, _timeout: Option<Duration>) -> io::Result<()> {
        Ok(())
    }

    /// The current read timeout: the default receive deadline of a new
    /// [`WebSocket`].
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(None)
    }

    /// Shuts down one or both directions: `Write` when the core says the
    /// transport is done.
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
    /// The receive calls (`recv`, `recv_event`, `close`, a [`ReadHalf`])
    /// write with it, so that a peer that floods pings and never reads
    /// cannot block the receiving thread: what does not fit stays queued
    /// (bounded by the core) and is retried a few milliseconds later.
    ///
    /// It takes `&self`, like [`shutdown`](Self::shutdown), because the
    /// reader of a split socket writes through a shared reference. The
    /// default returns an error of kind [`Unsupported`]: those writes then
    /// block.
    ///
    /// [`Unsupported`]: io::ErrorKind::Unsupported
    fn write_nonblocking(&self, _bufs: &[io::IoSlice<'_>]) -> io::Result<Option<usize>> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Runs `io` (one read or write) with the socket switched to non-blocking
/// mode by `set_nonblocking`, then switches it back: `None` when `io` would
/// have blocked. The bytes moved beat a failed restore (which no valid
/// socket produces).
fn without_waiting(
    set_nonblocking: impl Fn(bool) -> io::Result<()>,
    io: impl FnOnce() -> io::Result<usize>,
) -> io::Result<Option<usize>> {
    set_nonblocking(true)?;
    let moved = io();
    let restored = set_nonblocking(false);
    match moved {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => restored.map(|()| None),
        Err(e) => Err(e),
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
            fn shutdown(&self, how: Shutdown) -> io::Result<()> {
                <$ty>::shutdown(self, how)
            }
            /// Switches the socket to non-blocking mode for one read, then
            /// back (the mode is shared with `try_clone`d handles, which
            /// must not be used meanwhile).
            fn read_nonblocking(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
                let socket = &*self;
                without_waiting(
                    |on| socket.set_nonblocking(on),
                    || io::Read::read(&mut &*socket, buf),
                )
            }
            /// Switches the socket to non-blocking mode for one vectored
            /// write, then back (the adapter calls it while it holds the
            /// write side).
            fn write_nonblocking(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<Option<usize>> {
                without_waiting(
                    |on| self.set_nonblocking(on),
                    || io::Write::write_vectored(&mut &*self, bufs),
                )
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

/// What [`connect`] returns: the TCP stream for `ws://`, a `TlsStream`
/// over it for `wss://` (feature `rustls`).
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// `ws://`.
    Plain(std::net::TcpStream),
    /// `wss://`.
    #[cfg(feature = "rustls")]
    Rustls(Box<TlsStream>),
}

/// `$body` with `$s` bound to the stream inside a [`MaybeTlsStream`]
/// (methods reach a boxed `TlsStream` by auto-deref).
macro_rules! each_stream {
    ($stream:expr, $s:ident => $body:expr) => {
        match $stream {
            MaybeTlsStream::Plain($s) => $body,
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls($s) => $body,
        }
    };
}

impl MaybeTlsStream {
    /// The stream as one that reads and writes through a shared reference.
    fn shared(&self) -> &dyn SharedIo {
        match self {
            Self::Plain(s) => s,
            #[cfg(feature = "rustls")]
            Self::Rustls(s) => &**s,
        }
    }
}

/// Read and write through `&Self`, as the split halves do.
trait SharedIo {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize>;
    fn flush(&self) -> io::Result<()>;
}

impl<T> SharedIo for T
where
    for<'a> &'a T: io::Read + io::Write,
{
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut &*self, buf)
    }

    fn write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        io::Write::write_vectored(&mut &*self, bufs)
    }

    fn flush(&self) -> io::Result<()> {
        io::Write::flush(&mut &*self)
    }
}

impl MaybeTlsStream {
    /// The TCP socket underneath.
    pub const fn get_ref(&self) -> &std::net::TcpStream {
        match self {
            Self::Plain(s) => s,
            #[cfg(feature = "rustls")]
            Self::Rustls(s) => s.get_ref(),
        }
    }
}

/// `Read` and `Write` for the stream and for a shared reference to it (as
/// the split halves use it), through [`MaybeTlsStream::shared`].
macro_rules! shared_io {
    ($($ty:ty),*) => {$(
        impl io::Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.shared().read(buf)
            }
        }

        impl io::Write for $ty {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.shared().write_vectored(&[io::IoSlice::new(buf)])
            }

            fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
                self.shared().write_vectored(bufs)
            }

            fn flush(&mut self) -> io::Result<()> {
                self.shared().flush()
            }
        }
    )*};
}

shared_io!(MaybeTlsStream, &MaybeTlsStream);

impl Transport for MaybeTlsStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        each_stream!(self, s => s.set_read_timeout(timeout))
    }

    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        each_stream!(self, s => s.read_timeout())
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        each_stream!(self, s => s.shutdown(how))
    }

    fn read_nonblocking(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        each_stream!(self, s => s.read_nonblocking(buf))
    }

    fn write_nonblocking(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<Option<usize>> {
        each_stream!(self, s => s.write_nonblocking(bufs))
    }
}
