//! Read buffers of connections that wait for bytes, pooled per thread (with
//! `std`): an idle connection holds no read buffer of its own; a busy one
//! takes one from here and gives it back once everything in it was parsed,
//! so steady echo traffic allocates nothing and 10,000 idle connections cost
//! no read buffers. Without `std`, an idle buffer is simply freed.

use bytes::BytesMut;

#[cfg(feature = "std")]
mod imp {
    use alloc::vec::Vec;
    use core::cell::RefCell;

    use bytes::BytesMut;

    /// An empty buffer larger than this is freed rather than pooled.
    const MAX_BUFFER: usize = 2 << 20;
    /// At most this many buffers are pooled per thread...
    const MAX_BUFFERS: usize = 64;
    /// ...holding at most this many bytes: what a thread keeps for reuse is
    /// bounded whatever message sizes it saw.
    const MAX_BYTES: usize = 8 << 20;

    std::thread_local! {
        static POOL: RefCell<(Vec<BytesMut>, usize)> = const { RefCell::new((Vec::new(), 0)) };
    }

    #[inline]
    pub(super) fn take() -> BytesMut {
        POOL.with(|pool| {
            let (buffers, bytes) = &mut *pool.borrow_mut();
            let buf = buffers.pop()?;
            *bytes -= buf.capacity();
            Some(buf)
        })
        .unwrap_or_default()
    }

    #[inline]
    pub(super) fn give(buf: BytesMut) {
        let size = buf.capacity();
        if size > MAX_BUFFER {
            return;
        }
        POOL.with(|pool| {
            let (buffers, bytes) = &mut *pool.borrow_mut();
            if buffers.len() < MAX_BUFFERS && *bytes + size <= MAX_BYTES {
                *bytes += size;
                buffers.push(buf);
            }
        });
    }
}

#[cfg(not(feature = "std"))]
mod imp {
    use bytes::BytesMut;

    pub(super) fn take() -> BytesMut {
        BytesMut::new()
    }

    pub(super) fn give(_buf: BytesMut) {}
}

/// An empty buffer from the pool, or a new (unallocated) one.
#[inline]
pub(super) fn take() -> BytesMut {
    imp::take()
}

/// Hands an empty buffer back to the pool (or frees it).
#[inline]
pub(super) fn give(buf: BytesMut) {
    debug_assert!(buf.is_empty());
    imp::give(buf);
}
