//! The WebSocket over a whole stream, and the one run loop that every
//! operation (and both split halves) uses: ask the [`Driver`], perform the
//! [`Action`], report what happened.

use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::task::{Context, Poll, Waker, ready};
use core::time::Duration;
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes};
use ws_proto::adapter::{Error, Result};
use ws_proto::{
    Action, CloseCode, Config, Connection, Driver, Event, Message, Op, Role, SendError,
};

use crate::stream::{Conn, Source};
use crate::{Clock, Runtime, Write};

/// The most chunks one vectored write takes (the rest goes in the next one).
const WRITE_IOV: usize = 16;

/// The outcome of a read or a write: the bytes moved.
pub(crate) type Moved = Poll<io::Result<usize>>;
/// An action performed: `Pending` when it was reported blocked (a wakeup is
/// registered), an error when it failed (not reported yet).
pub(crate) type Done = Poll<io::Result<()>>;

/// The write side of a transport.
#[derive(Debug)]
pub(crate) struct Io<T> {
    pub(crate) stream: T,
    /// Bytes taken out of the driver's queue and not yet written (a split
    /// half writes owned chunks outside the driver's lock): they go first.
    pub(crate) held: Bytes,
}

impl<T> Io<T> {
    /// The write side of `stream`, with nothing held.
    pub(crate) fn new(stream: T) -> Self {
        let held = Bytes::new();
        Self { stream, held }
    }

    /// One write: from the held bytes if any, else from `out`; a plain
    /// write for a single chunk (small frames encoded back to back), a
    /// vectored one for several (headers and large payloads).
    #[inline(always)]
    pub(crate) fn poll_write<R: Write<T>>(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut impl Buf,
    ) -> Moved {
        if !self.held.is_empty() {
            let mut held = core::mem::take(&mut self.held);
            let written = self.poll_write::<R>(cx, &mut held);
            self.held = held;
            return written;
        }
        let n = if out.chunk().len() == out.remaining() {
            ready!(R::poll_write(&mut self.stream, cx, out.chunk()))?
        } else {
            let mut slices = [IoSlice::new(&[]); WRITE_IOV];
            let count = out.chunks_vectored(&mut slices);
            ready!(R::poll_write_vectored(
                &mut self.stream,
                cx,
                &slices[..count]
            ))?
        };
        out.advance(n);
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        Poll::Ready(Ok(n))
    }

    /// Performs [`Action::Flush`]. Held bytes are not written here: they
    /// count as in flight until a write reports them (the driver asks for a
    /// flush once none are).
    #[inline(always)]
    pub(crate) fn poll_flush<R: Write<T>>(&mut self, cx: &mut Context<'_>) -> Done {
        R::poll_flush(&mut self.stream, cx)
    }

    /// Performs [`Action::Shutdown`] (its error does not matter), dropping
    /// the held bytes first if `discard`.
    pub(crate) fn poll_shutdown<R: Write<T>>(
        &mut self,
        cx: &mut Context<'_>,
        discard: bool,
    ) -> Poll<()> {
        if discard {
            self.held.clear();
        }
        let _ = ready!(self.poll_flush::<R>(cx));
        R::poll_shutdown(&mut self.stream, cx).map(drop)
    }
}

/// Reports a read or a write (`write`) to the driver; an error is the run
/// loop's to report.
#[inline(always)]
pub(crate) fn report(driver: &mut Driver, outcome: Moved, write: bool) -> Done {
    match outcome {
        Poll::Ready(Ok(n)) if write => driver.wrote(n),
        Poll::Ready(Ok(n)) => driver.filled(n),
        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
        Poll::Pending if write => driver.write_blocked(),
        Poll::Pending => driver.read_blocked(),
    }
    outcome.map(|_| Ok(()))
}

/// The error of an outcome, if any.
#[inline(always)]
pub(crate) fn ready_err(done: Done) -> io::Result<()> {
    if let Poll::Ready(Err(e)) = done {
        Err(e)
    } else {
        Ok(())
    }
}

/// What the run loop needs: the driver, and the I/O that performs and
/// reports an action. Direct for a whole [`WebSocket`]; for the split halves
/// the driver is behind a lock held only for sans-IO calls.
pub(crate) trait Link {
    /// The stream written to.
    type W;
    /// The runtime.
    type Rt: Write<Self::W>;
    /// Whether the driver is shared with another half (whose blocked I/O
    /// it may wait for).
    const SHARED: bool = true;
    /// Runs `f` on the driver (a short, synchronous call).
    fn with<T>(&mut self, f: impl FnOnce(&mut Driver) -> T) -> T;
    /// Runs `f` on the write side (`Pending` while the other half uses it).
    fn with_io<T>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut Io<Self::W>, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T>;
    /// Performs [`Action::Write`] (and a whole socket the flush after it:
    /// see [`Driver::wrote`]) and reports it, except an error.
    fn write(&mut self, cx: &mut Context<'_>) -> Done;
    /// Performs [`Action::Flush`] and reports it, except an error.
    fn flush(&mut self, cx: &mut Context<'_>) -> Done {
        let done = self.with_io(cx, Io::poll_flush::<Self::Rt>);
        match done {
            Poll::Ready(Ok(())) => self.with(Driver::flushed),
            Poll::Ready(Err(_)) => {}
            Poll::Pending => self.with(Driver::write_blocked),
        }
        done
    }
    /// Performs [`Action::Read`] (`wait`: a receive waits for it) and
    /// reports it, except an error.
    fn read(&mut self, cx: &mut Context<'_>, wait: bool) -> Done;
    /// Performs [`Action::Timer`].
    fn timer(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// The one timer: a sleep on a clock that starts at its first use (a
/// connection without timers never reads the clock).
#[derive(Debug)]
pub(crate) struct Timer<C: Clock> {
    origin: Option<C::Instant>,
    sleep: Option<C::Sleep>,
    /// The deadline the sleep is set to: re-armed only when it moves.
    armed: Option<Duration>,
}

impl<C: Clock> Default for Timer<C> {
    fn default() -> Self {
        let (origin, sleep, armed) = (None, None, None);
        Self {
            origin,
            sleep,
            armed,
        }
    }
}

impl<C: Clock> Timer<C> {
    /// Performs [`Action::Timer`]: `Pending` while the sleep runs.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, driver: &mut Driver) -> Poll<()> {
        let origin = *self.origin.get_or_insert_with(C::now);
        let Some(deadline) = driver.timer(C::now() - origin) else {
            return Poll::Ready(());
        };
        let when = origin + deadline;
        let sleep = self.sleep.get_or_insert_with(|| C::sleep_until(when));
        if self.armed.replace(deadline) != Some(deadline) {
            C::reset(sleep, when);
        }
        let fired = C::poll_sleep(sleep, cx);
        if fired.is_ready() {
            self.armed = None;
            driver.timer_fired(deadline);
        } else {
            driver.timer_blocked();
        }
        fired
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
    // This call reported I/O blocked.
    let mut blocked = false;
    loop {
        let outcome = match link.with(|driver| driver.poll(op)) {
            Action::Deliver => return Poll::Ready(Ok(link.with(Driver::take_event))),
            Action::Done => {
                return Poll::Ready(
                    link.with(Driver::take_error)
                        .map_or(Ok(None), |e| Err(e.into())),
                );
            }
            Action::Write { .. } => {
                let done = link.write(cx);
                blocked |= done.is_pending();
                ready_err(done)
            }
            Action::Flush => {
                let done = link.flush(cx);
                blocked |= done.is_pending();
                ready_err(done)
            }
            Action::Read { wait } => {
                let done = link.read(cx, wait);
                blocked |= done.is_pending();
                ready_err(done)
            }
            Action::Timer => {
                blocked |= link.timer(cx).is_pending();
                Ok(())
            }
            Action::Shutdown { discard } => {
                ready!(link.with_io(cx, |io, cx| io.poll_shutdown::<L::Rt>(cx, discard)));
                link.with(Driver::shut_down);
                Ok(())
            }
            // Split halves share the driver, which waits for what either
            // reported blocked: this half has no wakeup yet. The driver
            // forgot that at `Wait`; ask again.
            Action::Wait if L::SHARED && !blocked => Ok(()),
            Action::Wait => return Poll::Pending,
        };
        if let Err(e) = outcome
            && link.with(Driver::io_error)
        {
            return Poll::Ready(Err(e.into()));
        }
    }
}

/// The future of `send`: the body of [`command`] as a plain `Future` with an
/// inlined `poll`, so that the hottest call of an echo loop inlines into
/// the caller's future (an `async` body or a `poll_fn` would not: measured,
/// 71 and 55 instructions per echo of their own).
pub(crate) struct SendMessage<'a, L> {
    pub(crate) link: &'a mut L,
    /// Until it is queued.
    pub(crate) message: Option<Message>,
    pub(crate) flush: Op,
}

impl<L: Link> Future for SendMessage<'_, L> {
    type Output = Result<()>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if let Some(message) = this.message.take() {
            if this.link.with(|d| d.connection().is_write_buffer_full()) {
                match poll_op(this.link, cx, Op::Reserve) {
                    Poll::Pending => {
                        this.message = Some(message);
                        return Poll::Pending;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(_)) => {}
                }
            }
            if let Err(e) = this.link.with(|d| d.send(message)) {
                return Poll::Ready(Err(e.into()));
            }
        }
        poll_op(this.link, cx, this.flush).map_ok(drop)
    }
}

/// Waits until one more message fits ([`Op::Reserve`]), queues it with
/// `queue`, then runs `then` (a flush). The queue check comes first: a
/// queue with room (the common case) costs no loop.
#[inline(always)]
pub(crate) async fn command<L: Link>(
    link: &mut L,
    queue: impl FnOnce(&mut Driver) -> Result<(), SendError>,
    then: Option<Op>,
) -> Result<()> {
    if link.with(|d| d.connection().is_write_buffer_full()) {
        poll_fn(|cx| poll_op(link, cx, Op::Reserve)).await?;
    }
    link.with(queue)?;
    if let Some(op) = then {
        poll_fn(|cx| poll_op(link, cx, op)).await?;
    }
    Ok(())
}

/// The receive methods and `Stream` of [`WebSocket`] and
/// [`ReadHalf`](crate::ReadHalf) (`$link`: its field that is the [`Link`]).
macro_rules! recv_api {
    ($ty:ident $(.$link:tt)?) => {
        impl<S, R: Runtime<S>> $ty<S, R> {
            /// Polls for the next event; see [`recv_event`](Self::recv_event).
            pub fn poll_recv_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
                poll_op(&mut (*self)$(.$link)?, cx, Op::Recv).map(Result::transpose)
            }

            /// Polls for the next data message; see [`recv`](Self::recv).
            pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
                let link = &mut (*self)$(.$link)?;
                let outcome = ready!(poll_op(link, cx, Op::RecvMessage));
                Poll::Ready(match outcome {
                    Ok(Some(Event::Message(message))) => Some(Ok(message)),
                    Ok(event) => {
                        ws_proto::adapter::not_a_message(event, |e| link.with(|d| d.put_back(e)))
                    }
                    Err(e) => Some(Err(e)),
                })
            }

            /// Receives the next data message. Pings are answered and Close
            /// frames echoed inside; `None` once the connection is over (see
            /// `close_frame` for why). A protocol error is returned once,
            /// after the Close frame was flushed and the transport shut down;
            /// later calls return `None`.
            ///
            /// A message that arrives in pieces
            /// ([`Config::streaming`](ws_proto::Config::streaming)) is
            /// [`Error::Streamed`]: it stays for
            /// [`recv_stream`](Self::recv_stream), which gets all of it.
            ///
            /// Cancel-safe: all state lives in the driver, so dropping the
            /// future (in `select!`) loses nothing.
            pub async fn recv(&mut self) -> Option<Result<Message>> {
                poll_fn(|cx| self.poll_recv(cx)).await
            }

            /// Polls for the next data message as a stream of pieces; see
            /// [`recv_stream`](Self::recv_stream).
            pub fn poll_recv_stream(
                &mut self,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Result<$crate::MessageStream<'_, S, R>>>> {
                let mut conn = $crate::stream::Source::conn(&mut (*self)$(.$link)?);
                let outcome = ready!(conn.poll_op(cx, Op::RecvMessage));
                Poll::Ready($crate::MessageStream::start(conn, outcome))
            }

            /// Receives the next data message as a stream of its pieces, read
            /// as they arrive: a message of any size in bounded memory (see
            /// [`MessageStream`](crate::MessageStream)). Messages arrive in
            /// pieces with [`Config::streaming`](ws_proto::Config::streaming);
            /// a message that arrived whole is a stream of one piece. Pings
            /// and the Close are handled inside, as in [`recv`](Self::recv);
            /// `None` once the connection is over.
            ///
            /// Cancel-safe, as `recv`. Dropping the stream before its end
            /// drops the rest of the message.
            pub async fn recv_stream(&mut self) -> Option<Result<$crate::MessageStream<'_, S, R>>> {
                let mut conn = $crate::stream::Source::conn(&mut (*self)$(.$link)?);
                let outcome = poll_fn(|cx| conn.poll_op(cx, Op::RecvMessage)).await;
                $crate::MessageStream::start(conn, outcome)
            }

            /// Like [`recv`](Self::recv), but yields every event: Ping, Pong
            /// and the Close too. Cancel-safe.
            pub async fn recv_event(&mut self) -> Option<Result<Event>> {
                poll_fn(|cx| self.poll_recv_event(cx)).await
            }
        }

        impl<S: Unpin, R: Runtime<S>> futures_core::Stream for $ty<S, R> {
            type Item = Result<Message>;

            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                self.get_mut().poll_recv(cx)
            }
        }
    };
}

/// The send methods and `Sink` of [`WebSocket`] and
/// [`WriteHalf`](crate::WriteHalf): `$flush` is the operation after a send;
/// each type has `poll_flush`, `start_close` and `poll_end` (the rest of a
/// close), and gives the docs of `flush` and `close`.
macro_rules! send_api {
    ($ty:ident $(.$link:tt)?, $flush:expr, $(#[$flush_doc:meta])* flush, $(#[$close_doc:meta])* close) => {
        impl<S, R: Runtime<S>> $ty<S, R> {
            /// Queues `message` (once it fits in the outgoing buffer) and
            /// writes everything queued.
            ///
            /// Not strictly cancel-safe: if the future is dropped while
            /// waiting for a full outgoing buffer to drain, `message` was not
            /// queued and is lost; once queued (dropped during the write), it
            /// stays queued and goes out with the next write.
            pub fn send(&mut self, message: Message) -> impl Future<Output = Result<()>> {
                $crate::socket::SendMessage {
                    link: &mut (*self)$(.$link)?,
                    message: Some(message),
                    flush: $flush,
                }
            }

            /// Queues `message` without writing, unless the outgoing buffer
            /// is full (then it writes until the message fits). Same
            /// cancellation behavior as [`send`](Self::send).
            pub async fn feed(&mut self, message: Message) -> Result<()> {
                command(&mut (*self)$(.$link)?, |d| d.send(message), None).await
            }

            /// Starts a text (`text`) or binary message sent piece by piece,
            /// never held whole: write it with `AsyncWrite` or
            /// [`send`](crate::MessageWriter::send), end it with
            /// [`finish`](crate::MessageWriter::finish) (see
            /// [`MessageWriter`](crate::MessageWriter)).
            /// Nothing is queued before the first write. Dropping the writer
            /// unfinished closes the connection with 1011.
            pub fn send_stream(&mut self, text: bool) -> $crate::MessageWriter<'_, S, R> {
                $crate::MessageWriter::new($crate::stream::Source::conn(&mut (*self)$(.$link)?), text)
            }

            $(#[$flush_doc])*
            pub async fn flush(&mut self) -> Result<()> {
                poll_fn(|cx| self.poll_flush(cx)).await
            }

            /// Sends a ping (payload up to 125 bytes); its pong arrives as
            /// [`Event::Pong`] from `recv_event`. Cancellation as for
            /// [`send`](Self::send).
            pub async fn ping(&mut self, payload: Bytes) -> Result<()> {
                command(&mut (*self)$(.$link)?, |d| d.ping(payload), Some($flush)).await
            }

            $(#[$close_doc])*
            pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
                self.start_close(code, reason)?;
                poll_fn(|cx| self.poll_end(cx)).await
            }
        }

        impl<S: Unpin, R: Runtime<S>> futures_sink::Sink<Message> for $ty<S, R> {
            type Error = Error;

            fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                poll_op(&mut (*self.get_mut())$(.$link)?, cx, Op::Reserve).map_ok(drop)
            }

            fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
                Ok(self.get_mut()$(.$link)?.with(|driver| driver.send(item))?)
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                self.get_mut().poll_flush(cx)
            }

            /// Closes with code 1000, as `close` does.
            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                let this = self.get_mut();
                this.start_close(CloseCode::NORMAL, "")?;
                this.poll_end(cx)
            }
        }
    };
}

pub(crate) use {recv_api, send_api};

/// A WebSocket connection over a stream `S` (a TCP stream, a TLS stream, an
/// upgraded hyper connection, ...) of runtime `R`.
///
/// Reading drives everything: [`recv`](Self::recv) answers pings, echoes
/// Close frames, sends keepalive pings and enforces the close timeout. Use
/// [`split`](Self::split) to read and write from two tasks.
///
/// Implements `Stream` (data messages) and `Sink<Message>`.
#[derive(Debug)]
pub struct WebSocket<S, R: Clock> {
    pub(crate) io: Io<S>,
    pub(crate) driver: Driver,
    pub(crate) timer: Timer<R>,
    /// The task of the last read that waited: the reads a flush makes without
    /// waiting register it, so a receive pending in another task (after
    /// `StreamExt::split`) keeps its wakeup.
    receiver: Option<Waker>,
}

impl<S, R: Runtime<S>> Link for WebSocket<S, R> {
    type W = S;
    type Rt = R;
    const SHARED: bool = false;

    #[inline(always)]
    fn with<T>(&mut self, f: impl FnOnce(&mut Driver) -> T) -> T {
        f(&mut self.driver)
    }

    #[inline(always)]
    fn with_io<T>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut Io<S>, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        f(&mut self.io, cx)
    }

    #[inline(always)]
    fn write(&mut self, cx: &mut Context<'_>) -> Done {
        let written = self.io.poll_write::<R>(cx, self.driver.outgoing());
        if let Poll::Ready(Ok(n)) = written {
            self.driver.wrote(n);
            return Link::flush(self, cx);
        }
        report(&mut self.driver, written, true)
    }

    #[inline(always)]
    fn read(&mut self, cx: &mut Context<'_>, wait: bool) -> Done {
        if !wait {
            return self.read_background(cx);
        }
        let read = R::poll_read_driver(&mut self.io.stream, cx, &mut self.driver);
        if read.is_pending()
            && !self
                .receiver
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            self.receiver = Some(cx.waker().clone());
        }
        report(&mut self.driver, read, false)
    }

    fn timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.timer.poll(cx, &mut self.driver)
    }
}

impl<S, R: Runtime<S>> Source<S, R> for WebSocket<S, R> {
    fn conn(&mut self) -> Conn<'_, S, R> {
        Conn::Whole(self)
    }
}

impl<S, R: Clock> WebSocket<S, R> {
    /// Wraps a stream on which the opening handshake already happened
    /// elsewhere (a hyper or axum upgrade). Bytes read past the handshake go in
    /// first through [`from_driver`](Self::from_driver) with
    /// `Driver::with_buffer(Connection::new(role, config), bytes)`.
    pub fn from_raw(stream: S, role: Role, config: Config) -> Self {
        Self::from_driver(stream, Driver::new(Connection::new(role, config)))
    }

    /// Wraps a stream and the driver of a connection the opening handshake
    /// produced (`Accepted::connection`, `ClientResponse::connection`), so
    /// that what was negotiated reaches it.
    pub fn from_driver(stream: S, driver: Driver) -> Self {
        Self::from_parts(Io::new(stream), driver, Timer::default())
    }

    pub(crate) const fn from_parts(io: Io<S>, driver: Driver, timer: Timer<R>) -> Self {
        let receiver = None;
        Self {
            io,
            driver,
            timer,
            receiver,
        }
    }

    ws_proto::driver_accessors!(driver);

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

impl<S, R: Runtime<S>> WebSocket<S, R> {
    /// A read without waiting (while flushing): only a receive pending
    /// elsewhere is woken, if any, so that it keeps its wakeup.
    #[cold]
    fn read_background(&mut self, cx: &Context<'_>) -> Done {
        let (stream, driver) = (&mut self.io.stream, &mut self.driver);
        let receiver = self.receiver.as_ref();
        let mut background = Context::from_waker(receiver.unwrap_or(Waker::noop()));
        let read = R::poll_read_driver(stream, &mut background, driver);
        if let (Poll::Ready(Ok(1..)), Some(receiver)) = (&read, receiver)
            && !receiver.will_wake(cx.waker())
        {
            receiver.wake_by_ref(); // It waited for these bytes.
        }
        report(driver, read, false)
    }

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
