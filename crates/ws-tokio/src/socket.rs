//! The WebSocket over a tokio stream, and the one run loop that every
//! operation (and both split halves) uses: ask the [`Driver`], perform the
//! [`Action`], report what happened.

use alloc::boxed::Box;
use core::{
    future::{Future, poll_fn},
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    time::{Instant, Sleep},
};
use tokio_util::io::poll_read_buf;
use ws_proto::{
    Action, CloseCode, CloseFrame, Config, Connection, Driver, Event, Message, Op, Role, SendError,
};

use crate::{Error, Result};

/// The most chunks one vectored write takes (the rest goes in the next one).
const WRITE_IOV: usize = 16;

/// The write side of a transport.
#[derive(Debug)]
pub(crate) struct Io<T> {
    pub(crate) stream: T,
    /// Bytes taken out of the driver's queue and not yet written (a split
    /// half writes owned chunks outside the driver's lock): they go first.
    pub(crate) held: Bytes,
    /// Bytes were written since the stream was last flushed.
    pub(crate) unflushed: bool,
}

impl<T: AsyncWrite + Unpin> Io<T> {
    /// One write from `out`: a plain write for a single chunk (small frames
    /// encoded back to back), a vectored one for headers and large payloads.
    #[inline]
    fn poll_write(&mut self, cx: &mut Context<'_>, out: &mut impl Buf) -> Poll<io::Result<usize>> {
        let stream = Pin::new(&mut self.stream);
        let n = if out.chunk().len() == out.remaining() {
            ready!(stream.poll_write(cx, out.chunk()))?
        } else {
            let mut slices = [IoSlice::new(&[]); WRITE_IOV];
            let count = out.chunks_vectored(&mut slices);
            ready!(stream.poll_write_vectored(cx, &slices[..count]))?
        };
        out.advance(n);
        self.unflushed = true;
        Poll::Ready(if n == 0 {
            Err(io::ErrorKind::WriteZero.into())
        } else {
            Ok(n)
        })
    }

    /// One write from the held chunk (first popped from `out` if empty).
    pub(crate) fn poll_write_held(
        &mut self,
        cx: &mut Context<'_>,
        out: impl FnOnce() -> Option<Bytes>,
    ) -> Poll<io::Result<usize>> {
        if self.held.is_empty() {
            self.held = out().unwrap_or_default();
            if self.held.is_empty() {
                return Poll::Ready(Ok(0)); // another half wrote it meanwhile
            }
        }
        let mut held = core::mem::take(&mut self.held);
        let written = self.poll_write(cx, &mut held);
        self.held = held;
        written
    }

    /// Writes the held chunk, then flushes the stream if it was written to.
    pub(crate) fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            ready!(self.poll_write_held(cx, || None))?;
        }
        if self.unflushed {
            ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Shuts the write side down (errors do not matter), after the held
    /// bytes unless the driver gave up on the peer (`abandoned`).
    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>, abandoned: bool) -> Poll<()> {
        if abandoned {
            self.held.clear();
        }
        let _ = ready!(self.poll_drain(cx));
        let _ = ready!(Pin::new(&mut self.stream).poll_shutdown(cx));
        Poll::Ready(())
    }
}

/// Reports the outcome of a read or write with `blocked` or `done`; an error
/// is the run loop's to report.
#[inline]
pub(crate) fn report(
    driver: &mut Driver,
    outcome: Poll<io::Result<usize>>,
    done: fn(&mut Driver, usize),
    blocked: fn(&mut Driver),
) -> io::Result<()> {
    match outcome {
        Poll::Ready(Ok(n)) => done(driver, n),
        Poll::Pending => blocked(driver),
        Poll::Ready(Err(e)) => return Err(e),
    }
    Ok(())
}

/// What the run loop needs: the driver, and I/O that performs and reports
/// each action. Direct for a whole [`WebSocket`]; for the split halves the
/// driver is behind a lock held only for sans-IO calls.
pub(crate) trait Link {
    /// Runs `f` on the driver (a short, synchronous call).
    fn with<R>(&mut self, f: impl FnOnce(&mut Driver) -> R) -> R;
    /// Performs [`Action::Write`] and reports it, except an error.
    fn write(&mut self, cx: &mut Context<'_>) -> io::Result<()>;
    /// Performs [`Action::Read`] and reports it, except an error.
    fn read(&mut self, cx: &mut Context<'_>) -> io::Result<()>;
    /// Performs [`Action::Timer`].
    fn timer(&mut self, cx: &mut Context<'_>);
    /// Writes what is held, then flushes the stream.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Performs [`Action::Shutdown`] (the loop reports it).
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// The one timer: a `tokio::time::Sleep` created on first use, on a clock
/// that starts with the connection.
#[derive(Debug)]
pub(crate) struct Timer {
    origin: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    /// The deadline the sleep is set to.
    armed: Option<Duration>,
}

impl Timer {
    pub(crate) fn new() -> Self {
        let (sleep, armed) = (None, None);
        Self {
            origin: Instant::now(),
            sleep,
            armed,
        }
    }

    /// Performs [`Action::Timer`]; re-arms the sleep only when the deadline
    /// moved.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, driver: &mut Driver) {
        let Some(deadline) = driver.timer(self.origin.elapsed()) else {
            return;
        };
        let when = self.origin + deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(when)));
        if self.armed != Some(deadline) {
            sleep.as_mut().reset(when);
            self.armed = Some(deadline);
        }
        if sleep.as_mut().poll(cx).is_ready() {
            driver.timer_fired(deadline);
        } else {
            driver.timer_blocked();
        }
    }
}

/// The run loop of operation `op`: `Some(event)` delivered, `None` the
/// operation is over. All state lives in the driver (and the held bytes), so
/// dropping a caller's future loses nothing.
pub(crate) fn poll_op<L: Link>(
    link: &mut L,
    cx: &mut Context<'_>,
    op: Op,
) -> Poll<Result<Option<Event>>> {
    let mut wrote = false;
    loop {
        let outcome = match link.with(|driver| driver.poll(op)) {
            Action::Deliver(event) => {
                if wrote {
                    // Best effort: a flush still pending is the next call's.
                    let _ = link.poll_drain(cx);
                }
                return Poll::Ready(Ok(Some(event)));
            }
            Action::Done(Err(e)) => return Poll::Ready(Err(e.into())),
            Action::Done(Ok(())) if link.with(|driver| driver.is_done()) => {
                return Poll::Ready(Ok(None));
            }
            Action::Done(Ok(())) => match ready!(link.poll_drain(cx)) {
                Ok(()) => return Poll::Ready(Ok(None)),
                Err(e) => Err(e),
            },
            Action::Write => {
                wrote = true;
                link.write(cx)
            }
            Action::Read { .. } => link.read(cx),
            Action::Timer => Ok(link.timer(cx)),
            Action::Shutdown => {
                ready!(link.poll_shutdown(cx));
                Ok(link.with(Driver::shut_down))
            }
            Action::Wait => match link.poll_drain(cx) {
                Poll::Ready(Err(e)) => Err(e),
                _ => return Poll::Pending,
            },
        };
        if let Err(e) = outcome
            && link.with(Driver::io_error)
        {
            return Poll::Ready(Err(e.into()));
        }
    }
}

/// Queues `slot`'s message with `command` once one more message fits
/// ([`Op::Reserve`]), then runs `then` (a flush), all in one poll function.
/// The message stays in `slot` until queued, so a re-poll resumes.
#[inline]
pub(crate) fn poll_command<L: Link>(
    link: &mut L,
    cx: &mut Context<'_>,
    slot: &mut Option<Message>,
    command: impl Fn(&mut Driver, Message) -> Result<(), SendError>,
    then: Option<Op>,
) -> Poll<Result<()>> {
    if slot.is_some() {
        ready!(poll_op(link, cx, Op::Reserve))?;
        if let Some(message) = slot.take() {
            link.with(|driver| command(driver, message))?;
        }
    }
    then.map_or(Poll::Ready(Ok(())), |op| poll_op(link, cx, op).map_ok(drop))
}

/// [`Driver::ping`] in the shape [`poll_command`] takes.
pub(crate) fn ping(driver: &mut Driver, payload: Message) -> Result<(), SendError> {
    driver.ping(payload.into_bytes())
}

/// The data message in a delivered event (the driver delivers nothing else
/// to [`Op::RecvMessage`]).
pub(crate) fn message(event: Event) -> Option<Message> {
    if let Event::Message(message) = event {
        Some(message)
    } else {
        None
    }
}

/// The receive methods and `Stream` of [`WebSocket`] and
/// [`ReadHalf`](crate::ReadHalf).
macro_rules! recv_api {
    ($ty:ident) => {
        impl<S: AsyncRead + AsyncWrite + Unpin> $ty<S> {
            /// Polls for the next event; see [`recv_event`](Self::recv_event).
            pub fn poll_recv_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
                poll_op(self, cx, Op::Recv).map(Result::transpose)
            }

            /// Polls for the next data message; see [`recv`](Self::recv).
            pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
                poll_op(self, cx, Op::RecvMessage)
                    .map(|r| r.map(|e| e.and_then(message)).transpose())
            }

            /// Receives the next data message. Pings are answered and Close
            /// frames echoed inside; `None` once the connection is over (see
            /// `close_frame` for why). A protocol error is returned once,
            /// after the Close frame was flushed and the transport shut down;
            /// later calls return `None`.
            ///
            /// Cancel-safe: all state lives in the driver, so dropping the
            /// future (in `select!`) loses nothing.
            pub async fn recv(&mut self) -> Option<Result<Message>> {
                poll_fn(|cx| self.poll_recv(cx)).await
            }

            /// Like [`recv`](Self::recv), but yields every event: Ping, Pong
            /// and the Close too. Cancel-safe.
            pub async fn recv_event(&mut self) -> Option<Result<Event>> {
                poll_fn(|cx| self.poll_recv_event(cx)).await
            }
        }

        impl<S: AsyncRead + AsyncWrite + Unpin> Stream for $ty<S> {
            type Item = Result<Message>;

            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                self.get_mut().poll_recv(cx)
            }
        }
    };
}

/// The send methods and `Sink` of [`WebSocket`] and
/// [`WriteHalf`](crate::WriteHalf): `$flush` is the operation after a send,
/// and each type has `poll_flush`, `start_close` and `poll_end` (the rest of
/// a close); the docs of `flush` and `close` are given.
macro_rules! send_api {
    ($ty:ident, $flush:expr, $(#[$flush_doc:meta])* flush, $(#[$close_doc:meta])* close) => {
        impl<S: AsyncRead + AsyncWrite + Unpin> $ty<S> {
            /// Queues `message` (once it fits in the outgoing buffer) and
            /// writes everything queued.
            ///
            /// Not strictly cancel-safe: if the future is dropped while
            /// waiting for a full outgoing buffer to drain, `message` was not
            /// queued and is lost; once queued (dropped during the write), it
            /// stays queued and goes out with the next write.
            pub async fn send(&mut self, message: Message) -> Result<()> {
                // Reserve, queue and flush in one future: the hottest call
                // of an echo loop pays for one state machine, not three.
                let mut slot = Some(message);
                poll_fn(|cx| poll_command(self, cx, &mut slot, Driver::send, Some($flush))).await
            }

            /// Queues `message` without writing, unless the outgoing buffer
            /// is full (then it writes until the message fits). Same
            /// cancellation behavior as [`send`](Self::send).
            pub async fn feed(&mut self, message: Message) -> Result<()> {
                let mut slot = Some(message);
                poll_fn(|cx| poll_command(self, cx, &mut slot, Driver::send, None)).await
            }

            $(#[$flush_doc])*
            pub async fn flush(&mut self) -> Result<()> {
                poll_fn(|cx| self.poll_flush(cx)).await
            }

            /// Sends a ping (payload up to 125 bytes); its pong arrives as
            /// [`Event::Pong`] from `recv_event`. Cancellation as for
            /// [`send`](Self::send).
            pub async fn ping(&mut self, payload: Bytes) -> Result<()> {
                let mut slot = Some(Message::Binary(payload));
                poll_fn(|cx| poll_command(self, cx, &mut slot, ping, Some($flush))).await
            }

            $(#[$close_doc])*
            pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
                self.start_close(code, reason)?;
                poll_fn(|cx| self.poll_end(cx)).await
            }
        }

        impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for $ty<S> {
            type Error = Error;

            fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                poll_op(self.get_mut(), cx, Op::Reserve).map_ok(drop)
            }

            fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
                Ok(self.get_mut().with(|driver| driver.send(item))?)
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                self.get_mut().poll_flush(cx)
            }

            /// Closes with code 1000, as `close`.
            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                let this = self.get_mut();
                this.start_close(CloseCode::NORMAL, "")?;
                this.poll_end(cx)
            }
        }
    };
}

pub(crate) use {recv_api, send_api};

/// A WebSocket connection over a tokio stream `S` (a `TcpStream`, a TLS
/// stream, an upgraded hyper connection, ...).
///
/// Reading drives everything: [`recv`](Self::recv) answers pings, echoes
/// Close frames, sends keepalive pings and enforces the close timeout. Use
/// [`split`](Self::split) to read and write from two tasks.
///
/// Implements [`Stream`] (data messages) and [`Sink<Message>`].
#[derive(Debug)]
pub struct WebSocket<S> {
    pub(crate) io: Io<S>,
    pub(crate) driver: Driver,
    pub(crate) timer: Timer,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link for WebSocket<S> {
    #[inline]
    fn with<R>(&mut self, f: impl FnOnce(&mut Driver) -> R) -> R {
        f(&mut self.driver)
    }

    #[inline]
    fn write(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let written = if self.io.held.is_empty() {
            self.io.poll_write(cx, self.driver.outgoing())
        } else {
            self.io.poll_write_held(cx, || None)
        };
        report(
            &mut self.driver,
            written,
            Driver::wrote,
            Driver::write_blocked,
        )
    }

    #[inline]
    fn read(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let read = poll_read_buf(Pin::new(&mut self.io.stream), cx, self.driver.read_buf());
        report(&mut self.driver, read, Driver::filled, Driver::read_blocked)
    }

    fn timer(&mut self, cx: &mut Context<'_>) {
        self.timer.poll(cx, &mut self.driver);
    }

    #[inline]
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_drain(cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.io
            .poll_shutdown(cx, self.driver.connection().is_abandoned())
    }
}

impl<S> WebSocket<S> {
    /// Wraps a stream on which the opening handshake already happened
    /// elsewhere (a hyper or axum upgrade).
    pub fn from_raw(stream: S, role: Role, config: Config) -> Self {
        Self::from_raw_with_buffer(stream, role, config, BytesMut::new())
    }

    /// Like [`from_raw`](Self::from_raw), with bytes already read past the
    /// handshake: they are the connection's first input.
    pub fn from_raw_with_buffer(stream: S, role: Role, config: Config, read_buf: BytesMut) -> Self {
        let (held, unflushed) = (Bytes::new(), false);
        let driver = Driver::with_buffer(Connection::new(role, config), read_buf);
        Self {
            io: Io {
                stream,
                held,
                unflushed,
            },
            driver,
            timer: Timer::new(),
        }
    }

    /// Why the connection ended: the peer's Close frame, or code 1006 when
    /// the transport ended or failed, or a timeout fired, without one. `None`
    /// while open (and after a protocol error, which [`recv`](Self::recv)
    /// returned).
    pub const fn close_frame(&self) -> Option<&CloseFrame> {
        self.driver.close_frame()
    }

    /// The sans-IO connection (state, role, configuration).
    pub const fn connection(&self) -> &Connection {
        self.driver.connection()
    }

    /// The connection, for commands this adapter does not wrap
    /// ([`Connection::send_fragment`], [`Connection::pong`]). Commands only
    /// queue bytes: call [`flush`](Self::flush) afterwards.
    pub const fn connection_mut(&mut self) -> &mut Connection {
        self.driver.connection_mut()
    }

    /// The underlying stream.
    pub const fn get_ref(&self) -> &S {
        &self.io.stream
    }

    /// The underlying stream, mutably. Reading or writing it directly
    /// corrupts the WebSocket stream.
    pub const fn get_mut(&mut self) -> &mut S {
        &mut self.io.stream
    }

    /// The underlying stream. Buffered bytes, read or not yet written, are
    /// dropped.
    pub fn into_inner(self) -> S {
        self.io.stream
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Polls writing everything queued; see [`flush`](Self::flush).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_op(self, cx, Op::Flush).map_ok(drop)
    }

    fn start_close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        Ok(self.driver.close(code, reason)?)
    }

    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_op(self, cx, Op::Close).map_ok(drop)
    }
}

recv_api!(WebSocket);
send_api!(
    WebSocket,
    Op::Flush,
    /// Writes everything queued, with vectored writes; then reads what
    /// already arrived, without waiting, so that pings are answered and Close
    /// frames echoed even when the application only sends (what it reads is
    /// kept for the next [`recv`](Self::recv)). Cancel-safe: what is not
    /// written stays queued.
    flush,
    /// Closes the connection: queues a Close frame (unless the close
    /// handshake already started), then runs the handshake to its end: until
    /// the peer's Close arrives (and, for a client, the server ends the
    /// stream), the transport fails or the close timeout fires; the transport
    /// is then shut down. Data messages that arrive meanwhile are kept:
    /// later [`recv`](Self::recv) calls still return them. Returns at once
    /// if the connection is already over.
    ///
    /// Cancel-safe: the Close is queued once; calling `close` (or `recv`)
    /// again resumes.
    close
);
