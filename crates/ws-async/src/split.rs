//! The read and write halves of a split [`WebSocket`].
//!
//! The driver sits behind a lock held only for its sans-IO calls, never
//! across a read, a write or a wait: the reader reads its own half of the
//! stream with the driver's read buffer taken out. The write side (with the
//! bytes being written) is behind a second lock that nobody waits for: a
//! half that finds it busy reports the write blocked and is woken once it
//! is free, and whoever writes next takes the queued bytes in order. Reads
//! always register the reader's own waker (never a stand-in): a runtime's
//! split may itself be a lock that wakes whoever it made wait.

use alloc::sync::Arc;
use alloc::task::Wake;
use core::fmt;
use core::future::poll_fn;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering::SeqCst};
use core::task::{Context, Poll, Waker, ready};
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use ws_proto::adapter::{Error, Result};
use ws_proto::{
    CloseCode, CloseFrame, Connection, Driver, Event, Message, Offer, Offered, Op, WhenFull,
};

use crate::socket::{Done, Io, Link, Timer, command, poll_op, recv_api, report, send_api};
use crate::stream::{Conn, Source};
use crate::{Runtime, WebSocket};

/// The halves' wakers. The stream keeps one waker for write readiness, so
/// whichever half polls the write side registers one that wakes both:
/// neither displaces the other.
#[derive(Debug, Default)]
struct Wakers {
    /// The reader's and the writer's.
    slots: Mutex<[Option<Waker>; 2]>,
    /// A half found the write side busy: wake both once it is free.
    contended: AtomicBool,
    /// A write went pending: its wakeup is registered with the stream, but
    /// a stream may drop that registration when the other half's write goes
    /// through (`async-net` does), so the next write that does wakes both.
    write_waits: AtomicBool,
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let wakers = core::mem::take(&mut *lock(&self.slots));
        wakers.into_iter().flatten().for_each(Waker::wake);
    }
}

struct Shared<S, R: Runtime<S>> {
    driver: Mutex<Driver>,
    write: Mutex<Io<R::WriteHalf>>,
    wakers: Arc<Wakers>,
    /// `wakers` as a `Waker`, for every poll of the write side.
    waker: Waker,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unlock<T>(mutex: Mutex<T>) -> T {
    mutex.into_inner().unwrap_or_else(PoisonError::into_inner)
}

impl<S, R: Runtime<S>> Shared<S, R> {
    /// Registers the waker of half `side` (0: the reader, 1: the writer).
    fn register(&self, side: usize, cx: &Context<'_>) {
        let slot = &mut lock(&self.wakers.slots)[side];
        if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *slot = Some(cx.waker().clone());
        }
    }

    /// Runs `f` on the write side without waiting for it: `Pending` if the
    /// other half is using it, and this half is woken once it is free.
    fn with_write<T>(
        &self,
        side: usize,
        cx: &Context<'_>,
        f: impl FnOnce(&mut Io<R::WriteHalf>, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.register(side, cx);
        let mut io = self.write.try_lock().ok();
        if io.is_none() {
            // Flag first, then retry: the holder checks the flag after
            // unlocking, so either the retry succeeds or the holder wakes us.
            self.wakers.contended.store(true, SeqCst);
            io = self.write.try_lock().ok();
        }
        let Some(mut io) = io else {
            return Poll::Pending;
        };
        let result = f(&mut io, &mut Context::from_waker(&self.waker));
        drop(io);
        if self.wakers.contended.swap(false, SeqCst) {
            self.wakers.wake_by_ref();
        }
        result
    }
}

/// A half: the read half has the stream's read side and runs the timer.
pub(crate) struct Half<S, R: Runtime<S>> {
    shared: Arc<Shared<S, R>>,
    read: Option<R::ReadHalf>,
    timer: Timer<R>,
}

impl<S, R: Runtime<S>> Half<S, R> {
    /// This half's waker slot.
    fn side(&self) -> usize {
        usize::from(self.read.is_none())
    }

    /// Wakes both halves (a command that starts the close timer: the
    /// reader arms it).
    pub(crate) fn wake_all(&self) {
        self.shared.wakers.wake_by_ref();
    }
}

impl<S, R: Runtime<S>> Source<S, R> for Half<S, R> {
    fn conn(&mut self) -> Conn<'_, S, R> {
        Conn::Half(self)
    }
}

impl<S, R: Runtime<S>> Link for Half<S, R> {
    type W = R::WriteHalf;
    type Rt = R;

    fn with<T>(&mut self, f: impl FnOnce(&mut Driver) -> T) -> T {
        f(&mut lock(&self.shared.driver))
    }

    fn with_io<T>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut Io<R::WriteHalf>, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.shared.with_write(self.side(), cx, f)
    }

    /// Writes owned chunks popped from the queue, outside the driver's lock.
    fn write(&mut self, cx: &mut Context<'_>) -> Done {
        let shared = &*self.shared;
        let written = shared.with_write(self.side(), cx, |io, cx| {
            if io.held.is_empty() {
                io.held = lock(&shared.driver).pop_chunk().unwrap_or_default();
            }
            if io.held.is_empty() {
                return Poll::Ready(Ok(0)); // the other half wrote it meanwhile
            }
            let written = io.poll_write::<R>(cx, &mut Bytes::new());
            if written.is_pending() {
                shared.wakers.write_waits.store(true, SeqCst);
            }
            written
        });
        if written.is_ready() && shared.wakers.write_waits.swap(false, SeqCst) {
            // A half waiting to write may have lost its wakeup to this write.
            shared.wakers.wake_by_ref();
        }
        report(&mut lock(&shared.driver), written, true)
    }

    /// Reads with the read buffer taken out of the driver.
    fn read(&mut self, cx: &mut Context<'_>, _wait: bool) -> Done {
        let Some(read) = &mut self.read else {
            return report(&mut lock(&self.shared.driver), Poll::Pending, false); // never asked
        };
        self.shared.register(0, cx); // woken by `close` too, to arm the close timer
        let mut buf = lock(&self.shared.driver).take_read_buf();
        let read = R::poll_read(read, cx, &mut buf);
        let filled = if let Poll::Ready(Ok(n)) = read {
            Some(n)
        } else {
            None
        };
        lock(&self.shared.driver).give_read_buf(buf, filled);
        read.map_ok(drop)
    }

    fn timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.timer.poll(cx, &mut lock(&self.shared.driver))
    }
}

/// The receiving half of a [`WebSocket`], from [`WebSocket::split`].
///
/// It drives the connection as [`WebSocket::recv`] does: it answers pings
/// and echoes the Close (through the write side when it is free, otherwise
/// the [`WriteHalf`] writes them next, in order), and runs the timers
/// (keepalive, close timeout): keep it polled. It never waits for the write
/// half, even one blocked on a peer that does not read.
pub struct ReadHalf<S, R: Runtime<S>>(Half<S, R>);

/// The sending half of a [`WebSocket`], from [`WebSocket::split`].
pub struct WriteHalf<S, R: Runtime<S>>(Half<S, R>);

impl<S, R: Runtime<S>> fmt::Debug for ReadHalf<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadHalf").finish_non_exhaustive()
    }
}

impl<S, R: Runtime<S>> fmt::Debug for WriteHalf<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteHalf").finish_non_exhaustive()
    }
}

impl<S, R: Runtime<S>> WebSocket<S, R> {
    /// Splits the socket into halves usable from two tasks at once. The
    /// connection is shared behind a lock held only for short synchronous
    /// calls, never across I/O or a wait.
    pub fn split(self) -> (ReadHalf<S, R>, WriteHalf<S, R>) {
        let Self {
            io, driver, timer, ..
        } = self;
        let Io { stream, held } = io;
        let (read, stream) = R::split(stream);
        let write = Io { stream, held };
        let wakers = Arc::<Wakers>::default();
        let shared = Arc::new(Shared {
            driver: Mutex::new(driver),
            write: Mutex::new(write),
            waker: Waker::from(Arc::clone(&wakers)),
            wakers,
        });
        let (writer, read) = (Arc::clone(&shared), Some(read));
        let writer = Half {
            shared: writer,
            read: None,
            timer: Timer::default(),
        };
        (
            ReadHalf(Half {
                shared,
                read,
                timer,
            }),
            WriteHalf(writer),
        )
    }

    /// Puts the halves back together. Fails (dropping them) if they do not
    /// come from the same socket.
    pub fn reunite(
        ReadHalf(read): ReadHalf<S, R>,
        WriteHalf(write): WriteHalf<S, R>,
    ) -> Result<Self> {
        let invalid = |why| Error::from(io::Error::new(io::ErrorKind::InvalidInput, why));
        if !Arc::ptr_eq(&read.shared, &write.shared) {
            return Err(invalid("halves of different sockets"));
        }
        drop(write);
        let Some((shared, half)) = Arc::into_inner(read.shared).zip(read.read) else {
            unreachable!("both halves are here")
        };
        let Io { stream, held } = unlock(shared.write);
        let stream = R::unsplit(half, stream).ok_or_else(|| invalid("different streams"))?;
        let io = Io { stream, held };
        Ok(Self::from_parts(io, unlock(shared.driver), read.timer))
    }
}

impl<S, R: Runtime<S>> ReadHalf<S, R> {
    /// Why the connection ended; see [`WebSocket::close_frame`].
    pub fn close_frame(&self) -> Option<CloseFrame> {
        lock(&self.0.shared.driver).close_frame().cloned()
    }

    /// Runs `f` on the shared connection (under its lock: keep it short).
    pub fn with_connection<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        f(lock(&self.0.shared.driver).connection_mut())
    }

    /// Puts the halves back together: `WebSocket::reunite(self, write)`.
    pub fn reunite(self, write: WriteHalf<S, R>) -> Result<WebSocket<S, R>> {
        WebSocket::reunite(self, write)
    }
}

impl<S, R: Runtime<S>> WriteHalf<S, R> {
    /// Runs `f` on the shared connection (under its lock: keep it short),
    /// e.g. for [`Connection::send_fragment`]; then [`flush`](Self::flush).
    pub fn with_connection<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        f(lock(&self.0.shared.driver).connection_mut())
    }

    /// Polls writing everything queued; see [`flush`](Self::flush).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_op(&mut self.0, cx, Op::WriteOut).map_ok(drop)
    }

    /// Queues `message` without waiting: `Err` with
    /// [`Error::is_full`] (the message is in it) when the outgoing queue is
    /// at its high-water mark, [`Config::max_write_buffer`]; another `Err`
    /// when the connection is closing or closed. The [`ReadHalf`]'s receive
    /// writes it out (or this half's next `send` or `flush`): keep the
    /// reader receiving.
    ///
    /// [`Config::max_write_buffer`]: ws_proto::Config::max_write_buffer
    pub fn try_send(&self, message: Message) -> Result<()> {
        lock(&self.0.shared.driver).send(message)?;
        self.0.wake_all(); // a reader waiting to read writes the queue
        Ok(())
    }

    /// Starts the close handshake without waiting: queues a Close (behind
    /// whatever is queued, even in a full queue) and arms the close timer;
    /// the [`ReadHalf`]'s receive finishes the handshake and ends with the
    /// peer's Close, or drops a peer that does not answer within the close
    /// timeout. For closing a connection from the task that sends to it,
    /// or from a broadcast.
    pub fn try_close(&self, code: CloseCode, reason: &str) -> Result<()> {
        self.start_close(code, reason)
    }

    fn start_close(&self, code: CloseCode, reason: &str) -> Result<()> {
        lock(&self.0.shared.driver).close(code, reason)?;
        // The close timer starts: let the reader arm it.
        self.0.shared.wakers.wake_by_ref();
        Ok(())
    }

    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_flush(cx)
    }
}

recv_api!(ReadHalf.0);
send_api!(
    WriteHalf.0,
    Op::WriteOut,
    /// Writes everything queued. Cancel-safe: what is not written stays
    /// queued.
    flush,
    /// Queues a Close frame (unless the close handshake started) and writes
    /// it. The [`ReadHalf`] completes the close handshake: it reads until the
    /// peer's Close (or the close timeout), then shuts the transport down and
    /// its `recv` returns `None`; data arriving meanwhile is still delivered
    /// to it. Cancel-safe: the Close is queued once and a later `flush` (or
    /// the reader) writes it.
    close
);

/// One connection of a [`broadcast`](ws_proto::broadcast): queued without
/// waiting ([`Driver::offer`]), and the halves woken to write it.
impl<S, R: Runtime<S>> Offer for WriteHalf<S, R> {
    fn offer(&self, message: Message, when_full: WhenFull<'_>) -> Offered {
        let offered = lock(&self.0.shared.driver).offer(message, when_full);
        if offered != Offered::Skipped {
            self.0.wake_all();
        }
        offered
    }
}
