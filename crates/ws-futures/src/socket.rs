//! [`Socket`] (a [`WebSocket`] or a split half) and the one loop every
//! operation runs: ask the driver, perform its [`Action`], report.

use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::task::{Context, Poll, Waker, ready};
use std::io::{self, ErrorKind, IoSlice};
use std::time::{Duration, Instant};

use async_io::Timer;
use bytes::{Buf, Bytes};
use futures_core::Stream;
use futures_io::{AsyncRead, AsyncWrite};
use futures_sink::Sink;
use ws_proto::{Action, CloseCode, CloseFrame, Config, Connection, Driver};
use ws_proto::{Event, Message, Op, Role};

use crate::{Error, Result};

/// An I/O step: `Pending` when the I/O was reported blocked.
pub(crate) type Io<T = ()> = Poll<io::Result<T>>;

/// What [`Socket`] needs from its transport: implemented by a whole
/// connection ([`Whole`]) and by each split half. Each `poll_*` performs
/// one [`Action`] and reports it to the driver; `Pending`
/// when it reported the I/O blocked (a wakeup is registered).
pub trait Link: Unpin {
    /// The operation of `flush` (a whole connection also reads what
    /// arrived, to answer pings; a write half only writes).
    const FLUSH: Op = Op::WriteOut;
    /// The operation of `close` after queueing the Close.
    const CLOSE: Op = Op::WriteOut;
    /// Runs `f` on the driver (under its lock once split).
    fn driver<R>(&mut self, f: impl FnOnce(&mut Driver) -> R) -> R;
    /// Performs [`Action::Read`].
    fn poll_read(&mut self, cx: &mut Context<'_>, wait: bool) -> Io;
    /// Performs [`Action::Write`].
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Io;
    /// Flushes the transport once a write operation is done.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Io;
    /// Performs [`Action::Shutdown`] (its error does not matter), dropping
    /// bytes still held if `discard`.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>, discard: bool) -> Poll<()>;
    /// Performs [`Action::Timer`].
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()>;
    /// Why the connection ended (see [`Driver::close_frame`]).
    fn close_frame(&self) -> Option<&CloseFrame>;
    /// Queues a Close ([`Driver::close`]).
    fn start_close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        Ok(self.driver(|d| d.close(code, reason))?)
    }
}

/// A [`Link`] that receives: [`Whole`] and the read half.
pub trait Receiver: Link {}
/// A [`Link`] that sends: [`Whole`] and the write half.
pub trait Sender: Link {}

/// Runs `op` until the driver delivers an event (`Some`), ends the
/// operation (`None`) or waits (`Pending`). All state lives in the driver,
/// so dropping the future between polls loses nothing.
pub(crate) fn poll_op(
    link: &mut impl Link,
    cx: &mut Context<'_>,
    op: Op,
) -> Poll<Result<Option<Event>>> {
    // Whatever this call wrote is flushed before it returns or waits.
    let (mut blocked, mut wrote) = (false, false);
    loop {
        match link.driver(|d| d.poll(op)) {
            Action::Deliver => {
                if wrote {
                    // Best effort: a flush still pending is the next call's.
                    let _ = link.poll_flush(cx);
                }
                return Poll::Ready(Ok(link.driver(Driver::take_event)));
            }
            Action::Done => {
                if let Some(e) = link.driver(Driver::take_error) {
                    return Poll::Ready(Err(e.into()));
                }
                // Write operations always flush: an earlier, cancelled call
                // may have left bytes in the stream's buffer.
                if (wrote || matches!(op, Op::Flush | Op::WriteOut | Op::Open))
                    && let Err(e) = ready!(link.poll_flush(cx))
                {
                    ready!(link.driver(|d| report(d, false, Poll::Ready(Err(e)))))?;
                }
                return Poll::Ready(Ok(None));
            }
            Action::Write { .. } => {
                // A blocked write is flushed once it completes: flushing
                // now would wait the same way (and `async-net` drops the
                // write's wakeup on a flush).
                let pending = link.poll_write(cx)?.is_pending();
                (wrote, blocked) = (!pending, blocked | pending);
            }
            Action::Read { wait } => blocked |= link.poll_read(cx, wait)?.is_pending(),
            Action::Timer => blocked |= link.poll_timer(cx).is_pending(),
            Action::Shutdown { discard } => {
                ready!(link.poll_shutdown(cx, discard));
                link.driver(Driver::shut_down);
            }
            Action::Wait if blocked => {
                if wrote && let Poll::Ready(Err(e)) = link.poll_flush(cx) {
                    ready!(link.driver(|d| report(d, false, Poll::Ready(Err(e)))))?;
                    continue;
                }
                return Poll::Pending;
            }
            // Split halves share the driver, which waits for what either
            // reported blocked: this half has no wakeup yet. The driver
            // forgot that at `Wait`; ask again.
            Action::Wait => {}
        }
    }
}

/// Runs `op` to its end.
async fn run(link: &mut impl Link, op: Op) -> Result<()> {
    while poll_fn(|cx| poll_op(link, cx, op)).await?.is_some() {}
    Ok(())
}

/// Reports a read (`read`) or a write of `n` bytes (0: end of stream for a
/// read, an error for a write; a write already advanced past them), a
/// blocked one, or a failure: an error for the application unless the
/// connection had already ended cleanly.
pub(crate) fn report(d: &mut Driver, read: bool, done: Io<usize>) -> Io {
    match done {
        Poll::Ready(Ok(n)) if read => d.filled(n),
        Poll::Ready(Ok(n)) if n > 0 => d.wrote(n),
        Poll::Ready(result) => {
            let e = result.err().unwrap_or_else(|| ErrorKind::WriteZero.into());
            return Poll::Ready(if d.io_error() { Err(e) } else { Ok(()) });
        }
        Poll::Pending if read => d.read_blocked(),
        Poll::Pending => d.write_blocked(),
    }
    done.map(|_| Ok(()))
}

/// The connection's one timer (keepalive and close timeout): the origin of
/// the driver's clock, the sleep, and the deadline it is armed for.
#[derive(Debug)]
pub(crate) struct Clock(Instant, Timer, Option<Duration>);

impl Clock {
    pub(crate) fn new() -> Self {
        Self(Instant::now(), Timer::never(), None)
    }

    /// Performs [`Action::Timer`]: `Pending` while the sleep runs.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, d: &mut Driver) -> Poll<()> {
        let Self(origin, sleep, armed) = self;
        let Some(deadline) = d.timer(origin.elapsed()) else {
            return Poll::Ready(());
        };
        if *armed != Some(deadline) {
            // The driver caps deadlines: this cannot overflow.
            sleep.set_at(*origin + deadline);
            *armed = Some(deadline);
        }
        let fired = Pin::new(sleep).poll(cx).map(drop);
        if fired.is_ready() {
            *armed = None;
            d.timer_fired(deadline);
        } else {
            d.timer_blocked();
        }
        fired
    }
}

/// A whole connection: the stream, the driver and the timer.
#[derive(Debug)]
pub struct Whole<S> {
    pub(crate) io: S,
    pub(crate) driver: Driver,
    pub(crate) timer: Clock,
    /// The task of the last receive call: non-waiting reads during a flush
    /// register it, so a receive pending elsewhere (after
    /// `StreamExt::split`) keeps its wakeup.
    receiver: Option<Waker>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Receiver for Whole<S> {}
impl<S: AsyncRead + AsyncWrite + Unpin> Sender for Whole<S> {}

impl<S: AsyncRead + AsyncWrite + Unpin> Link for Whole<S> {
    const FLUSH: Op = Op::Flush;
    const CLOSE: Op = Op::Close;

    fn driver<R>(&mut self, f: impl FnOnce(&mut Driver) -> R) -> R {
        f(&mut self.driver)
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, wait: bool) -> Io {
        if wait {
            self.receiver = Some(cx.waker().clone());
        }
        // Not waiting: only a receive pending elsewhere is woken, if any.
        let receiver = self.receiver.as_ref().filter(|_| !wait);
        let waker = receiver.unwrap_or_else(|| if wait { cx.waker() } else { Waker::noop() });
        let mut cx = Context::from_waker(waker);
        let result = Pin::new(&mut self.io).poll_read(&mut cx, self.driver.read_slice());
        if let (Poll::Ready(Ok(1..)), Some(receiver)) = (&result, receiver) {
            receiver.wake_by_ref(); // It waited for these bytes.
        }
        report(&mut self.driver, true, result)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> Io {
        let (out, mut slices) = (self.driver.outgoing(), [IoSlice::new(&[]); 16]);
        let count = out.chunks_vectored(&mut slices);
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]);
        if let Poll::Ready(Ok(n)) = result {
            out.advance(n);
        }
        report(&mut self.driver, false, result)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Io {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>, _discard: bool) -> Poll<()> {
        Pin::new(&mut self.io).poll_close(cx).map(drop)
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.timer.poll(cx, &mut self.driver)
    }

    fn close_frame(&self) -> Option<&CloseFrame> {
        self.driver.close_frame()
    }
}

/// A WebSocket connection ([`WebSocket`]) or one of its split halves
/// ([`ReadHalf`](crate::ReadHalf), [`WriteHalf`](crate::WriteHalf)): the
/// methods are the same for all three, as far as each receives or sends.
#[derive(Debug)]
pub struct Socket<L>(pub(crate) L);

/// A WebSocket connection over a `futures-io` stream.
///
/// Also a [`Stream`] of data messages and a [`Sink`] of messages
/// (`poll_close` is [`close`](Socket::close) with [`CloseCode::NORMAL`]).
pub type WebSocket<S> = Socket<Whole<S>>;

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a stream whose opening handshake happened elsewhere (e.g. a
    /// hyper upgrade). Bytes read past the handshake go in first
    /// through [`from_driver`](Self::from_driver) with
    /// `Driver::with_buffer(Connection::new(role, config), bytes)`.
    pub fn from_raw(stream: S, role: Role, config: Config) -> Self {
        Self::from_driver(stream, Driver::new(Connection::new(role, config)))
    }

    /// Wraps a stream and the driver of a connection the opening handshake
    /// produced (`Accepted::connection`, `ClientResponse::connection`), so
    /// that what was negotiated reaches it.
    pub fn from_driver(stream: S, driver: Driver) -> Self {
        Self::from_parts(stream, driver, Clock::new())
    }

    pub(crate) const fn from_parts(io: S, driver: Driver, timer: Clock) -> Self {
        let receiver = None;
        Self(Whole {
            io,
            driver,
            timer,
            receiver,
        })
    }

    ws_proto::driver_accessors!(0.driver);

    /// The stream.
    pub const fn get_ref(&self) -> &S {
        &self.0.io
    }

    /// The stream. Reading or writing it directly corrupts the connection.
    pub const fn get_mut(&mut self) -> &mut S {
        &mut self.0.io
    }

    /// The stream; buffered bytes are lost.
    pub fn into_inner(self) -> S {
        self.0.io
    }
}

impl<L: Receiver> Socket<L> {
    /// Polls for the next event, like [`recv_event`](Self::recv_event).
    pub fn poll_recv_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        poll_op(&mut self.0, cx, Op::Recv).map(Result::transpose)
    }

    /// Polls for the next data message, like [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        loop {
            return Poll::Ready(match ready!(poll_op(&mut self.0, cx, Op::RecvMessage)) {
                Ok(Some(Event::Message(message))) => Some(Ok(message)),
                Ok(Some(_)) => continue, // `Op::RecvMessage` delivers data messages only.
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            });
        }
    }

    /// The next data message. Pings are answered and, with pongs, skipped.
    ///
    /// `None` once the close handshake finished or the transport ended
    /// ([`close_frame`](Self::close_frame) tells why). A protocol error is
    /// returned once, after its Close frame was sent and the transport shut
    /// down; later calls give `None`. After `close` (of the connection or of
    /// the write half), it still returns the messages that arrived before
    /// the peer's Close.
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
}

impl<L: Sender> Socket<L> {
    /// Queues a message and writes everything queued. A whole connection
    /// then reads what already arrived, without waiting, so that pings are
    /// answered while the application only sends (see the crate docs,
    /// "Progress"); a write half never reads.
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
        run(&mut self.0, Op::Reserve).await?;
        Ok(self.0.driver(|d| d.send(message))?)
    }

    /// Writes everything queued (vectored) and flushes the stream; a whole
    /// connection then reads what already arrived, as for
    /// [`send`](Self::send).
    ///
    /// Cancel-safe: what was not written stays queued.
    pub async fn flush(&mut self) -> Result<()> {
        run(&mut self.0, L::FLUSH).await
    }

    /// Sends a ping with up to 125 bytes of payload; its pong arrives as
    /// [`Event::Pong`] (at the read half once split). Cancellation: as
    /// [`send`](Self::send).
    pub async fn ping(&mut self, payload: Bytes) -> Result<()> {
        run(&mut self.0, Op::Reserve).await?;
        self.0.driver(|d| d.ping(payload))?;
        self.flush().await
    }

    /// Starts the close handshake with `code` and `reason` (at most 123
    /// bytes; nothing new if it started already).
    ///
    /// A whole connection then runs it to its end: until the peer's Close
    /// arrives, the transport ends or the close timeout fires; the transport
    /// is then shut down. Data messages that arrive meanwhile are kept for
    /// later [`recv`](Self::recv) calls. A write half writes the Close; its
    /// read half then receives until the peer's Close (its `recv` gives
    /// `None`), runs the close timeout and shuts the transport down.
    ///
    /// Cancel-safe: the Close stays queued; calling again (or `recv`)
    /// continues the handshake.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.0.start_close(code, reason)?;
        run(&mut self.0, L::CLOSE).await
    }
}

impl<L: Receiver> Stream for Socket<L> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<L: Sender> Sink<Message> for Socket<L> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_op(&mut self.get_mut().0, cx, Op::Reserve).map_ok(drop)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        Ok(self.get_mut().0.driver(|d| d.send(item))?)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_op(&mut self.get_mut().0, cx, L::FLUSH).map_ok(drop)
    }

    /// [`close`](Socket::close) with [`CloseCode::NORMAL`].
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let link = &mut self.get_mut().0;
        link.start_close(CloseCode::NORMAL, "")?;
        while ready!(poll_op(link, cx, L::CLOSE))?.is_some() {}
        Poll::Ready(Ok(()))
    }
}
