//! The bounded queue of encoded bytes waiting to be written.

use alloc::collections::VecDeque;

use bytes::{Buf, Bytes};

/// Encoded frames waiting for the transport, as a [`Buf`] of chunks.
///
/// Write from [`chunk`](Buf::chunk) (or `chunks_vectored` for vectored I/O)
/// and report progress with [`advance`](Buf::advance). Frame headers and
/// payloads are separate chunks, so a server's payload `Bytes` go out
/// without being copied.
#[derive(Debug, Default)]
pub struct Outgoing {
    chunks: VecDeque<Bytes>,
    len: usize,
    /// Bytes ever advanced past; positions below are relative to it.
    written: u64,
    /// Where the queued (not yet fully written) pong ends, if one is queued.
    pong_end: Option<u64>,
    /// The reply to the latest ping, waiting for the queued pong to leave.
    /// At most one pong is queued and one waits: a ping flood cannot grow memory.
    next_pong: Option<Bytes>,
}

impl Outgoing {
    /// Appends one encoded chunk.
    pub(crate) fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Queues an encoded pong frame, or keeps it as the next pong if one is
    /// already waiting to be written (replacing an older waiting one).
    pub(crate) fn push_pong(&mut self, frame: Bytes) {
        if self.pong_end.is_some() {
            self.next_pong = Some(frame);
        } else {
            self.pong_end = Some(self.written + (self.len + frame.len()) as u64);
            self.push(frame);
        }
    }

    /// Drops a pong that has not been queued yet (nothing may follow a Close).
    pub(crate) fn drop_waiting_pong(&mut self) {
        self.next_pong = None;
    }

    /// Removes and returns the front chunk whole, for callers that hand
    /// owned buffers to the transport (a writer task, completion-based I/O).
    /// Equivalent to copying `chunk()` and calling `advance` with its length.
    pub fn pop_chunk(&mut self) -> Option<Bytes> {
        let chunk = self.chunks.front()?.clone();
        self.advance(chunk.len());
        Some(chunk)
    }

    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Buf for Outgoing {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| c.as_ref())
    }

    fn advance(&mut self, mut cnt: usize) {
        // `Buf::advance` documents a panic past the end; we clamp instead so a
        // caller's miscount cannot bring down the process.
        cnt = cnt.min(self.len);
        self.len -= cnt;
        self.written += cnt as u64;
        while cnt > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if cnt < front.len() {
                front.advance(cnt);
                break;
            }
            cnt -= front.len();
            self.chunks.pop_front();
        }
        if self.pong_end.is_some_and(|end| self.written >= end) {
            self.pong_end = None;
            if let Some(next) = self.next_pong.take() {
                self.push_pong(next);
            }
        }
        if self.chunks.is_empty() && self.chunks.capacity() > 64 {
            // Release the ring after a burst of queued frames.
            self.chunks.shrink_to(8);
        }
    }

    #[cfg(feature = "std")]
    fn chunks_vectored<'a>(&'a self, dst: &mut [std::io::IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, chunk) in dst.iter_mut().zip(self.chunks.iter()) {
            *slot = std::io::IoSlice::new(chunk);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_pong_queued_and_one_waiting() {
        let mut out = Outgoing::default();
        for i in 0..1000u32 {
            out.push_pong(Bytes::from(i.to_be_bytes().to_vec()));
        }
        assert_eq!(out.len(), 4);
        assert_eq!(out.chunk(), 0u32.to_be_bytes());
        out.advance(4);
        assert_eq!(out.chunk(), 999u32.to_be_bytes());
        out.advance(4);
        assert!(out.is_empty());
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
}
