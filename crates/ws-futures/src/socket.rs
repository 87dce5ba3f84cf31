//! [`WebSocket`] and the one loop every operation runs: ask the driver,
//! perform its [`Action`], report what happened.

use core::{
    future::{Future, poll_fn},
    pin::Pin,
    task::{Context, Poll, Waker, ready},
    time::Duration,
};
use std::{
    io::{self, IoSlice},
    time::Instant,
};

use async_io::Timer;
use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_io::{AsyncRead, AsyncWrite};
use futures_sink::Sink;
use ws_proto::{
    Action, CloseCode, CloseFrame, Config, Connection, Driver, Event, Message, Op, Role,
};

use crate::{Error, Result};

/// Slices per vectored write: a few are plenty (the rest goes next round).
const IOV: usize = 16;

/// What an operation needs from its transport: one implementation for a
/// whole [`WebSocket`], one for each split half. Each `poll_*` performs one
/// action and reports it to the driver; an `Err` is an I/O error the
/// application must see ([`Driver::io_error`] said so).
pub(crate) trait Link {
    /// Runs `f` on the driver (under its lock once split).
    fn driver<R>(&mut self, f: impl FnOnce(&mut Driver) -> R) -> R;
    /// [`Action::Read`].
    fn poll_read(&mut self, cx: &mut Context<'_>, wait: bool) -> io::Result<()>;
    /// [`Action::Write`].
    fn poll_write(&mut self, cx: &mut Context<'_>) -> io::Result<()>;
    /// Flushes the transport once a write operation is done.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// [`Action::Shutdown`]: shuts the write side (its error does not matter).
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<()>;
    /// [`Action::Timer`].
    fn poll_timer(&mut self, cx: &mut Context<'_>);
}

/// Runs `op` until the driver delivers an event (`Some`), ends the
/// operation (`None`) or waits (`Pending`). All state lives in the driver,
/// so dropping the future between polls loses nothing.
pub(crate) fn poll_op(
    link: &mut impl Link,
    cx: &mut Context<'_>,
    op: Op,
) -> Poll<Result<Option<Event>>> {
    loop {
        match link.driver(|d| d.poll(op)) {
            Action::Deliver(event) => return Poll::Ready(Ok(Some(event))),
            Action::Done(result) => {
                if matches!(op, Op::Flush | Op::WriteOut) {
                    if let Err(e) = ready!(link.poll_flush(cx)) {
                        link.driver(|d| failed(d, e))?;
                    }
                }
                return Poll::Ready(result.map(|()| None).map_err(Error::from));
            }
            Action::Write => link.poll_write(cx)?,
            Action::Read { wait } => link.poll_read(cx, wait)?,
            Action::Timer => link.poll_timer(cx),
            Action::Shutdown => {
                ready!(link.poll_shutdown(cx));
                link.driver(Driver::shut_down);
            }
            Action::Wait => return Poll::Pending,
        }
    }
}

/// Runs `op` to its end.
pub(crate) async fn run(link: &mut impl Link, op: Op) -> Result<()> {
    while poll_fn(|cx| poll_op(link, cx, op)).await?.is_some() {}
    Ok(())
}

/// Reports a write of `n` bytes (already advanced past), a blocked write or
/// a failure.
pub(crate) fn report_write(d: &mut Driver, result: Poll<io::Result<usize>>) -> io::Result<()> {
    match result {
        Poll::Ready(Ok(0)) => failed(d, io::ErrorKind::WriteZero.into()),
        Poll::Ready(Ok(n)) => {
            d.wrote(n);
            Ok(())
        }
        Poll::Ready(Err(e)) => failed(d, e),
        Poll::Pending => {
            d.write_blocked();
            Ok(())
        }
    }
}

/// Reports a read of `n` bytes (0: end of stream), a blocked read or a
/// failure.
pub(crate) fn report_read(d: &mut Driver, result: Poll<io::Result<usize>>) -> io::Result<()> {
    match result {
        Poll::Ready(Ok(n)) => d.filled(n),
        Poll::Ready(Err(e)) => return failed(d, e),
        Poll::Pending => d.read_blocked(),
    }
    Ok(())
}

/// Reports a transport failure: an error for the application unless the
/// connection had already ended cleanly.
pub(crate) fn failed(d: &mut Driver, e: io::Error) -> io::Result<()> {
    if d.io_error() { Err(e) } else { Ok(()) }
}

/// Stores `waker` in `slot` unless it would wake the same task already.
pub(crate) fn register(slot: &mut Option<Waker>, waker: &Waker) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
        *slot = Some(waker.clone());
    }
}

/// The connection's one timer (keepalive and close timeout), on the clock
/// of [`async_io::Timer`].
#[derive(Debug)]
pub(crate) struct Clock {
    origin: Instant,
    sleep: Timer,
    /// The deadline `sleep` is armed for.
    armed: Option<Duration>,
}

impl Clock {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            sleep: Timer::never(),
            armed: None,
        }
    }

    /// Performs [`Action::Timer`].
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, d: &mut Driver) {
        let Some(deadline) = d.timer(self.origin.elapsed()) else {
            return;
        };
        if self.armed != Some(deadline) {
            // The driver caps deadlines: this cannot overflow.
            self.sleep.set_at(self.origin + deadline);
            self.armed = Some(deadline);
        }
        if Pin::new(&mut self.sleep).poll(cx).is_ready() {
            self.armed = None;
            d.timer_fired(deadline);
        } else {
            d.timer_blocked();
        }
    }
}

/// A WebSocket connection over a `futures-io` stream.
///
/// Also a [`Stream`] of data messages and a [`Sink`] of messages
/// (`poll_close` is [`close`](Self::close) with [`CloseCode::NORMAL`]).
#[derive(Debug)]
pub struct WebSocket<S> {
    pub(crate) io: S,
    pub(crate) driver: Driver,
    pub(crate) timer: Clock,
    /// The task of the last receive call: non-waiting reads during a flush
    /// register it, so a receive pending elsewhere (after
    /// `StreamExt::split`) keeps its wakeup.
    receiver: Option<Waker>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link for WebSocket<S> {
    fn driver<R>(&mut self, f: impl FnOnce(&mut Driver) -> R) -> R {
        f(&mut self.driver)
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, wait: bool) -> io::Result<()> {
        if wait {
            register(&mut self.receiver, cx.waker());
            let result = Pin::new(&mut self.io).poll_read(cx, self.driver.read_slice());
            return report_read(&mut self.driver, result);
        }
        let waker = self
            .receiver
            .clone()
            .unwrap_or_else(|| Waker::noop().clone());
        let mut cx = Context::from_waker(&waker);
        let result = Pin::new(&mut self.io).poll_read(&mut cx, self.driver.read_slice());
        if matches!(result, Poll::Ready(Ok(1..))) {
            // A receive pending in another task waited for these bytes.
            self.receiver.take().map(Waker::wake);
        }
        report_read(&mut self.driver, result)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let out = self.driver.outgoing();
        let io = Pin::new(&mut self.io);
        let result = if out.chunk().len() == out.remaining() {
            io.poll_write(cx, out.chunk())
        } else {
            let mut slices = [IoSlice::new(&[]); IOV];
            let count = out.chunks_vectored(&mut slices);
            io.poll_write_vectored(cx, &slices[..count])
        };
        if let Poll::Ready(Ok(n)) = result {
            out.advance(n);
        }
        report_write(&mut self.driver, result)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.io).poll_close(cx).map(drop)
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) {
        self.timer.poll(cx, &mut self.driver);
    }
}

/// Maps a receive operation's outcome to the `Stream` shape.
pub(crate) fn event(result: Result<Option<Event>>) -> Option<Result<Event>> {
    result.transpose()
}

/// Maps an [`Op::RecvMessage`] outcome (it delivers data messages only).
pub(crate) fn message(result: Result<Option<Event>>) -> Option<Result<Message>> {
    match result {
        Ok(Some(Event::Message(message))) => Some(Ok(message)),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a stream whose opening handshake happened elsewhere (e.g. a
    /// hyper upgrade).
    pub fn from_raw(stream: S, role: Role, config: Config) -> Self {
        Self::from_raw_with_buffer(stream, role, config, BytesMut::new())
    }

    /// Like [`from_raw`](Self::from_raw), with bytes already read past the
    /// handshake.
    pub fn from_raw_with_buffer(stream: S, role: Role, config: Config, read_buf: BytesMut) -> Self {
        let driver = Driver::with_buffer(Connection::new(role, config), read_buf);
        Self::from_parts(stream, driver, Clock::new())
    }

    pub(crate) const fn from_parts(io: S, driver: Driver, timer: Clock) -> Self {
        Self {
            io,
            driver,
            timer,
            receiver: None,
        }
    }

    /// Polls for the next event, like [`recv_event`](Self::recv_event).
    pub fn poll_recv_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        poll_op(self, cx, Op::Recv).map(event)
    }

    /// Polls for the next data message, like [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        poll_op(self, cx, Op::RecvMessage).map(message)
    }

    /// The next data message. Pings are answered and, with pongs, skipped.
    ///
    /// `None` once the close handshake finished or the transport ended
    /// ([`close_frame`](Self::close_frame) tells why). A protocol error
    /// is returned once, after its Close frame was sent and the
    /// transport shut down; later calls give `None`.
    ///
    /// Cancel-safe: all state lives in the driver, so dropping the future
    /// loses no message.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Like [`recv`](Self::recv), but yields every [`Event`]: pings,
    /// pongs and the peer's Close too.
    ///
    /// Cancel-safe: dropping the future loses no event.
    pub async fn recv_event(&mut self) -> Option<Result<Event>> {
        poll_fn(|cx| self.poll_recv_event(cx)).await
    }

    /// Queues a message and writes everything queued, then reads what
    /// already arrived, without waiting, so that pings are answered while
    /// the application only sends (see the crate docs, "Progress").
    ///
    /// Waits for room when the outgoing buffer is full (nothing is
    /// dropped). Not strictly cancel-safe: dropped while waiting for room,
    /// the message is dropped unsent; dropped while flushing, the message
    /// stays queued and goes out with the next write.
    pub async fn send(&mut self, message: Message) -> Result<()> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queues a message without flushing, writing only while the outgoing
    /// buffer is full. Cancellation: as [`send`](Self::send).
    pub async fn feed(&mut self, message: Message) -> Result<()> {
        run(self, Op::Reserve).await?;
        Ok(self.driver.send(message)?)
    }

    /// Writes everything queued (vectored) and flushes the stream, then
    /// reads what already arrived, without waiting, to answer pings.
    ///
    /// Cancel-safe: what was not written stays queued.
    pub async fn flush(&mut self) -> Result<()> {
        run(self, Op::Flush).await
    }

    /// Sends a ping with up to 125 bytes of payload. Cancellation: as
    /// [`send`](Self::send).
    pub async fn ping(&mut self, payload: Bytes) -> Result<()> {
        run(self, Op::Reserve).await?;
        self.driver.ping(payload)?;
        self.flush().await
    }

    /// Starts the close handshake with `code` and `reason` (at most 123
    /// bytes), then runs it to its end: until the peer's Close arrives,
    /// the transport ends or the close timeout fires; the transport is
    /// then shut down. Data messages that arrive meanwhile are kept: later
    /// [`recv`](Self::recv) calls return them, then `None`. Closing an
    /// already closed connection just finishes that.
    ///
    /// Cancel-safe: the Close stays queued; calling again (or `recv`)
    /// continues the handshake.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.driver.close(code, reason)?;
        run(self, Op::Close).await
    }

    /// The Close frame that ended the connection: the peer's, or code
    /// 1006 when the transport ended or a timeout expired without one.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.driver.close_frame()
    }

    /// The protocol state machine.
    pub fn connection(&self) -> &Connection {
        self.driver.connection()
    }

    /// The protocol state machine, e.g. for
    /// [`send_fragment`](Connection::send_fragment); commands only queue
    /// bytes, so call [`flush`](Self::flush) afterwards.
    pub fn connection_mut(&mut self) -> &mut Connection {
        self.driver.connection_mut()
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The stream. Reading or writing it directly corrupts the connection.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The stream; buffered bytes are lost.
    pub fn into_inner(self) -> S {
        self.io
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
        poll_op(self.get_mut(), cx, Op::Reserve).map_ok(drop)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        Ok(self.get_mut().driver.send(item)?)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_op(self.get_mut(), cx, Op::Flush).map_ok(drop)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.driver.close(CloseCode::NORMAL, "")?;
        while ready!(poll_op(this, cx, Op::Close))?.is_some() {}
        Poll::Ready(Ok(()))
    }
}
