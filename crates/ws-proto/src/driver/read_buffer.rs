//! The driver's read buffer as lent to a transport: its spare room, and
//! nothing else.
//!
//! Text payloads are unmasked and checked as UTF-8 in place, as they arrive;
//! the message is built from those very bytes without checking them again
//! (`Utf8Bytes::as_str` is O(1) and trusts them). That is only sound if no
//! one can change bytes the connection has already looked at. A plain
//! `&mut BytesMut` would let safe code rewrite them between two reads, so
//! the driver lends this type instead: it can only be appended to.

use bytes::{BufMut, BytesMut, buf::UninitSlice};

/// The driver's read buffer, lent out for one read: only its spare room can
/// be written, as a [`BufMut`] (for `tokio_util::io::poll_read_buf` and the
/// like) or as a zero-filled slice ([`room_mut`](Self::room_mut), for
/// `std::io::Read` and `futures_io::AsyncRead`). What was read before, and
/// already unmasked and checked, cannot be changed.
#[derive(Debug, Default)]
pub struct ReadBuffer {
    pub(super) buf: BytesMut,
    /// Where the zero-filled room handed out by `room_mut` starts.
    pub(super) slice_from: Option<usize>,
    /// The room offered to this read: a read that fills it doubles the
    /// driver's read size.
    pub(super) room: usize,
}

impl ReadBuffer {
    /// Bytes already in the buffer (read, not yet parsed).
    pub fn len(&self) -> usize {
        self.slice_from.unwrap_or(self.buf.len())
    }

    /// Whether the buffer holds no unparsed bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The room on offer for this read (as much as the driver planned: its
    /// read size, or the read-ahead of a large frame), as a zero-filled
    /// slice: read into its front and report the count (`Driver::filled`,
    /// or `Driver::give_read_buf`). Asking again hands out the same room.
    pub fn room_mut(&mut self) -> &mut [u8] {
        let start = self.len();
        self.buf.truncate(start);
        let room = (self.buf.capacity() - start).min(self.room).max(1);
        self.buf.resize(start + room, 0);
        self.slice_from = Some(start);
        self.room = room;
        &mut self.buf[start..]
    }
}

// `BufMut` is an `unsafe trait` (its implementors promise that
// `advance_mut` only exposes bytes `chunk_mut` handed out initialised):
// this implementation only forwards to `BytesMut`'s own.
#[allow(unsafe_code)]
mod buf_mut {
    use super::{BufMut, ReadBuffer, UninitSlice};

    // SAFETY: every method forwards to `BytesMut`'s `BufMut` implementation,
    // which upholds the trait's contract: `chunk_mut` is the spare capacity
    // after the buffer's bytes, and `advance_mut(cnt)` marks the first
    // `cnt` bytes of it, which the caller promised to have initialised, as
    // part of the buffer. Nothing before the spare room is reachable.
    unsafe impl BufMut for ReadBuffer {
        #[inline]
        fn remaining_mut(&self) -> usize {
            self.buf.remaining_mut()
        }

        #[inline]
        unsafe fn advance_mut(&mut self, cnt: usize) {
            // SAFETY: forwarded with the caller's own promise (see above).
            unsafe { self.buf.advance_mut(cnt) }
        }

        #[inline]
        fn chunk_mut(&mut self) -> &mut UninitSlice {
            self.buf.chunk_mut()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_spare_room_can_be_written() {
        let mut read = ReadBuffer {
            buf: BytesMut::from(&b"checked"[..]),
            slice_from: None,
            room: 0,
        };
        read.buf.reserve(16);
        read.put_slice(b" more");
        assert_eq!(&read.buf[..], b"checked more");
        read.room = 4;
        let room = read.room_mut();
        assert_eq!(room, [0; 4]);
        room.copy_from_slice(b"abcd");
        assert_eq!(read.len(), 12, "the room is not data until reported");
        assert_eq!(&read.buf[..12], b"checked more");
    }
}
