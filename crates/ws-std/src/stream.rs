//! Messages of any size in bounded memory: a received message read piece by
//! piece ([`MessageReader`]), a sent one written piece by piece
//! ([`MessageWriter`]), over a whole socket or one half of a split one.

use core::{fmt, time::Duration};
use std::{
    io::{self, Read, Write},
    time::Instant,
};

use bytes::{Buf, Bytes};
use ws_proto::adapter::{PieceReader, whole_message};
use ws_proto::{Connection, Driver, Event, Message, Op, PieceSender};

use crate::{Result, Transport, WebSocket, socket::Timer};

/// What a message reader or writer drives: a socket, or one half of it.
pub(crate) trait Socket<S> {
    /// Runs `op` until `until`; `Op::Flush` is the socket's `flush`.
    fn step(&mut self, op: Op, until: Option<Instant>) -> Result<Option<Event>>;
    /// The receive deadline set with `set_read_timeout` (a reader's).
    fn timeout(&self) -> Option<Duration> {
        None
    }
    /// Lends the driver to `f` (under its lock, for a half).
    fn driver(&mut self, f: &mut dyn FnMut(&mut Driver));
}

impl<S: Transport> Socket<S> for WebSocket<S> {
    fn step(&mut self, op: Op, until: Option<Instant>) -> Result<Option<Event>> {
        self.run(op, until)
    }
    fn timeout(&self) -> Option<Duration> {
        self.timer.timeout
    }
    fn driver(&mut self, f: &mut dyn FnMut(&mut Driver)) {
        f(&mut self.driver);
    }
}

impl<S> dyn Socket<S> + '_ {
    fn with<T>(&mut self, f: impl FnOnce(&mut Driver) -> T) -> T {
        let (mut f, mut out) = (Some(f), None);
        self.driver(&mut |d| out = f.take().map(|f| f(d)));
        out.expect("the driver is lent once")
    }

    /// The next data event, within the receive deadline.
    fn recv(&mut self) -> Result<Option<Event>> {
        let until = Timer::until(self.timeout());
        self.step(Op::RecvMessage, until)
    }
}

impl<S> fmt::Debug for dyn Socket<S> + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Socket")
    }
}

/// `recv` and `recv_timeout`: the next whole message. A streamed message's
/// piece is given back for `recv_stream`.
pub(crate) fn message<S>(
    timeout: Option<Duration>,
    socket: &mut dyn Socket<S>,
) -> Option<Result<Message>> {
    let until = Timer::until(timeout);
    let received = socket.step(Op::RecvMessage, until);
    whole_message(received, |event| socket.with(|d| d.put_back(event)))
}

/// A received data message, read piece by piece as it arrives, from
/// [`WebSocket::recv_stream`] or
/// [`ReadHalf::recv_stream`](crate::ReadHalf::recv_stream): with
/// [`next_piece`](Self::next_piece), or as an [`io::Read`] of the message's
/// bytes (end of file at its end).
///
/// Pings are answered and pongs consumed while it reads. Dropped before the
/// end, it has the rest of the message skipped (read and dropped as it
/// arrives), so the next receive gets the next message. A connection that
/// fails or ends inside the message is an error (the protocol error, e.g.
/// invalid UTF-8 closing with 1007; else [`Error::CutShort`](crate::Error::CutShort)), never a short
/// message.
#[derive(Debug)]
pub struct MessageReader<'a, S> {
    socket: &'a mut dyn Socket<S>,
    /// The piece in hand and what each receive means for the message.
    reader: PieceReader,
}

impl<'a, S> MessageReader<'a, S> {
    /// The next message's reader: a streamed message from its first piece,
    /// or a whole one as one piece.
    pub(crate) fn start(socket: &'a mut dyn Socket<S>) -> Option<Result<Self>> {
        let reader = PieceReader::start(socket.recv());
        reader.map(|reader| reader.map(|reader| Self { socket, reader }))
    }

    /// Whether this is a text message (its pieces are whole code points,
    /// UTF-8 checked).
    pub const fn is_text(&self) -> bool {
        self.reader.is_text()
    }

    /// The next piece of the message (what is left of it after `read`),
    /// `None` after the last. Bounded by the socket's receive deadline
    /// (`set_read_timeout`): past it, `Error::Io` of kind `TimedOut`, and
    /// nothing is lost.
    pub fn next_piece(&mut self) -> Option<Result<Bytes>> {
        match self.fill() {
            Ok(()) => self.reader.take_piece().map(Ok),
            Err(e) => Some(Err(e)),
        }
    }

    /// Receives until a piece is in hand or the message is over. A timeout
    /// returns before the reader sees it: the stream goes on.
    fn fill(&mut self) -> Result<()> {
        while self.reader.wants_more() {
            let received = self.socket.recv()?;
            let reader = &mut self.reader;
            self.socket.with(|d| reader.receive(Ok(received), d))?;
        }
        Ok(())
    }
}

impl<S> Read for MessageReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fill()?;
        let piece = self.reader.piece_mut();
        let n = buf.len().min(piece.len());
        piece.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

impl<S> Drop for MessageReader<'_, S> {
    fn drop(&mut self) {
        self.reader.abandon(|discard| self.socket.with(discard));
    }
}

/// A data message sent piece by piece, from [`WebSocket::send_stream`] or
/// [`WriteHalf::send_stream`](crate::WriteHalf::send_stream): each
/// [`write`](Write::write) of its [`io::Write`] sends one frame (at most
/// `Config::max_write_buffer` bytes of what it is given, or 64 KiB if that
/// is less ([`PieceSender::write`](ws_proto::PieceSender::write)), copied; text is cut
/// at code points, a code point the write ends inside waits for the next);
/// [`send`](Self::send) sends an owned piece without copying;
/// [`finish`](Self::finish) ends the message. Pings are still answered
/// between pieces. Its `send` and `finish`, like the socket's `send`,
/// report a write timeout of the stream and lose nothing: what was not
/// written stays queued.
///
/// Dropped unfinished after a frame went out, it closes the connection with
/// 1011 (the Close goes out with the socket's next operation), so that the
/// peer never takes a truncated message for a whole one.
#[derive(Debug)]
pub struct MessageWriter<'a, S> {
    socket: &'a mut dyn Socket<S>,
    sender: PieceSender,
}

impl<'a, S> MessageWriter<'a, S> {
    pub(crate) fn new(socket: &'a mut dyn Socket<S>, text: bool) -> Self {
        let sender = PieceSender::new(text);
        Self { socket, sender }
    }

    /// Sends `piece` (of the message's type) as the next frame, without
    /// copying; text must not follow a write that ended inside a code point.
    pub fn send(&mut self, piece: Message) -> Result<()> {
        self.put(|sender, conn| sender.send(conn, piece))
    }

    /// Ends the message (its last frame) and writes everything out. Text
    /// that ends inside a code point is refused (and the writer dropped).
    pub fn finish(mut self) -> Result<()> {
        self.put(PieceSender::finish)
    }

    /// Makes room in the queue, queues with `f`, and writes out.
    fn put<T>(
        &mut self,
        f: impl FnOnce(&mut PieceSender, &mut Connection) -> Result<T, ws_proto::SendError>,
    ) -> Result<T> {
        self.socket.step(Op::Reserve, None)?;
        let sender = &mut self.sender;
        let out = self.socket.with(|d| f(sender, d.connection_mut()))?;
        self.socket.step(Op::Flush, None)?;
        Ok(out)
    }
}

impl<S> Write for MessageWriter<'_, S> {
    /// Bytes taken are reported taken even if writing them out ran into a
    /// write timeout: they stay queued for the next call.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut taken = 0;
        let put = self.put(|sender, conn| sender.write(conn, buf).map(|n| taken = n));
        match put {
            Err(e) if taken == 0 || !e.is_timeout() => Err(e.into()),
            _ => Ok(taken),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(self.socket.step(Op::Flush, None).map(drop)?)
    }
}

impl<S> Drop for MessageWriter<'_, S> {
    fn drop(&mut self) {
        let sender = &mut self.sender;
        self.socket.with(|d| sender.abandon(d.connection_mut()));
    }
}
