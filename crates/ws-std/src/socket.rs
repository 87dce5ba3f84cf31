//! The WebSocket, and the one run loop that it and each split half use.

use core::time::Duration;
use std::{
    io::{self, ErrorKind, IoSlice, Write},
    net::Shutdown,
    ops::Deref,
    sync::{Mutex, MutexGuard, PoisonError},
    thread,
    time::Instant,
};

use bytes::{Buf, Bytes};
use ws_proto::{
    Action, CloseCode, Config, Connection, Driver, Event, Message, Op, Outgoing, Role,
    adapter::is_timeout,
};

use crate::{Result, Transport};

/// Slices per vectored write.
pub(crate) const MAX_IOV: usize = 64;
/// How soon a receive call retries a write the stream did not take.
const RETRY: Duration = Duration::from_millis(10);

/// A WebSocket over a blocking stream `S`, after the opening handshake.
///
/// All state lives in the core's [`Driver`], so any call that fails with a
/// timeout can simply be retried.
#[derive(Debug)]
pub struct WebSocket<S> {
    pub(crate) io: S,
    pub(crate) driver: Driver,
    pub(crate) timer: Timer,
}

/// The core's one timer, performed as the stream's read timeout, and the
/// caller's receive deadline.
#[derive(Debug)]
pub(crate) struct Timer {
    /// The driver's clock starts here.
    origin: Instant,
    /// The driver's deadline (on its clock) until it fires.
    deadline: Option<Duration>,
    /// The receive deadline of `recv` and `recv_event`, from the call on.
    pub(crate) timeout: Option<Duration>,
    /// The read timeout last set on the stream.
    applied: Option<Option<Duration>>,
}

impl Timer {
    pub(crate) fn new(timeout: Option<Duration>) -> Self {
        let (origin, deadline, applied) = (Instant::now(), None, None);
        Self {
            origin,
            deadline,
            timeout,
            applied,
        }
    }

    /// The deadline of a receive call bounded by `timeout`.
    pub(crate) fn until(timeout: Option<Duration>) -> Option<Instant> {
        timeout.and_then(|t| Instant::now().checked_add(t))
    }

    /// The time left until the nearest of the driver's deadline, `until`
    /// and `cap` (zero once one has passed).
    fn left(&self, until: Option<Instant>, cap: Option<Duration>) -> Option<Duration> {
        let now = Instant::now();
        let core = self
            .deadline
            .map(|d| (self.origin + d).saturating_duration_since(now));
        let user = until.map(|u| u.saturating_duration_since(now));
        [core, user, cap].into_iter().flatten().min()
    }

    /// Reports the driver's deadline fired, if it has passed.
    fn fire(&mut self, link: &mut impl Link) -> bool {
        match self.deadline {
            Some(at) if self.origin.elapsed() >= at => {
                self.deadline = None;
                link.with(|d| d.timer_fired(at));
                true
            }
            _ => false,
        }
    }
}

/// How the run loop reaches the driver and the stream: a whole socket, or
/// one half of a split one.
pub(crate) trait Link {
    type Io: Transport + ?Sized;
    fn io(&self) -> &Self::Io;
    /// A sans-IO call on the driver (under its lock, for a half).
    fn with<T>(&mut self, f: impl FnOnce(&mut Driver) -> T) -> T;
    /// The longest single wait for bytes.
    const WAKE: Option<Duration>;
    /// Reads into the driver's buffer, waiting or not, and reports the
    /// outcome (an error as blocked: the loop reports the rest).
    fn read(&mut self, wait: bool) -> io::Result<()>;
    /// Writes the driver's outgoing bytes, and reports the outcome: `true`
    /// when blocked (errors are left to the loop).
    fn write(&mut self, block: bool) -> io::Result<bool>;
    /// Performs [`Action::Flush`] (a TLS or buffered stream holds what was
    /// written); the loop reports it.
    fn flush(&mut self) -> io::Result<()>;
}

/// The run loop of every operation: ask the driver, perform, report.
/// `until` bounds a receive call (not `close`).
pub(crate) fn run<L: Link>(
    link: &mut L,
    timer: &mut Timer,
    op: Op,
    until: Option<Instant>,
) -> Result<Option<Event>> {
    let (mut write_blocked, mut woke, mut timed_out) = (false, false, false);
    timer.deadline = None;
    loop {
        match link.with(|d| d.poll(op)) {
            Action::Deliver => return Ok(link.with(Driver::take_event)),
            Action::Done => {
                return link
                    .with(Driver::take_error)
                    .map_or(Ok(None), |e| Err(e.into()));
            }
            Action::Write { wait } => match link.write(wait) {
                Ok(blocked) => write_blocked = blocked,
                Err(e) => write_failed(link, e)?,
            },
            Action::Flush => match link.flush() {
                Ok(()) => link.with(Driver::flushed),
                Err(e) => write_failed(link, e)?,
            },
            Action::Read { wait } => {
                woke = false;
                let cap = if write_blocked { Some(RETRY) } else { L::WAKE };
                let read = match wait.then(|| timer.left(until, cap)) {
                    Some(Some(Duration::ZERO)) => {
                        link.with(Driver::read_blocked);
                        Err(ErrorKind::TimedOut.into())
                    }
                    Some(limit) => match timer.applied == Some(limit) {
                        true => link.read(true),
                        false => link.io().set_read_timeout(limit).and_then(|()| {
                            timer.applied = Some(limit);
                            link.read(true)
                        }),
                    },
                    None => link.read(false),
                };
                match read {
                    Ok(()) => {}
                    Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {
                        // The driver's deadline fired, or the caller's passed
                        // (reported at the next Wait), or a wake-up to retry.
                        woke = !timer.fire(link);
                        timed_out = woke && until.is_some_and(|u| Instant::now() >= u);
                    }
                    Err(e) => fail(link, e)?,
                }
            }
            Action::Timer => {
                let now = timer.origin.elapsed();
                timer.deadline = link.with(|d| d.timer(now).inspect(|_| d.timer_blocked()));
            }
            Action::Shutdown { .. } => {
                let _ = link.io().shutdown(Shutdown::Write);
                link.with(Driver::shut_down);
            }
            Action::Wait if timed_out => {
                return Err(io::Error::new(ErrorKind::TimedOut, "receive timed out").into());
            }
            // A write the stream did not take, with nothing to read: retry it
            // soon (or when the timer is due).
            Action::Wait if !std::mem::take(&mut woke) => {
                thread::sleep(timer.left(until, Some(RETRY)).unwrap_or(RETRY));
                timed_out = !timer.fire(link) && until.is_some_and(|u| Instant::now() >= u);
            }
            Action::Wait => {}
        }
    }
}

/// A write or flush that failed: interrupted, it is retried; timed out, the
/// call returns the error (unwritten bytes stay queued: the call can be
/// retried); else the transport failed.
fn write_failed(link: &mut impl Link, e: io::Error) -> Result<()> {
    if e.kind() == ErrorKind::Interrupted {
        Ok(())
    } else if is_timeout(&e) {
        Err(e.into())
    } else {
        fail(link, e)
    }
}

/// A transport failure: the connection is over; the error is returned
/// unless it had already ended cleanly.
fn fail(link: &mut impl Link, e: io::Error) -> Result<()> {
    if link.with(Driver::io_error) {
        return Err(e.into());
    }
    Ok(())
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One write: without waiting unless `block` (or the stream cannot);
/// `None` when the stream takes nothing now.
pub(crate) fn put<S, W>(w: &mut W, bufs: &[IoSlice<'_>], block: bool) -> io::Result<Option<usize>>
where
    S: Transport + ?Sized,
    W: Write + Deref<Target = S>,
{
    let written = match block {
        true => w.write_vectored(bufs).map(Some),
        false => match w.write_nonblocking(bufs) {
            Err(e) if e.kind() == ErrorKind::Unsupported => w.write_vectored(bufs).map(Some),
            written => written,
        },
    };
    match written {
        Ok(Some(0)) => Err(ErrorKind::WriteZero.into()),
        written => written,
    }
}

/// The whole socket's way to its driver and stream.
struct Whole<'a, S> {
    io: &'a mut S,
    driver: &'a mut Driver,
}

impl<S: Transport> Link for Whole<'_, S> {
    type Io = S;
    const WAKE: Option<Duration> = None;

    fn io(&self) -> &S {
        self.io
    }

    fn with<T>(&mut self, f: impl FnOnce(&mut Driver) -> T) -> T {
        f(self.driver)
    }

    fn read(&mut self, wait: bool) -> io::Result<()> {
        let slice = self.driver.read_slice();
        let read = match wait {
            true => self.io.read(slice).map(Some),
            false => self.io.read_nonblocking(slice),
        };
        match read {
            Ok(Some(n)) => self.driver.filled(n),
            _ => self.driver.read_blocked(),
        }
        read.map(drop)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.io.flush()
    }

    fn write(&mut self, block: bool) -> io::Result<bool> {
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let out: &Outgoing = self.driver.outgoing();
        let n = out.chunks_vectored(&mut slices);
        let Some(written) = put(&mut &mut *self.io, &slices[..n], block)? else {
            self.driver.write_blocked();
            return Ok(true);
        };
        self.driver.outgoing().advance(written);
        self.driver.wrote(written);
        Ok(false)
    }
}

/// `recv`, `recv_event`, their `_timeout` forms and `set_read_timeout`, for
/// a type with a `timer` and a `run(op, until)`.
macro_rules! receive_methods {
    () => {
        /// The next data message. Pings are answered and pongs consumed
        /// inside; what arrived while the application only sent comes first.
        ///
        /// `None` once the connection is over: the close handshake finished,
        /// the transport ended, or after an error was returned;
        /// `close_frame` then tells why. A protocol error is returned once,
        /// after its Close frame was sent (bounded by the close timeout) and
        /// the transport shut down; so is an I/O error that ends the
        /// connection (e.g. a reset), after which `close_frame` reports 1006.
        ///
        /// Bounded by the receive deadline set with `set_read_timeout`, if
        /// any: past it, `Error::Io` of kind `TimedOut`, and nothing is lost
        /// (call again).
        ///
        /// A message that arrives in pieces (`Config::streaming`) is
        /// `Error::Streamed`, and kept for `recv_stream`.
        pub fn recv(&mut self) -> Option<Result<Message>> {
            $crate::stream::message(self.timer.timeout, self)
        }

        /// Like `recv`, bounded by `timeout` instead of the deadline set
        /// with `set_read_timeout`: past it, `Error::Io` of kind `TimedOut`,
        /// and nothing is lost.
        pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Result<Message>> {
            $crate::stream::message(Some(timeout), self)
        }

        /// The next data message as a `MessageReader` of its pieces, in
        /// bounded memory whatever its size: a message that arrives in
        /// pieces (`Config::streaming`) as they arrive, a whole one as one
        /// piece. Pings are answered and pongs consumed inside; `None` and
        /// errors as `recv`.
        pub fn recv_stream(&mut self) -> Option<Result<$crate::MessageReader<'_, S>>> {
            $crate::stream::MessageReader::start(self)
        }

        /// Like `recv` but yields every event: pings (already answered),
        /// pongs and the Close (then `None`).
        pub fn recv_event(&mut self) -> Option<Result<Event>> {
            let until = $crate::socket::Timer::until(self.timer.timeout);
            self.run(Op::Recv, until).transpose()
        }

        /// Like `recv_event`, bounded by `timeout` (as `recv_timeout`).
        pub fn recv_event_timeout(&mut self, timeout: Duration) -> Option<Result<Event>> {
            let until = $crate::socket::Timer::until(Some(timeout));
            self.run(Op::Recv, until).transpose()
        }

        /// Sets the receive deadline of each `recv` and `recv_event` call
        /// (`None`: wait as long as it takes). It does not bound `close`,
        /// which the core's close timeout bounds. Never fails (the stream's
        /// read timeout is set per read, from the nearest deadline).
        pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
            self.timer.timeout = timeout;
            Ok(())
        }
    };
}

/// `send`, `feed`, `flush` (`$flush` writes out; the docs follow) and
/// `ping`, for a type with `with` (the driver) and `run(op, until)`.
macro_rules! send_methods {
    ($flush:expr, $(#[$flush_doc:meta])*) => {
        /// Queues a message and writes everything queued; when the queue is
        /// at `Config::max_write_buffer` it is written first: nothing is
        /// dropped. A write timeout of the stream is returned as
        /// `Error::Io` and loses nothing: what was not written stays queued
        /// for the next call. Then, like `flush`, it answers what arrived.
        pub fn send(&mut self, message: Message) -> Result<()> {
            self.feed(message)?;
            self.flush()
        }

        /// Starts sending a text (`text`) or binary message piece by piece,
        /// in bounded memory whatever its size: write it with the
        /// `MessageWriter`, then `finish` it.
        pub fn send_stream(&mut self, text: bool) -> $crate::MessageWriter<'_, S> {
            $crate::stream::MessageWriter::new(self, text)
        }

        /// Queues a message without writing, unless the queue is full (then
        /// it writes until the message fits).
        pub fn feed(&mut self, message: Message) -> Result<()> {
            self.run(Op::Reserve, None)?;
            Ok(self.with(|d| d.send(message))?)
        }

        $(#[$flush_doc])*
        pub fn flush(&mut self) -> Result<()> {
            self.run($flush, None).map(drop)
        }

        /// Sends a ping (at most 125 bytes); its pong arrives as
        /// `Event::Pong` from a receive call.
        pub fn ping(&mut self, payload: Bytes) -> Result<()> {
            self.with(|d| d.ping(payload))?;
            self.flush()
        }
    };
}

pub(crate) use {receive_methods, send_methods};

impl<S: Transport> WebSocket<S> {
    /// Wraps a stream on which the opening handshake already happened
    /// elsewhere (e.g. an HTTP server's upgrade). Bytes read past the handshake go in first
    /// through [`from_driver`](Self::from_driver) with
    /// `Driver::with_buffer(Connection::new(role, config), bytes)`.
    pub fn from_raw(stream: S, role: Role, config: Config) -> Self {
        Self::from_driver(stream, Driver::new(Connection::new(role, config)))
    }

    /// Wraps a stream and the driver of a connection the opening handshake
    /// produced (`Accepted::connection`, `ClientResponse::connection`), so
    /// that what was negotiated reaches the connection.
    pub fn from_driver(stream: S, driver: Driver) -> Self {
        let timeout = stream.read_timeout().unwrap_or(None);
        Self {
            io: stream,
            driver,
            timer: Timer::new(timeout),
        }
    }

    pub(crate) fn run(&mut self, op: Op, until: Option<Instant>) -> Result<Option<Event>> {
        let mut link = Whole {
            io: &mut self.io,
            driver: &mut self.driver,
        };
        run(&mut link, &mut self.timer, op, until)
    }

    receive_methods!();

    send_methods!(
        Op::Flush,
        /// Writes everything queued, with vectored writes. After a write
        /// timeout of the stream the unwritten bytes stay queued for the next
        /// call.
        ///
        /// Then it reads what already arrived, without waiting
        /// ([`Transport::read_nonblocking`]), so that pings are answered and
        /// Close frames echoed while the application only sends (calling
        /// `flush` with nothing queued does just that). This reading stops
        /// behind the first data message or Close, which the next receive
        /// call returns first; a protocol error met here is returned by the
        /// next receive call (its Close frame already sent).
    );

    fn with<T>(&mut self, f: impl FnOnce(&mut Driver) -> T) -> T {
        f(&mut self.driver)
    }

    /// Closes: sends a Close with `code` and `reason` (unless the close
    /// handshake already started), then runs the handshake to its end: the
    /// peer's Close (and, for a client, the end of the stream), bounded by
    /// the core's close timeout alone (not by the receive deadline of
    /// [`set_read_timeout`](Self::set_read_timeout)); past it the peer is
    /// given up on (1006). Data messages that arrive meanwhile are kept for
    /// later `recv` calls. Returns `Ok` once the connection is over (see
    /// [`close_frame`](Self::close_frame)); an error that ends it is returned.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.driver.close(code, reason)?;
        self.run(Op::Close, None).map(drop)
    }

    ws_proto::driver_accessors!(driver);

    /// The underlying stream.
    pub const fn get_ref(&self) -> &S {
        &self.io
    }

    /// The underlying stream, mutably (reading or writing corrupts the
    /// connection; so does changing its read timeout, which each read sets).
    pub const fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The underlying stream; queued and buffered bytes are dropped.
    pub fn into_inner(self) -> S {
        self.io
    }
}
