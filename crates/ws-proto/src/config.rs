//! Connection configuration.

use core::time::Duration;

/// Per-connection settings. Start from [`Config::default`] and adjust.
///
/// Every limit bounds memory a peer can make us use; none of them reserves
/// memory up front.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Largest payload accepted in one received frame. A header announcing
    /// more fails the connection with 1009 before any payload is buffered.
    /// Default: 16 MiB.
    pub max_frame_size: usize,
    /// Largest received message (all fragments together). Default: 64 MiB.
    pub max_message_size: usize,
    /// Outgoing messages longer than this are split into frames of at most
    /// this many payload bytes. Default: 16 MiB (the default `max_frame_size`,
    /// so two peers with default configs always agree).
    pub max_send_frame_size: usize,
    /// Once this many bytes wait in the outgoing queue, `send` answers
    /// [`SendError::Full`](crate::SendError::Full) until some are written.
    /// One message is always accepted into a queue below the limit, so the
    /// queue holds at most this plus one message. Default: 4 MiB.
    pub max_write_buffer: usize,
    /// How long to wait for the peer's Close after sending ours, and (client)
    /// for the server to close the transport after the close handshake.
    /// `None` waits forever. Default: 10 s.
    pub close_timeout: Option<Duration>,
    /// Send a ping after this long without receiving anything, to keep
    /// middleboxes from dropping an idle connection and to detect a dead
    /// peer. `None` (the default) sends no automatic pings.
    pub ping_interval: Option<Duration>,
    /// After an automatic ping, how long to wait for any sign of life (a
    /// pong or any other bytes) before giving up on the peer: the connection
    /// then sends Close 1011, reports `Event::Close` with 1006 and asks for
    /// the transport to be closed at once. Only used with `ping_interval`;
    /// `None` keeps pinging without a deadline. Default: 20 s.
    pub ping_timeout: Option<Duration>,
    /// Accept unmasked frames from a client (server role only). RFC 6455
    /// forbids them; some embedded peers send them anyway. Default: false.
    pub accept_unmasked_frames: bool,
    /// Which received data messages arrive piece by piece
    /// ([`Event::Fragment`](crate::Event::Fragment)) instead of whole:
    /// messages of any size in bounded memory. Default: [`Streaming::Off`].
    pub streaming: Streaming,
    /// Largest streamed message (all its pieces together, after
    /// decompression); more fails the connection with 1009. `None` (the
    /// default): no limit, memory stays bounded by the read buffer and one
    /// piece whatever the size. [`max_message_size`](Self::max_message_size)
    /// and [`max_frame_size`](Self::max_frame_size) do not apply to a
    /// streamed message once it streams, since it is never held whole.
    pub max_streamed_message_size: Option<u64>,
}

/// When received data messages are delivered piece by piece
/// ([`Event::Fragment`](crate::Event::Fragment)) rather than whole
/// ([`Event::Message`](crate::Event::Message)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Streaming {
    /// Every message arrives whole, bounded by
    /// [`Config::max_message_size`].
    #[default]
    Off,
    /// Every message arrives in pieces, even an empty one (one piece, both
    /// first and last).
    Always,
    /// Messages up to this many bytes (after decompression) arrive whole;
    /// larger ones in pieces, the first of which holds the bytes buffered
    /// while the size was unknown. At most this many bytes (capped at
    /// [`Config::max_message_size`]) are buffered to decide.
    Above(usize),
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_send_frame_size: 16 << 20,
            max_write_buffer: 4 << 20,
            close_timeout: Some(Duration::from_secs(10)),
            ping_interval: None,
            ping_timeout: Some(Duration::from_secs(20)),
            accept_unmasked_frames: false,
            streaming: Streaming::Off,
            max_streamed_message_size: None,
        }
    }
}

impl Config {
    /// Sets [`max_frame_size`](Self::max_frame_size).
    #[must_use]
    pub const fn with_max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`max_message_size`](Self::max_message_size).
    #[must_use]
    pub const fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`max_send_frame_size`](Self::max_send_frame_size) (at least 1).
    #[must_use]
    pub const fn with_max_send_frame_size(mut self, bytes: usize) -> Self {
        self.max_send_frame_size = if bytes == 0 { 1 } else { bytes };
        self
    }

    /// Sets [`max_write_buffer`](Self::max_write_buffer).
    #[must_use]
    pub const fn with_max_write_buffer(mut self, bytes: usize) -> Self {
        self.max_write_buffer = bytes;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout).
    #[must_use]
    pub const fn with_close_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`ping_interval`](Self::ping_interval) and
    /// [`ping_timeout`](Self::ping_timeout): keepalive with dead-peer detection.
    #[must_use]
    pub const fn with_keepalive(
        mut self,
        interval: Option<Duration>,
        timeout: Option<Duration>,
    ) -> Self {
        self.ping_interval = interval;
        self.ping_timeout = timeout;
        self
    }

    /// Sets [`streaming`](Self::streaming).
    #[must_use]
    pub const fn with_streaming(mut self, streaming: Streaming) -> Self {
        self.streaming = streaming;
        self
    }

    /// Sets [`max_streamed_message_size`](Self::max_streamed_message_size).
    #[must_use]
    pub const fn with_max_streamed_message_size(mut self, bytes: Option<u64>) -> Self {
        self.max_streamed_message_size = bytes;
        self
    }

    /// Sets [`accept_unmasked_frames`](Self::accept_unmasked_frames).
    #[must_use]
    pub const fn with_accept_unmasked_frames(mut self, accept: bool) -> Self {
        self.accept_unmasked_frames = accept;
        self
    }
}
