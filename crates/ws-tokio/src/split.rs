//! The read and write halves of a split [`WebSocket`].

use alloc::{sync::Arc, task::Wake};
use core::{
    future::poll_fn,
    pin::Pin,
    task::{Context, Poll, Waker},
};
use std::{
    io,
    sync::{Mutex, MutexGuard, PoisonError},
};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::poll_read_buf;
use ws_proto::{CloseCode, CloseFrame, Connection, Event, Message};

use crate::{
    Error, Result, WebSocket,
    socket::{
        Link, ReadLink, Receiver, ping, poll_command, poll_ready, poll_write_all, start_close,
    },
};

/// The connection and the write side of the stream, behind one lock taken
/// only for short synchronous calls (never across a wait).
#[derive(Debug)]
struct WriteState<S> {
    conn: Connection,
    write: tokio::io::WriteHalf<S>,
    /// The reader's task, woken when a command may have moved the deadline.
    reader: Option<Waker>,
}

/// Wakes both halves when the write side becomes ready: whichever half polls
/// the write side registers this waker, so neither displaces the other.
#[derive(Debug, Default)]
struct WriteWakers {
    slots: Mutex<[Option<Waker>; 2]>,
}

impl Wake for WriteWakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let slots = core::mem::take(&mut *lock(&self.slots));
        slots.into_iter().flatten().for_each(Waker::wake);
    }
}

#[derive(Debug)]
struct Shared<S> {
    state: Mutex<WriteState<S>>,
    wakers: Arc<WriteWakers>,
    /// `wakers` as a `Waker`, handed to the write side.
    write_waker: Waker,
}

const READER: usize = 0;
const WRITER: usize = 1;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn register(slot: &mut Option<Waker>, waker: &Waker) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
        *slot = Some(waker.clone());
    }
}

impl<S: AsyncWrite> Shared<S> {
    /// Runs a poll of the write side for half `side`.
    fn poll_write_side<R>(
        &self,
        cx: &Context<'_>,
        side: usize,
        f: impl FnOnce(&mut WriteState<S>, &mut Context<'_>) -> Poll<R>,
    ) -> Poll<R> {
        register(&mut lock(&self.wakers.slots)[side], cx.waker());
        let mut shared_cx = Context::from_waker(&self.write_waker);
        f(&mut lock(&self.state), &mut shared_cx)
    }
}

/// A [`Link`] for either half: `side` says whose waker to register.
struct HalfLink<'a, S> {
    shared: &'a Shared<S>,
    side: usize,
    /// The read side and the reader's waker (read half only).
    read: Option<(&'a mut tokio::io::ReadHalf<S>, &'a Waker)>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link for HalfLink<'_, S> {
    fn with_conn<R>(&mut self, f: impl FnOnce(&mut Connection) -> R) -> R {
        let mut state = lock(&self.shared.state);
        if let Some((_, waker)) = &self.read {
            register(&mut state.reader, waker);
        }
        f(&mut state.conn)
    }

    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.poll_write_side(cx, self.side, |state, cx| {
            poll_write_all(&mut state.write, &mut state.conn, cx)
        })
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.poll_write_side(cx, self.side, |state, cx| {
            Pin::new(&mut state.write).poll_shutdown(cx)
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadLink for HalfLink<'_, S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        match &mut self.read {
            Some((read, _)) => poll_read_buf(Pin::new(&mut **read), cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::Unsupported.into())),
        }
    }
}

/// The receiving half of a [`WebSocket`], from [`WebSocket::split`].
///
/// It drives the connection as [`WebSocket::recv`] does: automatic replies
/// (pongs, the Close echo, keepalive pings) are written through the shared
/// write side when it is free, otherwise by the [`WriteHalf`]'s next call.
/// It also runs the timers (keepalive, close timeout): keep it polled.
#[derive(Debug)]
pub struct ReadHalf<S> {
    read: tokio::io::ReadHalf<S>,
    shared: Arc<Shared<S>>,
    rx: Receiver,
}

/// The sending half of a [`WebSocket`], from [`WebSocket::split`].
#[derive(Debug)]
pub struct WriteHalf<S> {
    shared: Arc<Shared<S>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Splits the socket into halves usable from two tasks at once. The
    /// connection is shared behind a lock held only for short synchronous
    /// calls, never across an I/O wait.
    pub fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        let (stream, conn, rx) = self.into_parts();
        let (read, write) = tokio::io::split(stream);
        let wakers = Arc::new(WriteWakers::default());
        let shared = Arc::new(Shared {
            state: Mutex::new(WriteState {
                conn,
                write,
                reader: None,
            }),
            write_waker: Waker::from(Arc::clone(&wakers)),
            wakers,
        });
        let write = WriteHalf {
            shared: Arc::clone(&shared),
        };
        (ReadHalf { read, shared, rx }, write)
    }

    /// Puts the halves back together. Fails (dropping them) if they do not
    /// come from the same socket.
    pub fn reunite(read: ReadHalf<S>, write: WriteHalf<S>) -> Result<Self> {
        if !Arc::ptr_eq(&read.shared, &write.shared) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the halves come from different WebSockets",
            )
            .into());
        }
        drop(write);
        let ReadHalf { read, shared, rx } = read;
        let shared = Arc::try_unwrap(shared)
            .map_err(|_| io::Error::other("the write half is still shared"))?;
        let state = shared
            .state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(Self::from_parts(read.unsplit(state.write), state.conn, rx))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    /// Puts the halves back together: `WebSocket::reunite(self, write)`.
    pub fn reunite(self, write: WriteHalf<S>) -> Result<WebSocket<S>> {
        WebSocket::reunite(self, write)
    }
}

impl<S> ReadHalf<S> {
    /// Why the connection ended; see [`WebSocket::close_frame`].
    pub const fn close_frame(&self) -> Option<&CloseFrame> {
        self.rx.close_frame()
    }

    /// Runs `f` on the shared connection (under its lock: keep it short).
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(&mut lock(&self.shared.state).conn)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    fn parts<'a>(&'a mut self, waker: &'a Waker) -> (HalfLink<'a, S>, &'a mut Receiver) {
        let link = HalfLink {
            shared: &self.shared,
            side: READER,
            read: Some((&mut self.read, waker)),
        };
        (link, &mut self.rx)
    }

    /// Polls for the next event; see [`recv_event`](Self::recv_event).
    pub fn poll_recv_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        let waker = cx.waker().clone();
        let (mut link, rx) = self.parts(&waker);
        rx.poll_event(&mut link, cx)
    }

    /// Polls for the next data message; see [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        let waker = cx.waker().clone();
        let (mut link, rx) = self.parts(&waker);
        rx.poll_message(&mut link, cx)
    }

    /// Receives the next data message; see [`WebSocket::recv`]. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Receives the next event; see [`WebSocket::recv_event`]. Cancel-safe.
    pub async fn recv_event(&mut self) -> Option<Result<Event>> {
        poll_fn(|cx| self.poll_recv_event(cx)).await
    }
}

impl<S> WriteHalf<S> {
    /// Runs `f` on the shared connection (under its lock: keep it short),
    /// e.g. for [`Connection::send_fragment`]; then [`flush`](Self::flush).
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(&mut lock(&self.shared.state).conn)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WriteHalf<S> {
    fn link(&self) -> HalfLink<'_, S> {
        HalfLink {
            shared: &self.shared,
            side: WRITER,
            read: None,
        }
    }

    /// Polls writing everything queued; see [`flush`](Self::flush).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.link().poll_write_out(cx).map_err(Error::from)
    }

    /// Queues `message` and writes everything queued; see
    /// [`WebSocket::send`] (same cancellation behavior).
    pub async fn send(&mut self, message: Message) -> Result<()> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queues `message`, writing only while the buffer is full; see
    /// [`WebSocket::feed`].
    pub async fn feed(&mut self, message: Message) -> Result<()> {
        let mut slot = Some(message);
        poll_fn(|cx| poll_command(&mut self.link(), cx, &mut slot, Connection::send)).await
    }

    /// Writes everything queued. Cancel-safe: what is not written stays
    /// queued.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Sends a ping; its pong arrives at the [`ReadHalf`] as [`Event::Pong`].
    /// Cancellation as for [`WebSocket::send`].
    pub async fn ping(&mut self, payload: Bytes) -> Result<()> {
        let mut slot = Some(Message::Binary(payload));
        poll_fn(|cx| poll_command(&mut self.link(), cx, &mut slot, ping)).await?;
        self.flush().await
    }

    /// Queues a Close frame (unless one was sent) and flushes it. The
    /// [`ReadHalf`] completes the close handshake: it reads until the peer's
    /// Close (or the close timeout), then shuts the transport down and its
    /// `recv` returns `None`. Cancel-safe: the Close is queued once and a
    /// later `flush` (or the reader) writes it.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.start_close(code, reason)?;
        self.flush().await
    }

    fn start_close(&self, code: CloseCode, reason: &str) -> Result<()> {
        let reader = {
            let mut state = lock(&self.shared.state);
            start_close(&mut state.conn, code, reason)?;
            state.reader.take()
        };
        // The close timer starts: let the reader arm it.
        if let Some(reader) = reader {
            reader.wake();
        }
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for ReadHalf<S> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WriteHalf<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        poll_ready(&mut self.link(), cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        Ok(self.with_connection(|conn| conn.send(item))?)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush(cx)
    }

    /// Queues Close 1000 and flushes it; the [`ReadHalf`] finishes the close.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.start_close(CloseCode::NORMAL, "")?;
        this.poll_flush(cx)
    }
}
