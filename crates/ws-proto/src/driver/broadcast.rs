//! Fan-out without waiting: offering one message to many connections, and
//! what happens to a connection that cannot take it now.
//!
//! A chat or game server sends each message to many peers from one task. It
//! must not wait for any of them: a peer that reads slowly (or not at all)
//! would stall the others. So a broadcast offers the message to each
//! connection's outgoing queue and never waits; a connection whose queue is
//! at [`Config::max_write_buffer`](crate::Config::max_write_buffer) (its
//! high-water mark) misses the message, and may be closed for it. The
//! decision is written here once, for every adapter.

use alloc::{boxed::Box, rc::Rc, sync::Arc};

use crate::{CloseCode, Driver, Message, SendError, State};

/// What a broadcast does with a connection whose outgoing queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull<'a> {
    /// It misses the message and stays open (Python `websockets`'
    /// `broadcast()` does this). For data a peer can do without, such as
    /// positions in a game that the next update supersedes.
    Skip,
    /// It misses the message and is closed with this code and reason (for a
    /// chat, say, where a gap would go unnoticed): the Close is queued behind
    /// the data already queued, and the close timeout drops a peer that never
    /// reads it. Typical codes: [`CloseCode::TRY_AGAIN_LATER`] (1013) or
    /// [`CloseCode::POLICY_VIOLATION`] (1008). The reason is at most 123
    /// bytes.
    Close(CloseCode, &'a str),
}

/// What became of a message offered to one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// Queued: it goes out with the connection's next write.
    Queued,
    /// Not queued: the queue was full ([`WhenFull::Skip`]), or the connection
    /// is not open (closing or closed), or it is in the middle of sending a
    /// message piece by piece.
    Skipped,
    /// Not queued, and the connection is now closing
    /// ([`WhenFull::Close`]).
    Closed,
}

/// The tally of one broadcast: how many connections took the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Broadcast {
    /// Connections that queued the message.
    pub queued: usize,
    /// Connections that did not, and stay as they were.
    pub skipped: usize,
    /// Connections closed because their queue was full.
    pub closed: usize,
}

/// A connection a broadcast can offer a message to without waiting: an
/// adapter's write half (which queues through [`Driver::offer`] and wakes
/// whatever writes its queue), or anything that refers to one (`&`, `Rc`,
/// `Arc`, `Box`).
pub trait Offer {
    /// Queues `message` without waiting; if the outgoing queue is full, the
    /// connection misses it, or is closed, as `when_full` says.
    fn offer(&self, message: Message, when_full: WhenFull<'_>) -> Offered;
}

/// The blanket implementations for the ways an application holds its
/// connections.
macro_rules! offer_through {
    ($($holder:ty),+) => {$(
        impl<T: Offer + ?Sized> Offer for $holder {
            fn offer(&self, message: Message, when_full: WhenFull<'_>) -> Offered {
                (**self).offer(message, when_full)
            }
        }
    )+};
}

offer_through!(&T, &mut T, Box<T>, Rc<T>, Arc<T>);

/// Sends `message` to every connection in `targets` without waiting for any
/// of them: each takes it into its outgoing queue, and one whose queue is at
/// its high-water mark ([`Config::max_write_buffer`](crate::Config::max_write_buffer))
/// misses it and stays open or is closed, as `when_full` says. A slow or
/// stalled peer never holds up the others; connections that are closing are
/// skipped. The payload is shared between the connections, not copied.
///
/// `targets` yields write halves of any adapter, or anything that refers to
/// one ([`Offer`]). Each connection's reader writes the queued bytes: keep
/// them receiving.
pub fn broadcast<T: Offer>(
    targets: impl IntoIterator<Item = T>,
    message: &Message,
    when_full: WhenFull<'_>,
) -> Broadcast {
    Broadcast::each(targets, message, |target, message| {
        target.offer(message, when_full)
    })
}

impl Broadcast {
    /// Offers `message` to every target, one at a time, with `offer` (an
    /// adapter's per-connection [`Driver::offer`]), and counts the outcomes.
    /// The message's payload is shared between the copies, not copied.
    pub fn each<T>(
        targets: impl IntoIterator<Item = T>,
        message: &Message,
        mut offer: impl FnMut(T, Message) -> Offered,
    ) -> Self {
        let mut tally = Self::default();
        for target in targets {
            tally.record(offer(target, message.clone()));
        }
        tally
    }

    /// Counts one connection's outcome.
    pub fn record(&mut self, offered: Offered) {
        match offered {
            Offered::Queued => self.queued += 1,
            Offered::Skipped => self.skipped += 1,
            Offered::Closed => self.closed += 1,
        }
    }
}

impl Driver {
    /// Offers `message` without waiting: queues it if the outgoing queue is
    /// below its high-water mark
    /// ([`Config::max_write_buffer`](crate::Config::max_write_buffer)),
    /// otherwise applies `when_full`. Nothing is written here: the bytes go
    /// out with the connection's next operation (an adapter's receive loop
    /// writes them).
    pub fn offer(&mut self, message: Message, when_full: WhenFull<'_>) -> Offered {
        match self.send(message) {
            Ok(()) => Offered::Queued,
            Err(SendError::Full(_)) => match when_full {
                WhenFull::Close(code, reason)
                    if self.connection().state() == State::Open
                        && self.close(code, reason).is_ok() =>
                {
                    Offered::Closed
                }
                _ => Offered::Skipped,
            },
            Err(_) => Offered::Skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Connection, Role};

    fn driver(max_write_buffer: usize) -> Driver {
        let config = Config::default().with_max_write_buffer(max_write_buffer);
        Driver::new(Connection::new(Role::Server, config))
    }

    #[test]
    fn a_full_queue_skips_or_closes() {
        let mut d = driver(10);
        let big = Message::binary(vec![0u8; 64]);
        // One message is always accepted below the mark.
        assert_eq!(d.offer(big.clone(), WhenFull::Skip), Offered::Queued);
        assert_eq!(d.offer(big.clone(), WhenFull::Skip), Offered::Skipped);
        assert_eq!(d.connection().state(), State::Open);
        let slow = WhenFull::Close(CloseCode::TRY_AGAIN_LATER, "too slow");
        assert_eq!(d.offer(big.clone(), slow), Offered::Closed);
        assert_eq!(d.connection().state(), State::Closing);
        // A closing connection takes nothing more and is not closed twice.
        assert_eq!(d.offer(big, slow), Offered::Skipped);
        let queued = d.outgoing().len();
        assert!(queued > 64, "the Close queued behind the data: {queued}");
    }

    #[test]
    fn the_tally_counts_each_outcome() {
        let mut tally = Broadcast::default();
        for offered in [
            Offered::Queued,
            Offered::Queued,
            Offered::Skipped,
            Offered::Closed,
        ] {
            tally.record(offered);
        }
        let expected = Broadcast {
            queued: 2,
            skipped: 1,
            closed: 1,
        };
        assert_eq!(tally, expected);
    }

    /// A connection as an adapter's write half holds it: shared, locked.
    struct Half(core::cell::RefCell<Driver>);

    impl Offer for Half {
        fn offer(&self, message: Message, when_full: WhenFull<'_>) -> Offered {
            self.0.borrow_mut().offer(message, when_full)
        }
    }

    #[test]
    fn one_broadcast_reaches_halves_however_they_are_held() {
        let half = |room| Half(core::cell::RefCell::new(driver(room)));
        let message = Message::binary(vec![0u8; 64]);
        let slow = WhenFull::Close(CloseCode::TRY_AGAIN_LATER, "too slow");
        let owned = [half(1 << 20), half(10)];
        let _ = owned[1].offer(message.clone(), WhenFull::Skip); // now full
        let tally = broadcast(&owned, &message, slow);
        assert_eq!((tally.queued, tally.skipped, tally.closed), (1, 0, 1));
        let shared = [Rc::new(half(1 << 20)), Rc::new(half(1 << 20))];
        let tally = broadcast(shared.iter().cloned(), &message, WhenFull::Skip);
        assert_eq!(tally.queued, 2);
        let boxed: [Box<dyn Offer + '_>; 2] = [Box::new(half(1 << 20)), Box::new(&shared[0])];
        assert_eq!(broadcast(&boxed, &message, WhenFull::Skip).queued, 2);
        // Each took the message into its own queue.
        let first = shared[0].0.borrow_mut().outgoing().len();
        assert!(first > 64, "queued: {first}");
    }
}
