//! The halves of a split socket: the driver behind a mutex held only for
//! sans-IO calls, never across a read, a write or a wait.

use core::time::Duration;
use std::{
    io::{self, IoSlice, Read, Write},
    ops::Deref,
    sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError},
    time::Instant,
};

use bytes::{Buf, Bytes};
use ws_proto::{CloseCode, CloseFrame, Connection, Driver, Event, Message, Op};

use crate::{
    Result, Transport, WebSocket,
    socket::{Link, MAX_IOV, Timer, lock, put, receive_methods, run},
};

/// The longest wait of a split reader's read: it then sees a close started
/// by its write half (and arms the close timer), and retries replies.
const WAKE: Duration = Duration::from_millis(100);
/// The most a reader copies out of the outgoing queue for one write.
const COPY: usize = 16 * 1024;

/// What both halves share.
#[derive(Debug)]
struct Shared<S> {
    io: S,
    driver: Mutex<Driver>,
    /// The write side: held by one half for one write.
    writing: Mutex<()>,
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

impl<S, const READER: bool> Link for Half<'_, S, READER>
where
    S: Transport,
    for<'a> &'a S: Read + Write,
{
    type Io = S;
    /// The reader copies what it writes (so nothing is lost); the writer
    /// hands over owned chunks.
    const KEEPS_UNWRITTEN: bool = READER;
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

    fn flush(&mut self) -> io::Result<()> {
        let _side = match self.0.writing.try_lock() {
            Ok(side) => side,
            Err(TryLockError::Poisoned(side)) => side.into_inner(),
            // The reader never waits for the write side: the writer, busy
            // with it, flushes after its write.
            Err(TryLockError::WouldBlock) if READER => return Ok(()),
            Err(TryLockError::WouldBlock) => lock(&self.0.writing),
        };
        (&self.0.io).flush()
    }

    fn write(&mut self, block: bool) -> io::Result<bool> {
        let shared = self.0;
        if READER {
            // Never waits for the writer: it writes the replies after its
            // current write, in order.
            let _side = match shared.writing.try_lock() {
                Ok(side) => side,
                Err(TryLockError::Poisoned(side)) => side.into_inner(),
                Err(TryLockError::WouldBlock) => return Ok(self.with(blocked)),
            };
            let front = self.with(|d| {
                let chunk = Buf::chunk(&*d.outgoing());
                Bytes::copy_from_slice(&chunk[..chunk.len().min(COPY)])
            });
            if front.is_empty() {
                return Ok(false);
            }
            let Some(n) = put(&mut &shared.io, &[IoSlice::new(&front)], block)? else {
                return Ok(self.with(blocked));
            };
            self.with(|d| {
                d.outgoing().advance(n);
                d.wrote(n);
            });
            return Ok(false);
        }
        let _side = lock(&shared.writing);
        let mut count = 0;
        let chunks: [Bytes; MAX_IOV] = self.with(|d| {
            core::array::from_fn(|_| d.pop_chunk().inspect(|_| count += 1).unwrap_or_default())
        });
        let mut slices = chunks.each_ref().map(|c| IoSlice::new(c));
        let mut slices = &mut slices[..count];
        while !slices.is_empty() {
            let n = put(&mut &shared.io, slices, true)?.unwrap_or_default();
            IoSlice::advance_slices(&mut slices, n);
            self.with(|d| d.wrote(n));
        }
        Ok(false)
    }
}

fn blocked(driver: &mut Driver) -> bool {
    driver.write_blocked();
    true
}

/// The connection behind a half's lock.
struct Guard<'a>(MutexGuard<'a, Driver>);

impl Deref for Guard<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.0.connection()
    }
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
        let (io, driver, writing) = (self.io, Mutex::new(self.driver), Mutex::new(()));
        let shared = Arc::new(Shared {
            io,
            driver,
            writing,
        });
        let close = lock(&shared.driver).close_frame().cloned();
        let write = WriteHalf {
            shared: Arc::clone(&shared),
        };
        (
            ReadHalf {
                shared,
                timer: self.timer,
                close,
            },
            write,
        )
    }
}

impl<S> WebSocket<S> {
    /// Puts split halves back together; fails (dropping both) if they come
    /// from different sockets.
    pub fn reunite(read: ReadHalf<S>, write: WriteHalf<S>) -> Result<Self> {
        if !Arc::ptr_eq(&read.shared, &write.shared) {
            let e = "the halves come from different WebSockets";
            return Err(io::Error::new(io::ErrorKind::InvalidInput, e).into());
        }
        drop(write);
        let shared =
            Arc::try_unwrap(read.shared).map_err(|_| io::Error::other("a half is still shared"))?;
        let driver = shared
            .driver
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
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

    /// Like [`WebSocket::close_frame`] (as of the last receive call).
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.close.as_ref()
    }

    /// The protocol state machine (do not keep it across calls: it holds
    /// the driver's lock).
    pub fn connection(&self) -> impl Deref<Target = Connection> + '_ {
        Guard(lock(&self.shared.driver))
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.shared.io
    }
}

impl<S> WriteHalf<S>
where
    S: Transport,
    for<'a> &'a S: Read + Write,
{
    fn run(&self, op: Op) -> Result<Option<Event>> {
        let link = &mut Half::<S, false>(&self.shared);
        run(link, &mut Timer::new(None), op, None)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Driver) -> T) -> T {
        f(&mut lock(&self.shared.driver))
    }

    /// Like [`WebSocket::send`], but never reads (the [`ReadHalf`] answers
    /// pings). A failed write (a write timeout included) ends the connection:
    /// the bytes handed to the stream are not known.
    pub fn send(&mut self, message: Message) -> Result<()> {
        self.feed(message)?;
        self.flush()
    }

    /// Like [`WebSocket::feed`].
    pub fn feed(&mut self, message: Message) -> Result<()> {
        self.run(Op::Reserve)?;
        Ok(self.with(|d| d.send(message))?)
    }

    /// Writes everything queued, replies of the [`ReadHalf`] included; never
    /// reads.
    pub fn flush(&mut self) -> Result<()> {
        self.run(Op::WriteOut).map(drop)
    }

    /// Like [`WebSocket::ping`].
    pub fn ping(&mut self, payload: Bytes) -> Result<()> {
        self.with(|d| d.ping(payload))?;
        self.flush()
    }

    /// Starts the close handshake: writes a Close with `code` and `reason`
    /// (unless it already started) and returns. The [`ReadHalf`] finishes
    /// it (it runs the close timer, and sees this close within 100 ms), so
    /// keep receiving there until `None`.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.with(|d| d.close(code, reason))?;
        self.flush()
    }

    /// The protocol state machine (do not keep it across calls: it holds
    /// the driver's lock).
    pub fn connection(&self) -> impl Deref<Target = Connection> + '_ {
        Guard(lock(&self.shared.driver))
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.shared.io
    }
}
