//! The halves of a split socket: one [`WebSocket`] behind an `Rc<RefCell>`,
//! borrowed only for one synchronous pass of the run loop (never across an
//! `.await`), and each half's wakeup.
//!
//! compio runs one thread per runtime and its futures are not `Send`, so
//! the halves are for two tasks of one runtime (`compio::runtime::spawn`).
//! The read in flight and the timer are the reader's; the write in flight
//! is polled by whichever half runs: a pong written by the reader and a
//! message written by the writer go out in queue order, one at a time.

use core::cell::RefCell;
use core::future::poll_fn;
use core::pin::Pin;
use core::task::{Context, Poll, Waker, ready};
use std::{io, rc::Rc};

use ws_proto::adapter::{Error, Result, whole_message};
use ws_proto::{
    CloseCode, CloseFrame, Connection, Driver, Event, Message, Offer, Offered, Op, WhenFull,
};

use crate::Bytes;
use crate::socket::{Transport, WebSocket, poll_op};

const READER: usize = 0;
const WRITER: usize = 1;

#[derive(Debug)]
struct Shared<S> {
    ws: WebSocket<S>,
    /// The wakeup of each half's last operation that waits.
    wakers: [Option<Waker>; 2],
}

type Link<S> = Rc<RefCell<Shared<S>>>;

/// The receiving half of a split [`WebSocket`]; see [`WebSocket::split`].
///
/// It runs the connection's timer (keepalive, close timeout) and answers
/// pings: keep it receiving, also after [`WriteHalf::close`], until `None`.
#[derive(Debug)]
pub struct ReadHalf<S = compio::net::TcpStream>(Link<S>);

/// The sending half of a split [`WebSocket`]; see [`WebSocket::split`].
#[derive(Debug)]
pub struct WriteHalf<S = compio::net::TcpStream>(Link<S>);

/// One pass of the run loop for half `me`; a half whose pass reported I/O
/// to the driver wakes the other one, which may wait for that I/O.
fn poll_half<S: Transport>(
    link: &Link<S>,
    cx: &mut Context<'_>,
    op: Op,
    me: usize,
) -> Poll<Result<Option<Event>>> {
    let mut shared = link.borrow_mut();
    let polled = poll_op(&mut shared.ws, cx, op, true);
    if polled.is_pending() {
        shared.wakers[me] = Some(cx.waker().clone());
    }
    let other = match core::mem::take(&mut shared.ws.progress) {
        true => shared.wakers[1 - me].take(),
        false => None,
    };
    drop(shared);
    if let Some(waker) = other {
        waker.wake();
    }
    polled
}

/// Runs `f` on the shared driver; wakes `wake`, whose operation may now
/// have work (a queued message for the reader to write).
fn with<S, T>(link: &Link<S>, wake: Option<usize>, f: impl FnOnce(&mut Driver) -> T) -> T {
    let mut shared = link.borrow_mut();
    let out = f(&mut shared.ws.driver);
    let waker = wake.and_then(|half| shared.wakers[half].take());
    drop(shared);
    if let Some(waker) = waker {
        waker.wake();
    }
    out
}

impl<S: Transport> WebSocket<S> {
    /// Splits into a receiving and a sending half, for two tasks of the
    /// same runtime. The reader keeps receiving (and answering pings) while
    /// the writer waits for a slow peer.
    pub fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        let wakers = [None, None];
        let link = Rc::new(RefCell::new(Shared { ws: self, wakers }));
        (ReadHalf(Rc::clone(&link)), WriteHalf(link))
    }

    /// Puts split halves back together; fails (dropping both) if they come
    /// from different sockets.
    pub fn reunite(read: ReadHalf<S>, write: WriteHalf<S>) -> Result<Self> {
        let invalid = |why| io::Error::new(io::ErrorKind::InvalidInput, why);
        if !Rc::ptr_eq(&read.0, &write.0) {
            return Err(invalid("the halves come from different WebSockets").into());
        }
        drop(write);
        let shared = Rc::into_inner(read.0).ok_or_else(|| invalid("still shared"))?;
        Ok(shared.into_inner().ws)
    }
}

impl<S: Transport> ReadHalf<S> {
    /// Like [`WebSocket::recv`].
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Like [`WebSocket::poll_recv`].
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        let received = ready!(poll_half(&self.0, cx, Op::RecvMessage, READER));
        Poll::Ready(whole_message(received, |e| {
            with(&self.0, None, |d| d.put_back(e))
        }))
    }

    /// Like [`WebSocket::recv_event`].
    pub async fn recv_event(&mut self) -> Option<Result<Event>> {
        poll_fn(|cx| self.poll_recv_event(cx)).await
    }

    /// Like [`WebSocket::poll_recv_event`].
    pub fn poll_recv_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        poll_half(&self.0, cx, Op::Recv, READER).map(Result::transpose)
    }

    /// Like [`WebSocket::close_frame`] (a copy).
    pub fn close_frame(&self) -> Option<CloseFrame> {
        with(&self.0, None, |d| d.close_frame().cloned())
    }

    /// Runs `f` on the shared connection.
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        with(&self.0, None, |d| f(d.connection_mut()))
    }

    /// Puts the halves back together: `WebSocket::reunite(self, write)`.
    pub fn reunite(self, write: WriteHalf<S>) -> Result<WebSocket<S>> {
        WebSocket::reunite(self, write)
    }
}

impl<S: Transport> WriteHalf<S> {
    async fn run(&self, op: Op) -> Result<Option<Event>> {
        poll_fn(|cx| poll_half(&self.0, cx, op, WRITER)).await
    }

    /// Queues `message` (once it fits) and writes everything queued, the
    /// reader's replies included; never reads.
    pub async fn send(&mut self, message: Message) -> Result<()> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queues `message` without writing, unless the outgoing queue is full
    /// (then it writes until it fits).
    pub async fn feed(&mut self, message: Message) -> Result<()> {
        self.run(Op::Reserve).await?;
        Ok(with(&self.0, None, |d| d.send(message))?)
    }

    /// Writes everything queued; never reads (the [`ReadHalf`] does).
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Polls [`flush`](Self::flush) to its end.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_half(&self.0, cx, Op::WriteOut, WRITER).map_ok(drop)
    }

    /// Sends a ping (payload up to 125 bytes); its pong arrives at the
    /// [`ReadHalf`] as [`Event::Pong`].
    pub async fn ping(&mut self, payload: Bytes) -> Result<()> {
        with(&self.0, None, |d| d.ping(payload))?;
        self.flush().await
    }

    /// Queues `message` without waiting: an error with
    /// [`Error::is_full`](crate::Error::is_full) (the message is in it) at
    /// the queue's high-water mark. The [`ReadHalf`]'s receive writes it
    /// (it is woken), or this half's next `flush`.
    pub fn try_send(&self, message: Message) -> Result<()> {
        Ok(with(&self.0, Some(READER), |d| d.send(message))?)
    }

    /// Starts the close handshake: writes a Close with `code` and `reason`
    /// (unless it already started) and returns; the [`ReadHalf`] finishes
    /// it (it runs the close timer): keep receiving there until `None`.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.try_close(code, reason)?;
        self.flush().await
    }

    /// Starts the close handshake without waiting: queues a Close (behind
    /// whatever is queued, even in a full queue) and arms the close timer;
    /// the [`ReadHalf`]'s receive writes it, finishes the handshake, and
    /// drops a peer that does not answer within the close timeout.
    pub fn try_close(&self, code: CloseCode, reason: &str) -> Result<()> {
        Ok(with(&self.0, Some(READER), |d| d.close(code, reason))?)
    }

    /// Runs `f` on the shared connection (e.g. `send_fragment`); then
    /// [`flush`](Self::flush).
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        with(&self.0, None, |d| f(d.connection_mut()))
    }
}

/// The data messages, as [`ReadHalf::recv`] returns them.
impl<S: Transport> futures_core::Stream for ReadHalf<S> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

/// Messages sent as [`WriteHalf::feed`] and [`WriteHalf::flush`] do;
/// `poll_close` writes a Close with 1000, as [`WriteHalf::close`].
impl<S: Transport> futures_sink::Sink<Message> for WriteHalf<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_half(&self.0, cx, Op::Reserve, WRITER).map_ok(drop)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<()> {
        Ok(with(&self.0, None, |d| d.send(message))?)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let half = self.get_mut();
        half.try_close(CloseCode::NORMAL, "")?;
        half.poll_flush(cx)
    }
}

/// One connection of a [`broadcast`](crate::broadcast): queued without
/// waiting ([`Driver::offer`]); the [`ReadHalf`]'s receive writes it.
impl<S: Transport> Offer for WriteHalf<S> {
    fn offer(&self, message: Message, when_full: WhenFull<'_>) -> Offered {
        with(&self.0, Some(READER), |d| d.offer(message, when_full))
    }
}
