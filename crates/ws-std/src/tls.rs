//! `wss://` for the blocking adapter (feature `rustls`): rustls over a
//! `TcpStream`, usable from both split halves at once.
//!
//! rustls' state sits behind a lock held only to encrypt or decrypt, never
//! across a socket read or write: a reader blocked in `read` does not stop a
//! writer, and a writer blocked on a peer that does not read does not stop
//! the reader. Ciphertext goes out in the order rustls produced it (one
//! write lock); the reader flushes what TLS itself needs to send (handshake
//! messages, alerts) only when no writer holds that lock.

use std::{
    io::{self, IoSlice, Read, Write},
    net::{Shutdown, TcpStream},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use rustls::{
    ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection,
    pki_types::ServerName,
};

use ws_proto::adapter::tls::to_io as tls_error;

use crate::{Transport, without_waiting};

/// A TLS stream over a `TcpStream` (client or server side), which the
/// [`WebSocket`](crate::WebSocket) drives like the socket itself: read
/// timeouts, shutdown, and [`split`](crate::WebSocket::split) work as over
/// plain TCP. The TLS handshake runs within the first reads and writes, so
/// the WebSocket handshake's timeout bounds it.
#[derive(Debug)]
pub struct TlsStream {
    socket: TcpStream,
    tls: Mutex<Connection>,
    /// Ciphertext not yet written; its lock keeps writes in rustls' order.
    out: Mutex<Vec<u8>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TlsStream {
    /// The client side, verifying that the server's certificate is valid for
    /// `host` (also sent as SNI).
    pub fn client(socket: TcpStream, config: Arc<ClientConfig>, host: &str) -> io::Result<Self> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = ClientConnection::new(config, name).map_err(tls_error)?;
        Ok(Self::new(socket, tls.into()))
    }

    /// The server side, with the caller's certificate configuration.
    pub fn server(socket: TcpStream, config: Arc<ServerConfig>) -> io::Result<Self> {
        let tls = ServerConnection::new(config).map_err(tls_error)?;
        Ok(Self::new(socket, tls.into()))
    }

    fn new(socket: TcpStream, tls: Connection) -> Self {
        let (tls, out) = (Mutex::new(tls), Mutex::default());
        Self { socket, tls, out }
    }

    /// The TCP socket underneath.
    pub const fn get_ref(&self) -> &TcpStream {
        &self.socket
    }

    /// Runs `f` on rustls' connection (the negotiated ALPN protocol, the
    /// peer's certificates, ...).
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(&mut lock(&self.tls))
    }

    /// Decrypted bytes into `buf`; `Ok(0)` once the peer sent close_notify.
    /// Reads ciphertext from the socket (without waiting if `nonblocking`)
    /// only when nothing is decrypted yet.
    fn read_plain(&self, buf: &mut [u8], nonblocking: bool) -> io::Result<usize> {
        loop {
            match lock(&self.tls).reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                read => return read,
            }
            // What TLS has to say first (handshake messages), unless a
            // writer is busy: it sends them with its own bytes.
            if let Ok(mut out) = self.out.try_lock() {
                self.write_out(&mut out, false)?;
            }
            let mut cipher = [0u8; 16 * 1024];
            let n = match nonblocking {
                true => without_waiting(
                    |on| self.socket.set_nonblocking(on),
                    || (&self.socket).read(&mut cipher),
                )?
                .ok_or(io::ErrorKind::WouldBlock)?,
                false => (&self.socket).read(&mut cipher)?,
            };
            let mut tls = lock(&self.tls);
            if n == 0 {
                // EOF: rustls tells a clean close_notify from a truncation.
                tls.read_tls(&mut io::empty())?;
            }
            let mut input = &cipher[..n];
            while !input.is_empty() {
                tls.read_tls(&mut input)?;
                if let Err(e) = tls.process_new_packets() {
                    drop(tls);
                    if let Ok(mut out) = self.out.try_lock() {
                        let _ = self.write_out(&mut out, false); // the alert
                    }
                    return Err(tls_error(e));
                }
            }
        }
    }

    /// Encrypts from `bufs`; the ciphertext goes out in order. Without
    /// waiting (`nonblocking`), ciphertext the socket does not take stays
    /// queued, and nothing new is accepted until it is written.
    fn write_plain(&self, bufs: &[IoSlice<'_>], nonblocking: bool) -> io::Result<usize> {
        let mut out = lock(&self.out);
        self.write_out(&mut out, nonblocking)?;
        let n = lock(&self.tls).writer().write_vectored(bufs)?;
        match self.write_out(&mut out, nonblocking) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
            written => written.map(|()| n),
        }
    }

    /// Writes queued ciphertext, and all rustls has, to the socket.
    fn write_out(&self, out: &mut Vec<u8>, nonblocking: bool) -> io::Result<()> {
        loop {
            if out.is_empty() {
                let mut tls = lock(&self.tls);
                while tls.wants_write() {
                    tls.write_tls(out)?;
                }
            }
            if out.is_empty() {
                return Ok(());
            }
            let written = match nonblocking {
                true => Transport::write_nonblocking(&self.socket, &[IoSlice::new(out)])?
                    .ok_or(io::ErrorKind::WouldBlock)?,
                false => (&self.socket).write(out)?,
            };
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            out.drain(..written);
        }
    }
}

impl Read for &TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_plain(buf, false)
    }
}

impl Write for &TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_plain(&[IoSlice::new(buf)], false)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_plain(bufs, false)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out(&mut lock(&self.out), false)
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}

impl Transport for TlsStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket.set_read_timeout(timeout)
    }

    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.socket.read_timeout()
    }

    /// Shutting the write side sends TLS close_notify first.
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if how != Shutdown::Read {
            let mut out = lock(&self.out);
            lock(&self.tls).send_close_notify();
            let _ = self.write_out(&mut out, false);
        }
        self.socket.shutdown(how)
    }

    fn read_nonblocking(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.read_plain(buf, true) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            read => read.map(Some),
        }
    }

    fn write_nonblocking(&self, bufs: &[IoSlice<'_>]) -> io::Result<Option<usize>> {
        match self.write_plain(bufs, true) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            written => written.map(Some),
        }
    }
}
