//! The WebSocket, its I/O in flight, and the one run loop that it and both
//! split halves use: ask the [`Driver`], perform the [`Action`], report.
//!
//! Completion-based I/O owns its buffers until the kernel is done with them,
//! so a read, a write, a shutdown and the timer's sleep are futures kept in
//! the socket, not in a call: a call that returns `Pending`, or is dropped
//! (`select!`), leaves them in flight, and the next call polls the same ones.
//! Nothing is cancelled half way, so nothing read or written is lost.

use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;
use std::{io, time::Instant};

use bytes::{Buf, BytesMut};
use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::driver::BufferRef;
use compio::io::{AsyncRead, AsyncReadManaged, AsyncWrite, AsyncWriteExt};
use compio::runtime::Runtime;
use ws_proto::adapter::{Error, Result, whole_message};
use ws_proto::{Action, CloseCode, Config, Connection, Driver, Event, Message, Op, Role};

use crate::Bytes;

/// A future kept across calls: compio's futures are not `Send`, neither is
/// this.
type Flight<T> = Pin<Box<dyn Future<Output = T>>>;

/// The outcome of a write (the bytes written), and its list of chunks.
type Written = (io::Result<usize>, Vec<Bytes>);

/// The most chunks one vectored write takes (the rest goes in the next).
const WRITE_IOV: usize = 16;

/// The most bytes one vectored write gathers: a larger chunk goes alone.
const VECTORED_MAX: usize = 256 << 10;

/// A duplex stream whose clones read and write the same connection
/// (`compio::net::TcpStream`, `UnixStream`): the read in flight owns one
/// clone, the write in flight another, so that both run at once.
///
/// Between messages a read lands in a buffer of the runtime's pool
/// ([`AsyncReadManaged`]), so that an idle connection pins none of its own.
pub trait Transport:
    AsyncRead + AsyncReadManaged<Buffer = BufferRef> + AsyncWrite + Clone + 'static
{
}

impl<T> Transport for T where
    T: AsyncRead + AsyncReadManaged<Buffer = BufferRef> + AsyncWrite + Clone + 'static
{
}

/// The I/O in flight of one connection.
pub(crate) struct Io<S> {
    pub(crate) stream: S,
    /// The read in flight, with the buffer it reads into.
    read: Option<Flight<Landed>>,
    /// Whether reads may land in the runtime's buffer pool (io_uring's
    /// provided buffers), found out at the first read.
    pooled: Option<bool>,
    /// The pool had no buffer for the last read.
    pool_dry: bool,
    /// The write in flight (owned chunks, then a flush): its length, and
    /// the list of chunks back.
    write: Option<Flight<Written>>,
    /// The list of chunks handed to the kernel, kept between writes.
    chunks: Vec<Bytes>,
    /// The shutdown in flight.
    shutdown: Option<Flight<()>>,
}

impl<S> core::fmt::Debug for Io<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Io")
            .field("reading", &self.read.is_some())
            .field("writing", &self.write.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Transport> Io<S> {
    fn new(stream: S) -> Self {
        let (read, write, shutdown) = (None, None, None);
        Self {
            stream,
            read,
            pooled: None,
            pool_dry: false,
            chunks: Vec::new(),
            write,
            shutdown,
        }
    }

    /// Performs [`Action::Read`], `wait`ing or not: polls the read in flight
    /// (starting one first if there is none) and reports it.
    ///
    /// What the read lands in depends on what the driver holds. Between
    /// messages (nothing buffered) it is a buffer the kernel picks from the
    /// runtime's pool when bytes arrive (io_uring's provided buffers,
    /// compio's `read_managed`): an idle connection lends the kernel no
    /// memory of its own, and the bytes are copied into the driver
    /// ([`Driver::filled_from`]). Within a frame, the kernel reads straight
    /// into the driver's buffer: its spare room is split off as an owned
    /// `BytesMut` ([`Driver::take_read_room`]) and rejoins the buffer
    /// without a copy. The pool is io_uring's; with compio's polling driver,
    /// or when the pool is empty (`ENOBUFS`), the read lends its room.
    ///
    /// `wait: false` (the reads of [`Op::Flush`]) polls once, like every
    /// async adapter: a read cannot be "tried" without being submitted, and
    /// cancelling a submitted read may lose what it read. So the read stays
    /// in flight, owned by the socket, and the next operation, waiting or
    /// not, polls it again: pings that arrive while the application only
    /// sends are answered by its next `flush` (or receive).
    fn poll_read(&mut self, cx: &mut Context<'_>, driver: &mut Driver) -> Poll<io::Result<()>> {
        loop {
            let read = self.read.get_or_insert_with(|| {
                let mut stream = self.stream.clone();
                let pooled = *self.pooled.get_or_insert_with(pool_usable);
                if pooled && !core::mem::take(&mut self.pool_dry) && driver.buffered() == 0 {
                    // 0: as much as one of the pool's buffers holds.
                    return Box::pin(async move { Landed::Pool(stream.read_managed(0).await) });
                }
                let (room, len) = driver.take_read_room();
                Box::pin(async move {
                    let BufResult(read, room) = stream.read(room.slice(..len)).await;
                    Landed::Room(read, room.into_inner())
                })
            });
            let Poll::Ready(landed) = read.as_mut().poll(cx) else {
                driver.read_blocked();
                return Poll::Pending;
            };
            self.read = None;
            return Poll::Ready(match landed {
                Landed::Room(read, room) => {
                    driver.give_read_room(room, read.as_ref().ok().copied());
                    read.map(drop)
                }
                Landed::Pool(Ok(bytes)) => {
                    driver.filled_from(bytes.as_deref().unwrap_or_default());
                    Ok(())
                }
                // The pool ran dry (more connections got bytes at once than
                // it has buffers): the next read lends its room instead.
                Landed::Pool(Err(e)) if e.kind() == io::ErrorKind::ResourceBusy => {
                    self.pool_dry = true;
                    continue;
                }
                Landed::Pool(Err(e)) => Err(e),
            });
        }
    }

    /// Performs [`Action::Write`]: the write in flight, or the next owned
    /// chunks of the queue (up to [`WRITE_IOV`]: a large frame's header and
    /// payload, several queued messages) handed to the kernel in one
    /// vectored write ([`Driver::pop_chunk`], no copy), then flushed.
    ///
    /// A write that must not wait (`wait: false`: a receive answering a
    /// ping) is only queued for the kernel by its first poll. Reported
    /// blocked then, it would let the receive parse on, and a burst of pings
    /// would get only the last pong (RFC 6455 allows that; Autobahn 2.10 and
    /// every readiness adapter answer each). So the runtime's driver gets
    /// one non-blocking turn, which submits it (the kernel completes a send
    /// that has room at once), and only a write still pending after that,
    /// held up by the peer, is reported blocked.
    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        driver: &mut Driver,
        wait: bool,
    ) -> Poll<io::Result<()>> {
        let fresh = self.write.is_none();
        let write = match &mut self.write {
            Some(write) => write,
            None => {
                let mut chunks = core::mem::take(&mut self.chunks);
                let mut len = 0;
                while chunks.len() < WRITE_IOV {
                    let next = driver.outgoing().chunk().len();
                    if next == 0 || (len > 0 && len + next > VECTORED_MAX) {
                        break;
                    }
                    let Some(chunk) = driver.pop_chunk() else {
                        break;
                    };
                    len += chunk.len();
                    chunks.push(chunk);
                }
                if chunks.is_empty() {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.write.insert(write_all(self.stream.clone(), chunks))
            }
        };
        let mut polled = write.as_mut().poll(cx);
        if polled.is_pending() && fresh && !wait {
            Runtime::with_current(|runtime| runtime.poll_with(Some(Duration::ZERO)));
            polled = write.as_mut().poll(cx);
        }
        let Poll::Ready((written, mut chunks)) = polled else {
            driver.write_blocked();
            return Poll::Pending;
        };
        self.write = None;
        // The list goes back for the next write: no allocation per write.
        chunks.clear();
        self.chunks = chunks;
        driver.wrote(written?);
        driver.flushed(); // by the write itself
        Poll::Ready(Ok(()))
    }

    /// Performs [`Action::Shutdown`] (its error does not matter), dropping
    /// (cancelling) the write in flight first if `discard`.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>, discard: bool) -> Poll<()> {
        if discard {
            self.write = None;
        }
        let shutdown = self.shutdown.get_or_insert_with(|| {
            let mut stream = self.stream.clone();
            Box::pin(async move {
                let _ = stream.shutdown().await;
            })
        });
        ready!(shutdown.as_mut().poll(cx));
        self.shutdown = None;
        Poll::Ready(())
    }
}

/// What a read landed in: the driver's own room, or a buffer of the
/// runtime's pool (`None`: end of stream).
enum Landed {
    Room(io::Result<usize>, BytesMut),
    Pool(io::Result<Option<BufferRef>>),
}

/// Whether this thread's runtime lends buffers from a pool the kernel picks
/// from (io_uring): compio's polling driver takes one per read submitted,
/// which would pin a buffer per idle connection again.
fn pool_usable() -> bool {
    Runtime::with_current(|runtime| {
        runtime.driver_type().is_iouring() && runtime.buffer_pool().is_ok()
    })
}

/// Writes `chunks` whole (one chunk with a plain write, several with a
/// vectored one), then flushes: an owned-buffer write runs as one future,
/// and flushing in it spares a second boxed future per [`Action::Flush`]
/// (which then has nothing left to do). The list comes back with the
/// outcome, for the next write.
fn write_all<S: Transport>(mut stream: S, mut chunks: Vec<Bytes>) -> Flight<Written> {
    Box::pin(async move {
        let len = chunks.iter().map(Bytes::len).sum();
        let written = if chunks.len() == 1 {
            let chunk = chunks.pop().unwrap_or_default();
            stream.write_all(chunk).await.0
        } else {
            let BufResult(written, back) = stream.write_vectored_all(chunks).await;
            chunks = back;
            written
        };
        let flushed = match written {
            Ok(()) => stream.flush().await.map(|()| len),
            Err(e) => Err(e),
        };
        (flushed, chunks)
    })
}

/// The one timer: a sleep re-armed when the driver's deadline moves, on a
/// clock that starts at its first use.
#[derive(Default)]
pub(crate) struct Timer {
    origin: Option<Instant>,
    /// The deadline armed, and its sleep.
    sleep: Option<(Duration, Flight<()>)>,
}

impl core::fmt::Debug for Timer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let armed = self.sleep.as_ref().map(|(deadline, _)| deadline);
        f.debug_struct("Timer").field("armed", &armed).finish()
    }
}

impl Timer {
    /// Performs [`Action::Timer`]: `Pending` while the sleep runs.
    fn poll(&mut self, cx: &mut Context<'_>, driver: &mut Driver) -> Poll<()> {
        let origin = *self.origin.get_or_insert_with(Instant::now);
        let Some(deadline) = driver.timer(origin.elapsed()) else {
            return Poll::Ready(());
        };
        let (_, sleep) = match &mut self.sleep {
            Some(armed) if armed.0 == deadline => armed,
            slot => slot.insert((
                deadline,
                Box::pin(compio::time::sleep_until(origin + deadline)),
            )),
        };
        if sleep.as_mut().poll(cx).is_pending() {
            driver.timer_blocked();
            return Poll::Pending;
        }
        self.sleep = None;
        driver.timer_fired(deadline);
        Poll::Ready(())
    }
}

/// A WebSocket over a compio stream `S` (by default a TCP stream), after
/// the opening handshake.
///
/// Receiving drives everything: [`recv`](Self::recv) answers pings, echoes
/// Close frames, sends keepalive pings and enforces the close timeout. All
/// state, I/O in flight included, lives in the socket: every method is
/// cancel-safe except `send` and `ping`, whose message is lost if dropped
/// while waiting for room in a full outgoing queue.
#[derive(Debug)]
pub struct WebSocket<S = compio::net::TcpStream> {
    pub(crate) io: Io<S>,
    pub(crate) driver: Driver,
    pub(crate) timer: Timer,
    /// A report reached the driver in the last operation (split halves
    /// then wake each other).
    pub(crate) progress: bool,
}

/// The run loop of operation `op`: `Some(event)` delivered, `None` the
/// operation is over. `shared`: a split half, whose driver waits for what
/// either half reported blocked.
pub(crate) fn poll_op<S: Transport>(
    ws: &mut WebSocket<S>,
    cx: &mut Context<'_>,
    op: Op,
    shared: bool,
) -> Poll<Result<Option<Event>>> {
    let WebSocket {
        io,
        driver,
        timer,
        progress,
    } = ws;
    let mut blocked = false;
    loop {
        let outcome = match driver.poll(op) {
            Action::Deliver => return Poll::Ready(Ok(driver.take_event())),
            Action::Done => {
                return Poll::Ready(driver.take_error().map_or(Ok(None), |e| Err(e.into())));
            }
            Action::Write { wait } => io.poll_write(cx, driver, wait),
            // Each write's future ends with a flush (see `write_all`).
            Action::Flush => {
                driver.flushed();
                Poll::Ready(Ok(()))
            }
            Action::Read { .. } => io.poll_read(cx, driver),
            Action::Timer => timer.poll(cx, driver).map(Ok),
            Action::Shutdown { discard } => {
                ready!(io.poll_shutdown(cx, discard));
                driver.shut_down();
                Poll::Ready(Ok(()))
            }
            // This half has no wakeup yet for what the other one reported
            // blocked; the driver forgot it at `Wait`: ask again.
            Action::Wait if shared && !blocked => continue,
            Action::Wait => return Poll::Pending,
        };
        match outcome {
            Poll::Pending => blocked = true,
            Poll::Ready(Ok(())) => *progress = true,
            Poll::Ready(Err(e)) => {
                *progress = true;
                if driver.io_error() {
                    return Poll::Ready(Err(e.into()));
                }
            }
        }
    }
}

impl<S: Transport> WebSocket<S> {
    /// Wraps a stream on which the opening handshake already happened
    /// elsewhere. Bytes read past the handshake go in first through
    /// [`from_driver`](Self::from_driver) with
    /// `Driver::with_buffer(Connection::new(role, config), bytes)`.
    pub fn from_raw(stream: S, role: Role, config: Config) -> Self {
        Self::from_driver(stream, Driver::new(Connection::new(role, config)))
    }

    /// Wraps a stream and the driver of a connection the opening handshake
    /// produced (`Accepted::connection`, `ClientResponse::connection`), so
    /// that what was negotiated reaches it.
    pub fn from_driver(stream: S, driver: Driver) -> Self {
        let (timer, progress) = (Timer::default(), false);
        Self {
            io: Io::new(stream),
            driver,
            timer,
            progress,
        }
    }

    pub(crate) async fn run(&mut self, op: Op) -> Result<Option<Event>> {
        poll_fn(|cx| poll_op(self, cx, op, false)).await
    }

    /// Receives the next data message. Pings are answered and Close frames
    /// echoed inside; `None` once the connection is over (see
    /// [`close_frame`](Self::close_frame) for why). A protocol error is
    /// returned once, after its Close frame was flushed and the transport
    /// shut down; so is an I/O error that ends the connection. A message
    /// that arrives in pieces ([`Config::streaming`]) is
    /// [`Error::Streamed`]; receive it with [`recv_event`](Self::recv_event).
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next data message; see [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        let received = ready!(poll_op(self, cx, Op::RecvMessage, false));
        Poll::Ready(whole_message(received, |e| self.driver.put_back(e)))
    }

    /// Like [`recv`](Self::recv), but yields every event: pings (already
    /// answered), pongs, the Close, and the pieces of a streamed message.
    pub async fn recv_event(&mut self) -> Option<Result<Event>> {
        poll_fn(|cx| self.poll_recv_event(cx)).await
    }

    /// Polls for the next event; see [`recv_event`](Self::recv_event).
    pub fn poll_recv_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        poll_op(self, cx, Op::Recv, false).map(Result::transpose)
    }

    /// Queues `message` (once it fits in the outgoing queue) and writes
    /// everything queued; see [`flush`](Self::flush).
    pub async fn send(&mut self, message: Message) -> Result<()> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queues `message` without writing, unless the outgoing queue is full
    /// ([`Config::max_write_buffer`]): then it writes until it fits.
    pub async fn feed(&mut self, message: Message) -> Result<()> {
        self.run(Op::Reserve).await?;
        Ok(self.driver.send(message)?)
    }

    /// Writes everything queued, then polls the read in flight once (see
    /// the crate docs), so that pings are answered and Close frames echoed
    /// while the application only sends; what it reads is kept for the next
    /// receive.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Polls [`flush`](Self::flush) to its end.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_op(self, cx, Op::Flush, false).map_ok(drop)
    }

    /// Sends a ping (payload up to 125 bytes); its pong arrives as
    /// [`Event::Pong`] from [`recv_event`](Self::recv_event).
    pub async fn ping(&mut self, payload: Bytes) -> Result<()> {
        self.driver.ping(payload)?;
        self.flush().await
    }

    /// Closes: queues a Close with `code` and `reason` (unless the close
    /// handshake already started), then runs the handshake to its end: the
    /// peer's Close (and, for a client, the end of the stream), bounded by
    /// the close timeout. Data messages that arrive meanwhile are kept for
    /// later [`recv`](Self::recv) calls.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.driver.close(code, reason)?;
        self.run(Op::Close).await.map(drop)
    }

    ws_proto::driver_accessors!(driver);

    /// The underlying stream.
    pub const fn get_ref(&self) -> &S {
        &self.io.stream
    }

    /// The underlying stream; I/O in flight is cancelled, queued bytes are
    /// dropped.
    pub fn into_inner(self) -> S {
        self.io.stream
    }
}

/// The data messages, as [`WebSocket::recv`] returns them.
impl<S: Transport + Unpin> futures_core::Stream for WebSocket<S> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

/// Messages sent as [`WebSocket::feed`] and [`WebSocket::flush`] do;
/// `poll_close` closes with 1000, as [`WebSocket::close`].
impl<S: Transport + Unpin> futures_sink::Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_op(self.get_mut(), cx, Op::Reserve, false).map_ok(drop)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<()> {
        Ok(self.get_mut().driver.send(message)?)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let ws = self.get_mut();
        ws.driver.close(CloseCode::NORMAL, "")?;
        poll_op(ws, cx, Op::Close, false).map_ok(drop)
    }
}
