//! The read and write halves of a split [`WebSocket`].
//!
//! The driver sits behind a lock held only for its sans-IO calls, never
//! across a read, a write or a wait. The reader reads its own half of the
//! stream with the driver's read buffer taken out; the write side (with the
//! chunk being written) is behind a second lock that nobody waits for:
//! a half that finds it busy reports the write blocked and is woken when
//! it is free, and whoever writes next takes the queued bytes in order.

use alloc::{sync::Arc, task::Wake};
use core::{
    future::poll_fn,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering::SeqCst},
    task::{Context, Poll, Waker},
};
use std::{
    io,
    sync::{Mutex, MutexGuard, PoisonError, TryLockError},
};

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::poll_read_buf;
use ws_proto::{CloseCode, CloseFrame, Connection, Driver, Event, Message, Op};

use crate::{
    Error, Result, WebSocket,
    socket::{Io, Link, Timer, item, message, ping, poll_command, poll_op, report_write},
};

const READER: usize = 0;
const WRITER: usize = 1;

/// Wakes both halves: the stream keeps one waker for write readiness, so
/// whichever half polls the write side registers this one, and neither
/// displaces the other.
#[derive(Debug, Default)]
struct WriteWakers {
    slots: Mutex<[Option<Waker>; 2]>,
}

impl Wake for WriteWakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let slots = core::mem::take(&mut *lock(&self.slots));
        slots.into_iter().flatten().for_each(Waker::wake);
    }
}

/// The driver and the reader's task (woken when a `close` starts the close
/// timer, which the reader runs).
#[derive(Debug)]
struct State {
    driver: Driver,
    reader: Option<Waker>,
}

#[derive(Debug)]
struct Shared<S> {
    state: Mutex<State>,
    write: Mutex<Io<tokio::io::WriteHalf<S>>>,
    /// A half found the write side busy: wake both once it is free.
    contended: AtomicBool,
    wakers: Arc<WriteWakers>,
    /// `wakers` as a `Waker`, handed to the write side.
    write_waker: Waker,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

fn register(slot: &mut Option<Waker>, waker: &Waker) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
        *slot = Some(waker.clone());
    }
}

impl<S: AsyncWrite> Shared<S> {
    /// Runs `f` on the write side for half `side`, without waiting for it:
    /// `Pending` if the other half is using it (this half is woken after).
    fn with_write<R>(
        &self,
        side: usize,
        cx: &Context<'_>,
        f: impl FnOnce(&mut Io<tokio::io::WriteHalf<S>>, &mut Context<'_>) -> Poll<R>,
    ) -> Poll<R> {
        register(&mut lock(&self.wakers.slots)[side], cx.waker());
        let mut io = try_lock(&self.write);
        if io.is_none() {
            // Flag first, then retry: the holder checks the flag after
            // unlocking, so either the retry succeeds or the holder wakes us.
            self.contended.store(true, SeqCst);
            io = try_lock(&self.write);
        }
        let Some(mut io) = io else {
            return Poll::Pending;
        };
        let result = f(&mut io, &mut Context::from_waker(&self.write_waker));
        drop(io);
        if self.contended.swap(false, SeqCst) {
            self.wakers.wake_by_ref();
        }
        result
    }
}

/// The [`Link`] of either half (`read` only for the read half).
struct Half<'a, S> {
    shared: &'a Shared<S>,
    side: usize,
    read: Option<&'a mut tokio::io::ReadHalf<S>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link for Half<'_, S> {
    fn with<R>(&mut self, f: impl FnOnce(&mut Driver) -> R) -> R {
        f(&mut lock(&self.shared.state).driver)
    }

    fn write(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let shared = self.shared;
        let write = shared.with_write(self.side, cx, |io, cx| {
            if io.held.is_empty() {
                let chunk = lock(&shared.state).driver.outgoing().pop_chunk();
                io.held = chunk.unwrap_or_default();
            }
            if io.held.is_empty() {
                // The other half wrote it meanwhile.
                return Poll::Ready(Ok(0));
            }
            io.poll_write_held(cx)
        });
        report_write(&mut lock(&shared.state).driver, write)
    }

    fn read(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let state = &self.shared.state;
        let Some(read) = self.read.as_deref_mut() else {
            lock(state).driver.read_blocked();
            return Ok(());
        };
        let mut buf = lock(state).driver.take_read_buf();
        let read = poll_read_buf(Pin::new(read), cx, &mut buf);
        let filled = match read {
            Poll::Ready(Ok(n)) => Some(n),
            _ => None,
        };
        lock(state).driver.give_read_buf(buf, filled);
        match read {
            Poll::Ready(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.with_write(self.side, cx, Io::poll_drain)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let abandoned = self.with(|driver| driver.connection().is_abandoned());
        self.shared
            .with_write(self.side, cx, |io, cx| io.poll_shutdown(cx, abandoned))
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
    /// A copy of the driver's, once known.
    close_frame: Option<CloseFrame>,
}

/// The sending half of a [`WebSocket`], from [`WebSocket::split`].
#[derive(Debug)]
pub struct WriteHalf<S> {
    shared: Arc<Shared<S>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Splits the socket into halves usable from two tasks at once. The
    /// connection is shared behind a lock held only for short synchronous
    /// calls, never across I/O or a wait.
    pub fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        let Self { io, driver, timer } = self;
        let (read, write) = tokio::io::split(io.stream);
        let wakers = Arc::new(WriteWakers::default());
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                driver,
                reader: None,
            }),
            write: Mutex::new(Io {
                stream: write,
                held: io.held,
                unflushed: io.unflushed,
            }),
            contended: AtomicBool::new(false),
            write_waker: Waker::from(Arc::clone(&wakers)),
            wakers,
        });
        let write = WriteHalf {
            shared: Arc::clone(&shared),
        };
        let close_frame = lock(&shared.state).driver.close_frame().cloned();
        let read = ReadHalf {
            read,
            shared,
            timer,
            close_frame,
        };
        (read, write)
    }

    /// Puts the halves back together. Fails (dropping them) if they do not
    /// come from the same socket.
    pub fn reunite(read: ReadHalf<S>, write: WriteHalf<S>) -> Result<Self> {
        if !Arc::ptr_eq(&read.shared, &write.shared) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the halves come from different WebSockets",
            )
            .into());
        }
        drop(write);
        let ReadHalf {
            read,
            shared,
            timer,
            ..
        } = read;
        let shared = Arc::try_unwrap(shared)
            .map_err(|_| io::Error::other("the write half is still shared"))?;
        let state = shared.state.into_inner().unwrap_or_else(PoisonError::into_inner);
        let io = shared.write.into_inner().unwrap_or_else(PoisonError::into_inner);
        Ok(Self {
            io: Io {
                stream: read.unsplit(io.stream),
                held: io.held,
                unflushed: io.unflushed,
            },
            driver: state.driver,
            timer,
        })
    }
}

impl<S> ReadHalf<S> {
    /// Why the connection ended; see [`WebSocket::close_frame`].
    pub const fn close_frame(&self) -> Option<&CloseFrame> {
        self.close_frame.as_ref()
    }

    /// Runs `f` on the shared connection (under its lock: keep it short).
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(lock(&self.shared.state).driver.connection_mut())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    /// Puts the halves back together: `WebSocket::reunite(self, write)`.
    pub fn reunite(self, write: WriteHalf<S>) -> Result<WebSocket<S>> {
        WebSocket::reunite(self, write)
    }

    /// The run loop of a receive operation.
    fn poll_op(&mut self, cx: &mut Context<'_>, op: Op) -> Poll<Result<Option<Event>>> {
        register(&mut lock(&self.shared.state).reader, cx.waker());
        let mut link = Half {
            shared: &self.shared,
            side: READER,
            read: Some(&mut self.read),
        };
        let outcome = poll_op(&mut link, Some(&mut self.timer), cx, op);
        if outcome.is_ready() && self.close_frame.is_none() {
            self.close_frame = lock(&self.shared.state).driver.close_frame().cloned();
        }
        outcome
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

    /// Receives the next data message; see [`WebSocket::recv`]. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Receives the next event; see [`WebSocket::recv_event`]. Cancel-safe.
    pub async fn recv_event(&mut self) -> Option<Result<Event>> {
        poll_fn(|cx| self.poll_recv_event(cx)).await
    }
}

impl<S> WriteHalf<S> {
    /// Runs `f` on the shared connection (under its lock: keep it short),
    /// e.g. for [`Connection::send_fragment`]; then [`flush`](Self::flush).
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(lock(&self.shared.state).driver.connection_mut())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WriteHalf<S> {
    fn link(&self) -> Half<'_, S> {
        Half {
            shared: &self.shared,
            side: WRITER,
            read: None,
        }
    }

    /// Polls writing everything queued; see [`flush`](Self::flush).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_op(&mut self.link(), None, cx, Op::WriteOut).map_ok(drop)
    }

    /// Queues `message` and writes everything queued; see
    /// [`WebSocket::send`] (same cancellation behavior).
    pub async fn send(&mut self, message: Message) -> Result<()> {
        let mut slot = Some(message);
        let then = Some(Op::WriteOut);
        poll_fn(|cx| poll_command(&mut self.link(), cx, &mut slot, Driver::send, then)).await
    }

    /// Queues `message`, writing only while the buffer is full; see
    /// [`WebSocket::feed`].
    pub async fn feed(&mut self, message: Message) -> Result<()> {
        let mut slot = Some(message);
        poll_fn(|cx| poll_command(&mut self.link(), cx, &mut slot, Driver::send, None)).await
    }

    /// Writes everything queued. Cancel-safe: what is not written stays
    /// queued.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Sends a ping; its pong arrives at the [`ReadHalf`] as [`Event::Pong`].
    /// Cancellation as for [`WebSocket::send`].
    pub async fn ping(&mut self, payload: Bytes) -> Result<()> {
        let mut slot = Some(Message::Binary(payload));
        let then = Some(Op::WriteOut);
        poll_fn(|cx| poll_command(&mut self.link(), cx, &mut slot, ping, then)).await
    }

    /// Queues a Close frame (unless the close handshake started) and flushes
    /// it. The [`ReadHalf`] completes the close handshake: it reads until the
    /// peer's Close (or the close timeout), then shuts the transport down and
    /// its `recv` returns `None`; data arriving meanwhile is still delivered
    /// to it. Cancel-safe: the Close is queued once and a later `flush` (or
    /// the reader) writes it.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.start_close(code, reason)?;
        self.flush().await
    }

    fn start_close(&self, code: CloseCode, reason: &str) -> Result<()> {
        let reader = {
            let mut state = lock(&self.shared.state);
            state.driver.close(code, reason)?;
            state.reader.take()
        };
        // The close timer starts: let the reader arm it.
        if let Some(reader) = reader {
            reader.wake();
        }
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for ReadHalf<S> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WriteHalf<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_op(&mut self.link(), None, cx, Op::Reserve).map_ok(drop)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        Ok(lock(&self.shared.state).driver.send(item)?)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush(cx)
    }

    /// Queues Close 1000 and flushes it; the [`ReadHalf`] finishes the close.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.start_close(CloseCode::NORMAL, "")?;
        this.poll_flush(cx)
    }
}
