//! # ws-futures: WebSocket over `futures-io`
//!
//! Drives the sans-IO [`ws_proto`] core over any
//! `futures_io::AsyncRead + AsyncWrite + Unpin` stream, so it runs on smol,
//! async-std or any other executor. Timers come from [`async_io::Timer`].
//!
//! ```no_run
//! use ws_futures::{Message, connect};
//!
//! # fn main() -> Result<(), ws_futures::Error> {
//! smol::block_on(async {
//!     let (mut ws, _response) = connect("ws://127.0.0.1:9002/").await?;
//!     ws.send(Message::text("hello")).await?;
//!     if let Some(reply) = ws.recv().await {
//!         println!("echo: {:?}", reply?);
//!     }
//!     ws.close(ws_futures::CloseCode::NORMAL, "bye").await
//! })
//! # }
//! ```
//!
//! A server accepts connections with [`accept`], or in two steps with
//! [`read_request`] and [`Incoming::accept`] / [`Incoming::reject`].
//!
//! ## Cancellation
//! [`WebSocket::recv`] and [`WebSocket::recv_event`] are cancel-safe: all
//! state lives in the receiver (read buffer, an event read during a flush)
//! and the [`Connection`], so dropping the future loses nothing. The sending
//! methods queue the message first and then write: a future dropped while it
//! waits for room in the outgoing buffer drops its message unsent; one
//! dropped after queueing (while flushing) leaves the message queued, and it
//! goes out with the next write (any send, flush, or recv).
//!
//! ## Progress
//! Reading, automatic replies (pongs, close echoes), keepalive pings and the
//! close timeout all advance inside `recv` / `recv_event` (and `close`,
//! which receives until the end). Keep one of them running, e.g. in a loop
//! or on a [`ReadHalf`], for the connection to stay healthy.
//!
//! A whole [`WebSocket`] also answers pings and echoes Close frames while
//! the application only sends: once its flush (`send`, `ping`, `flush`,
//! `Sink::poll_flush`) has written everything, it reads what already
//! arrived, without waiting (a few reads at most), and writes the automatic
//! replies if the transport takes them. That reading stops at the first data
//! message or Close, which the next `recv` / `recv_event` returns first (so
//! memory stays bounded and nothing is lost; a Ping or Pong read there is
//! kept only while nothing else waits), and a protocol error or a failed
//! read met there is returned by the next receive call. Once a message waits,
//! pings go unanswered until it is received. Keepalive pings and the close
//! timeout still need a receive call, and a [`WriteHalf`] never reads: its
//! [`ReadHalf`] does.
//!
//! ## Transport shutdown
//! The write side is shut down with `AsyncWrite::poll_close`. async-std's
//! `TcpStream` only flushes there; its socket closes when dropped.

#![forbid(unsafe_code)]

extern crate alloc;

use alloc::sync::Arc;
use core::{
    future::{Future, poll_fn},
    ops::DerefMut,
    pin::{Pin, pin},
    task::{Context, Poll, Waker, ready},
    time::Duration,
};
use std::{
    io::{self, IoSlice},
    sync::{Mutex, MutexGuard, PoisonError},
    time::Instant,
};

use async_io::Timer;
pub use async_net::TcpStream;
use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_io::{AsyncRead, AsyncWrite};
use futures_sink::Sink;
pub use ws_proto::adapter::{Error, Options, Result};
pub use ws_proto::{
    self, AcceptOptions, ClientRequest, ClientResponse, CloseCode, CloseFrame, Config, Connection,
    Event, HandshakeConfig, HandshakeError, Message, ProtocolError, Role, SendError, ServerRequest,
};
use ws_proto::{ClientHandshake, ServerHandshake};

/// The smallest read; an idle connection holds about this much buffer.
const MIN_READ: usize = 4 * 1024;
/// The largest read, used while a large message arrives.
const MAX_READ: usize = 256 * 1024;
/// An empty read buffer with more capacity than this is released.
const KEEP_IDLE: usize = 16 * 1024;
/// Chunks per vectored write: a few are plenty (the rest goes in the next
/// round), and a small array is cheap to set up.
const IOV: usize = 16;

// ----- The shared code path -----

/// The connection and write-side state (behind a mutex once split).
#[derive(Debug)]
struct Core {
    conn: Connection,
    origin: Instant,
    /// Bytes were written since the stream was last flushed.
    unflushed: bool,
    /// The write side is shut down.
    shut_down: bool,
    /// The reader's waker, for writer actions that change what it waits for.
    reader: Option<Waker>,
}

/// The read-side state, owned by whoever receives.
#[derive(Debug)]
struct Reader {
    buf: BytesMut,
    timer: Timer,
    armed: Option<Duration>,
    eof: bool,
    done: bool,
    close_frame: Option<CloseFrame>,
    /// An event read during a flush, returned first by the next receive
    /// call. At most one: that reading stops behind a data message or Close.
    stashed: Option<Event>,
    /// A read error met during a flush, for the next receive call.
    read_error: Option<io::Error>,
}

/// Access to the core and the stream: borrowed, or locked per call.
trait Io {
    type S: AsyncRead + AsyncWrite + Unpin;
    /// Whether the halves are split (the reader must not steal the writer's wakeups).
    const SPLIT: bool;
    fn core(&mut self) -> impl DerefMut<Target = Core> + '_;
    fn stream(&mut self) -> impl DerefMut<Target = Self::S> + '_;
    fn both(
        &mut self,
    ) -> (
        impl DerefMut<Target = Core> + '_,
        impl DerefMut<Target = Self::S> + '_,
    );
}

#[derive(Debug)]
struct Owned<'a, S> {
    core: &'a mut Core,
    stream: &'a mut S,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io for Owned<'_, S> {
    type S = S;
    const SPLIT: bool = false;
    fn core(&mut self) -> impl DerefMut<Target = Core> + '_ {
        &mut *self.core
    }
    fn stream(&mut self) -> impl DerefMut<Target = S> + '_ {
        &mut *self.stream
    }
    fn both(
        &mut self,
    ) -> (
        impl DerefMut<Target = Core> + '_,
        impl DerefMut<Target = S> + '_,
    ) {
        (&mut *self.core, &mut *self.stream)
    }
}

/// What the two halves share. Locks are held for one synchronous call or
/// one `poll_*` of the stream, never across `Pending`; the core is always
/// locked before the stream.
#[derive(Debug)]
struct Shared<S> {
    core: Mutex<Core>,
    stream: Mutex<S>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io for &Shared<S> {
    type S = S;
    const SPLIT: bool = true;
    fn core(&mut self) -> impl DerefMut<Target = Core> + '_ {
        lock(&self.core)
    }
    fn stream(&mut self) -> impl DerefMut<Target = S> + '_ {
        lock(&self.stream)
    }
    fn both(
        &mut self,
    ) -> (
        impl DerefMut<Target = Core> + '_,
        impl DerefMut<Target = S> + '_,
    ) {
        (lock(&self.core), lock(&self.stream))
    }
}

/// Writes the queued bytes (vectored), flushes the stream, and shuts the
/// write side down once the core says the transport is done.
fn poll_write_out(cx: &mut Context<'_>, io: &mut impl Io) -> Poll<io::Result<()>> {
    let (mut core, mut stream) = io.both();
    let (core, mut stream) = (&mut *core, Pin::new(&mut *stream));
    while core.conn.wants_write() && !core.conn.should_close_transport() && !core.shut_down {
        let out = core.conn.outgoing();
        let written = if out.chunk().len() == out.remaining() {
            // One chunk (small frames, encoded back to back): a plain write.
            ready!(stream.as_mut().poll_write(cx, out.chunk()))?
        } else {
            let mut slices = [IoSlice::new(&[]); IOV];
            let count = out.chunks_vectored(&mut slices);
            ready!(stream.as_mut().poll_write_vectored(cx, &slices[..count]))?
        };
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        out.advance(written);
        core.unflushed = true;
    }
    if core.unflushed {
        ready!(stream.as_mut().poll_flush(cx))?;
        core.unflushed = false;
    }
    if core.conn.should_close_transport() && !core.shut_down {
        if core.conn.is_abandoned() && core.conn.wants_write() {
            // The core gave up on the peer; its Close (1011 after a keepalive
            // timeout) goes out if the transport takes it now, never waiting.
            let mut slices = [IoSlice::new(&[]); IOV];
            let out = core.conn.outgoing();
            let count = out.chunks_vectored(&mut slices);
            if let Poll::Ready(Ok(written)) =
                stream.as_mut().poll_write_vectored(cx, &slices[..count])
            {
                out.advance(written);
            }
        }
        // An error (the peer already hung up) changes nothing: we are done.
        let _ = ready!(stream.poll_close(cx));
        core.shut_down = true;
        if let Some(reader) = core.reader.take() {
            reader.wake();
        }
    }
    Poll::Ready(Ok(()))
}

/// The reader's write: with its own waker when alone or when the transport
/// must be closed; otherwise without waiting (the writer retries).
fn poll_write_from_reader<I: Io>(cx: &mut Context<'_>, io: &mut I) -> Poll<io::Result<()>> {
    if I::SPLIT && !io.core().conn.should_close_transport() {
        poll_write_out(&mut Context::from_waker(Waker::noop()), io)
    } else {
        poll_write_out(cx, io)
    }
}

/// Reads into the spare end of `buf`, growing the read while a large
/// message arrives and releasing a large buffer once it is empty. `ahead`
/// is the core's [`read_ahead`](Connection::read_ahead) advice: room for
/// the rest of a large frame is made at once, not a doubling at a time.
fn poll_read_buf<S: AsyncRead + Unpin>(
    cx: &mut Context<'_>,
    stream: &mut S,
    buf: &mut BytesMut,
    ahead: usize,
) -> Poll<io::Result<usize>> {
    let start = buf.len();
    if start == 0 && buf.capacity() > KEEP_IDLE {
        *buf = BytesMut::new();
    }
    let read_size = start.clamp(MIN_READ, MAX_READ);
    if ahead > read_size && ahead > buf.capacity() - start {
        buf.reserve(ahead);
    }
    buf.resize(start + read_size, 0);
    let result = Pin::new(stream).poll_read(cx, &mut buf[start..]);
    let read = match &result {
        Poll::Ready(Ok(n)) => *n,
        _ => 0,
    };
    buf.truncate(start + read);
    result
}

/// The receive loop: events, automatic replies, transport close, the timer,
/// and reads. Returns `Pending` only while waiting for bytes or the timer,
/// with all state kept in `rd` and the core: cancel-safe.
fn poll_recv_event(
    cx: &mut Context<'_>,
    rd: &mut Reader,
    io: &mut impl Io,
) -> Poll<Option<Result<Event>>> {
    if let Some(event) = rd.stashed.take() {
        return Poll::Ready(Some(Ok(event)));
    }
    loop {
        if rd.done {
            return Poll::Ready(None);
        }
        let next = io.core().conn.next_event(&mut rd.buf);
        match next {
            Ok(Some(event)) => {
                if let Event::Close(frame) = &event {
                    rd.close_frame = Some(frame.clone());
                }
                // Pongs and close echoes leave now if they can; errors show next time.
                let _ = poll_write_from_reader(cx, io);
                return Poll::Ready(Some(Ok(event)));
            }
            Ok(None) => {}
            Err(error) => {
                // The core queued the Close frame: send it and hang up first.
                let _ = ready!(poll_write_out(cx, io));
                rd.done = true;
                return Poll::Ready(Some(Err(Error::Protocol(error))));
            }
        }
        if let Poll::Ready(Err(e)) = poll_write_from_reader(cx, io) {
            rd.done = true;
            return Poll::Ready(Some(Err(e.into())));
        }
        {
            let mut core = io.core();
            if core.shut_down {
                rd.done = true;
                return Poll::Ready(None);
            }
            let now = core.origin.elapsed();
            if let Some(deadline) = core.conn.poll_timeout(now) {
                if deadline <= now {
                    core.conn.handle_timeout(now);
                    continue;
                }
                if rd.armed != Some(deadline) {
                    rd.timer.set_at(core.origin + deadline);
                    rd.armed = Some(deadline);
                }
                if Pin::new(&mut rd.timer).poll(cx).is_ready() {
                    rd.armed = None;
                    let now = core.origin.elapsed();
                    core.conn.handle_timeout(now);
                    continue;
                }
            }
            if !core
                .reader
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                core.reader = Some(cx.waker().clone());
            }
        }
        if rd.eof {
            return Poll::Pending;
        }
        let read = match rd.read_error.take() {
            Some(e) => Err(e),
            None => {
                let ahead = if rd.buf.is_empty() {
                    0
                } else {
                    io.core().conn.read_ahead(&rd.buf)
                };
                ready!(poll_read_buf(cx, &mut *io.stream(), &mut rd.buf, ahead))
            }
        };
        match read {
            Ok(0) => {
                rd.eof = true;
                io.core().conn.handle_eof();
            }
            Ok(_) => {}
            Err(e) => {
                (rd.eof, rd.done) = (true, true);
                let mut core = io.core();
                if core.conn.is_finished() {
                    // The close handshake was complete: a reset now is only
                    // how some peers hang up (Autobahn's server aborts).
                    return Poll::Ready(None);
                }
                // Complete messages were drained before reading: what the core
                // reports now is the 1006 close, kept for `close_frame`.
                core.conn.handle_eof();
                if let Ok(Some(Event::Close(frame))) = core.conn.next_event(&mut rd.buf) {
                    rd.close_frame = Some(frame);
                }
                return Poll::Ready(Some(Err(e.into())));
            }
        }
    }
}

/// Reads at most this many times per flush of a whole [`WebSocket`].
const BACKGROUND_READS: usize = 4;

/// Run by a whole [`WebSocket`]'s flush once everything is written: reads
/// what the transport already has, without waiting, so that pings are
/// answered and Close frames echoed while the application only sends.
///
/// Stops at the first data message or Close, which waits in `rd.stashed`
/// for the next receive call: memory stays bounded and nothing is lost. A
/// Ping or Pong read here is kept only while the slot is empty (its
/// automatic reply goes out regardless). A protocol error stays in the core,
/// whose `next_event` returns it again to the next receive call (after any
/// stashed event); a read error waits in `rd.read_error`. End of stream is
/// handed to the core. Then the replies are written, best effort.
fn poll_background(cx: &mut Context<'_>, rd: &mut Reader, io: &mut impl Io) {
    // The reads never wait. They register the receiver's waker, if there is
    // one, so that a receive pending elsewhere (e.g. after
    // `StreamExt::split`) keeps its wakeup; otherwise nobody's.
    let receiver = io.core().reader.clone();
    let mut read_cx = Context::from_waker(receiver.as_ref().unwrap_or(Waker::noop()));
    let (mut reads, mut progress) = (0, false);
    loop {
        if rd.done || rd.eof || rd.read_error.is_some() || io.core().shut_down {
            break;
        }
        if matches!(rd.stashed, Some(Event::Message(_) | Event::Close(_))) {
            break;
        }
        let next = io.core().conn.next_event(&mut rd.buf);
        match next {
            Ok(Some(event)) => {
                progress = true;
                if let Event::Close(frame) = &event {
                    rd.close_frame = Some(frame.clone());
                }
                if rd.stashed.is_none() || !matches!(event, Event::Ping(_) | Event::Pong(_)) {
                    rd.stashed = Some(event);
                }
                continue;
            }
            Ok(None) => {}
            Err(_) => {
                // Kept by the core for the next receive call.
                progress = true;
                break;
            }
        }
        if reads == BACKGROUND_READS {
            break;
        }
        reads += 1;
        let read = poll_read_buf(&mut read_cx, &mut *io.stream(), &mut rd.buf, 0);
        match read {
            Poll::Ready(Ok(0)) => {
                rd.eof = true;
                io.core().conn.handle_eof();
            }
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(e)) => rd.read_error = Some(e),
            Poll::Pending => break,
        }
        progress = true;
    }
    // Best effort: a full transport or a write error is the next write's
    // business. This also sends a failure's Close and shuts down when due.
    let _ = poll_write_out(cx, io);
    if progress {
        // A receive pending in another task waited for bytes read here.
        if let Some(receiver) = io.core().reader.take() {
            receiver.wake();
        }
    }
}

/// Only data messages from [`poll_recv_event`].
fn poll_recv(
    cx: &mut Context<'_>,
    rd: &mut Reader,
    io: &mut impl Io,
) -> Poll<Option<Result<Message>>> {
    loop {
        match ready!(poll_recv_event(cx, rd, io)) {
            Some(Ok(Event::Message(message))) => return Poll::Ready(Some(Ok(message))),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Poll::Ready(Some(Err(e))),
            None => return Poll::Ready(None),
        }
    }
}

/// Waits until the outgoing buffer is below `max_write_buffer`, writing.
fn poll_ready(cx: &mut Context<'_>, io: &mut impl Io) -> Poll<Result<()>> {
    loop {
        {
            let core = io.core();
            if core.shut_down || !core.conn.is_write_buffer_full() {
                return Poll::Ready(Ok(()));
            }
        }
        ready!(poll_write_out(cx, io))?;
    }
}

/// Runs a command on the connection.
fn command(
    io: &mut impl Io,
    f: impl FnOnce(&mut Connection) -> Result<(), SendError>,
) -> Result<()> {
    Ok(f(&mut io.core().conn)?)
}

/// Queues a Close (nothing if one was sent or the connection ended) and
/// wakes the reader, which arms the close timer.
fn start_close(io: &mut impl Io, code: CloseCode, reason: &str) -> Result<()> {
    let mut core = io.core();
    match core.conn.close(code, reason) {
        Ok(()) | Err(SendError::Closed) => {}
        Err(e) => return Err(e.into()),
    }
    if let Some(reader) = core.reader.take() {
        reader.wake();
    }
    Ok(())
}

/// The receiving methods, shared by [`WebSocket`] and [`ReadHalf`].
macro_rules! reader_methods {
    () => {
        /// Polls for the next event, like [`recv_event`](Self::recv_event).
        pub fn poll_recv_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
            let (reader, mut io) = self.parts();
            poll_recv_event(cx, reader, &mut io)
        }

        /// Polls for the next data message, like [`recv`](Self::recv).
        pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
            let (reader, mut io) = self.parts();
            poll_recv(cx, reader, &mut io)
        }

        /// The next data message. Pings are answered and, with pongs, skipped.
        ///
        /// `None` once the close handshake finished or the transport ended
        /// ([`close_frame`](Self::close_frame) tells why). A protocol error
        /// is returned once, after its Close frame was sent and the
        /// transport shut down; later calls give `None`.
        ///
        /// Cancel-safe: dropping the future loses no message.
        pub async fn recv(&mut self) -> Option<Result<Message>> {
            poll_fn(|cx| self.poll_recv(cx)).await
        }

        /// Like [`recv`](Self::recv), but yields every [`Event`]: pings,
        /// pongs and the peer's Close too.
        ///
        /// Cancel-safe: dropping the future loses no event.
        pub async fn recv_event(&mut self) -> Option<Result<Event>> {
            poll_fn(|cx| self.poll_recv_event(cx)).await
        }

        /// The Close frame that ended the connection: the peer's, or code
        /// 1006 when the transport ended or a timeout expired without one.
        pub fn close_frame(&self) -> Option<&CloseFrame> {
            self.reader.close_frame.as_ref()
        }
    };
}

/// The sending methods, shared by [`WebSocket`] and [`WriteHalf`].
macro_rules! writer_methods {
    () => {
        /// Queues a message and writes everything queued.
        ///
        /// Waits for room when the outgoing buffer is full (nothing is
        /// dropped). Not strictly cancel-safe: dropped while waiting for
        /// room, the message is dropped unsent; dropped while flushing, the
        /// message stays queued and goes out with the next write.
        pub async fn send(&mut self, message: Message) -> Result<()> {
            self.feed(message).await?;
            self.flush().await
        }

        /// Queues a message without flushing, writing only while the
        /// outgoing buffer is full. Cancellation: as [`send`](Self::send).
        pub async fn feed(&mut self, message: Message) -> Result<()> {
            poll_fn(|cx| poll_ready(cx, &mut self.io())).await?;
            command(&mut self.io(), |conn| conn.send(message))
        }

        /// Writes everything queued (vectored) and flushes the stream.
        /// A whole [`WebSocket`] then also reads what already arrived,
        /// without waiting, to answer pings (see the crate docs, "Progress");
        /// a [`WriteHalf`] never reads.
        ///
        /// Cancel-safe: what was not written stays queued.
        pub async fn flush(&mut self) -> Result<()> {
            poll_fn(|cx| self.poll_flush_out(cx)).await
        }

        /// Sends a ping with up to 125 bytes of payload. Cancellation: as
        /// [`send`](Self::send).
        pub async fn ping(&mut self, payload: Bytes) -> Result<()> {
            poll_fn(|cx| poll_ready(cx, &mut self.io())).await?;
            command(&mut self.io(), |conn| conn.ping(payload))?;
            self.flush().await
        }
    };
}

// ----- WebSocket -----

/// A WebSocket connection over a `futures-io` stream.
///
/// Also a [`Stream`] of data messages and a [`Sink`] of messages
/// (`poll_close` is [`close`](Self::close) with [`CloseCode::NORMAL`]).
#[derive(Debug)]
pub struct WebSocket<S> {
    stream: S,
    core: Core,
    reader: Reader,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a stream whose opening handshake happened elsewhere (e.g. a
    /// hyper upgrade).
    pub fn from_raw(stream: S, role: Role, config: Config) -> Self {
        Self::from_raw_with_buffer(stream, role, config, BytesMut::new())
    }

    /// Like [`from_raw`](Self::from_raw), with bytes already read past the
    /// handshake.
    pub fn from_raw_with_buffer(stream: S, role: Role, config: Config, read_buf: BytesMut) -> Self {
        let core = Core {
            conn: Connection::new(role, config),
            origin: Instant::now(),
            unflushed: false,
            shut_down: false,
            reader: None,
        };
        let reader = Reader {
            buf: read_buf,
            timer: Timer::never(),
            armed: None,
            eof: false,
            done: false,
            close_frame: None,
            stashed: None,
            read_error: None,
        };
        Self {
            stream,
            core,
            reader,
        }
    }

    fn io(&mut self) -> Owned<'_, S> {
        Owned {
            core: &mut self.core,
            stream: &mut self.stream,
        }
    }

    fn parts(&mut self) -> (&mut Reader, Owned<'_, S>) {
        let io = Owned {
            core: &mut self.core,
            stream: &mut self.stream,
        };
        (&mut self.reader, io)
    }

    /// The flush: writes everything queued, then answers what already
    /// arrived ([`poll_background`]).
    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let (reader, mut io) = self.parts();
        ready!(poll_write_out(cx, &mut io))?;
        poll_background(cx, reader, &mut io);
        Poll::Ready(Ok(()))
    }

    reader_methods!();
    writer_methods!();

    /// Starts the close handshake with `code` and `reason` (at most 123
    /// bytes), then keeps reading, discarding data, until the peer's Close
    /// arrives, the transport ends or the close timeout fires; the transport
    /// is then shut down. Closing an already closed connection just
    /// finishes that.
    ///
    /// Cancel-safe: the Close stays queued; calling again (or `recv`)
    /// continues the handshake.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        start_close(&mut self.io(), code, reason)?;
        poll_fn(|cx| self.poll_closed(cx)).await
    }

    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        loop {
            match ready!(self.poll_recv_event(cx)) {
                None => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(e)),
                Some(Ok(_)) => {}
            }
        }
    }

    /// The protocol state machine.
    pub fn connection(&self) -> &Connection {
        &self.core.conn
    }

    /// The protocol state machine, e.g. for
    /// [`send_fragment`](Connection::send_fragment); commands only queue
    /// bytes, so call [`flush`](Self::flush) afterwards.
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.core.conn
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream. Reading or writing it directly corrupts the connection.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The stream; buffered bytes are lost.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Splits into a receiving and a sending half, usable from two tasks at
    /// once. The reader handles keepalive and the close timeout; automatic
    /// replies it cannot write at once go out with the writer's next call.
    pub fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        let shared = Arc::new(Shared {
            core: Mutex::new(self.core),
            stream: Mutex::new(self.stream),
        });
        let read = ReadHalf {
            shared: Arc::clone(&shared),
            reader: self.reader,
        };
        (read, WriteHalf { shared })
    }

    /// Puts split halves back together; an error if they come from
    /// different connections.
    pub fn reunite(read: ReadHalf<S>, write: WriteHalf<S>) -> Result<Self> {
        let mismatch =
            || io::Error::new(io::ErrorKind::InvalidInput, "halves of different sockets");
        if !Arc::ptr_eq(&read.shared, &write.shared) {
            return Err(mismatch().into());
        }
        drop(write);
        let shared = Arc::into_inner(read.shared).ok_or_else(mismatch)?;
        Ok(Self {
            stream: shared
                .stream
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner),
            core: shared
                .core
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner),
            reader: read.reader,
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_ready(cx, &mut self.get_mut().io())
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        command(&mut self.get_mut().io(), |conn| conn.send(item))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush_out(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        start_close(&mut this.io(), CloseCode::NORMAL, "")?;
        this.poll_closed(cx)
    }
}

// ----- Split halves -----

/// The receiving half of a [`WebSocket`]; a [`Stream`] of data messages.
#[derive(Debug)]
pub struct ReadHalf<S> {
    shared: Arc<Shared<S>>,
    reader: Reader,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    fn parts(&mut self) -> (&mut Reader, &Shared<S>) {
        (&mut self.reader, &self.shared)
    }

    reader_methods!();

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

/// The sending half of a [`WebSocket`]; a [`Sink`] of messages.
#[derive(Debug)]
pub struct WriteHalf<S> {
    shared: Arc<Shared<S>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WriteHalf<S> {
    fn io(&self) -> &Shared<S> {
        &self.shared
    }

    /// The flush: writes everything queued; reading is the [`ReadHalf`]'s.
    fn poll_flush_out(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(ready!(poll_write_out(cx, &mut self.io()))?))
    }

    writer_methods!();

    /// Queues a Close with `code` and `reason` and writes it. The
    /// [`ReadHalf`] then receives until the peer's Close (its `recv` gives
    /// `None`), runs the close timeout and shuts the transport down.
    ///
    /// Cancel-safe: the Close stays queued and goes out with the next write.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        start_close(&mut self.io(), code, reason)?;
        self.flush().await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WriteHalf<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_ready(cx, &mut self.get_mut().io())
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        command(&mut self.get_mut().io(), |conn| conn.send(item))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush_out(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut io = self.get_mut().io();
        start_close(&mut io, CloseCode::NORMAL, "")?;
        Poll::Ready(Ok(ready!(poll_write_out(cx, &mut io))?))
    }
}

// ----- Handshakes -----

/// Races `future` against the handshake timeout.
async fn timeout<T>(limit: Option<Duration>, future: impl Future<Output = Result<T>>) -> Result<T> {
    let mut future = pin!(future);
    let mut timer = limit.map_or_else(Timer::never, Timer::after);
    poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        ready!(Pin::new(&mut timer).poll(cx));
        let e = io::Error::new(io::ErrorKind::TimedOut, "the opening handshake timed out");
        Poll::Ready(Err(e.into()))
    })
    .await
}

async fn write_all<S: AsyncWrite + Unpin>(stream: &mut S, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, data)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
    }
    poll_fn(|cx| Pin::new(&mut *stream).poll_flush(cx)).await
}

/// Reads once more of the handshake; end of stream is an error.
async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) -> Result<()> {
    match poll_fn(|cx| poll_read_buf(cx, stream, buf, 0)).await? {
        0 => {
            Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed during the handshake").into())
        }
        _ => Ok(()),
    }
}

/// Connects to a `ws://` URL with the default [`Options`].
///
/// Cancelling (dropping the future) drops the stream: the handshake cannot resume.
pub async fn connect(url: &str) -> Result<(WebSocket<TcpStream>, ClientResponse)> {
    connect_with(ClientRequest::new(url)?, &Options::default()).await
}

/// Resolves the host, connects over TCP (no Nagle) and runs the client
/// handshake, all within `options.handshake_timeout`. `wss://` is refused:
/// there is no TLS yet. A non-101 answer is
/// `Error::Handshake(HandshakeError::Rejected(..))`.
///
/// Cancelling (dropping the future) drops the stream: the handshake cannot resume.
pub async fn connect_with(
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<TcpStream>, ClientResponse)> {
    if request.is_secure() {
        let why = "wss:// needs TLS, which ws-futures does not provide";
        return Err(HandshakeError::InvalidRequest(why).into());
    }
    timeout(options.handshake_timeout, async {
        let stream = TcpStream::connect((request.host(), request.port())).await?;
        stream.set_nodelay(true)?;
        client_handshake(stream, &request, options).await
    })
    .await
}

/// Runs the client handshake over an already-connected stream, within
/// `options.handshake_timeout`.
///
/// Cancelling (dropping the future) drops the stream: the handshake cannot resume.
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<S>, ClientResponse)> {
    timeout(
        options.handshake_timeout,
        client_handshake(stream, &request, options),
    )
    .await
}

async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &ClientRequest,
    options: &Options,
) -> Result<(WebSocket<S>, ClientResponse)> {
    let mut handshake = ClientHandshake::new(request)?.with_config(options.handshake.clone());
    write_all(&mut stream, handshake.request()).await?;
    let mut buf = BytesMut::new();
    loop {
        if let Some(response) = handshake.receive(&mut buf)? {
            let config = options.config.clone();
            let mut ws = WebSocket::from_raw_with_buffer(stream, Role::Client, config.clone(), buf);
            *ws.connection_mut() = response.connection(config);
            return Ok((ws, response));
        }
        if poll_fn(|cx| poll_read_buf(cx, &mut stream, &mut buf, 0)).await? == 0 {
            // A 401 whose body was cut short is still a 401.
            return Err(handshake.receive_eof(&mut buf).into());
        }
    }
}

/// Accepts a connection with the default [`Options`] and no subprotocol.
///
/// Cancelling (dropping the future) drops the stream: the handshake cannot resume.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Result<WebSocket<S>> {
    accept_with(stream, &Options::default()).await
}

/// Accepts a connection with `options` and no subprotocol.
///
/// Cancelling (dropping the future) drops the stream: the handshake cannot resume.
pub async fn accept_with<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    options: &Options,
) -> Result<WebSocket<S>> {
    read_request(stream, options)
        .await?
        .accept(&AcceptOptions::new())
        .await
}

/// Reads the opening request, within `options.handshake_timeout`, for the
/// application to inspect before [`Incoming::accept`] or
/// [`Incoming::reject`]. A malformed request gets its 400/426/431 answer
/// before the error is returned.
///
/// Cancelling (dropping the future) drops the stream: the handshake cannot resume.
pub async fn read_request<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    options: &Options,
) -> Result<Incoming<S>> {
    let mut handshake = ServerHandshake::with_config(options.handshake.clone());
    let mut buf = BytesMut::new();
    let request = timeout(options.handshake_timeout, async {
        loop {
            match handshake.receive(&mut buf) {
                Ok(Some(request)) => return Ok(request),
                Ok(None) => read_more(&mut stream, &mut buf).await?,
                Err(error) => {
                    if let Some(response) = error.response() {
                        // Best effort: the client may be gone already.
                        let _ = write_all(&mut stream, &response).await;
                        let _ = poll_fn(|cx| Pin::new(&mut stream).poll_close(cx)).await;
                    }
                    return Err(error.into());
                }
            }
        }
    })
    .await?;
    Ok(Incoming {
        stream,
        request,
        buf,
        config: options.config.clone(),
        handshake_timeout: options.handshake_timeout,
    })
}

/// A client's valid opening request, waiting for the application's answer.
#[derive(Debug)]
pub struct Incoming<S> {
    stream: S,
    request: ServerRequest,
    buf: BytesMut,
    config: Config,
    handshake_timeout: Option<Duration>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Incoming<S> {
    /// The request: path, headers, offered subprotocols.
    pub fn request(&self) -> &ServerRequest {
        &self.request
    }

    /// Writes the `101` response and starts the connection; bytes the
    /// client sent after its request are kept. Cancelling drops the stream.
    pub async fn accept(self, options: &AcceptOptions) -> Result<WebSocket<S>> {
        let accepted = self.request.accept(options)?;
        let mut stream = self.stream;
        let write = async { Ok(write_all(&mut stream, accepted.response()).await?) };
        timeout(self.handshake_timeout, write).await?;
        let config = self.config;
        let mut ws =
            WebSocket::from_raw_with_buffer(stream, Role::Server, config.clone(), self.buf);
        *ws.connection_mut() = accepted.connection(config);
        Ok(ws)
    }

    /// Writes a refusal (e.g. 401 or 403) with extra headers and a body,
    /// then shuts the stream down. Cancelling drops the stream.
    pub async fn reject(self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<()> {
        let response = self.request.reject(status, headers, body);
        let mut stream = self.stream;
        let write = async {
            write_all(&mut stream, &response).await?;
            Ok(poll_fn(|cx| Pin::new(&mut stream).poll_close(cx)).await?)
        };
        timeout(self.handshake_timeout, write).await
    }
}
