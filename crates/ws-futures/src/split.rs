//! The read and write halves of a split [`WebSocket`].
//!
//! The halves share the [`Driver`] behind a lock held only for its sans-IO
//! calls, never across a read, a write or a wait. The stream is split with
//! [`futures_util::io::split`] (a lock held for a single poll). The reader
//! reads into the driver's buffer taken out of the lock
//! ([`Driver::take_read_buf`]); writes pop owned chunks from the driver's
//! queue. Whoever holds the write side writes; the reader never waits for
//! it: finding it busy, it moves on, and the writer, which takes the
//! reader's replies from the queue after its current write, wakes it.

use alloc::{sync::Arc, task::Wake};
use core::{
    future::poll_fn,
    pin::Pin,
    task::{Context, Poll, Waker, ready},
};
use std::{
    io,
    sync::{Mutex, MutexGuard, PoisonError, TryLockError},
};

use bytes::{Buf, Bytes};
use futures_core::Stream;
use futures_io::{AsyncRead, AsyncWrite};
use futures_sink::Sink;
use futures_util::io::AsyncReadExt;
use ws_proto::{CloseCode, CloseFrame, Driver, Event, Message, Op, driver::MAX_READ_SIZE};

use crate::{
    Error, Result, WebSocket,
    socket::{
        Clock, Link, event, failed, message, poll_op, register, report_read, report_write, run,
    },
};

/// Slot of the reader waiting for the write side (busy, or not writable).
const READER: usize = 0;
/// Slot of the writer waiting for the write side.
const WRITER: usize = 1;
/// Slot of the reader's task, woken when the writer starts the close (the
/// reader arms the close timer) or the transport fails.
const RECEIVER: usize = 2;

/// The tasks to wake. A stream keeps one waker per direction: both halves
/// poll the write side with a waker that wakes both (`READER` and
/// `WRITER`), so neither displaces the other.
#[derive(Debug, Default)]
struct Wakers {
    slots: Mutex<[Option<Waker>; 3]>,
}

impl Wakers {
    fn register(&self, slot: usize, waker: &Waker) {
        register(&mut lock(&self.slots)[slot], waker);
    }

    fn wake_slot(&self, slot: usize) {
        let waker = lock(&self.slots)[slot].take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_slot(READER);
        self.wake_slot(WRITER);
    }
}

/// The write side of the stream and the rest of a chunk popped from the
/// driver's queue but not yet written.
#[derive(Debug)]
struct WriteSide<S> {
    io: futures_util::io::WriteHalf<S>,
    pending: Bytes,
}

#[derive(Debug)]
struct Shared<S> {
    driver: Mutex<Driver>,
    write: Mutex<WriteSide<S>>,
    wakers: Arc<Wakers>,
    /// `wakers` as a `Waker`, for every poll of the write side.
    write_waker: Waker,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: AsyncWrite> Shared<S> {
    /// Performs [`Action::Write`](ws_proto::Action::Write) with the write
    /// side held: the rest of the last chunk first, then the next chunk.
    fn write(&self, side: &mut WriteSide<S>) -> io::Result<()> {
        if side.pending.is_empty() {
            match lock(&self.driver).outgoing().pop_chunk() {
                Some(chunk) => side.pending = chunk,
                // The other half wrote it meanwhile.
                None => return Ok(()),
            }
        }
        let mut cx = Context::from_waker(&self.write_waker);
        let result = Pin::new(&mut side.io).poll_write(&mut cx, &side.pending);
        if let Poll::Ready(Ok(n)) = result {
            side.pending.advance(n);
        }
        let reported = report_write(&mut lock(&self.driver), result);
        if reported.is_err() {
            self.wakers.wake_slot(RECEIVER);
        }
        reported
    }

    /// Writes the rest of the last chunk (the driver's queue no longer
    /// holds it), then flushes the stream.
    fn poll_flush(&self, side: &mut WriteSide<S>) -> Poll<io::Result<()>> {
        let mut cx = Context::from_waker(&self.write_waker);
        while !side.pending.is_empty() {
            match ready!(Pin::new(&mut side.io).poll_write(&mut cx, &side.pending))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => side.pending.advance(n),
            }
        }
        Pin::new(&mut side.io).poll_flush(&mut cx)
    }
}

/// The receiving half of a [`WebSocket`], from [`WebSocket::split`]; a
/// [`Stream`] of data messages.
///
/// It drives the connection as [`WebSocket::recv`] does: it reads, runs the
/// timers (keepalive, close timeout), and writes automatic replies (pongs,
/// the Close echo) when the write side is free; otherwise the
/// [`WriteHalf`] writes them after its current write, in order. Keep it
/// polled.
#[derive(Debug)]
pub struct ReadHalf<S> {
    read: futures_util::io::ReadHalf<S>,
    shared: Arc<Shared<S>>,
    timer: Clock,
    /// The driver's close frame, once an operation saw one.
    close_frame: Option<CloseFrame>,
}

/// The sending half of a [`WebSocket`], from [`WebSocket::split`]; a
/// [`Sink`] of messages. It never reads: its [`ReadHalf`] does.
#[derive(Debug)]
pub struct WriteHalf<S> {
    shared: Arc<Shared<S>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Splits into a receiving and a sending half, usable from two tasks
    /// at once. No lock is held across I/O: the read half keeps receiving
    /// (and answering pings) while the write half waits for a peer that
    /// does not read.
    pub fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        let (read, write) = self.io.split();
        let wakers = Arc::new(Wakers::default());
        let close_frame = self.driver.close_frame().cloned();
        let shared = Arc::new(Shared {
            driver: Mutex::new(self.driver),
            write: Mutex::new(WriteSide {
                io: write,
                pending: Bytes::new(),
            }),
            write_waker: Waker::from(Arc::clone(&wakers)),
            wakers,
        });
        let write = WriteHalf {
            shared: Arc::clone(&shared),
        };
        let timer = self.timer;
        let read = ReadHalf {
            read,
            shared,
            timer,
            close_frame,
        };
        (read, write)
    }

    /// Puts split halves back together. An error (dropping both) if they
    /// come from different connections, or if the write half still holds a
    /// partly written frame: finish its [`flush`](WriteHalf::flush) first.
    pub fn reunite(read: ReadHalf<S>, write: WriteHalf<S>) -> Result<Self> {
        let invalid = |why| io::Error::new(io::ErrorKind::InvalidInput, why);
        if !Arc::ptr_eq(&read.shared, &write.shared) {
            return Err(invalid("halves of different sockets").into());
        }
        drop(write);
        let ReadHalf {
            read,
            shared,
            timer,
            ..
        } = read;
        let shared = Arc::into_inner(shared).ok_or_else(|| invalid("the halves are shared"))?;
        let side = shared
            .write
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if !side.pending.is_empty() {
            return Err(invalid("the write half holds a partly written frame").into());
        }
        let io = read
            .reunite(side.io)
            .map_err(|_| invalid("halves of different streams"))?;
        let driver = shared
            .driver
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(Self::from_parts(io, driver, timer))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link for ReadHalf<S> {
    fn driver<R>(&mut self, f: impl FnOnce(&mut Driver) -> R) -> R {
        f(&mut lock(&self.shared.driver))
    }

    /// Reads outside the lock, into the driver's buffer taken out of it.
    fn poll_read(&mut self, cx: &mut Context<'_>, _wait: bool) -> io::Result<()> {
        let mut buf = lock(&self.shared.driver).take_read_buf();
        let start = buf.len();
        // The driver made the room; `futures-io` reads into initialised
        // bytes only, so (a bounded part of) it is zero-filled.
        let room = (buf.capacity() - start).min(MAX_READ_SIZE);
        buf.resize(start + room, 0);
        let result = Pin::new(&mut self.read).poll_read(cx, &mut buf[start..]);
        let read = match &result {
            Poll::Ready(Ok(n)) => Some(*n),
            _ => None,
        };
        buf.truncate(start + read.unwrap_or(0));
        let mut driver = lock(&self.shared.driver);
        driver.give_read_buf(buf, read);
        match result {
            Poll::Ready(Err(e)) => failed(&mut driver, e),
            _ => Ok(()),
        }
    }

    /// Writes unless the writer holds the write side: then it writes this
    /// half's replies after its current write, and wakes this half.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.shared.wakers.register(READER, cx.waker());
        let mut side = match self.shared.write.try_lock() {
            Ok(side) => side,
            Err(TryLockError::Poisoned(side)) => side.into_inner(),
            Err(TryLockError::WouldBlock) => {
                lock(&self.shared.driver).write_blocked();
                return Ok(());
            }
        };
        self.shared.write(&mut side)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.wakers.register(READER, cx.waker());
        self.shared.poll_flush(&mut lock(&self.shared.write))
    }

    /// Best effort for the rest of a chunk (the driver asks for the end
    /// only once its queue is written, or when it gave up on the peer).
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.wakers.register(READER, cx.waker());
        let side = &mut *lock(&self.shared.write);
        let mut write_cx = Context::from_waker(&self.shared.write_waker);
        if let Poll::Ready(Ok(n)) = Pin::new(&mut side.io).poll_write(&mut write_cx, &side.pending)
        {
            side.pending.advance(n);
        }
        Pin::new(&mut side.io).poll_close(&mut write_cx).map(drop)
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) {
        self.timer.poll(cx, &mut lock(&self.shared.driver));
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    /// Runs a receive operation; keeps the close frame once there is one.
    fn poll_receive(&mut self, cx: &mut Context<'_>, op: Op) -> Poll<Result<Option<Event>>> {
        self.shared.wakers.register(RECEIVER, cx.waker());
        let result = ready!(poll_op(self, cx, op));
        if self.close_frame.is_none() {
            self.close_frame = lock(&self.shared.driver).close_frame().cloned();
        }
        Poll::Ready(result)
    }

    /// Polls for the next event, like [`recv_event`](Self::recv_event).
    pub fn poll_recv_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        self.poll_receive(cx, Op::Recv).map(event)
    }

    /// Polls for the next data message, like [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        self.poll_receive(cx, Op::RecvMessage).map(message)
    }

    /// The next data message; see [`WebSocket::recv`]. After the
    /// [`WriteHalf`] closed, it returns the messages that arrive until the
    /// peer's Close, then `None`.
    ///
    /// Cancel-safe: all state lives in the driver.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next event; see [`WebSocket::recv_event`].
    ///
    /// Cancel-safe: all state lives in the driver.
    pub async fn recv_event(&mut self) -> Option<Result<Event>> {
        poll_fn(|cx| self.poll_recv_event(cx)).await
    }

    /// Why the connection ended; see [`WebSocket::close_frame`].
    pub const fn close_frame(&self) -> Option<&CloseFrame> {
        self.close_frame.as_ref()
    }

    /// Puts the halves back together, as [`WebSocket::reunite`].
    pub fn reunite(self, write: WriteHalf<S>) -> Result<WebSocket<S>> {
        WebSocket::reunite(self, write)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for ReadHalf<S> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

/// The writer runs [`Op::Reserve`] and [`Op::WriteOut`] only: the driver
/// never asks it to read, wait for the timer or shut down.
impl<S: AsyncRead + AsyncWrite + Unpin> Link for WriteHalf<S> {
    fn driver<R>(&mut self, f: impl FnOnce(&mut Driver) -> R) -> R {
        f(&mut lock(&self.shared.driver))
    }

    fn poll_read(&mut self, _cx: &mut Context<'_>, _wait: bool) -> io::Result<()> {
        report_read(&mut lock(&self.shared.driver), Poll::Pending)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.shared.wakers.register(WRITER, cx.waker());
        let written = self.shared.write(&mut lock(&self.shared.write));
        // The reader may have found the write side busy.
        self.shared.wakers.wake_slot(READER);
        written
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.wakers.register(WRITER, cx.waker());
        let flushed = self.shared.poll_flush(&mut lock(&self.shared.write));
        self.shared.wakers.wake_slot(READER);
        flushed
    }

    fn poll_shutdown(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }

    fn poll_timer(&mut self, _cx: &mut Context<'_>) {
        lock(&self.shared.driver).timer_blocked();
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WriteHalf<S> {
    /// Queues a message and writes everything queued; see
    /// [`WebSocket::send`] (same cancellation behaviour). It never reads.
    pub async fn send(&mut self, message: Message) -> Result<()> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queues a message, writing only while the outgoing buffer is full;
    /// see [`WebSocket::feed`].
    pub async fn feed(&mut self, message: Message) -> Result<()> {
        run(self, Op::Reserve).await?;
        Ok(lock(&self.shared.driver).send(message)?)
    }

    /// Writes everything queued and flushes the stream.
    ///
    /// Cancel-safe: what was not written stays queued.
    pub async fn flush(&mut self) -> Result<()> {
        run(self, Op::WriteOut).await
    }

    /// Sends a ping (up to 125 bytes); its pong arrives at the
    /// [`ReadHalf`]. Cancellation: as [`send`](Self::send).
    pub async fn ping(&mut self, payload: Bytes) -> Result<()> {
        run(self, Op::Reserve).await?;
        lock(&self.shared.driver).ping(payload)?;
        self.flush().await
    }

    /// Queues a Close with `code` and `reason` and writes it. The
    /// [`ReadHalf`] then receives until the peer's Close (its `recv` gives
    /// `None`), runs the close timeout and shuts the transport down.
    ///
    /// Cancel-safe: the Close stays queued and goes out with the next write.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.start_close(code, reason)?;
        self.flush().await
    }

    fn start_close(&self, code: CloseCode, reason: &str) -> Result<()> {
        lock(&self.shared.driver).close(code, reason)?;
        // The close timer starts: let the reader arm it.
        self.shared.wakers.wake_slot(RECEIVER);
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WriteHalf<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_op(self.get_mut(), cx, Op::Reserve).map_ok(drop)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        Ok(lock(&self.shared.driver).send(item)?)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_op(self.get_mut(), cx, Op::WriteOut).map_ok(drop)
    }

    /// Queues Close 1000 and writes it; the [`ReadHalf`] finishes the close.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.start_close(CloseCode::NORMAL, "")?;
        poll_op(this, cx, Op::WriteOut).map_ok(drop)
    }
}
