//! Sending one message piece by piece from byte slices.

use alloc::vec::Vec;

use bytes::Bytes;

use super::Connection;
use crate::{
    error::SendError,
    event::Message,
    utf8::{Utf8Bytes, complete_prefix},
};

/// The state of one message sent piece by piece from byte slices: what an
/// adapter's streaming writer (`AsyncWrite`, `io::Write`) keeps. Each
/// [`write`](Self::write) queues one frame through
/// [`Connection::send_fragment`] (so control frames still go out between
/// them, and with permessage-deflate each frame is compressed and
/// sync-flushed on its own); [`finish`](Self::finish) ends the message.
/// Text is cut at code points: the bytes of a code point a write ends
/// inside wait for the next write.
///
/// ```
/// use ws_proto::{Config, Connection, PieceSender, Role};
///
/// let mut conn = Connection::with_entropy(Role::Server, Config::default(), |_: &mut [u8]| {});
/// let mut text = PieceSender::new(true);
/// let euro = "€".as_bytes();
/// text.write(&mut conn, &euro[..1])?; // held: a code point is open
/// text.write(&mut conn, &euro[1..])?;
/// text.finish(&mut conn)?;
/// # Ok::<(), ws_proto::SendError>(())
/// ```
#[derive(Clone, Debug)]
pub struct PieceSender {
    text: bool,
    /// The start of a code point the last write ended inside.
    held: [u8; 4],
    held_len: u8,
    /// A frame of the message was queued.
    started: bool,
    finished: bool,
}

impl PieceSender {
    /// The most one [`write`](Self::write) takes when
    /// [`Config::max_write_buffer`](crate::Config::max_write_buffer) is
    /// smaller: a tiny queue limit does not make frames tiny.
    pub const MIN_WRITE: usize = 64 * 1024;

    /// A text (`true`) or binary message, not started yet.
    pub const fn new(text: bool) -> Self {
        Self {
            text,
            held: [0; 4],
            held_len: 0,
            started: false,
            finished: false,
        }
    }

    /// Whether this is a text message.
    pub const fn is_text(&self) -> bool {
        self.text
    }

    /// Whether [`finish`](Self::finish) completed.
    pub const fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether a frame was queued but the message is not finished: dropping
    /// the writer now must call [`abandon`](Self::abandon).
    pub const fn is_unfinished(&self) -> bool {
        self.started && !self.finished
    }

    /// Queues the start of `data` (copied) as the message's next frame and
    /// returns how many bytes it took: all of them, or the first
    /// [`Config::max_write_buffer`](crate::Config::max_write_buffer) (at
    /// least [`MIN_WRITE`](Self::MIN_WRITE)) of a longer slice, so that one
    /// write copies a bounded amount whatever it is given; write the rest
    /// next. A connection that ended answers [`SendError::Closed`]; a full
    /// outgoing queue answers [`SendError::Full`] (with an empty message: no
    /// byte was taken) before anything is copied: make room and write again.
    /// Text that is not UTF-8 answers [`SendError::InvalidUtf8`].
    pub fn write(&mut self, conn: &mut Connection, data: &[u8]) -> Result<usize, SendError> {
        if self.finished {
            return Err(SendError::Finished);
        }
        if data.is_empty() {
            return Ok(0);
        }
        // An ended connection answers `Closed`, not `Full`: waiting for room
        // would wait forever.
        conn.check_send()?;
        if conn.is_write_buffer_full() {
            return Err(SendError::Full(Message::Binary(Bytes::new())));
        }
        let most = conn.config().max_write_buffer.max(Self::MIN_WRITE);
        let data = &data[..data.len().min(most)];
        if !self.text {
            self.queue(conn, Message::Binary(Bytes::copy_from_slice(data)), false)?;
            return Ok(data.len());
        }
        let held = usize::from(self.held_len);
        let mut joined = Vec::with_capacity(held + data.len());
        joined.extend_from_slice(&self.held[..held]);
        joined.extend_from_slice(data);
        let whole = complete_prefix(&joined).map_err(|_| SendError::InvalidUtf8)?;
        let open = joined.len() - whole;
        if open > 3 {
            return Err(SendError::InvalidUtf8);
        }
        let mut open_bytes = [0; 4];
        open_bytes[..open].copy_from_slice(&joined[whole..]);
        joined.truncate(whole);
        if !joined.is_empty() {
            let text =
                Utf8Bytes::try_from_bytes(joined.into()).map_err(|_| SendError::InvalidUtf8)?;
            self.queue(conn, Message::Text(text), false)?;
        }
        (self.held, self.held_len) = (open_bytes, open as u8);
        Ok(data.len())
    }

    /// Queues an owned piece without copying: binary, or text (which must
    /// not follow a write that ended inside a code point).
    pub fn send(&mut self, conn: &mut Connection, piece: Message) -> Result<(), SendError> {
        if self.finished {
            return Err(SendError::Finished);
        }
        if piece.is_text() != self.text || self.held_len > 0 {
            return Err(SendError::FragmentInProgress);
        }
        if piece.is_empty() {
            return Ok(());
        }
        self.queue(conn, piece, false)
    }

    /// Ends the message: its last frame (empty) is queued. Text that ends
    /// inside a code point answers [`SendError::InvalidUtf8`]. A message
    /// with no bytes at all goes out as one empty message.
    pub fn finish(&mut self, conn: &mut Connection) -> Result<(), SendError> {
        if self.finished {
            return Ok(());
        }
        if self.held_len > 0 {
            return Err(SendError::InvalidUtf8);
        }
        let last = if self.text {
            Message::Text(Utf8Bytes::new())
        } else {
            Message::Binary(Bytes::new())
        };
        self.queue(conn, last, true)?;
        self.finished = true;
        Ok(())
    }

    /// The message will not be finished: if any of it was queued, the
    /// connection is closed with 1011 ([`Connection::abandon_fragmented`])
    /// so that the peer does not take a truncated message for a whole one.
    pub fn abandon(&mut self, conn: &mut Connection) {
        if self.is_unfinished() {
            conn.abandon_fragmented();
        }
        self.finished = true;
    }

    fn queue(&mut self, conn: &mut Connection, piece: Message, fin: bool) -> Result<(), SendError> {
        conn.send_fragment(piece, fin)?;
        self.started = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CloseCode, Config, Role};

    fn conn(max_write_buffer: usize) -> Connection {
        let config = Config::default().with_max_write_buffer(max_write_buffer);
        Connection::with_entropy(Role::Server, config, |_: &mut [u8]| {})
    }

    #[test]
    fn one_write_takes_a_bounded_part_of_a_long_slice() {
        let long = vec![b'a'; 3 << 20];
        // The queue's limit, when it is large...
        let mut binary = PieceSender::new(false);
        assert_eq!(binary.write(&mut conn(1 << 20), &long), Ok(1 << 20));
        // ...else 64 KiB: a tiny limit does not make frames tiny.
        let mut text = PieceSender::new(true);
        let taken = text.write(&mut conn(10), &long);
        assert_eq!(taken, Ok(PieceSender::MIN_WRITE));
        assert_eq!(text.write(&mut conn(10), &long[..5]), Ok(5));
    }

    #[test]
    fn nothing_is_written_after_the_end() {
        let mut c = conn(1 << 20);
        let mut sender = PieceSender::new(false);
        assert_eq!(sender.write(&mut c, b"abc"), Ok(3));
        sender.finish(&mut c).unwrap();
        let queued = c.outgoing().len();
        // It would begin another message.
        assert_eq!(sender.write(&mut c, b"more"), Err(SendError::Finished));
        let piece = Message::binary(&b"more"[..]);
        assert_eq!(sender.send(&mut c, piece), Err(SendError::Finished));
        assert_eq!(c.outgoing().len(), queued, "nothing queued");
        assert_eq!(sender.finish(&mut c), Ok(()), "finishing twice is harmless");
        let mut dropped = PieceSender::new(true);
        dropped.abandon(&mut c);
        assert_eq!(dropped.write(&mut c, b"x"), Err(SendError::Finished));
    }

    #[test]
    fn an_ended_connection_answers_closed_even_when_the_queue_is_full() {
        let mut c = conn(1);
        let mut sender = PieceSender::new(false);
        assert_eq!(sender.write(&mut c, b"abc"), Ok(3));
        assert!(c.is_write_buffer_full());
        assert!(matches!(
            sender.write(&mut c, b"d"),
            Err(SendError::Full(_))
        ));
        c.close(CloseCode::NORMAL, "").unwrap();
        // `Full` would make the writer wait for room that never comes.
        assert_eq!(sender.write(&mut c, b"d"), Err(SendError::Closed));
    }
}
