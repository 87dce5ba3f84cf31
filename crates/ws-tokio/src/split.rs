//! The read and write halves of a split [`WebSocket`].
//!
//! The driver sits behind a lock held only for its sans-IO calls, never
//! across a read, a write or a wait: the reader reads its own half of the
//! stream with the driver's read buffer taken out. The write side (with the
//! chunk being written) is behind a second lock that nobody waits for: a
//! half that finds it busy reports the write blocked and is woken once it
//! is free, and whoever writes next takes the queued bytes in order.

use alloc::{sync::Arc, task::Wake};
use core::{
    future::poll_fn,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering::SeqCst},
    task::{Context, Poll, Waker},
};
use std::{
    io,
    sync::{Mutex, MutexGuard, PoisonError},
};

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::poll_read_buf;
use ws_proto::{CloseCode, CloseFrame, Connection, Driver, Event, Message, Op};

use crate::{
    Error, Result, WebSocket,
    socket::{Io, Link, Timer, message, ping, poll_command, poll_op, recv_api, report, send_api},
};

const READER: usize = 0;
const WRITER: usize = 1;

/// The halves' wakers. The stream keeps one waker for write readiness, so
/// whichever half polls the write side registers this one, which wakes
/// both: neither displaces the other.
#[derive(Debug, Default)]
struct Wakers(Mutex<[Option<Waker>; 2]>);

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        core::mem::take(&mut *lock(&self.0))
            .into_iter()
            .flatten()
            .for_each(Waker::wake);
    }
}

#[derive(Debug)]
struct Shared<S> {
    driver: Mutex<Driver>,
    write: Mutex<Io<tokio::io::WriteHalf<S>>>,
    /// A half found the write side busy: wake both once it is free.
    contended: AtomicBool,
    wakers: Arc<Wakers>,
    /// `wakers` as a `Waker`, handed to the write side.
    waker: Waker,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: AsyncWrite> Shared<S> {
    /// Registers half `side`'s waker.
    fn register(&self, side: usize, cx: &Context<'_>) {
        let slot = &mut lock(&self.wakers.0)[side];
        if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *slot = Some(cx.waker().clone());
        }
    }

    /// Runs `f` on the write side for half `side`, without waiting for it:
    /// `Pending` if the other half is using it (this half is woken after).
    fn with_write<R>(
        &self,
        side: usize,
        cx: &Context<'_>,
        f: impl FnOnce(&mut Io<tokio::io::WriteHalf<S>>, &mut Context<'_>) -> Poll<R>,
    ) -> Poll<R> {
        self.register(side, cx);
        let mut io = self.write.try_lock().ok();
        if io.is_none() {
            // Flag first, then retry: the holder checks the flag after
            // unlocking, so either the retry succeeds or the holder wakes us.
            self.contended.store(true, SeqCst);
            io = self.write.try_lock().ok();
        }
        let Some(mut io) = io else {
            return Poll::Pending;
        };
        let result = f(&mut io, &mut Context::from_waker(&self.waker));
        drop(io);
        if self.contended.swap(false, SeqCst) {
            self.wakers.wake_by_ref();
        }
        result
    }

    fn write(&self, side: usize, cx: &Context<'_>) -> io::Result<()> {
        let next = || lock(&self.driver).outgoing().pop_chunk();
        let written = self.with_write(side, cx, |io, cx| io.poll_write_held(cx, next));
        report(
            &mut lock(&self.driver),
            written,
            Driver::wrote,
            Driver::write_blocked,
        )
    }

    fn poll_shutdown(&self, side: usize, cx: &Context<'_>) -> Poll<()> {
        let abandoned = lock(&self.driver).connection().is_abandoned();
        self.with_write(side, cx, |io, cx| io.poll_shutdown(cx, abandoned))
    }
}

/// The receiving half of a [`WebSocket`], from [`WebSocket::split`].
///
/// It drives the connection as [`WebSocket::recv`] does: it answers pings
/// and echoes the Close (through the write side when it is free, otherwise
/// the [`WriteHalf`] writes them next, in order), and runs the timers
/// (keepalive, close timeout): keep it polled. It never waits for the write
/// half, even one blocked on a peer that does not read.
#[derive(Debug)]
pub struct ReadHalf<S> {
    read: tokio::io::ReadHalf<S>,
    shared: Arc<Shared<S>>,
    timer: Timer,
}

/// The sending half of a [`WebSocket`], from [`WebSocket::split`].
#[derive(Debug)]
pub struct WriteHalf<S> {
    shared: Arc<Shared<S>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link for ReadHalf<S> {
    fn with<R>(&mut self, f: impl FnOnce(&mut Driver) -> R) -> R {
        f(&mut lock(&self.shared.driver))
    }

    fn write(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.shared.write(READER, cx)
    }

    fn read(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        // Woken by `close` too, to arm the close timer.
        self.shared.register(READER, cx);
        let mut buf = lock(&self.shared.driver).take_read_buf();
        let read = poll_read_buf(Pin::new(&mut self.read), cx, &mut buf);
        let filled = if let Poll::Ready(Ok(n)) = read {
            Some(n)
        } else {
            None
        };
        lock(&self.shared.driver).give_read_buf(buf, filled);
        if let Poll::Ready(Err(e)) = read {
            Err(e)
        } else {
            Ok(())
        }
    }

    fn timer(&mut self, cx: &mut Context<'_>) {
        self.timer.poll(cx, &mut lock(&self.shared.driver));
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.with_write(READER, cx, Io::poll_drain)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.poll_shutdown(READER, cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link for WriteHalf<S> {
    fn with<R>(&mut self, f: impl FnOnce(&mut Driver) -> R) -> R {
        f(&mut lock(&self.shared.driver))
    }

    fn write(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.shared.write(WRITER, cx)
    }

    /// Never asked: the writer's operations do not read.
    fn read(&mut self, _: &mut Context<'_>) -> io::Result<()> {
        Ok(lock(&self.shared.driver).read_blocked())
    }

    /// Never asked: the reader runs the timer.
    fn timer(&mut self, _: &mut Context<'_>) {
        lock(&self.shared.driver).timer_blocked();
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.with_write(WRITER, cx, Io::poll_drain)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.poll_shutdown(WRITER, cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Splits the socket into halves usable from two tasks at once. The
    /// connection is shared behind a lock held only for short synchronous
    /// calls, never across I/O or a wait.
    pub fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        let Self { io, driver, timer } = self;
        let (read, stream) = tokio::io::split(io.stream);
        let (held, unflushed) = (io.held, io.unflushed);
        let wakers = Arc::new(Wakers::default());
        let shared = Arc::new(Shared {
            driver: Mutex::new(driver),
            write: Mutex::new(Io {
                stream,
                held,
                unflushed,
            }),
            contended: AtomicBool::new(false),
            waker: Waker::from(Arc::clone(&wakers)),
            wakers,
        });
        let write = WriteHalf {
            shared: Arc::clone(&shared),
        };
        (
            ReadHalf {
                read,
                shared,
                timer,
            },
            write,
        )
    }

    /// Puts the halves back together. Fails (dropping them) if they do not
    /// come from the same socket.
    pub fn reunite(read: ReadHalf<S>, write: WriteHalf<S>) -> Result<Self> {
        if !Arc::ptr_eq(&read.shared, &write.shared) {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "halves of different sockets");
            return Err(e.into());
        }
        drop(write);
        let ReadHalf {
            read,
            shared,
            timer,
        } = read;
        let shared = Arc::into_inner(shared).expect("both halves were given");
        let io = shared
            .write
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let (held, unflushed) = (io.held, io.unflushed);
        let stream = read.unsplit(io.stream);
        let driver = shared
            .driver
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(Self {
            io: Io {
                stream,
                held,
                unflushed,
            },
            driver,
            timer,
        })
    }
}

impl<S> ReadHalf<S> {
    /// Why the connection ended; see [`WebSocket::close_frame`].
    pub fn close_frame(&self) -> Option<CloseFrame> {
        lock(&self.shared.driver).close_frame().cloned()
    }

    /// Runs `f` on the shared connection (under its lock: keep it short).
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(lock(&self.shared.driver).connection_mut())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    /// Puts the halves back together: `WebSocket::reunite(self, write)`.
    pub fn reunite(self, write: WriteHalf<S>) -> Result<WebSocket<S>> {
        WebSocket::reunite(self, write)
    }
}

impl<S> WriteHalf<S> {
    /// Runs `f` on the shared connection (under its lock: keep it short),
    /// e.g. for [`Connection::send_fragment`]; then [`flush`](Self::flush).
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(lock(&self.shared.driver).connection_mut())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WriteHalf<S> {
    /// Polls writing everything queued; see [`flush`](Self::flush).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_op(self, cx, Op::WriteOut).map_ok(drop)
    }

    fn start_close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        lock(&self.shared.driver).close(code, reason)?;
        // The close timer starts: let the reader arm it.
        self.shared.wakers.wake_by_ref();
        Ok(())
    }

    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_flush(cx)
    }
}

recv_api!(ReadHalf);
send_api!(
    WriteHalf,
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
