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

use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::task::Wake;

use bytes::{Buf, Bytes};
use futures_io::{AsyncRead, AsyncWrite};
use futures_util::io::{ReadHalf as ReadIo, WriteHalf as WriteIo};
use futures_util::{io::AsyncReadExt, task::AtomicWaker};
use ws_proto::{CloseCode, CloseFrame, Driver};

use crate::socket::{Clock, Io, Link, Receiver, Sender, Socket, report};
use crate::{Result, WebSocket};

/// Slots of [`Wakers`]: the reader and the writer waiting for the write
/// side; the reader's task, woken when the writer starts the close (the
/// reader arms the close timer).
const READER: usize = 0;
const WRITER: usize = 1;
const RECEIVER: usize = 2;

/// The tasks to wake. A stream keeps one waker per direction: both halves
/// poll the write side with this one (as a `Waker`), which wakes both.
#[derive(Debug, Default)]
struct Wakers([AtomicWaker; 3]);

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.0[READER].wake();
        self.0[WRITER].wake();
    }
}

/// What the halves share: the driver, and the write side of the stream
/// with the rest of a chunk popped from the driver's queue but not yet
/// written.
#[derive(Debug)]
struct Shared<S> {
    driver: Mutex<Driver>,
    write: Mutex<(WriteIo<S>, Bytes)>,
    wakers: Arc<Wakers>,
    /// `wakers` as a `Waker`, for every poll of the write side.
    waker: Waker,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn into_inner<T>(mutex: Mutex<T>) -> T {
    mutex.into_inner().unwrap_or_else(PoisonError::into_inner)
}

impl<S: AsyncWrite> Shared<S> {
    /// Performs [`Action::Write`](ws_proto::Action::Write) holding the
    /// write side: the rest of the last chunk first, then the next chunk.
    /// A write that ends wakes the `other` half, which may wait for it.
    fn write(&self, (io, pending): &mut (WriteIo<S>, Bytes), other: usize) -> Io {
        if pending.is_empty() {
            let Some(chunk) = lock(&self.driver).pop_chunk() else {
                return Poll::Ready(Ok(())); // The other half wrote it meanwhile.
            };
            *pending = chunk;
        }
        let result = Pin::new(io).poll_write(&mut Context::from_waker(&self.waker), pending);
        if let Poll::Ready(Ok(n)) = result {
            pending.advance(n);
        }
        if result.is_ready() {
            self.wakers.0[other].wake();
        }
        report(&mut lock(&self.driver), false, result)
    }

    /// Writes the rest of the last chunk (out of the driver's queue
    /// already), then flushes the stream.
    fn poll_flush(&self, (io, pending): &mut (WriteIo<S>, Bytes)) -> Io {
        let mut cx = Context::from_waker(&self.waker);
        while !pending.is_empty() {
            match Pin::new(&mut *io).poll_write(&mut cx, pending)? {
                Poll::Ready(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(n) => pending.advance(n),
                Poll::Pending => return Poll::Pending,
            }
        }
        Pin::new(io).poll_flush(&mut cx)
    }
}

/// A half of a split connection: the read half (`READS`: the read side of
/// the stream and the timer are its) or the write half. See [`ReadHalf`]
/// and [`WriteHalf`].
#[derive(Debug)]
pub struct Half<S, const READS: bool> {
    shared: Arc<Shared<S>>,
    read: Option<ReadIo<S>>,
    timer: Clock,
    /// The driver's close frame, once there is one.
    close_frame: Option<CloseFrame>,
}

/// The receiving half of a [`WebSocket`], from [`WebSocket::split`]; a
/// [`Stream`](futures_core::Stream) of data messages.
///
/// It drives the connection as [`WebSocket::recv`] does: it reads, runs
/// the timers (keepalive, close timeout), and writes automatic replies
/// (pongs, the Close echo) when the write side is free; otherwise the
/// [`WriteHalf`] writes them after its current write, in order. Keep it
/// polled.
pub type ReadHalf<S> = Socket<Half<S, true>>;

/// The sending half of a [`WebSocket`], from [`WebSocket::split`]; a
/// [`Sink`](futures_sink::Sink) of messages. It never reads: its
/// [`ReadHalf`] does.
pub type WriteHalf<S> = Socket<Half<S, false>>;

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Splits into a receiving and a sending half, usable from two tasks
    /// at once. No lock is held across I/O: the read half keeps receiving
    /// (and answering pings) while the write half waits for a peer that
    /// does not read.
    pub fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        let (whole, wakers) = (self.0, Arc::new(Wakers::default()));
        let (read, write) = whole.io.split();
        let (driver, write) = (Mutex::new(whole.driver), Mutex::new((write, Bytes::new())));
        let waker = Waker::from(Arc::clone(&wakers));
        let shared = Arc::new(Shared {
            driver,
            write,
            wakers,
            waker,
        });
        let write = Half::new(Arc::clone(&shared), None, Clock::new());
        (Half::new(shared, Some(read), whole.timer), write)
    }

    /// Puts split halves back together. An error (dropping both) if they
    /// come from different connections, or if the write half still holds
    /// part of a frame: finish its [`flush`](Socket::flush) first.
    pub fn reunite(read: ReadHalf<S>, write: WriteHalf<S>) -> Result<Self> {
        let invalid = |why| io::Error::new(io::ErrorKind::InvalidInput, why);
        let (Socket(reader), Socket(writer)) = (read, write);
        if !Arc::ptr_eq(&reader.shared, &writer.shared) {
            return Err(invalid("halves of different sockets").into());
        }
        drop(writer);
        let shared = Arc::into_inner(reader.shared).ok_or_else(|| invalid("still shared"))?;
        let (write, pending) = into_inner(shared.write);
        if !pending.is_empty() {
            return Err(invalid("the write half holds part of a frame").into());
        }
        let read = reader.read.ok_or_else(|| invalid("no read side"))?;
        let reunited = read
            .reunite(write)
            .map_err(|_| invalid("different streams"));
        let driver = into_inner(shared.driver);
        Ok(Self::from_parts(reunited?, driver, reader.timer))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    /// Puts the halves back together, as [`WebSocket::reunite`].
    pub fn reunite(self, write: WriteHalf<S>) -> Result<WebSocket<S>> {
        WebSocket::reunite(self, write)
    }
}

impl<S, const READS: bool> Half<S, READS> {
    /// This half's slot in [`Wakers`] for the write side.
    const SLOT: usize = if READS { READER } else { WRITER };

    fn new(shared: Arc<Shared<S>>, read: Option<ReadIo<S>>, timer: Clock) -> Socket<Self> {
        let close_frame = lock(&shared.driver).close_frame().cloned();
        Socket(Self {
            shared,
            read,
            timer,
            close_frame,
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Receiver for Half<S, true> {}
impl<S: AsyncRead + AsyncWrite + Unpin> Sender for Half<S, false> {}

/// The read half runs the receive operations, the write half
/// [`Op::Reserve`](ws_proto::Op::Reserve) and
/// [`Op::WriteOut`](ws_proto::Op::WriteOut): the driver never asks it to
/// read, wait for the timer or shut down.
impl<S: AsyncRead + AsyncWrite + Unpin, const READS: bool> Link for Half<S, READS> {
    fn driver<R>(&mut self, f: impl FnOnce(&mut Driver) -> R) -> R {
        let mut driver = lock(&self.shared.driver);
        if READS && self.close_frame.is_none() {
            self.close_frame = driver.close_frame().cloned();
        }
        f(&mut driver)
    }

    /// Reads outside the lock, into the driver's buffer taken out of it.
    fn poll_read(&mut self, cx: &mut Context<'_>, _wait: bool) -> Io {
        let Some(read) = &mut self.read else {
            return report(&mut lock(&self.shared.driver), true, Poll::Pending);
        };
        self.shared.wakers.0[RECEIVER].register(cx.waker());
        let mut buf = lock(&self.shared.driver).take_read_buf();
        // `futures-io` reads into initialised bytes: the room the driver
        // planned (its read size), zero-filled.
        let result = Pin::new(read).poll_read(cx, buf.room_mut());
        let read = match &result {
            Poll::Ready(Ok(n)) => Some(*n),
            _ => None,
        };
        let mut driver = lock(&self.shared.driver);
        driver.give_read_buf(buf, read);
        match result {
            Poll::Ready(Err(e)) => report(&mut driver, true, Poll::Ready(Err(e))),
            result => result.map(|_| Ok(())),
        }
    }

    /// Writes unless the other half is writing: it then takes this half's
    /// bytes from the queue after its current write, and wakes this half.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Io {
        let (this, other) = (Self::SLOT, READER + WRITER - Self::SLOT);
        self.shared.wakers.0[this].register(cx.waker());
        match self.shared.write.try_lock() {
            Ok(mut side) => self.shared.write(&mut side, other),
            Err(TryLockError::Poisoned(side)) => self.shared.write(&mut side.into_inner(), other),
            Err(TryLockError::WouldBlock) => {
                report(&mut lock(&self.shared.driver), false, Poll::Pending)
            }
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Io {
        self.shared.wakers.0[Self::SLOT].register(cx.waker());
        self.shared.poll_flush(&mut lock(&self.shared.write))
    }

    /// The driver asks for the end once its queue is written (or it gave
    /// up on the peer): the rest of a chunk goes out if it can at once.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>, discard: bool) -> Poll<()> {
        self.shared.wakers.0[READER].register(cx.waker());
        let side = &mut *lock(&self.shared.write);
        // A peer given up on gets nothing more; otherwise what the
        // transport takes now goes out first.
        if discard || self.shared.poll_flush(side).is_pending() {
            side.1.clear();
        }
        let mut write_cx = Context::from_waker(&self.shared.waker);
        Pin::new(&mut side.0).poll_close(&mut write_cx).map(drop)
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.timer.poll(cx, &mut lock(&self.shared.driver))
    }

    fn close_frame(&self) -> Option<&CloseFrame> {
        self.close_frame.as_ref()
    }

    /// Queues the Close and wakes the reader, which arms the close timer.
    fn start_close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        lock(&self.shared.driver).close(code, reason)?;
        self.shared.wakers.0[RECEIVER].wake();
        Ok(())
    }
}
