//! The halves of a split socket: the driver behind a mutex held only for
//! sans-IO calls, never across a read, a write or a wait.

use core::time::Duration;
use std::{
    io::{self, IoSlice, Read, Write},
    sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError},
    time::Instant,
};

use bytes::{Buf, Bytes};
use ws_proto::{
    CloseCode, CloseFrame, Connection, Driver, Event, Message, Offer, Offered, Op, WhenFull,
};

use crate::{
    Result, Transport, WebSocket,
    socket::{Link, Timer, lock, put, receive_methods, run, send_methods},
    stream::Socket,
};

/// The longest wait of a split reader's read: it then sees a close started
/// by its write half (and arms the close timer), and retries replies.
const WAKE: Duration = Duration::from_millis(100);

/// What both halves share.
#[derive(Debug)]
struct Shared<S> {
    io: S,
    driver: Mutex<Driver>,
    /// The write side, held by one half for one write, with the bytes taken
    /// from the driver's queue and not written yet: they go first.
    writing: Mutex<Bytes>,
}

/// The receiving half of a split [`WebSocket`]; see [`WebSocket::split`].
///
/// It never waits for the write side, so it keeps receiving while the
/// [`WriteHalf`] is blocked. It runs the connection's one timer: keep
/// receiving after [`WriteHalf::close`] to finish the close handshake.
#[derive(Debug)]
pub struct ReadHalf<S> {
    shared: Arc<Shared<S>>,
    timer: Timer,
    close: Option<CloseFrame>,
}

/// The sending half of a split [`WebSocket`]; see [`WebSocket::split`].
#[derive(Debug)]
pub struct WriteHalf<S> {
    shared: Arc<Shared<S>>,
}

/// One half's way to the driver and the stream: the reader, or the writer.
struct Half<'a, S, const READER: bool>(&'a Shared<S>);

impl<S> Shared<S> {
    /// The write side: `wait`ing for it (the writer), or not (the reader).
    fn write_side(&self, wait: bool) -> Option<MutexGuard<'_, Bytes>> {
        match self.writing.try_lock() {
            Ok(side) => Some(side),
            Err(TryLockError::Poisoned(side)) => Some(side.into_inner()),
            Err(TryLockError::WouldBlock) => wait.then(|| lock(&self.writing)),
        }
    }
}

impl<S, const READER: bool> Link for Half<'_, S, READER>
where
    S: Transport,
    for<'a> &'a S: Read + Write,
{
    type Io = S;
    const WAKE: Option<Duration> = Some(WAKE);

    fn io(&self) -> &S {
        &self.0.io
    }

    fn with<T>(&mut self, f: impl FnOnce(&mut Driver) -> T) -> T {
        f(&mut lock(&self.0.driver))
    }

    fn read(&mut self, wait: bool) -> io::Result<()> {
        let mut buf = self.with(Driver::take_read_buf);
        let read = match wait {
            true => (&self.0.io).read(buf.room_mut()),
            false => Err(io::ErrorKind::WouldBlock.into()),
        };
        self.with(|d| d.give_read_buf(buf, read.as_ref().ok().copied()));
        read.map(drop)
    }

    /// Writes the held bytes, or the next chunk of the queue, owned: the
    /// driver's lock is not held meanwhile. A reader that finds the write
    /// side busy reports the write blocked; the writer writes its replies
    /// next, in order.
    fn write(&mut self, block: bool) -> io::Result<bool> {
        let shared = self.0;
        let driver = || lock(&shared.driver);
        let Some(mut held) = shared.write_side(!READER) else {
            return Ok(blocked(&mut driver()));
        };
        if held.is_empty() {
            *held = driver().pop_chunk().unwrap_or_default();
        }
        if held.is_empty() {
            return Ok(false); // The other half wrote it meanwhile.
        }
        let Some(n) = put(&mut &shared.io, &[IoSlice::new(&held)], block)? else {
            return Ok(blocked(&mut driver()));
        };
        held.advance(n);
        driver().wrote(n);
        Ok(false)
    }

    fn flush(&mut self) -> io::Result<()> {
        // A reader that finds the write side busy leaves it to the writer,
        // whose write or flush ends with a flush of everything before it.
        let side = self.0.write_side(!READER);
        side.map_or(Ok(()), |_side| (&self.0.io).flush())
    }
}

fn blocked(driver: &mut Driver) -> bool {
    driver.write_blocked();
    true
}

impl<S> WebSocket<S>
where
    S: Transport,
    for<'a> &'a S: Read + Write,
{
    /// Splits into a receiving and a sending half, usable from two threads
    /// (`TcpStream` is read and written through `&TcpStream`).
    ///
    /// The core's driver sits behind a mutex held only for short sans-IO
    /// calls, never across a read or a write. The write side is taken by one
    /// half at a time: the [`WriteHalf`] waits for it, the [`ReadHalf`] never
    /// does. Pongs and the Close echo produced while receiving are written by
    /// the reader when the write side is free (without waiting for the
    /// stream), and otherwise by the writer right after its current write,
    /// in order. So the reader keeps receiving while the writer is blocked
    /// on a peer that does not read.
    pub fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        let close = self.driver.close_frame().cloned();
        let (io, driver, writing) = (self.io, Mutex::new(self.driver), Mutex::default());
        let shared = Arc::new(Shared {
            io,
            driver,
            writing,
        });
        let write = WriteHalf {
            shared: Arc::clone(&shared),
        };
        let timer = self.timer;
        (
            ReadHalf {
                shared,
                timer,
                close,
            },
            write,
        )
    }
}

impl<S> WebSocket<S> {
    /// Puts split halves back together; fails (dropping both) if they come
    /// from different sockets, or if the write half still holds part of a
    /// frame (finish its `flush` first).
    pub fn reunite(read: ReadHalf<S>, write: WriteHalf<S>) -> Result<Self> {
        let invalid = |why| io::Error::new(io::ErrorKind::InvalidInput, why);
        if !Arc::ptr_eq(&read.shared, &write.shared) {
            return Err(invalid("the halves come from different WebSockets").into());
        }
        drop(write);
        let shared = Arc::into_inner(read.shared).ok_or_else(|| invalid("still shared"))?;
        if !shared.writing.lock().is_ok_and(|held| held.is_empty()) {
            return Err(invalid("the write half holds part of a frame").into());
        }
        let driver = shared.driver.into_inner();
        let driver = driver.unwrap_or_else(PoisonError::into_inner);
        Ok(Self {
            io: shared.io,
            driver,
            timer: read.timer,
        })
    }
}

impl<S> ReadHalf<S> {
    /// Puts the halves back together: `WebSocket::reunite(self, write)`.
    pub fn reunite(self, write: WriteHalf<S>) -> Result<WebSocket<S>> {
        WebSocket::reunite(self, write)
    }

    /// Like [`WebSocket::close_frame`] (as of the last receive call).
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.close.as_ref()
    }

    /// Runs `f` on the shared connection (under its lock: keep it short).
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(lock(&self.shared.driver).connection_mut())
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.shared.io
    }
}

impl<S> ReadHalf<S>
where
    S: Transport,
    for<'a> &'a S: Read + Write,
{
    fn run(&mut self, op: Op, until: Option<Instant>) -> Result<Option<Event>> {
        let link = &mut Half::<S, true>(&self.shared);
        let result = run(link, &mut self.timer, op, until);
        self.close = lock(&self.shared.driver).close_frame().cloned();
        result
    }

    receive_methods!();
}

impl<S> Socket<S> for ReadHalf<S>
where
    S: Transport,
    for<'a> &'a S: Read + Write,
{
    fn step(&mut self, op: Op, until: Option<Instant>) -> Result<Option<Event>> {
        self.run(op, until)
    }
    fn timeout(&self) -> Option<Duration> {
        self.timer.timeout
    }
    fn driver(&mut self, f: &mut dyn FnMut(&mut Driver)) {
        f(&mut lock(&self.shared.driver));
    }
}

impl<S> Socket<S> for WriteHalf<S>
where
    S: Transport,
    for<'a> &'a S: Read + Write,
{
    fn step(&mut self, op: Op, until: Option<Instant>) -> Result<Option<Event>> {
        self.run(if op == Op::Flush { Op::WriteOut } else { op }, until)
    }
    fn driver(&mut self, f: &mut dyn FnMut(&mut Driver)) {
        self.with(f);
    }
}

impl<S> WriteHalf<S> {
    /// Runs `f` on the shared connection (under its lock: keep it short),
    /// e.g. for [`Connection::send_fragment`]; then [`flush`](Self::flush).
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(lock(&self.shared.driver).connection_mut())
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.shared.io
    }

    /// Queues `message` without waiting: `Err` with
    /// [`Error::is_full`](crate::Error::is_full) (the message is in it)
    /// when the outgoing queue is at its high-water mark,
    /// [`Config::max_write_buffer`](crate::Config::max_write_buffer);
    /// another `Err` when the connection is closing or closed. It goes out
    /// with this half's next [`flush`](Self::flush) or `send`, or from the
    /// [`ReadHalf`]'s receive within 100 ms (a blocked read is not
    /// interrupted): keep the reader receiving.
    pub fn try_send(&self, message: Message) -> Result<()> {
        Ok(self.with(|d| d.send(message))?)
    }

    /// Starts the close handshake without waiting: queues a Close (behind
    /// whatever is queued, even in a full queue). The [`ReadHalf`]'s
    /// receive writes it (within 100 ms), runs the close timer and ends
    /// with the peer's Close.
    pub fn try_close(&self, code: CloseCode, reason: &str) -> Result<()> {
        Ok(self.with(|d| d.close(code, reason))?)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Driver) -> T) -> T {
        f(&mut lock(&self.shared.driver))
    }
}

/// One connection of a [`broadcast`](crate::broadcast): queued without
/// waiting ([`Driver::offer`]); the [`ReadHalf`]'s receive writes it
/// (within 100 ms).
impl<S> Offer for WriteHalf<S> {
    fn offer(&self, message: Message, when_full: WhenFull<'_>) -> Offered {
        self.with(|d| d.offer(message, when_full))
    }
}

impl<S> WriteHalf<S>
where
    S: Transport,
    for<'a> &'a S: Read + Write,
{
    fn run(&self, op: Op, until: Option<Instant>) -> Result<Option<Event>> {
        let link = &mut Half::<S, false>(&self.shared);
        run(link, &mut Timer::new(None), op, until)
    }

    send_methods!(
        Op::WriteOut,
        /// Writes everything queued, replies of the [`ReadHalf`] included;
        /// never reads (the [`ReadHalf`] answers pings).
    );

    /// Starts the close handshake: writes a Close with `code` and `reason`
    /// (unless it already started) and returns. The [`ReadHalf`] finishes
    /// it (it runs the close timer, and sees this close within 100 ms), so
    /// keep receiving there until `None`.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.with(|d| d.close(code, reason))?;
        self.flush()
    }
}
