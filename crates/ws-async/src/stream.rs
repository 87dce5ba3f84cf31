//! Messages of any size in bounded memory: a received message read as a
//! stream of pieces ([`MessageStream`]) and a message written piece by piece
//! ([`MessageWriter`]), over a whole [`WebSocket`] or a split half.
//!
//! Every protocol decision is the core's: the driver delivers the pieces
//! ([`Event::Fragment`], with [`Config::streaming`](ws_proto::Config::streaming))
//! and drops the rest of a message whose stream was dropped
//! ([`Driver::discard_message`]); [`PieceSender`] cuts text at code points
//! and closes with 1011 when a writer is dropped half way. This module only
//! keeps the piece being read and runs the same operations as `recv` and
//! `send`.

use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use std::io;

#[cfg(any(feature = "tokio", feature = "futures-io"))]
use bytes::Buf;
use bytes::Bytes;
use ws_proto::adapter::{PieceReader, Result};
use ws_proto::{Driver, Event, Message, Op, PieceSender, SendError};

use crate::socket::{Link, poll_op};
use crate::split::Half;
use crate::{Runtime, WebSocket};

/// The connection a message stream or writer runs on: a whole socket or
/// one half of a split one.
pub(crate) enum Conn<'a, S, R: Runtime<S>> {
    Whole(&'a mut WebSocket<S, R>),
    Half(&'a mut Half<S, R>),
}

/// What a [`Conn`] is made from: [`WebSocket`] and the split halves' link.
pub(crate) trait Source<S, R: Runtime<S>> {
    /// This connection, for a message stream or writer.
    fn conn(&mut self) -> Conn<'_, S, R>;
}

impl<S, R: Runtime<S>> Conn<'_, S, R> {
    /// The run loop of `op`, as every other call runs it.
    pub(crate) fn poll_op(&mut self, cx: &mut Context<'_>, op: Op) -> Poll<Result<Option<Event>>> {
        match self {
            Self::Whole(ws) => poll_op(&mut **ws, cx, op),
            Self::Half(half) => poll_op(&mut **half, cx, op),
        }
    }

    /// Runs `f` on the driver (a short, synchronous call).
    fn with<T>(&mut self, f: impl FnOnce(&mut Driver) -> T) -> T {
        match self {
            Self::Whole(ws) => ws.with(f),
            Self::Half(half) => half.with(f),
        }
    }

    /// The operation after a send, as the type's `send` runs it: a whole
    /// socket flushes (and reads what already arrived, so that pings are
    /// answered), a write half only writes.
    const fn flush_op(&self) -> Op {
        match self {
            Self::Whole(_) => Op::Flush,
            Self::Half(_) => Op::WriteOut,
        }
    }

    /// Waits until one more frame fits in the outgoing queue.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.with(|d| d.connection().is_write_buffer_full()) {
            ready!(self.poll_op(cx, Op::Reserve))?;
        }
        Poll::Ready(Ok(()))
    }
}

// ----- Receiving -----

/// One received data message, read piece by piece as it arrives (from
/// `recv_stream` on a [`WebSocket`] or a [`ReadHalf`](crate::ReadHalf)):
/// the message is never held whole, so its size is bounded by nothing but
/// [`Config::max_streamed_message_size`](ws_proto::Config::max_streamed_message_size).
///
/// Read it with [`next_piece`](Self::next_piece), as a `Stream` of
/// `Result<Bytes>`, or as an `AsyncRead` / `AsyncBufRead` (tokio's or
/// `futures-io`'s, through the adapter). Pings are answered and Close frames
/// echoed while it is read, as in `recv`.
///
/// Dropping it before the message's end drops the rest of the message (its
/// remaining pieces are read and discarded): the next receive gets the
/// following message intact. If the connection ends or fails inside the
/// message, the stream yields an error (`UnexpectedEof`, or the protocol
/// error, e.g. invalid UTF-8 in a text message, after which the connection
/// was closed with 1007), then ends.
pub struct MessageStream<'a, S, R: Runtime<S>> {
    conn: Conn<'a, S, R>,
    /// The piece in hand and what each receive means for the message.
    reader: PieceReader,
}

impl<S, R: Runtime<S>> fmt::Debug for MessageStream<'_, S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageStream")
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

impl<'a, S, R: Runtime<S>> MessageStream<'a, S, R> {
    /// The outcome of a receive ([`Op::RecvMessage`]) on `conn` as the
    /// stream of its message.
    pub(crate) fn start(
        conn: Conn<'a, S, R>,
        outcome: Result<Option<Event>>,
    ) -> Option<Result<Self>> {
        PieceReader::start(outcome).map(|reader| reader.map(|reader| Self { conn, reader }))
    }

    /// Whether the message is text: every piece is then whole UTF-8 code
    /// points (checked), so it can be read with `Utf8Bytes` or
    /// `str::from_utf8` piece by piece.
    pub const fn is_text(&self) -> bool {
        self.reader.is_text()
    }

    /// Receives until a piece is in hand or the message is over.
    fn poll_more(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        while self.reader.wants_more() {
            let received = ready!(self.conn.poll_op(cx, Op::RecvMessage));
            let reader = &mut self.reader;
            self.conn.with(|d| reader.receive(received, d))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Polls for the next piece; see [`next_piece`](Self::next_piece).
    pub fn poll_next_piece(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes>>> {
        if let Err(e) = ready!(self.poll_more(cx)) {
            return Poll::Ready(Some(Err(e)));
        }
        Poll::Ready(self.reader.take_piece().map(Ok))
    }

    /// The message's next piece as it arrives: `None` after the last (an
    /// empty message has none). Pieces follow no frame boundaries. An error
    /// (the connection ended or failed inside the message) ends the stream.
    ///
    /// Cancel-safe: a piece is taken from the connection only when it is
    /// returned.
    pub async fn next_piece(&mut self) -> Option<Result<Bytes>> {
        core::future::poll_fn(|cx| self.poll_next_piece(cx)).await
    }

    /// Makes the piece being read non-empty, unless the message is over.
    #[cfg(any(feature = "tokio", feature = "futures-io"))]
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&mut Bytes>> {
        ready!(self.poll_more(cx))?;
        Poll::Ready(Ok(self.reader.piece_mut()))
    }

    /// `AsyncRead`: copies from the piece being read into `buf`.
    #[cfg(feature = "futures-io")]
    fn poll_read_into(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let piece = ready!(self.poll_fill(cx))?;
        let n = buf.len().min(piece.len());
        piece.copy_to_slice(&mut buf[..n]);
        Poll::Ready(Ok(n))
    }
}

impl<S, R: Runtime<S>> Drop for MessageStream<'_, S, R> {
    fn drop(&mut self) {
        self.reader.abandon(|discard| self.conn.with(discard));
    }
}

impl<S, R: Runtime<S>> futures_core::Stream for MessageStream<'_, S, R> {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes>>> {
        self.get_mut().poll_next_piece(cx)
    }
}

#[cfg(feature = "tokio")]
impl<S, R: Runtime<S>> tokio::io::AsyncRead for MessageStream<'_, S, R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let piece = ready!(this.poll_fill(cx))?;
        let n = buf.remaining().min(piece.len());
        buf.put_slice(&piece[..n]);
        piece.advance(n);
        Poll::Ready(Ok(()))
    }
}

#[cfg(feature = "futures-io")]
impl<S, R: Runtime<S>> futures_io::AsyncRead for MessageStream<'_, S, R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_read_into(cx, buf)
    }
}

// ----- Sending -----

/// One data message sent piece by piece (from `send_stream` on a
/// [`WebSocket`] or a [`WriteHalf`](crate::WriteHalf)), never held whole:
/// each write becomes a frame of the message (compressed on its own with
/// permessage-deflate); [`finish`](Self::finish) ends it. Text is cut at
/// code points: the bytes of a code point a write ends inside wait for the
/// next write; bytes that are not UTF-8 fail the write.
///
/// Write it with `AsyncWrite` (tokio's or `futures-io`'s, through the
/// adapter: `write_all`, `io::copy`; `shutdown` / `close` finishes the
/// message) or with [`send`](Self::send) for owned pieces, without a copy.
/// A write waits for room in the outgoing queue, queues a frame of what it
/// was given (at most
/// [`Config::max_write_buffer`](ws_proto::Config::max_write_buffer) bytes,
/// or 64 KiB if that is less: `write_all` writes the rest next) and writes
/// what the transport takes at once; the rest goes out with the next write
/// or flush.
///
/// Dropping it unfinished, once any of it was queued, closes the connection
/// with 1011 (the Close frame is queued; the next operation writes it), so
/// that the peer never takes the part sent for a whole message.
pub struct MessageWriter<'a, S, R: Runtime<S>> {
    conn: Conn<'a, S, R>,
    sender: PieceSender,
}

impl<S, R: Runtime<S>> fmt::Debug for MessageWriter<'_, S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageWriter")
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

/// What queueing a frame of the message came to.
enum Queued<T, N> {
    /// Queued; what the queueing returned (a write: the bytes taken).
    Done(N),
    /// The queue filled meanwhile (the other half queued a reply): wait for
    /// room again.
    Full(T),
}

impl<'a, S, R: Runtime<S>> MessageWriter<'a, S, R> {
    /// A writer of a text (`text`) or binary message on `conn`.
    pub(crate) const fn new(conn: Conn<'a, S, R>, text: bool) -> Self {
        Self {
            conn,
            sender: PieceSender::new(text),
        }
    }

    /// Whether this is a text message.
    pub const fn is_text(&self) -> bool {
        self.sender.is_text()
    }

    /// Runs `queue` on the sender and the connection: a full queue
    /// (`SendError::Full`) is handed back to wait for room again.
    fn queue<T, N>(
        &mut self,
        queue: impl FnOnce(&mut PieceSender, &mut Driver) -> Result<N, SendError>,
        full: impl FnOnce(Message) -> T,
    ) -> Result<Queued<T, N>> {
        let sender = &mut self.sender;
        self.conn.with(|d| match queue(sender, d) {
            Ok(taken) => Ok(Queued::Done(taken)),
            Err(SendError::Full(message)) => Ok(Queued::Full(full(message))),
            Err(e) => Err(e.into()),
        })
    }

    /// Polls writing `data` as the message's next frame (copied): waits for
    /// room, queues it, writes what the transport takes now. The count is
    /// what was queued: all of `data`, or its first
    /// [`max_write_buffer`](ws_proto::Config::max_write_buffer) bytes (at
    /// least 64 KiB) when it is longer, so that one write copies a
    /// bounded amount whatever the slice.
    pub fn poll_write_piece(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let taken = loop {
            ready!(self.conn.poll_room(cx))?;
            let queued = self.queue(|s, d| s.write(d.connection_mut(), data), drop)?;
            if let Queued::Done(taken) = queued {
                break taken;
            }
        };
        // Queued: the bytes are taken whatever the transport does now.
        if let Poll::Ready(Err(e)) = self.conn.poll_op(cx, self.conn.flush_op()) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(taken))
    }

    /// Polls sending `piece`, which is taken (set to `None`) once queued;
    /// see [`send`](Self::send).
    pub fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        piece: &mut Option<Message>,
    ) -> Poll<Result<()>> {
        while let Some(message) = piece.take() {
            match self.conn.poll_room(cx) {
                Poll::Pending => {
                    *piece = Some(message);
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let queued = self.queue(|s, d| s.send(d.connection_mut(), message), Some)?;
            if let Queued::Full(message) = queued {
                *piece = message;
            }
        }
        self.conn.poll_op(cx, self.conn.flush_op()).map_ok(drop)
    }

    /// Sends `piece` as the message's next frame without copying it (binary
    /// for a binary message, text for a text one; not after a write that
    /// ended inside a code point): waits for room, queues it and writes
    /// everything queued, as the socket's `send` does. Cancellation as for
    /// `send`: a piece is lost only if dropped while waiting for room.
    pub async fn send(&mut self, piece: Message) -> Result<()> {
        let mut piece = Some(piece);
        core::future::poll_fn(|cx| self.poll_send(cx, &mut piece)).await
    }

    /// Polls writing everything queued, as the socket's `flush` does.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.conn.poll_op(cx, self.conn.flush_op()).map_ok(drop)
    }

    /// Polls finishing the message; see [`finish`](Self::finish).
    pub fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        while !self.sender.is_finished() {
            ready!(self.conn.poll_room(cx))?;
            self.queue(|s, d| s.finish(d.connection_mut()), drop)?;
        }
        self.poll_flush(cx)
    }

    /// Ends the message: queues its last frame and writes everything
    /// queued. A text message that ends inside a code point fails with
    /// [`SendError::InvalidUtf8`] (and the writer, dropped unfinished,
    /// closes the connection with 1011). Cancel-safe once the last frame is
    /// queued (it goes out with the next write).
    pub async fn finish(mut self) -> Result<()> {
        core::future::poll_fn(|cx| self.poll_finish(cx)).await
    }

    /// `AsyncWrite::poll_write`.
    #[cfg(any(feature = "tokio", feature = "futures-io"))]
    fn poll_write_io(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_piece(cx, data).map_err(io::Error::from)
    }
}

impl<S, R: Runtime<S>> Drop for MessageWriter<'_, S, R> {
    fn drop(&mut self) {
        if self.sender.is_unfinished() {
            let sender = &mut self.sender;
            self.conn.with(|d| sender.abandon(d.connection_mut()));
            if let Conn::Half(half) = &self.conn {
                // The close timer starts: let the reader arm it.
                half.wake_all();
            }
        }
    }
}

/// With the feature `$feature`, that runtime's `AsyncBufRead` (`$buf_read`)
/// for [`MessageStream`] and `AsyncWrite` (`$write`, whose method
/// `$shutdown` finishes the message) for [`MessageWriter`]: tokio's and
/// `futures-io`'s traits differ in nothing else. (Their `AsyncRead`s differ
/// in the buffer they fill: written out above.)
macro_rules! io_traits {
    ($feature:literal, $buf_read:path, $write:path, $shutdown:ident) => {
        #[cfg(feature = $feature)]
        impl<S, R: Runtime<S>> $buf_read for MessageStream<'_, S, R> {
            fn poll_fill_buf(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<&[u8]>> {
                let this = self.get_mut();
                let piece = ready!(this.poll_fill(cx))?;
                Poll::Ready(Ok(&piece[..]))
            }

            fn consume(self: Pin<&mut Self>, amt: usize) {
                self.get_mut().reader.piece_mut().advance(amt);
            }
        }

        #[cfg(feature = $feature)]
        impl<S, R: Runtime<S>> $write for MessageWriter<'_, S, R> {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.get_mut().poll_write_io(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                MessageWriter::poll_flush(self.get_mut(), cx).map_err(io::Error::from)
            }

            /// Finishes the message.
            fn $shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.get_mut().poll_finish(cx).map_err(io::Error::from)
            }
        }
    };
}

io_traits!(
    "tokio",
    tokio::io::AsyncBufRead,
    tokio::io::AsyncWrite,
    poll_shutdown
);
io_traits!(
    "futures-io",
    futures_io::AsyncBufRead,
    futures_io::AsyncWrite,
    poll_close
);
