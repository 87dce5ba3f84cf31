//! The bounded queue of encoded bytes waiting to be written.

use alloc::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

/// Chunks up to this size are copied into the tail buffer rather than queued
/// on their own: a burst of small frames then leaves as one contiguous slice.
const INLINE_CHUNK: usize = 512;
/// A tail buffer that grew beyond this (a burst of queued frames) is freed
/// once written, so an idle connection does not keep it. Frames larger than
/// this are encoded into buffers of their own.
pub(crate) const TAIL_KEEP: usize = 16 * 1024;

/// Encoded frames waiting for the transport, as a [`Buf`] of chunks.
///
/// Write from [`chunk`](Buf::chunk) (or `chunks_vectored` for vectored I/O)
/// and report progress with [`advance`](Buf::advance). Small frames are
/// encoded back to back into one buffer (one write for many messages); a
/// server's large payload `Bytes` are chunks of their own and go out without
/// being copied.
#[derive(Debug, Default)]
pub struct Outgoing {
    /// Sealed chunks, written before `tail`.
    chunks: VecDeque<Bytes>,
    /// Bytes in `chunks`.
    chunks_len: usize,
    /// Frames encoded in place, after every chunk; `tail[tail_pos..]` is
    /// still to be written.
    tail: BytesMut,
    tail_pos: usize,
    /// Bytes ever advanced past; positions below are relative to it.
    written: u64,
    /// Where the queued (not yet fully written) pong ends, if one is queued.
    pong_end: Option<u64>,
    /// The reply to the latest ping, waiting for the queued pong to leave.
    /// At most one pong is queued and one waits: a ping flood cannot grow memory.
    next_pong: Option<Bytes>,
}

impl Outgoing {
    /// Appends one encoded chunk: a small one is copied into the tail, a
    /// large one queued as it is.
    pub(crate) fn push(&mut self, chunk: Bytes) {
        if chunk.len() <= INLINE_CHUNK {
            self.tail.extend_from_slice(&chunk);
        } else {
            self.seal();
            self.chunks_len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// The buffer to encode small frames into, in place; whatever is
    /// appended is queued after everything else.
    pub(crate) fn tail_mut(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Moves the tail's unwritten bytes to the chunk queue, so that a chunk
    /// pushed next goes after them.
    fn seal(&mut self) {
        if self.tail_pos == self.tail.len() {
            return;
        }
        let mut sealed = self.tail.split();
        sealed.advance(self.tail_pos);
        self.tail_pos = 0;
        self.chunks_len += sealed.len();
        self.chunks.push_back(sealed.freeze());
    }

    /// Queues an encoded pong frame, or keeps it as the next pong if one is
    /// already waiting to be written (replacing an older waiting one).
    pub(crate) fn push_pong(&mut self, frame: Bytes) {
        // A pong that waited for an earlier one, now written, goes first.
        self.promote_pong();
        if self.pong_end.is_some() {
            self.next_pong = Some(frame);
        } else {
            self.pong_end = Some(self.written + (self.len() + frame.len()) as u64);
            self.push(frame);
        }
    }

    /// Queues the pong that waited for the previous one to be written.
    #[inline]
    pub(crate) fn promote_pong(&mut self) {
        if self.pong_end.is_none()
            && let Some(next) = self.next_pong.take()
        {
            self.push_pong(next);
        }
    }

    /// Whether a pong waits to be queued by [`promote_pong`](Self::promote_pong).
    #[inline]
    pub(crate) fn pong_waiting(&self) -> bool {
        self.pong_end.is_none() && self.next_pong.is_some()
    }

    /// Drops every byte still queued, written in part or not at all.
    pub fn discard(&mut self) {
        *self = Self {
            written: self.written,
            ..Self::default()
        };
    }

    /// Drops a pong that has not been queued yet (nothing may follow a Close).
    pub(crate) fn drop_waiting_pong(&mut self) {
        self.next_pong = None;
    }

    /// Removes and returns the front chunk whole, for callers that hand
    /// owned buffers to the transport (a writer task, completion-based I/O).
    /// Equivalent to copying `chunk()` and calling `advance` with its length.
    pub fn pop_chunk(&mut self) -> Option<Bytes> {
        if self.chunks.is_empty() {
            self.seal();
        }
        let chunk = self.chunks.front()?.clone();
        self.advance(chunk.len());
        Some(chunk)
    }

    /// Marks `cnt` more bytes of the tail written.
    fn advance_tail(&mut self, cnt: usize) {
        self.tail_pos += cnt;
        if self.tail_pos == self.tail.len() {
            // Written out: reuse the buffer from its start, unless it grew large.
            if self.tail.capacity() > TAIL_KEEP {
                self.tail = BytesMut::new();
            } else {
                self.tail.clear();
            }
            self.tail_pos = 0;
        } else if self.tail_pos >= TAIL_KEEP && self.tail_pos >= self.tail.len() / 2 {
            // Mostly written, but a steady stream may never let the tail
            // drain: move the rest to a buffer of its own so that the
            // written bytes are freed. Each byte is moved at most once per
            // byte written before it, so the cost stays linear.
            self.tail = BytesMut::from(&self.tail[self.tail_pos..]);
            self.tail_pos = 0;
        }
    }

    /// Bytes waiting to be written.
    #[inline]
    pub fn len(&self) -> usize {
        self.chunks_len + (self.tail.len() - self.tail_pos)
    }

    /// Whether nothing waits to be written.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Buf for Outgoing {
    #[inline]
    fn remaining(&self) -> usize {
        self.len()
    }

    #[inline]
    fn chunk(&self) -> &[u8] {
        match self.chunks.front() {
            Some(front) => front,
            None => &self.tail[self.tail_pos..],
        }
    }

    #[inline]
    fn advance(&mut self, mut cnt: usize) {
        // `Buf::advance` documents a panic past the end; we clamp instead so a
        // caller's miscount cannot bring down the process.
        cnt = cnt.min(self.len());
        self.written += cnt as u64;
        if self.chunks.is_empty() && self.pong_end.is_none() {
            // Only the tail holds bytes, and no pong waits on this write:
            // the common case, with nothing else to update.
            self.advance_tail(cnt);
            return;
        }
        while cnt > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if cnt < front.len() {
                front.advance(cnt);
                self.chunks_len -= cnt;
                cnt = 0;
                break;
            }
            cnt -= front.len();
            self.chunks_len -= front.len();
            self.chunks.pop_front();
        }
        self.advance_tail(cnt);
        if self.pong_end.is_some_and(|end| self.written >= end) {
            // The waiting pong is queued by the next `promote_pong`, not
            // here: `advance` only ever consumes, as a `Buf` should.
            self.pong_end = None;
        }
        if self.chunks.is_empty() && self.chunks.capacity() > 64 {
            // Release the ring after a burst of queued frames.
            self.chunks.shrink_to(8);
        }
    }

    #[cfg(feature = "std")]
    fn chunks_vectored<'a>(&'a self, dst: &mut [std::io::IoSlice<'a>]) -> usize {
        let tail = &self.tail[self.tail_pos..];
        let tail = (!tail.is_empty()).then_some(tail);
        let mut n = 0;
        for (slot, chunk) in dst
            .iter_mut()
            .zip(self.chunks.iter().map(|c| &c[..]).chain(tail))
        {
            *slot = std::io::IoSlice::new(chunk);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn at_most_one_pong_queued_and_one_waiting() {
        let mut out = Outgoing::default();
        for i in 0..1000u32 {
            out.push_pong(Bytes::from(i.to_be_bytes().to_vec()));
        }
        assert_eq!(out.len(), 4);
        assert_eq!(out.chunk(), 0u32.to_be_bytes());
        out.advance(4);
        assert!(out.is_empty(), "advance only consumes, as a Buf should");
        assert!(out.pong_waiting());
        out.promote_pong();
        assert_eq!(out.chunk(), 999u32.to_be_bytes());
        out.advance(4);
        assert!(out.is_empty());
    }

    #[test]
    fn a_pong_that_waited_is_not_replaced_once_its_turn_came() {
        let mut out = Outgoing::default();
        for i in 0..2u32 {
            out.push_pong(Bytes::from(i.to_be_bytes().to_vec()));
        }
        out.advance(4); // pong 0 written: pong 1's turn
        out.push_pong(Bytes::from(2u32.to_be_bytes().to_vec()));
        assert_eq!(
            out.chunk(),
            1u32.to_be_bytes(),
            "every ping of a slow burst is answered"
        );
        out.advance(4);
        out.promote_pong();
        assert_eq!(out.chunk(), 2u32.to_be_bytes());
    }

    #[test]
    fn advance_across_chunks() {
        let mut out = Outgoing::default();
        out.push(Bytes::from_static(b"abc"));
        out.push(Bytes::from_static(b"defg"));
        out.advance(4);
        assert_eq!(out.chunk(), b"efg");
        out.advance(100);
        assert!(out.is_empty());
    }

    fn drain(out: &mut Outgoing) -> Vec<u8> {
        let mut all = Vec::new();
        while out.has_remaining() {
            // Odd-sized steps cross chunk and tail boundaries.
            let step = out.chunk().len().min(3);
            all.extend_from_slice(&out.chunk()[..step]);
            out.advance(step);
        }
        all
    }

    #[test]
    fn small_frames_share_the_tail_and_large_chunks_keep_their_place() {
        let mut out = Outgoing::default();
        out.tail_mut().extend_from_slice(b"ab");
        out.push(Bytes::from_static(b"cd")); // small: copied into the tail
        let large = Bytes::from(vec![b'x'; INLINE_CHUNK + 1]);
        out.push(large.clone());
        out.tail_mut().extend_from_slice(b"ef");
        assert_eq!(out.len(), 6 + large.len());
        assert_eq!(out.chunk(), b"abcd");
        let mut expected = b"abcd".to_vec();
        expected.extend_from_slice(&large);
        expected.extend_from_slice(b"ef");
        assert_eq!(drain(&mut out), expected);
        assert!(out.is_empty());
    }

    #[cfg(feature = "std")]
    #[test]
    fn vectored_view_lists_chunks_then_the_tail() {
        let mut out = Outgoing::default();
        out.tail_mut().extend_from_slice(b"head");
        out.push(Bytes::from(vec![1u8; INLINE_CHUNK + 1]));
        out.tail_mut().extend_from_slice(b"tail");
        out.advance(1);
        let mut slots = [std::io::IoSlice::new(&[]); 4];
        assert_eq!(out.chunks_vectored(&mut slots), 3);
        assert_eq!(&*slots[0], b"ead");
        assert_eq!(slots[1].len(), INLINE_CHUNK + 1);
        assert_eq!(&*slots[2], b"tail");
    }

    #[test]
    fn pop_chunk_takes_the_unwritten_tail() {
        let mut out = Outgoing::default();
        out.tail_mut().extend_from_slice(b"hello");
        out.advance(2);
        assert_eq!(out.pop_chunk().as_deref(), Some(&b"llo"[..]));
        assert_eq!(out.pop_chunk(), None);
        out.tail_mut().extend_from_slice(b"again");
        assert_eq!(out.chunk(), b"again");
    }

    #[test]
    fn a_large_tail_is_freed_once_written() {
        let mut out = Outgoing::default();
        out.tail_mut().extend_from_slice(&vec![0u8; TAIL_KEEP + 1]);
        out.advance(10);
        assert!(out.tail.capacity() > TAIL_KEEP, "kept while bytes remain");
        out.advance(TAIL_KEEP - 9);
        assert_eq!(out.tail.capacity(), 0);
        out.tail_mut().extend_from_slice(b"small");
        out.advance(5);
        assert!(out.tail.capacity() > 0, "a small buffer is kept for reuse");
    }

    #[test]
    fn a_tail_that_never_drains_does_not_grow_without_bound() {
        // A steady stream: one more frame queued for each write, and the
        // transport never quite catches up.
        let mut out = Outgoing::default();
        let frame = [7u8; 1000];
        for _ in 0..8 {
            out.tail_mut().extend_from_slice(&frame);
        }
        let mut written = 0usize;
        for _ in 0..20_000 {
            out.tail_mut().extend_from_slice(&frame);
            let step = out.chunk().len().min(1000);
            written += step;
            out.advance(step);
            assert!(
                out.tail.len() <= 4 * TAIL_KEEP,
                "tail holds {} bytes for {} unwritten",
                out.tail.len(),
                out.len()
            );
        }
        assert_eq!(out.len(), 8 * 1000);
        assert_eq!(written, 20_000 * 1000);
        assert_eq!(drain(&mut out), vec![7u8; 8000]);
    }
}
