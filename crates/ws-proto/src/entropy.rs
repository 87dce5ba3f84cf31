//! Injected randomness for client mask keys and the `Sec-WebSocket-Key` nonce.

use alloc::boxed::Box;
use core::fmt;

/// A source of random bytes.
///
/// RFC 6455 requires client mask keys to be unpredictable; the core never
/// reaches for a global RNG, so tests can inject a fixed source and get exact
/// wire bytes. Closures `FnMut(&mut [u8])` implement this trait.
pub trait Entropy {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]);
}

impl<F: FnMut(&mut [u8])> Entropy for F {
    fn fill(&mut self, dest: &mut [u8]) {
        self(dest)
    }
}

/// Operating-system randomness, fetched 256 bytes at a time so that a mask
/// key costs a copy rather than a system call (one call per 64 frames).
#[cfg(feature = "getrandom")]
#[derive(Clone)]
pub struct OsEntropy {
    pool: [u8; 256],
    used: usize,
}

#[cfg(feature = "getrandom")]
impl OsEntropy {
    /// A source with an empty pool; the first use fills it.
    pub const fn new() -> Self {
        Self {
            pool: [0; 256],
            used: 256,
        }
    }
}

#[cfg(feature = "getrandom")]
impl Default for OsEntropy {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "getrandom")]
impl fmt::Debug for OsEntropy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OsEntropy")
    }
}

#[cfg(feature = "getrandom")]
impl Entropy for OsEntropy {
    fn fill(&mut self, dest: &mut [u8]) {
        let mut dest = dest;
        while !dest.is_empty() {
            if self.used == self.pool.len() {
                // An OS without a randomness source cannot run a conforming
                // client at all; failing loudly beats sending predictable masks.
                #[allow(clippy::expect_used)]
                getrandom::fill(&mut self.pool).expect("the OS random source failed");
                self.used = 0;
            }
            let take = dest.len().min(self.pool.len() - self.used);
            dest[..take].copy_from_slice(&self.pool[self.used..self.used + take]);
            self.used += take;
            dest = &mut dest[take..];
        }
    }
}

/// Type-erased entropy stored inside a connection.
pub(crate) struct BoxedEntropy(pub(crate) Box<dyn Entropy + Send>);

impl fmt::Debug for BoxedEntropy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Entropy")
    }
}
