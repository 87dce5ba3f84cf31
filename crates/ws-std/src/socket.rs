//! The WebSocket, its halves, and the run loop they share.

use alloc::{collections::VecDeque, sync::Arc};
use core::{ops::Deref, time::Duration};
use std::{
    io::{self, IoSlice, Read, Write},
    net::Shutdown,
    sync::{
        Condvar, Mutex, MutexGuard, PoisonError, TryLockError,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use bytes::{Buf, Bytes, BytesMut};
use ws_proto::{
    CloseCode, CloseFrame, Config, Connection, Event, Message, Outgoing, Role, SendError, State,
};

use crate::{Error, Result, Transport};

/// Bytes read per `read` call.
const READ_CHUNK: usize = 8 * 1024;
/// Chunks taken from the connection per vectored write.
const MAX_IOV: usize = 64;
/// Non-blocking reads per flush of an unsplit socket: this runs inside a send.
const BACKGROUND_READS: usize = 4;
/// The shortest write timeout of a bounded flush (zero means "none").
const MIN_WRITE_TIMEOUT: Duration = Duration::from_millis(1);

/// A WebSocket over a blocking stream `S`, after the opening handshake.
///
/// All state lives in the read buffer and the [`Connection`], so any call
/// that fails with a timeout can simply be retried.
#[derive(Debug)]
pub struct WebSocket<S> {
    stream: S,
    core: Core,
    reader: Reader,
}

/// The receiving half of a split [`WebSocket`]; see [`WebSocket::split`].
#[derive(Debug)]
pub struct ReadHalf<S> {
    shared: Arc<Shared<S>>,
    reader: Reader,
}

/// The sending half of a split [`WebSocket`]; see [`WebSocket::split`].
#[derive(Debug)]
pub struct WriteHalf<S> {
    shared: Arc<Shared<S>>,
}

#[derive(Debug)]
struct Shared<S> {
    stream: S,
    core: Core,
}

/// The connection and the write side's queue, each behind a short-lived lock.
/// Lock order: `out` before `conn`; neither is held across a read, and only
/// `out` (the write mutex) across a write.
#[derive(Debug)]
struct Core {
    conn: Mutex<Connection>,
    out: Mutex<Pending>,
    /// Signalled when the reader finishes (for [`WriteHalf::close`]).
    finished: Condvar,
    origin: Instant,
    /// The application queued bytes that no flush has written completely
    /// yet (`feed`, or a send whose flush failed): an unsplit socket's
    /// receive calls write those as before, blocking.
    fed: AtomicBool,
}

/// How a flush writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The application's writes: blocking, bounded only by the stream's own
    /// write timeout.
    Block,
    /// Automatic replies written while receiving: never waits for the stream
    /// ([`Transport::write_nonblocking`]); what does not fit stays queued for
    /// the next write. Streams without the capability block, as in `Block`.
    Replies,
    /// The connection ends (our Close or its echo must reach the peer before
    /// the transport is shut down): blocking, but bounded by the core's close
    /// deadline; past it, the connection is given up.
    Finish,
}

/// How one write call may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    Block,
    /// Non-blocking, or blocking for a stream without the capability.
    Try,
    /// Non-blocking, or nothing at all (best effort).
    Never,
}

/// The write timeout of a [`Mode::Finish`] flush, armed before its first
/// write (nothing is set when there is nothing to write).
#[derive(Debug, Default)]
struct Bound {
    armed: bool,
    /// When the core's close deadline passes.
    limit: Option<Instant>,
    /// The stream's own write timeout, restored afterwards.
    saved: Option<Duration>,
    /// The timeout last set on the stream, if any was.
    applied: Option<Duration>,
    /// Whether the core's deadline (not the stream's own timeout) bounds
    /// the current write.
    by_core: bool,
}

/// How a drain of the queue ended.
enum Drained {
    /// Everything queued was written (or given up on).
    All,
    /// The stream takes nothing more now; the rest stays queued.
    WouldBlock,
}

/// Chunks taken from the connection's `Outgoing` but not yet written.
#[derive(Debug, Default)]
struct Pending {
    chunks: VecDeque<Bytes>,
    shut: bool,
}

/// The receive side's own state.
#[derive(Debug)]
struct Reader {
    buf: BytesMut,
    /// The application's read timeout, applied to each read.
    timeout: Option<Duration>,
    /// The timeout last set on the stream, to skip redundant system calls.
    applied: Option<Option<Duration>>,
    close: Option<CloseFrame>,
    /// An event read while the application was only sending, returned by the
    /// next receive call. At most one: reading stops behind a data message.
    stashed: Option<Event>,
    /// An error met while the application was only sending, reported by the
    /// next receive call (after `stashed`).
    error: Option<Error>,
    done: bool,
    /// Whether this is a [`ReadHalf`]: it never blocks on writing what the
    /// application queued (the [`WriteHalf`] does that).
    split: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads one chunk and appends it to `buf`; an empty buffer holds no memory
/// while the read waits.
pub(crate) fn read_into(io: &mut impl Read, buf: &mut BytesMut) -> io::Result<usize> {
    let mut chunk = [0u8; READ_CHUNK];
    let n = io.read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

impl Pending {
    fn refill(&mut self, out: &mut Outgoing) {
        while self.chunks.len() < MAX_IOV {
            let Some(chunk) = out.pop_chunk() else { break };
            self.chunks.push_back(chunk);
        }
    }

    /// One vectored write from the front of the queue; `Ok(false)` when the
    /// stream takes nothing now (`How::Try` and `How::Never` only).
    fn write_some<S, P>(&mut self, io: &mut P, how: How) -> io::Result<bool>
    where
        S: Transport + ?Sized,
        P: Write + Deref<Target = S>,
    {
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        for (slot, chunk) in slices.iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(chunk);
        }
        let slices = &slices[..self.chunks.len().min(MAX_IOV)];
        let mut written = match how {
            How::Block => io.write_vectored(slices)?,
            How::Try | How::Never => match io.write_nonblocking(slices) {
                Ok(Some(n)) => n,
                Ok(None) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    if how == How::Never {
                        return Ok(false);
                    }
                    io.write_vectored(slices)?
                }
                Err(e) => return Err(e),
            },
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while let Some(front) = self.chunks.front_mut() {
            if written < front.len() {
                front.advance(written);
                break;
            }
            written -= front.len();
            self.chunks.pop_front();
        }
        Ok(true)
    }

    /// Shuts the write side down, once.
    fn shut<S: Transport + ?Sized>(&mut self, io: &S) {
        if !self.shut {
            self.shut = true;
            let _ = io.shutdown(Shutdown::Write);
        }
    }
}

impl Core {
    fn new(role: Role, config: Config) -> Self {
        Self {
            conn: Mutex::new(Connection::new(role, config)),
            out: Mutex::new(Pending::default()),
            finished: Condvar::new(),
            origin: Instant::now(),
            fed: AtomicBool::new(false),
        }
    }

    /// Writes everything queued (as far as `mode` allows), then shuts the
    /// write side down if the core says so. With `wait` false (the reader)
    /// it never waits for the write mutex: whoever holds it re-checks the
    /// queue after releasing it.
    fn flush<S, P>(&self, io: &mut P, mut wait: bool, mode: Mode) -> io::Result<()>
    where
        S: Transport + ?Sized,
        P: Write + Deref<Target = S>,
    {
        loop {
            let mut out = if wait {
                lock(&self.out)
            } else {
                match self.out.try_lock() {
                    Ok(guard) => guard,
                    Err(TryLockError::Poisoned(p)) => p.into_inner(),
                    Err(TryLockError::WouldBlock) => return Ok(()),
                }
            };
            let mut bound = Bound::default();
            let drained = self.drain(&mut out, io, mode, &mut bound);
            if bound.applied.is_some() {
                let _ = io.set_write_timeout(bound.saved);
            }
            drop(out);
            if matches!(drained?, Drained::WouldBlock) || !lock(&self.conn).wants_write() {
                return Ok(());
            }
            wait = false;
        }
    }

    /// The body of [`flush`](Self::flush), with the write mutex held.
    fn drain<S, P>(
        &self,
        out: &mut Pending,
        io: &mut P,
        mode: Mode,
        bound: &mut Bound,
    ) -> io::Result<Drained>
    where
        S: Transport + ?Sized,
        P: Write + Deref<Target = S>,
    {
        loop {
            {
                let mut conn = lock(&self.conn);
                if conn.is_abandoned() {
                    drop(conn);
                    self.give_up(out, io);
                    return Ok(Drained::All);
                }
                if out.chunks.is_empty() {
                    if conn.should_close_transport() {
                        drop(conn);
                        out.shut(&**io);
                        return Ok(Drained::All);
                    }
                    out.refill(conn.outgoing());
                    if out.chunks.is_empty() {
                        self.fed.store(false, Ordering::Relaxed);
                        return Ok(Drained::All);
                    }
                }
            }
            let how = match mode {
                Mode::Block => How::Block,
                Mode::Replies => How::Try,
                Mode::Finish => {
                    if !self.arm(&**io, bound) {
                        self.expire(out, io);
                        return Ok(Drained::All);
                    }
                    How::Block
                }
            };
            match out.write_some(io, how) {
                Ok(true) => {}
                Ok(false) => return Ok(Drained::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) && mode == Mode::Finish && bound.by_core => {
                    self.expire(out, io);
                    return Ok(Drained::All);
                }
                Err(e) if is_timeout(&e) => return Err(e),
                Err(e) => {
                    // The transport is broken: the core reports 1006.
                    lock(&self.conn).handle_eof();
                    return Err(e);
                }
            }
        }
    }

    /// Before each write of a [`Mode::Finish`] flush: bounds it by the time
    /// left until the core's close deadline (or the close timeout from now
    /// when the core has no timer running), unless the stream's own write
    /// timeout is shorter. `false` once that deadline has passed.
    fn arm<S: Transport + ?Sized>(&self, io: &S, bound: &mut Bound) -> bool {
        if !bound.armed {
            bound.armed = true;
            let now = self.origin.elapsed();
            let left = {
                let mut conn = lock(&self.conn);
                match conn.poll_timeout(now) {
                    Some(deadline) => Some(deadline.saturating_sub(now)),
                    None => conn.config().close_timeout,
                }
            };
            // Without the stream's current timeout it could not be restored.
            if let (Some(left), Ok(saved)) = (left, io.write_timeout()) {
                bound.limit = Some(Instant::now() + left);
                bound.saved = saved;
            }
        }
        let Some(limit) = bound.limit else {
            return true;
        };
        let left = limit.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let left = left.max(MIN_WRITE_TIMEOUT);
        let timeout = match bound.saved {
            Some(own) if own < left => own,
            _ => left,
        };
        bound.by_core = timeout == left;
        if bound.applied != Some(timeout) && io.set_write_timeout(Some(timeout)).is_ok() {
            bound.applied = Some(timeout);
        }
        true
    }

    /// The close deadline passed during a finishing flush: the core gives up
    /// on the peer (if its timer ran out), and so does the flush.
    fn expire<S, P>(&self, out: &mut Pending, io: &mut P)
    where
        S: Transport + ?Sized,
        P: Write + Deref<Target = S>,
    {
        lock(&self.conn).handle_timeout(self.origin.elapsed());
        self.give_up(out, io);
    }

    /// Gives up on the peer: writes what the stream takes now without
    /// waiting (the core's last Close, if it fits), drops the rest, and shuts
    /// the write side down.
    fn give_up<S, P>(&self, out: &mut Pending, io: &mut P)
    where
        S: Transport + ?Sized,
        P: Write + Deref<Target = S>,
    {
        loop {
            if out.chunks.is_empty() {
                out.refill(lock(&self.conn).outgoing());
            }
            if out.chunks.is_empty() || !matches!(out.write_some(io, How::Never), Ok(true)) {
                break;
            }
        }
        out.chunks.clear();
        {
            let mut conn = lock(&self.conn);
            let queued = conn.outgoing();
            // Twice at most: passing a pong may queue the waiting one.
            while !queued.is_empty() {
                queued.advance(queued.len());
            }
        }
        self.fed.store(false, Ordering::Relaxed);
        out.shut(&**io);
    }

    /// Runs a command; when the core's buffer is full, flushes and retries.
    fn queue<S, P>(
        &self,
        io: &mut P,
        mut command: impl FnMut(&mut Connection) -> Result<(), SendError>,
    ) -> Result<()>
    where
        S: Transport + ?Sized,
        P: Write + Deref<Target = S>,
    {
        loop {
            let (result, queued) = {
                let mut conn = lock(&self.conn);
                (command(&mut conn), conn.wants_write())
            };
            match result {
                Err(SendError::Full(_)) if queued => self.flush(io, true, Mode::Block)?,
                result => {
                    if result.is_ok() {
                        self.fed.store(true, Ordering::Relaxed);
                    }
                    return result.map_err(Error::Send);
                }
            }
        }
    }

    fn close<S, P>(&self, io: &mut P, code: CloseCode, reason: &str) -> Result<()>
    where
        S: Transport + ?Sized,
        P: Write + Deref<Target = S>,
    {
        let queued = lock(&self.conn).close(code, reason);
        match queued {
            Ok(()) | Err(SendError::Closed) => Ok(self.flush(io, true, Mode::Finish)?),
            Err(e) => Err(e.into()),
        }
    }
}

impl Reader {
    fn new(buf: BytesMut, timeout: Option<Duration>) -> Self {
        Self {
            buf,
            timeout,
            applied: None,
            close: None,
            stashed: None,
            error: None,
            done: false,
            split: false,
        }
    }

    /// The receive side's write: the Close echo or a protocol error's Close
    /// of a finished connection goes out bounded by the close deadline, what
    /// the application fed on an unsplit socket blocking (as `flush` would),
    /// and automatic replies without waiting (see [`Mode`]).
    fn flush<S, P>(&self, st: &Core, io: &mut P) -> io::Result<()>
    where
        S: Transport + ?Sized,
        P: Write + Deref<Target = S>,
    {
        let mode = if lock(&st.conn).is_finished() {
            Mode::Finish
        } else if !self.split && st.fed.load(Ordering::Relaxed) {
            Mode::Block
        } else {
            Mode::Replies
        };
        st.flush(io, false, mode)
    }

    /// Ends the connection after an I/O error (not a timeout): the core
    /// learns that the transport is gone, `close_frame` reports 1006 with
    /// the error's kind, and later receive calls return `None`.
    fn fail(&mut self, st: &Core, e: io::Error) -> Error {
        {
            let mut conn = lock(&st.conn);
            conn.handle_eof();
            // Nothing more will be read: the core ends its event stream with
            // its own 1006 (so its state is `Closed`), which is not returned.
            self.buf.clear();
            let _ = conn.next_event(&mut self.buf);
        }
        if self.close.is_none() {
            self.close = Some(CloseFrame::new(CloseCode::ABNORMAL, e.kind().to_string()));
        }
        self.finish(st);
        Error::Io(e)
    }

    /// Returns what [`read_available`](Self::read_available) kept: the
    /// stashed event, then a recorded error.
    fn take_kept<S, P>(&mut self, st: &Core, io: &mut P) -> Option<Result<Event>>
    where
        S: Transport + ?Sized,
        P: Write + Deref<Target = S>,
    {
        if let Some(event) = self.stashed.take() {
            // Replies not yet written go out now, as in `recv_event`.
            let _ = self.flush(st, io);
            if matches!(event, Event::Close(_)) {
                self.finish(st);
            }
            return Some(Ok(event));
        }
        let error = self.error.take()?;
        let _ = self.flush(st, io);
        match error {
            Error::Io(e) => Some(Err(self.fail(st, e))),
            error => {
                if matches!(error, Error::Protocol(_)) {
                    self.finish(st);
                }
                Some(Err(error))
            }
        }
    }

    /// Reads what the stream already has, without waiting, so that pings are
    /// answered and Close frames echoed while the application only sends
    /// (unsplit sockets only: a `WriteHalf` must not read).
    ///
    /// Stops at the first data message or Close, which waits in `stashed`
    /// for the next receive call: memory stays bounded and nothing is lost (a
    /// partial frame stays in the read buffer). Ping and Pong events read
    /// here are kept only while nothing else waits (their automatic replies
    /// are sent regardless). Errors are recorded for the next receive call.
    fn read_available<S: Transport + ?Sized>(&mut self, st: &Core, io: &mut &mut S) {
        let mut reads = 0;
        loop {
            if self.done
                || self.error.is_some()
                || matches!(self.stashed, Some(Event::Message(_) | Event::Close(_)))
            {
                break;
            }
            let polled = lock(&st.conn).next_event(&mut self.buf);
            match polled {
                Ok(Some(event)) => {
                    if let Event::Close(frame) = &event {
                        self.close = Some(frame.clone());
                    }
                    if self.stashed.is_none() || !matches!(event, Event::Ping(_) | Event::Pong(_)) {
                        self.stashed = Some(event);
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    // Reported (its Close sent first) by the next receive call.
                    self.error = Some(e.into());
                    break;
                }
            }
            if reads == BACKGROUND_READS {
                break;
            }
            reads += 1;
            let mut chunk = [0u8; READ_CHUNK];
            match io.read_nonblocking(&mut chunk) {
                // Loop once more: the core yields its 1006 Close.
                Ok(Some(0)) => lock(&st.conn).handle_eof(),
                Ok(Some(n)) => self.buf.extend_from_slice(&chunk[..n]),
                // Nothing more for now, or not supported by the stream.
                Ok(None) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => break,
                Err(e) => {
                    // As in `recv_event`: the core reports 1006 after it.
                    lock(&st.conn).handle_eof();
                    self.error = Some(e.into());
                    break;
                }
            }
        }
        // Best effort, as while receiving: a failure stays with the core or
        // the queue, for the next call to meet.
        let _ = self.flush(st, io);
    }

    /// The run loop: drain an event, flush, re-arm the timer, read.
    fn recv_event<S, P>(&mut self, st: &Core, io: &mut P) -> Option<Result<Event>>
    where
        S: Transport + ?Sized,
        P: Read + Write + Deref<Target = S>,
    {
        if let Some(kept) = self.take_kept(st, io) {
            return Some(kept);
        }
        if self.done {
            return None;
        }
        loop {
            let polled = lock(&st.conn).next_event(&mut self.buf);
            match polled {
                Ok(Some(event)) => {
                    // Pongs go out now if the stream takes them without
                    // waiting (the rest with the next write); the Close echo
                    // is written bounded by the close timeout.
                    let _ = self.flush(st, io);
                    if let Event::Close(frame) = &event {
                        self.close = Some(frame.clone());
                        self.finish(st);
                    }
                    return Some(Ok(event));
                }
                Ok(None) => {}
                Err(e) => {
                    // Its Close goes out first, bounded by the close timeout.
                    let _ = self.flush(st, io);
                    self.finish(st);
                    return Some(Err(e.into()));
                }
            }
            match self.flush(st, io) {
                Ok(()) => {}
                Err(e) if is_timeout(&e) => return Some(Err(e.into())),
                Err(e) => return Some(Err(self.fail(st, e))),
            }
            let now = st.origin.elapsed();
            let deadline = lock(&st.conn).poll_timeout(now);
            if deadline.is_some_and(|deadline| deadline <= now) {
                lock(&st.conn).handle_timeout(now);
                continue;
            }
            let core_wait = deadline.map(|d| (d - now).max(Duration::from_millis(1)));
            let by_core = core_wait.is_some_and(|c| self.timeout.is_none_or(|t| c < t));
            let wait = if by_core { core_wait } else { self.timeout };
            if self.applied != Some(wait) {
                if let Err(e) = io.set_read_timeout(wait) {
                    return Some(Err(e.into()));
                }
                self.applied = Some(wait);
            }
            if self.buf.is_empty() {
                // Idle: release the buffer (it may share a delivered message's allocation).
                self.buf = BytesMut::new();
            } else {
                // A large frame in progress: room for the rest of it at once
                // (as far as the core advises), not a doubling at a time.
                let ahead = lock(&st.conn).read_ahead(&self.buf);
                if ahead > READ_CHUNK && ahead > self.buf.capacity() - self.buf.len() {
                    self.buf.reserve(ahead);
                }
            }
            match read_into(io, &mut self.buf) {
                Ok(0) => lock(&st.conn).handle_eof(),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The core's deadline: loop to handle_timeout. The caller's: report.
                Err(e) if is_timeout(&e) && by_core => {}
                Err(e) if is_timeout(&e) => return Some(Err(e.into())),
                Err(e) => return Some(Err(self.fail(st, e))),
            }
        }
    }

    fn finish(&mut self, st: &Core) {
        self.done = true;
        // Take the lock so a waiting `WriteHalf::close` cannot miss the wakeup.
        drop(lock(&st.conn));
        st.finished.notify_all();
    }

    fn recv<S, P>(&mut self, st: &Core, io: &mut P) -> Option<Result<Message>>
    where
        S: Transport + ?Sized,
        P: Read + Write + Deref<Target = S>,
    {
        loop {
            match self.recv_event(st, io)? {
                Ok(Event::Message(message)) => return Some(Ok(message)),
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl<S: Transport> WebSocket<S> {
    /// Wraps a stream on which the opening handshake already happened
    /// elsewhere (e.g. an HTTP server's upgrade).
    pub fn from_raw(stream: S, role: Role, config: Config) -> Self {
        Self::from_raw_with_buffer(stream, role, config, BytesMut::new())
    }

    /// Like [`from_raw`](Self::from_raw), with bytes already read past the
    /// handshake: they are the connection's first input.
    pub fn from_raw_with_buffer(stream: S, role: Role, config: Config, read_buf: BytesMut) -> Self {
        let timeout = stream.read_timeout().unwrap_or(None);
        Self {
            stream,
            core: Core::new(role, config),
            reader: Reader::new(read_buf, timeout),
        }
    }

    /// The next data message. Pings are answered and pongs consumed inside.
    ///
    /// `None` once the close handshake finished, the transport ended or after
    /// an error was returned; then [`close_frame`](Self::close_frame) tells
    /// why. A protocol error is returned once, after its Close frame was sent
    /// (bounded by the close timeout) and the transport shut down; so is an
    /// I/O error that ends the connection (e.g. a reset), after which
    /// `close_frame` reports 1006. A read timeout returns `Error::Io`
    /// (`WouldBlock` / `TimedOut`) and loses nothing: call again. What
    /// [`flush`](Self::flush) read while the application only sent comes
    /// first.
    ///
    /// Replies to pings are written without waiting for the stream
    /// ([`Transport::write_nonblocking`]): what it does not take stays queued
    /// for the next write, so a peer that never reads cannot block this
    /// call. What the application queued with [`feed`](Self::feed) and did
    /// not flush is written as `flush` would, blocking.
    pub fn recv(&mut self) -> Option<Result<Message>> {
        self.reader.recv(&self.core, &mut &mut self.stream)
    }

    /// Like [`recv`](Self::recv) but yields every event: pings (already
    /// answered), pongs and the Close (then `None`).
    pub fn recv_event(&mut self) -> Option<Result<Event>> {
        self.reader.recv_event(&self.core, &mut &mut self.stream)
    }

    /// Queues a message and writes everything queued. When the queue is at
    /// `Config::max_write_buffer` it is flushed first: nothing is dropped.
    ///
    /// Like [`flush`](Self::flush), it then answers pings that already
    /// arrived, so an application that only sends stays responsive.
    pub fn send(&mut self, message: Message) -> Result<()> {
        self.feed(message)?;
        self.flush()
    }

    /// Queues a message without writing, unless the queue is full.
    pub fn feed(&mut self, message: Message) -> Result<()> {
        self.core
            .queue(&mut &mut self.stream, |c| c.send(message.clone()))
    }

    /// Writes everything queued, with vectored writes. After a write timeout
    /// the unwritten bytes stay queued for the next call.
    ///
    /// Once written, it also reads what already arrived, without waiting
    /// ([`Transport::read_nonblocking`]), so that pings are answered and
    /// Close frames echoed even when the application only sends (calling
    /// `flush` with nothing queued does just that). This reading stops at the
    /// first data message or Close, which the next `recv` / `recv_event`
    /// returns first; `recv_event` also returns the first Ping or Pong read
    /// this way if nothing else was waiting, and a protocol error met here is
    /// returned by the next receive call (its Close frame already sent).
    /// Streams without the capability, like [`Plain`](crate::Plain) ones,
    /// answer pings only while receiving.
    pub fn flush(&mut self) -> Result<()> {
        self.core.flush(&mut &mut self.stream, true, Mode::Block)?;
        self.reader
            .read_available(&self.core, &mut &mut self.stream);
        Ok(())
    }

    /// Sends a ping (at most 125 bytes); its pong arrives as `Event::Pong`.
    pub fn ping(&mut self, payload: Bytes) -> Result<()> {
        self.core
            .queue(&mut &mut self.stream, |c| c.ping(payload.clone()))?;
        self.flush()
    }

    /// Closes: sends a Close with `code` and `reason` (unless one was sent),
    /// then reads (discarding data) until the peer's Close arrives, the
    /// transport ends or the core's close timeout fires, and shuts the
    /// transport down. Writing the Close (and what was queued before it) is
    /// bounded by the close timeout too: past it the connection is given up
    /// (1006). After a read or write timeout of the stream's own, call again.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.core.close(&mut &mut self.stream, code, reason)?;
        while let Some(event) = self.recv_event() {
            event?;
        }
        let _ = self.stream.shutdown(Shutdown::Write);
        Ok(())
    }

    /// Sets the read timeout used by `recv` (a plain
    /// `get_ref().set_read_timeout` would be overwritten by the core's timer).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)?;
        self.reader.timeout = timeout;
        self.reader.applied = Some(timeout);
        Ok(())
    }

    /// Why the connection ended: the peer's Close frame, or code 1006
    /// ([`CloseCode::ABNORMAL`]) when it ended without one: the transport
    /// ended, a keepalive or close timeout gave up on the peer, or an I/O
    /// error ended it (the reason is then the error's kind, e.g.
    /// "connection reset"; the error itself was returned once by the
    /// receive call). `None` while the connection is open.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.reader.close.as_ref()
    }

    /// The protocol state machine, e.g. for `state()` or `close_received()`.
    pub fn connection(&self) -> MutexGuard<'_, Connection> {
        lock(&self.core.conn)
    }

    /// The protocol state machine, e.g. for `send_fragment` (follow with
    /// [`flush`](Self::flush)).
    pub fn connection_mut(&mut self) -> &mut Connection {
        self.core
            .conn
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The underlying stream.
    pub const fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The underlying stream, mutably (reading or writing corrupts the
    /// connection).
    pub const fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The underlying stream; queued and buffered bytes are dropped.
    pub fn into_inner(self) -> S {
        self.stream
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
    /// The connection sits behind a mutex held only for short calls; writes
    /// hold a small write mutex. Pongs and Close replies produced while
    /// receiving are written by the reader when the write side is free
    /// (pongs without waiting for the stream, what it does not take then
    /// left queued), and otherwise by the writer as it finishes its current
    /// write. The reader never blocks on writing, except to send the final
    /// Close of a finished connection (bounded by the close timeout).
    pub fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        let shared = Arc::new(Shared {
            stream: self.stream,
            core: self.core,
        });
        let write = WriteHalf {
            shared: Arc::clone(&shared),
        };
        let mut reader = self.reader;
        reader.split = true;
        let read = ReadHalf { shared, reader };
        (read, write)
    }
}

impl<S> WebSocket<S> {
    /// Puts split halves back together; fails (dropping both) if they come
    /// from different sockets.
    pub fn reunite(read: ReadHalf<S>, write: WriteHalf<S>) -> Result<Self> {
        reunite(read, write)
    }
}

impl<S> ReadHalf<S> {
    /// Puts the halves back together: `WebSocket::reunite(self, write)`.
    pub fn reunite(self, write: WriteHalf<S>) -> Result<WebSocket<S>> {
        reunite(self, write)
    }
}

fn reunite<S>(read: ReadHalf<S>, write: WriteHalf<S>) -> Result<WebSocket<S>> {
    if !Arc::ptr_eq(&read.shared, &write.shared) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the halves come from different WebSockets",
        )
        .into());
    }
    drop(write);
    let shared =
        Arc::try_unwrap(read.shared).map_err(|_| io::Error::other("a half is still shared"))?;
    let mut reader = read.reader;
    reader.split = false;
    Ok(WebSocket {
        stream: shared.stream,
        core: shared.core,
        reader,
    })
}

impl<S> ReadHalf<S>
where
    S: Transport,
    for<'a> &'a S: Read + Write,
{
    /// Like [`WebSocket::recv`].
    pub fn recv(&mut self) -> Option<Result<Message>> {
        self.reader
            .recv(&self.shared.core, &mut &self.shared.stream)
    }

    /// Like [`WebSocket::recv_event`].
    pub fn recv_event(&mut self) -> Option<Result<Event>> {
        self.reader
            .recv_event(&self.shared.core, &mut &self.shared.stream)
    }

    /// Like [`WebSocket::set_read_timeout`].
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.shared.stream.set_read_timeout(timeout)?;
        self.reader.timeout = timeout;
        self.reader.applied = Some(timeout);
        Ok(())
    }

    /// Like [`WebSocket::close_frame`].
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.reader.close.as_ref()
    }

    /// The protocol state machine (do not keep the guard across calls).
    pub fn connection(&self) -> MutexGuard<'_, Connection> {
        lock(&self.shared.core.conn)
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.shared.stream
    }
}

impl<S> WriteHalf<S>
where
    S: Transport,
    for<'a> &'a S: Read + Write,
{
    /// Like [`WebSocket::send`], but never reads (the [`ReadHalf`] answers
    /// pings).
    pub fn send(&mut self, message: Message) -> Result<()> {
        self.feed(message)?;
        self.flush()
    }

    /// Like [`WebSocket::feed`].
    pub fn feed(&mut self, message: Message) -> Result<()> {
        let shared = &*self.shared;
        shared
            .core
            .queue(&mut &shared.stream, |c| c.send(message.clone()))
    }

    /// Like [`WebSocket::flush`], but never reads (the [`ReadHalf`] does);
    /// also writes pongs the reader could not.
    pub fn flush(&mut self) -> Result<()> {
        Ok(self
            .shared
            .core
            .flush(&mut &self.shared.stream, true, Mode::Block)?)
    }

    /// Like [`WebSocket::ping`].
    pub fn ping(&mut self, payload: Bytes) -> Result<()> {
        let shared = &*self.shared;
        shared
            .core
            .queue(&mut &shared.stream, |c| c.ping(payload.clone()))?;
        self.flush()
    }

    /// Sends a Close (writing it is bounded by the close timeout too) and
    /// waits until the [`ReadHalf`] has received the peer's Close (so it
    /// must keep receiving) or the core's close timeout fires; then shuts the
    /// transport down, which also wakes a reader still blocked after a
    /// timeout (its `recv` then reports 1006).
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        let shared = &*self.shared;
        let st = &shared.core;
        st.close(&mut &shared.stream, code, reason)?;
        let mut conn = lock(&st.conn);
        while conn.state() != State::Closed {
            let now = st.origin.elapsed();
            conn = match conn.poll_timeout(now) {
                Some(deadline) if deadline <= now => {
                    conn.handle_timeout(now);
                    conn
                }
                Some(deadline) => {
                    st.finished
                        .wait_timeout(conn, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => st
                    .finished
                    .wait(conn)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
        drop(conn);
        let _ = shared.stream.shutdown(Shutdown::Both);
        Ok(())
    }

    /// The protocol state machine (do not keep the guard across calls).
    pub fn connection(&self) -> MutexGuard<'_, Connection> {
        lock(&self.shared.core.conn)
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.shared.stream
    }
}
