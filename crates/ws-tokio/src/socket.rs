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
    Action, CloseCode, CloseFrame, Config, Connection, Driver, Event, Message, Op, Outgoing, Role,
    SendError,
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

impl<T> Io<T> {
    pub(crate) const fn new(stream: T) -> Self {
        Self {
            stream,
            held: Bytes::new(),
            unflushed: false,
        }
    }
}

impl<T: AsyncWrite + Unpin> Io<T> {
    /// One write from `out`: a plain write for a single chunk (small frames
    /// encoded back to back), a vectored one for headers and large payloads.
    #[inline]
    fn poll_write_out(&mut self, cx: &mut Context<'_>, out: &mut Outgoing) -> Poll<io::Result<usize>> {
        let stream = Pin::new(&mut self.stream);
        let n = if out.chunk().len() == out.remaining() {
            ready!(stream.poll_write(cx, out.chunk()))?
        } else {
            let mut slices = [IoSlice::new(&[]); WRITE_IOV];
            let count = out.chunks_vectored(&mut slices);
            ready!(stream.poll_write_vectored(cx, &slices[..count]))?
        };
        out.advance(n);
        self.wrote(n)
    }

    /// One write from the held chunk.
    pub(crate) fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.held))?;
        self.held.advance(n);
        self.wrote(n)
    }

    fn wrote(&mut self, n: usize) -> Poll<io::Result<usize>> {
        self.unflushed = true;
        Poll::Ready(if n == 0 {
            Err(io::ErrorKind::WriteZero.into())
        } else {
            Ok(n)
        })
    }

    /// Writes the held chunk, then flushes the stream if it was written to.
    pub(crate) fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            ready!(self.poll_write_held(cx))?;
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
        } else {
            let _ = ready!(self.poll_drain(cx));
        }
        let _ = ready!(Pin::new(&mut self.stream).poll_shutdown(cx));
        Poll::Ready(())
    }
}

/// Reports the outcome of a write to the driver; an error is the loop's.
pub(crate) fn report_write(driver: &mut Driver, write: Poll<io::Result<usize>>) -> io::Result<()> {
    match write {
        Poll::Ready(Ok(n)) => driver.wrote(n),
        Poll::Pending => driver.write_blocked(),
        Poll::Ready(Err(e)) => return Err(e),
    }
    Ok(())
}

/// What the run loop needs: the driver, and I/O that performs and reports an
/// action. Direct for a whole [`WebSocket`]; for split halves, the driver is
/// behind a lock held only for sans-IO calls.
pub(crate) trait Link {
    /// Runs `f` on the driver (a short, synchronous call).
    fn with<R>(&mut self, f: impl FnOnce(&mut Driver) -> R) -> R;
    /// Performs [`Action::Write`] and reports it, except an error.
    fn write(&mut self, cx: &mut Context<'_>) -> io::Result<()>;
    /// Performs [`Action::Read`] and reports it, except an error.
    fn read(&mut self, cx: &mut Context<'_>) -> io::Result<()>;
    /// Writes what is held and flushes the stream.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Performs [`Action::Shutdown`].
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// The one timer: a `tokio::time::Sleep` on a clock whose origin is the
/// connection's creation, created on first use.
#[derive(Debug)]
pub(crate) struct Timer {
    origin: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    /// The deadline the sleep is set to.
    armed: Option<Duration>,
}

impl Timer {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            sleep: None,
            armed: None,
        }
    }

    /// Performs [`Action::Timer`]; re-arms the sleep only when the deadline
    /// moved.
    fn poll<L: Link>(&mut self, link: &mut L, cx: &mut Context<'_>) {
        let now = self.origin.elapsed();
        let Some(deadline) = link.with(|driver| driver.timer(now)) else {
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
            link.with(|driver| driver.timer_fired(deadline));
        } else {
            link.with(Driver::timer_blocked);
        }
    }
}

/// The run loop of operation `op`: `Some(event)` delivered, `None` the
/// operation is over. All state lives in the driver (and `io`), so dropping
/// a caller's future loses nothing. `timer` is `None` for a write half,
/// whose operations never wait on it.
pub(crate) fn poll_op<L: Link>(
    link: &mut L,
    mut timer: Option<&mut Timer>,
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
            Action::Timer => {
                match timer.as_deref_mut() {
                    Some(timer) => timer.poll(link, cx),
                    None => link.with(Driver::timer_blocked),
                }
                Ok(())
            }
            Action::Shutdown => {
                ready!(link.poll_shutdown(cx));
                link.with(Driver::shut_down);
                Ok(())
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
        ready!(poll_op(link, None, cx, Op::Reserve))?;
        if let Some(message) = slot.take() {
            link.with(|driver| command(driver, message))?;
        }
    }
    match then {
        Some(op) => poll_op(link, None, cx, op).map_ok(drop),
        None => Poll::Ready(Ok(())),
    }
}

/// [`Driver::ping`] in the shape [`poll_command`] takes.
pub(crate) fn ping(driver: &mut Driver, payload: Message) -> Result<(), SendError> {
    driver.ping(payload.into_bytes())
}

/// Maps a receive operation's outcome to a stream item.
pub(crate) fn item<T>(outcome: Result<Option<T>>) -> Option<Result<T>> {
    outcome.transpose()
}

/// Keeps data messages only (the driver delivers nothing else to
/// [`Op::RecvMessage`]).
pub(crate) fn message(event: Event) -> Option<Message> {
    if let Event::Message(message) = event {
        Some(message)
    } else {
        None
    }
}

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

/// The [`Link`] of a whole socket: no locks.
struct Whole<'a, S> {
    io: &'a mut Io<S>,
    driver: &'a mut Driver,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link for Whole<'_, S> {
    #[inline]
    fn with<R>(&mut self, f: impl FnOnce(&mut Driver) -> R) -> R {
        f(self.driver)
    }

    #[inline]
    fn write(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let write = if self.io.held.is_empty() {
            self.io.poll_write_out(cx, self.driver.outgoing())
        } else {
            self.io.poll_write_held(cx)
        };
        report_write(self.driver, write)
    }

    #[inline]
    fn read(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match poll_read_buf(Pin::new(&mut self.io.stream), cx, self.driver.read_buf()) {
            Poll::Ready(Ok(n)) => self.driver.filled(n),
            Poll::Pending => self.driver.read_blocked(),
            Poll::Ready(Err(e)) => return Err(e),
        }
        Ok(())
    }

    #[inline]
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_drain(cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let abandoned = self.driver.connection().is_abandoned();
        self.io.poll_shutdown(cx, abandoned)
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
        let driver = Driver::with_buffer(Connection::new(role, config), read_buf);
        Self {
            io: Io::new(stream),
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
    /// The run loop of `op` over this socket; every method uses it.
    #[inline]
    fn poll_op(&mut self, cx: &mut Context<'_>, op: Op) -> Poll<Result<Option<Event>>> {
        let mut link = Whole {
            io: &mut self.io,
            driver: &mut self.driver,
        };
        poll_op(&mut link, Some(&mut self.timer), cx, op)
    }

    #[inline]
    fn poll_command(
        &mut self,
        cx: &mut Context<'_>,
        slot: &mut Option<Message>,
        command: impl Fn(&mut Driver, Message) -> Result<(), SendError>,
        then: Option<Op>,
    ) -> Poll<Result<()>> {
        let mut link = Whole {
            io: &mut self.io,
            driver: &mut self.driver,
        };
        poll_command(&mut link, cx, slot, command, then)
    }

    /// Polls for the next event; see [`recv_event`](Self::recv_event).
    pub fn poll_recv_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        self.poll_op(cx, Op::Recv).map(item)
    }

    /// Polls for the next data message; see [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        self.poll_op(cx, Op::RecvMessage)
            .map(|outcome| item(outcome.map(|event| event.and_then(message))))
    }

    /// Polls writing everything queued; see [`flush`](Self::flush).
    ///
    /// Once written, it also reads what already arrived, without waiting, so
    /// that pings are answered and Close frames echoed even when the
    /// application only sends (what it reads is kept for the next
    /// [`recv`](Self::recv)).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_op(cx, Op::Flush).map_ok(drop)
    }

    /// Receives the next data message. Pings are answered and Close frames
    /// echoed inside; `None` once the connection is over (see
    /// [`close_frame`](Self::close_frame) for why). A protocol error is
    /// returned once, after the Close frame was flushed and the transport
    /// shut down; later calls return `None`.
    ///
    /// Cancel-safe: all state lives in the driver, so dropping the future
    /// (in `select!`) loses nothing.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Like [`recv`](Self::recv), but yields every event: Ping, Pong and the
    /// Close too. Cancel-safe.
    pub async fn recv_event(&mut self) -> Option<Result<Event>> {
        poll_fn(|cx| self.poll_recv_event(cx)).await
    }

    /// Queues `message` (once it fits in the outgoing buffer) and writes
    /// everything queued.
    ///
    /// Not strictly cancel-safe: if the future is dropped while waiting for a
    /// full outgoing buffer to drain, `message` was not queued and is lost;
    /// once queued (dropped during the write), it stays queued and goes out
    /// with the next `send`, `flush` or `recv`.
    pub async fn send(&mut self, message: Message) -> Result<()> {
        // Reserve, queue and flush in one future: the hottest call of an
        // echo loop pays for one state machine, not three.
        let mut slot = Some(message);
        poll_fn(|cx| self.poll_command(cx, &mut slot, Driver::send, Some(Op::Flush))).await
    }

    /// Queues `message` without writing, unless the outgoing buffer is full
    /// (then it writes until the message fits). Same cancellation behavior
    /// as [`send`](Self::send).
    pub async fn feed(&mut self, message: Message) -> Result<()> {
        let mut slot = Some(message);
        poll_fn(|cx| self.poll_command(cx, &mut slot, Driver::send, None)).await
    }

    /// Writes everything queued, with vectored writes, then reads without
    /// waiting (see [`poll_flush`](Self::poll_flush)). Cancel-safe: what is
    /// not written stays queued.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Sends a ping (payload up to 125 bytes). Its pong arrives as
    /// [`Event::Pong`] from [`recv_event`](Self::recv_event). Cancellation as
    /// for [`send`](Self::send).
    pub async fn ping(&mut self, payload: Bytes) -> Result<()> {
        let mut slot = Some(Message::Binary(payload));
        poll_fn(|cx| self.poll_command(cx, &mut slot, ping, Some(Op::Flush))).await
    }

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
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.driver.close(code, reason)?;
        poll_fn(|cx| self.poll_op(cx, Op::Close)).await.map(drop)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_op(cx, Op::Reserve).map_ok(drop)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        Ok(self.get_mut().driver.send(item)?)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush(cx)
    }

    /// Closes with code 1000, as [`WebSocket::close`].
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.driver.close(CloseCode::NORMAL, "")?;
        this.poll_op(cx, Op::Close).map_ok(drop)
    }
}
