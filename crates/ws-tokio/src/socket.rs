//! The WebSocket over a tokio stream, and the receive loop shared with the
//! split halves.

use alloc::{boxed::Box, vec::Vec};
use core::cell::RefCell;
use core::{
    future::{Future, poll_fn},
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    time::{Instant, Sleep},
};
use tokio_util::io::poll_read_buf;
use ws_proto::{
    CloseCode, CloseFrame, Config, Connection, Event, Message, ProtocolError, Role, SendError,
    State, Utf8Bytes,
};

use crate::{Error, Result};

/// The read size of a quiet connection (spare capacity reserved before a
/// read). It doubles while reads fill the buffer, up to `MAX_READ_CHUNK`,
/// and falls back once the transport has nothing more.
const READ_CHUNK: usize = 8 * 1024;
/// The largest read size for a busy connection.
const MAX_READ_CHUNK: usize = 256 * 1024;
/// The most chunks one vectored write takes.
const WRITE_IOV: usize = 16;
/// An empty read buffer larger than this is freed rather than pooled.
const POOL_MAX_BUFFER: usize = 2 << 20;
/// At most this many empty read buffers are pooled per thread...
const POOL_MAX: usize = 64;
/// ...holding at most this many bytes: what a thread keeps for reuse is
/// bounded whatever message sizes it saw.
const POOL_MAX_BYTES: usize = 8 << 20;

std::thread_local! {
    /// Read buffers of connections that are waiting for bytes. An idle
    /// connection holds no buffer of its own; a busy one takes one from here
    /// and gives it back when it has consumed everything, so steady-state
    /// echo traffic allocates nothing and 10,000 idle connections cost no
    /// read buffers.
    static READ_BUFFERS: RefCell<(Vec<BytesMut>, usize)> = const { RefCell::new((Vec::new(), 0)) };
}

/// A read buffer with room for `size` more bytes, from the pool if possible.
#[inline]
fn ensure_read_room(buf: &mut BytesMut, size: usize) {
    // Also true without a buffer (capacity 0): the common case, room
    // enough, costs one comparison.
    if buf.capacity() - buf.len() < size / 4 {
        refill_read_room(buf, size);
    }
}

/// [`ensure_read_room`] when the buffer is missing or short of room.
#[inline(never)]
fn refill_read_room(buf: &mut BytesMut, size: usize) {
    if buf.capacity() == 0
        && let Some(pooled) = READ_BUFFERS.with(|pool| {
            let (buffers, bytes) = &mut *pool.borrow_mut();
            let pooled = buffers.pop()?;
            *bytes -= pooled.capacity();
            Some(pooled)
        })
    {
        *buf = pooled;
    }
    if buf.capacity() - buf.len() < size / 4 {
        buf.reserve(size);
    }
}

/// Hands an empty read buffer back to the pool (or frees a large one).
fn release_read_buffer(buf: &mut BytesMut) {
    if !buf.is_empty() || buf.capacity() == 0 {
        return;
    }
    let buf = core::mem::take(buf);
    let size = buf.capacity();
    if size <= POOL_MAX_BUFFER {
        READ_BUFFERS.with(|pool| {
            let (buffers, bytes) = &mut *pool.borrow_mut();
            if buffers.len() < POOL_MAX && *bytes + size <= POOL_MAX_BYTES {
                *bytes += size;
                buffers.push(buf);
            }
        });
    }
}

/// Access to the connection and to the write side of the transport: direct
/// for a whole [`WebSocket`], behind a short lock for the split halves.
pub(crate) trait Link {
    /// Runs `f` on the connection (a short, synchronous call).
    fn with_conn<R>(&mut self, f: impl FnOnce(&mut Connection) -> R) -> R;
    /// Writes every outgoing byte, then flushes the transport.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Shuts the write side of the transport down.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// A [`Link`] that can also read.
pub(crate) trait ReadLink: Link {
    /// Reads what is available into the spare capacity of `buf`.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>>;
}

/// Writes the outgoing queue with vectored writes, then flushes `w`.
pub(crate) fn poll_write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    conn: &mut Connection,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while conn.wants_write() {
        let out = conn.outgoing();
        let written = if out.chunk().len() == out.remaining() {
            // One chunk (small frames, encoded back to back): a plain write.
            ready!(Pin::new(&mut *w).poll_write(cx, out.chunk()))?
        } else {
            // Headers and large payloads: a few slots are plenty (the rest
            // goes in the next round), and cheaper to set up than 64.
            let mut slices = [IoSlice::new(&[]); WRITE_IOV];
            let count = out.chunks_vectored(&mut slices);
            ready!(Pin::new(&mut *w).poll_write_vectored(cx, &slices[..count]))?
        };
        out.advance(written);
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
    }
    Pin::new(w).poll_flush(cx)
}

/// Queues `slot`'s message with `command`; while the core reports its buffer
/// full, writes and retries (backpressure: nothing is dropped). The message
/// stays in `slot` until it is queued, so a re-poll resumes.
pub(crate) fn poll_command<L: Link>(
    link: &mut L,
    cx: &mut Context<'_>,
    slot: &mut Option<Message>,
    command: fn(&mut Connection, Message) -> Result<(), SendError>,
) -> Poll<Result<()>> {
    while let Some(message) = slot.take() {
        match link.with_conn(|conn| command(conn, message)) {
            Ok(()) => break,
            Err(SendError::Full(message)) => {
                // The core only reports Full with bytes queued: writing makes room.
                *slot = Some(message);
                ready!(link.poll_write_out(cx))?;
            }
            Err(e) => return Poll::Ready(Err(e.into())),
        }
    }
    Poll::Ready(Ok(()))
}

/// `Sink::poll_ready`: waits while the core's outgoing buffer is full.
pub(crate) fn poll_ready<L: Link>(link: &mut L, cx: &mut Context<'_>) -> Poll<Result<()>> {
    if link.with_conn(|c| c.is_write_buffer_full()) {
        ready!(link.poll_write_out(cx))?;
    }
    Poll::Ready(Ok(()))
}

/// Queues a close unless one was already sent or the connection is over.
pub(crate) fn start_close(conn: &mut Connection, code: CloseCode, reason: &str) -> Result<()> {
    if conn.state() == State::Open {
        conn.close(code, reason)?;
    }
    Ok(())
}

/// The read side of the run loop: read buffer, timer and end-of-stream state.
#[derive(Debug)]
pub(crate) struct Receiver {
    buf: BytesMut,
    /// The origin of the core's clock.
    origin: Instant,
    /// The single timer, created on first use.
    timer: Option<Pin<Box<Sleep>>>,
    /// The core deadline the timer is set to.
    armed: Option<Duration>,
    /// The current read size: `READ_CHUNK` to `MAX_READ_CHUNK`.
    read_size: usize,
    close_frame: Option<CloseFrame>,
    /// A protocol error to report once the Close is flushed.
    error: Option<ProtocolError>,
    /// An event read while the application was only sending, returned by the
    /// next receive call. At most one: reading stops behind a data message.
    stashed: Option<Event>,
    /// Whether a receive call ran since the last flush: then the application
    /// is reading, and a flush need not read for it.
    receiving: bool,
    eof: bool,
    done: bool,
}

impl Receiver {
    pub(crate) fn new(buf: BytesMut) -> Self {
        Self {
            buf,
            origin: Instant::now(),
            timer: None,
            armed: None,
            read_size: READ_CHUNK,
            close_frame: None,
            error: None,
            stashed: None,
            receiving: false,
            eof: false,
            done: false,
        }
    }

    pub(crate) const fn close_frame(&self) -> Option<&CloseFrame> {
        self.close_frame.as_ref()
    }

    /// The transport failed: the connection is over. Unless it had closed
    /// already, the error is returned once and `close_frame` reports 1006.
    fn fail_io(&mut self, error: io::Error, closed: bool) -> Option<Result<Event>> {
        self.finish();
        if closed {
            return None;
        }
        if self.close_frame.is_none() {
            let reason = Utf8Bytes::from_static("the transport failed");
            self.close_frame = Some(CloseFrame::new(CloseCode::ABNORMAL, reason));
        }
        Some(Err(error.into()))
    }

    fn finish(&mut self) {
        self.done = true;
        self.timer = None;
        self.buf = BytesMut::new();
    }

    /// The run loop: returns the next event, writing automatic replies,
    /// firing the timer and shutting the transport down on the way. All state
    /// lives in `self` and the connection, so dropping the caller's future
    /// loses nothing.
    pub(crate) fn poll_event<L: ReadLink>(
        &mut self,
        link: &mut L,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Event>>> {
        self.receiving = true;
        if let Some(event) = self.stashed.take() {
            return Poll::Ready(Some(Ok(event)));
        }
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let origin = self.origin;
            let failed = self.error.is_some();
            let buf = &mut self.buf;
            let (step, wants_write, close_transport, closed, (now, deadline)) =
                link.with_conn(|conn| {
                    let step = if failed {
                        Ok(None)
                    } else {
                        conn.next_event(buf)
                    };
                    // The clock is read only when a timer may run, and only when
                    // this call is about to wait: an event returns at once, and
                    // the next call arms whatever it started.
                    let timing = (failed || matches!(step, Ok(None) | Err(_))) && conn.has_timers();
                    let now_and_deadline = if timing {
                        let now = origin.elapsed();
                        (now, conn.poll_timeout(now))
                    } else {
                        (Duration::ZERO, None)
                    };
                    // An event returns at once: the rest matters only when
                    // this call goes on to write, read or wait.
                    let waiting = !matches!(step, Ok(Some(_)));
                    (
                        step,
                        conn.wants_write(),
                        waiting && conn.should_close_transport(),
                        waiting && conn.state() == State::Closed,
                        now_and_deadline,
                    )
                });
            match step {
                Ok(Some(event)) => {
                    if wants_write {
                        // Automatic replies go out now if the transport takes
                        // them; errors resurface on the next call.
                        let _ = link.poll_write_out(cx);
                    }
                    if let Event::Close(frame) = &event {
                        self.close_frame = Some(frame.clone());
                    }
                    return Poll::Ready(Some(Ok(event)));
                }
                Ok(None) => {}
                Err(e) => {
                    self.error = Some(e);
                    continue;
                }
            }
            if self.error.is_some() || close_transport {
                // With `close_transport` still set while bytes wait, the core
                // gave up on the peer: one try, no waiting.
                if wants_write && link.poll_write_out(cx).is_pending() && !close_transport {
                    return Poll::Pending;
                }
                let _ = ready!(link.poll_shutdown(cx));
                self.finish();
                return Poll::Ready(self.error.take().map(|e| Err(e.into())));
            }
            let mut write_pending = false;
            if wants_write {
                match link.poll_write_out(cx) {
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(self.fail_io(e, closed)),
                    Poll::Pending => write_pending = true,
                }
            }
            if let Some(deadline) = deadline
                && (now >= deadline || self.poll_timer(deadline, cx).is_ready())
            {
                self.armed = None;
                let now = self.origin.elapsed();
                link.with_conn(|conn| conn.handle_timeout(now));
                continue;
            }
            if self.eof {
                if write_pending {
                    // Nothing more to read: wait for the write (or the timer).
                    return Poll::Pending;
                }
                // Unreachable with a consistent core: after EOF, once flushed,
                // it asks for the transport to be closed. Never spin.
                self.finish();
                return Poll::Ready(None);
            }
            if !self.buf.is_empty() {
                // A large frame in progress: make room for the rest of it at
                // once (as far as the core advises) rather than growing the
                // buffer, and copying what it holds, a read size at a time.
                let buf = &self.buf;
                let ahead = link.with_conn(|conn| conn.read_ahead(buf));
                if ahead > self.read_size && ahead > self.buf.capacity() - self.buf.len() {
                    self.buf.reserve(ahead);
                }
            }
            ensure_read_room(&mut self.buf, self.read_size);
            let spare = self.buf.capacity() - self.buf.len();
            let Poll::Ready(read) = link.poll_read(cx, &mut self.buf) else {
                // Halved, not reset: a connection in the middle of a stream
                // of large messages waits briefly between reads all the
                // time, and a small reservation would then move the part of
                // a message already read to make room, again and again.
                self.read_size = (self.read_size / 2).max(READ_CHUNK);
                // Waiting: an empty buffer goes back to the pool meanwhile.
                release_read_buffer(&mut self.buf);
                return Poll::Pending;
            };
            match read {
                Ok(n) if n == spare => self.read_size = (self.read_size * 2).min(MAX_READ_CHUNK),
                Ok(0) => {
                    self.eof = true;
                    link.with_conn(Connection::handle_eof);
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(self.fail_io(e, closed)),
            }
        }
    }

    /// Reads what the transport already has, without waiting, so that pings
    /// are answered and Close frames echoed while the application only sends.
    /// Stops at the first data message or Close, which waits in `stashed` for
    /// the next receive call: memory stays bounded and nothing is lost. Ping
    /// and Pong events read here are kept only while nothing else waits
    /// (their automatic replies are sent regardless).
    pub(crate) fn poll_background<L: ReadLink>(&mut self, link: &mut L, cx: &mut Context<'_>) {
        if core::mem::take(&mut self.receiving) {
            // The application receives too (an echo loop, a select!): its
            // next receive reads; reading here would only repeat the work.
            return;
        }
        // A few reads at most: this runs inside a send.
        for _ in 0..4 {
            if self.done || self.eof || self.error.is_some() {
                break;
            }
            if matches!(self.stashed, Some(Event::Message(_) | Event::Close(_))) {
                break;
            }
            let buf = &mut self.buf;
            match link.with_conn(|conn| conn.next_event(buf)) {
                Ok(Some(event)) => {
                    if let Event::Close(frame) = &event {
                        self.close_frame = Some(frame.clone());
                    }
                    if self.stashed.is_none() || !matches!(event, Event::Ping(_) | Event::Pong(_)) {
                        self.stashed = Some(event);
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    // Reported (after the Close is flushed) by the next receive.
                    self.error = Some(e);
                    break;
                }
            }
            ensure_read_room(&mut self.buf, READ_CHUNK);
            match link.poll_read(cx, &mut self.buf) {
                Poll::Ready(Ok(0)) => {
                    self.eof = true;
                    link.with_conn(Connection::handle_eof);
                }
                Poll::Ready(Ok(_)) => {}
                // A read error resurfaces on the next receive call.
                Poll::Ready(Err(_)) | Poll::Pending => break,
            }
        }
        release_read_buffer(&mut self.buf);
        if link.with_conn(|conn| conn.wants_write()) {
            // Best effort: a full transport is the next flush's business.
            let _ = link.poll_write_out(cx);
        }
    }

    /// Arms the timer at the core's `deadline` (resetting it only when the
    /// deadline moved) and polls it.
    fn poll_timer(&mut self, deadline: Duration, cx: &mut Context<'_>) -> Poll<()> {
        let when = self.origin + deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(when)));
        if self.armed != Some(deadline) {
            timer.as_mut().reset(when);
            self.armed = Some(deadline);
        }
        timer.as_mut().poll(cx)
    }

    /// [`poll_event`](Self::poll_event) filtered to data messages.
    pub(crate) fn poll_message<L: ReadLink>(
        &mut self,
        link: &mut L,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message>>> {
        loop {
            return Poll::Ready(match ready!(self.poll_event(link, cx)) {
                Some(Ok(Event::Message(message))) => Some(Ok(message)),
                Some(Ok(_)) => continue,
                Some(Err(e)) => Some(Err(e)),
                None => None,
            });
        }
    }
}

/// A WebSocket connection over a tokio stream `S` (a `TcpStream`, a TLS
/// stream, an upgraded hyper connection, ...).
///
/// Reading drives everything: [`recv`](Self::recv) answers pings, echoes
/// Close frames, sends keepalive pings and enforces the close timeout. Use
/// [`split`](Self::split) to read and write from two tasks.
///
/// Implements [`Stream`] (data messages) and [`Sink<Message>`].
#[derive(Debug)]
pub struct WebSocket<S> {
    stream: S,
    conn: Connection,
    rx: Receiver,
}

/// The [`Link`] of a whole socket: no locks.
struct Whole<'a, S> {
    stream: &'a mut S,
    conn: &'a mut Connection,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link for Whole<'_, S> {
    fn with_conn<R>(&mut self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(self.conn)
    }

    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_write_all(self.stream, self.conn, cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadLink for Whole<'_, S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        poll_read_buf(Pin::new(&mut *self.stream), cx, buf)
    }
}

impl<S> WebSocket<S> {
    /// Wraps a stream on which the opening handshake already happened
    /// elsewhere (a hyper or axum upgrade).
    pub fn from_raw(stream: S, role: Role, config: Config) -> Self {
        Self::from_raw_with_buffer(stream, role, config, BytesMut::new())
    }

    /// Like [`from_raw`](Self::from_raw), with bytes already read past the
    /// handshake: they are the connection's first input.
    pub fn from_raw_with_buffer(stream: S, role: Role, config: Config, read_buf: BytesMut) -> Self {
        Self {
            stream,
            conn: Connection::new(role, config),
            rx: Receiver::new(read_buf),
        }
    }

    pub(crate) fn from_parts(stream: S, conn: Connection, rx: Receiver) -> Self {
        Self { stream, conn, rx }
    }

    pub(crate) fn into_parts(self) -> (S, Connection, Receiver) {
        (self.stream, self.conn, self.rx)
    }

    /// Why the connection ended: the peer's Close frame, or code 1006 when
    /// the transport ended or failed, or a timeout fired, without one. `None`
    /// while open (and after a protocol error, which [`recv`](Self::recv)
    /// returned).
    pub const fn close_frame(&self) -> Option<&CloseFrame> {
        self.rx.close_frame()
    }

    /// The sans-IO connection (state, role, configuration).
    pub const fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The connection, for commands this adapter does not wrap
    /// ([`Connection::send_fragment`], [`Connection::pong`]). Commands only
    /// queue bytes: call [`flush`](Self::flush) afterwards.
    pub const fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The underlying stream.
    pub const fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The underlying stream, mutably. Reading or writing it directly
    /// corrupts the WebSocket stream.
    pub const fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The underlying stream. Buffered bytes, read or not yet written, are
    /// dropped.
    pub fn into_inner(self) -> S {
        self.stream
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    fn link(&mut self) -> (Whole<'_, S>, &mut Receiver) {
        let link = Whole {
            stream: &mut self.stream,
            conn: &mut self.conn,
        };
        (link, &mut self.rx)
    }

    /// Polls for the next event; see [`recv_event`](Self::recv_event).
    pub fn poll_recv_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        let (mut link, rx) = self.link();
        rx.poll_event(&mut link, cx)
    }

    /// Polls for the next data message; see [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        let (mut link, rx) = self.link();
        rx.poll_message(&mut link, cx)
    }

    /// Polls writing everything queued; see [`flush`](Self::flush).
    ///
    /// Once written, it also reads what already arrived, without waiting, so
    /// that pings are answered and Close frames echoed even when the
    /// application only sends (see [`recv`](Self::recv) for what it keeps).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let (mut link, rx) = self.link();
        ready!(link.poll_write_out(cx))?;
        rx.poll_background(&mut link, cx);
        Poll::Ready(Ok(()))
    }

    /// Receives the next data message. Pings are answered and Close frames
    /// echoed inside; `None` once the connection is over (see
    /// [`close_frame`](Self::close_frame) for why). A protocol error is
    /// returned once, after the Close frame was flushed and the transport
    /// shut down; later calls return `None`.
    ///
    /// Cancel-safe: all state lives in the read buffer and the connection,
    /// so dropping the future (in `select!`) loses nothing.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Like [`recv`](Self::recv), but yields every event: Ping, Pong and the
    /// Close too. Cancel-safe.
    pub async fn recv_event(&mut self) -> Option<Result<Event>> {
        poll_fn(|cx| self.poll_recv_event(cx)).await
    }

    /// Queues `message` and writes everything queued.
    ///
    /// Not strictly cancel-safe: if the future is dropped while waiting for a
    /// full outgoing buffer to drain, `message` was not queued and is lost;
    /// once queued (dropped during the write), it stays queued and goes out
    /// with the next `send`, `flush` or `recv`.
    pub async fn send(&mut self, message: Message) -> Result<()> {
        // `feed` then `flush`, in one future: the hottest call of an echo
        // loop pays for one state machine, not three.
        let mut slot = Some(message);
        poll_fn(|cx| {
            if slot.is_some() {
                ready!(poll_command(
                    &mut self.link().0,
                    cx,
                    &mut slot,
                    Connection::send
                ))?;
            }
            self.poll_flush(cx)
        })
        .await
    }

    /// Queues `message` without writing, unless the outgoing buffer is full
    /// (then it writes until the message fits). Same cancellation behavior
    /// as [`send`](Self::send).
    pub async fn feed(&mut self, message: Message) -> Result<()> {
        let mut slot = Some(message);
        poll_fn(|cx| poll_command(&mut self.link().0, cx, &mut slot, Connection::send)).await
    }

    /// Writes everything queued, with vectored writes. Cancel-safe: what is
    /// not written stays queued.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Sends a ping (payload up to 125 bytes). Its pong arrives as
    /// [`Event::Pong`] from [`recv_event`](Self::recv_event). Cancellation as
    /// for [`send`](Self::send).
    pub async fn ping(&mut self, payload: Bytes) -> Result<()> {
        let mut slot = Some(Message::Binary(payload));
        poll_fn(|cx| poll_command(&mut self.link().0, cx, &mut slot, ping)).await?;
        self.flush().await
    }

    /// Closes the connection: queues a Close frame (unless one was sent),
    /// flushes, then reads (discarding data) until the peer's Close arrives,
    /// the transport ends or the close timeout fires; then shuts the
    /// transport down. Returns at once if the connection is already over.
    ///
    /// Cancel-safe: the Close is queued once; calling `close` (or `recv`)
    /// again resumes.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        start_close(&mut self.conn, code, reason)?;
        poll_fn(|cx| self.poll_closed(cx)).await
    }

    /// Drives the connection until it is over, discarding data.
    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        loop {
            match ready!(self.poll_recv_event(cx)) {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// [`Connection::ping`] in the shape [`poll_command`] takes.
pub(crate) fn ping(conn: &mut Connection, payload: Message) -> Result<(), SendError> {
    conn.ping(payload.into_bytes())
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
        poll_ready(&mut self.get_mut().link().0, cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        Ok(self.get_mut().conn.send(item)?)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        start_close(&mut this.conn, CloseCode::NORMAL, "")?;
        this.poll_closed(cx)
    }
}
