//! The connection state machine: receive, send, close, outgoing queue, timer.

mod outgoing;
mod piece_sender;

use alloc::boxed::Box;
use core::time::Duration;

use bytes::{Buf, Bytes, BytesMut};

use self::outgoing::TAIL_KEEP;
pub use self::{outgoing::Outgoing, piece_sender::PieceSender};
use crate::{
    close::{CloseCode, CloseFrame, MAX_CLOSE_REASON},
    config::{Config, Streaming},
    entropy::{BoxedEntropy, Entropy},
    error::{ProtocolError, SendError},
    event::{Event, Message},
    frame::{FrameHeader, OpCode},
    handshake::Negotiated,
    mask::{apply_mask, unmask_is_ascii},
    utf8::{Utf8Bytes, Utf8Validator, sequence_len},
};

/// Which end of the connection we are. Decides masking and who closes the
/// transport first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end that sent the opening request; masks its frames.
    Client,
    /// The end that accepted the request; closes the transport first.
    Server,
}

/// Where the close handshake stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Data flows both ways.
    Open,
    /// We sent a Close and wait for the peer's.
    Closing,
    /// The close handshake is complete, the connection failed, or the
    /// transport ended. No more frames are sent or delivered.
    Closed,
}

/// A server's payloads up to this size are copied next to their header, into
/// the contiguous queue of small frames: copying them costs less than the
/// vectored write a separate chunk needs. Larger ones are sent without a copy.
const INLINE_PAYLOAD: usize = 4096;

/// [`Connection::read_ahead`] advises room for at most this many times the
/// payload bytes of the frame already received...
#[doc(hidden)]
pub const READ_AHEAD_EARN: usize = 8;
/// ...or this many bytes, whichever is more: a frame header alone earns no
/// more than two ordinary reads' worth. (Measured: 8 to 32 KiB serve 64 KiB
/// and 1 MiB messages equally well; 64 KiB made some grow in awkward steps.)
#[doc(hidden)]
pub const READ_AHEAD_FREE: usize = 16 * 1024;

/// A frame whose header has been read and whose payload is arriving.
#[derive(Clone, Copy, Debug)]
struct InFrame {
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
    /// Payload bytes already unmasked (and UTF-8 checked) in the caller's buffer.
    processed: usize,
    /// How the payload is checked as it arrives and delivered.
    payload: Payload,
}

/// The kind of a data frame's payload, in one byte so that `InFrame` stays
/// as small as it was before compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Payload {
    /// Binary, or a control frame's payload.
    Binary = 0,
    /// Text, UTF-8 checked as it arrives.
    Text = 1,
    /// Part of a compressed message (RSV1 on its first frame, RFC 7692
    /// section 6): checked, if text, as it is inflated.
    Compressed = 2,
    /// The streamed kinds (see `Config::streaming`): the payload leaves in
    /// pieces as it arrives (`on_streamed`), never waiting for the frame.
    StreamedBinary = 4,
    /// Streamed text, checked as it arrives.
    StreamedText = 5,
    /// A streamed compressed message's frame.
    StreamedCompressed = 6,
}

impl Payload {
    /// Whether the raw payload is UTF-8 checked as it arrives (one bit
    /// test, as cheap as the compare it replaced).
    #[inline(always)]
    const fn is_text(self) -> bool {
        self as u8 & 1 != 0
    }

    /// Compressed or streamed: off the plain path, with one compare.
    #[inline(always)]
    const fn is_special(self) -> bool {
        self as u8 >= Self::Compressed as u8
    }

    const fn is_streamed(self) -> bool {
        self as u8 >= Self::StreamedBinary as u8
    }
}

/// A fragmented message being reassembled.
#[derive(Debug)]
struct InMessage {
    text: bool,
    data: BytesMut,
    /// Whether every fragment so far was checked in the call that split it
    /// off the caller's buffer (see `finish_message`).
    checked: bool,
    /// Whether `data` is the inflated output of a compressed message.
    compressed: bool,
    /// Streamed (see `Config::streaming`): its frames go through
    /// `on_streamed`, and `data` holds only what waits to become a piece.
    streamed: bool,
    /// Pieces are being delivered. `Streaming::Above` buffers the message
    /// in `data` until it proves larger than the threshold.
    delivering: bool,
    /// A piece was delivered: the next is not the first.
    started: bool,
    /// Payload bytes of a streamed message so far (inflated, if
    /// compressed), for `Config::max_streamed_message_size`.
    size: u64,
}

impl InMessage {
    fn new(text: bool, compressed: bool, data: BytesMut, checked: bool) -> Self {
        Self {
            text,
            data,
            checked,
            compressed,
            streamed: false,
            delivering: false,
            started: false,
            size: 0,
        }
    }
}

/// The largest piece of a streamed compressed message: the inflated bytes
/// held at once.
#[cfg(feature = "deflate")]
const PIECE: usize = 64 * 1024;

/// [`Connection`]'s `input` bits: the transport reported end of stream...
const EOF: u8 = 1;
/// ...a streamed compressed message's decompressor holds output that did
/// not fit in the last piece (it needs no more input to come out).
#[cfg_attr(not(feature = "deflate"), allow(dead_code))]
const INFLATING: u8 = 2;

/// What `on_streamed` made of the bytes at hand.
enum Step {
    /// A piece (or, below the streaming threshold, the whole message).
    Event(Event),
    /// The frame needs more bytes.
    More,
    /// The frame is done: parse the next.
    Next,
}

/// What the opening handshake negotiated, and the state that comes with it.
/// Boxed in the connection, and absent when nothing was negotiated, so an
/// idle plain connection stays small.
#[derive(Debug)]
struct Extensions {
    negotiated: Negotiated,
    /// The permessage-deflate codec, when it was agreed.
    #[cfg(feature = "deflate")]
    deflate: Option<crate::deflate::Codec>,
}

/// RSV1: a compressed message's first frame (RFC 7692 section 6).
#[cfg(feature = "deflate")]
const RSV1: u8 = 0b100;

/// The close timer: off, waiting to be armed at the next `poll_timeout`,
/// armed at a deadline, or expired. A plain tag (no niche in the
/// deadline) makes the state checks of every poll one byte compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Timer {
    Off,
    Pending,
    Armed(Duration),
    Expired,
}

/// A WebSocket connection after the opening handshake.
///
/// The methods fall into four groups, in the manner of `quinn-proto`:
///
/// - **Getters** (`&self`): [`role`](Self::role), [`state`](Self::state),
///   [`close_sent`](Self::close_sent), [`close_received`](Self::close_received),
///   [`wants_write`](Self::wants_write),
///   [`should_close_transport`](Self::should_close_transport).
/// - **Inputs**: [`next_event`](Self::next_event) with the bytes read from the
///   transport, [`handle_eof`](Self::handle_eof) when the transport reports
///   end of stream, [`handle_timeout`](Self::handle_timeout) when the deadline
///   from [`poll_timeout`](Self::poll_timeout) has passed.
/// - **Commands**: [`send`](Self::send), [`send_fragment`](Self::send_fragment),
///   [`ping`](Self::ping), [`pong`](Self::pong), [`close`](Self::close). They
///   only queue bytes.
/// - **Outputs**: [`outgoing`](Self::outgoing), the bytes to write, and
///   [`poll_timeout`](Self::poll_timeout), the deadline to arm.
///
/// After every input or command: drain `next_event` until it returns
/// `Ok(None)`, write `outgoing`, re-arm the timer from `poll_timeout`, and
/// close the transport once `should_close_transport` says so.
///
/// Time is a [`Duration`] since any fixed origin the caller chooses (with
/// `std`, `origin.elapsed()` for an `Instant` taken once), which keeps the
/// core free of clocks and usable without `std`.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    out: Outgoing,
    /// Mask key source; clients only.
    entropy: Option<BoxedEntropy>,
    frame: Option<InFrame>,
    message: Option<InMessage>,
    utf8: Utf8Validator,
    /// The type of an outgoing fragmented message in progress (true: text).
    sending_fragmented: Option<bool>,
    close_sent: bool,
    close_received: bool,
    /// The first protocol error; returned again by every later `next_event`.
    error: Option<ProtocolError>,
    /// Input state that `next_event` must look at even with an empty
    /// buffer: [`EOF`] and [`INFLATING`] bits, one compare on the fast path.
    input: u8,
    /// An abnormal-closure event waiting to be returned by `next_event`.
    pending_close: Option<CloseFrame>,
    /// Whether the Close event (or an error) ended the event stream.
    finished: bool,
    /// Whether the transport should be closed once `out` is flushed.
    transport_done: bool,
    /// Whether to close the transport now, flushed or not (a timeout fired).
    abandon: bool,
    timer: Timer,
    /// When the next keepalive ping is due (armed lazily by `poll_timeout`).
    next_ping: Option<Duration>,
    /// When the peer must have shown a sign of life after our keepalive ping.
    pong_deadline: Option<Duration>,
    /// Whether bytes arrived since the keepalive timer was last armed.
    activity: bool,
    /// Whether the part of the frame in progress already unmasked and
    /// checked has been in the caller's hands between calls, where safe code
    /// could change it (see `finish_message`). The [`Driver`] never lets it
    /// out, so its calls need not check that text again.
    ///
    /// [`Driver`]: crate::Driver
    prefix_exposed: bool,
    /// What the opening handshake negotiated (and the deflate codec); boxed,
    /// and `None` when nothing was, to keep an idle connection small.
    ext: Option<Box<Extensions>>,
}

impl Connection {
    /// A connection that masks client frames with operating-system randomness.
    #[cfg(feature = "getrandom")]
    pub fn new(role: Role, config: Config) -> Self {
        Self::with_entropy(role, config, crate::entropy::OsEntropy::new())
    }

    /// A connection with an injected randomness source for client mask keys
    /// (ignored for servers, which never mask).
    pub fn with_entropy(
        role: Role,
        config: Config,
        entropy: impl Entropy + Send + 'static,
    ) -> Self {
        let entropy = match role {
            Role::Client => Some(BoxedEntropy(Box::new(entropy))),
            Role::Server => None,
        };
        Self {
            role,
            config,
            out: Outgoing::default(),
            entropy,
            frame: None,
            message: None,
            utf8: Utf8Validator::new(),
            sending_fragmented: None,
            close_sent: false,
            close_received: false,
            error: None,
            input: 0,
            pending_close: None,
            finished: false,
            transport_done: false,
            abandon: false,
            timer: Timer::Off,
            next_ping: None,
            pong_deadline: None,
            activity: false,
            prefix_exposed: false,
            ext: None,
        }
    }

    /// Records what the opening handshake negotiated (the subprotocol, the
    /// accepted extensions), as returned by
    /// [`ClientResponse::negotiated`](crate::ClientResponse::negotiated) or
    /// [`Accepted::negotiated`](crate::Accepted::negotiated);
    /// [`ClientResponse::connection`](crate::ClientResponse::connection) and
    /// [`Accepted::connection`](crate::Accepted::connection) call it for you.
    ///
    /// This is the seam through which a negotiated extension reaches the
    /// connection: with the `deflate` feature, permessage-deflate (RFC 7692)
    /// is run with the parameters in `Negotiated::deflate`. Its state is
    /// allocated lazily, per message.
    #[must_use]
    pub fn with_negotiated(mut self, negotiated: Negotiated) -> Self {
        self.set_negotiated(negotiated);
        self
    }

    /// [`with_negotiated`](Self::with_negotiated) in place, for the driver's
    /// opening handshake.
    pub(crate) fn set_negotiated(&mut self, negotiated: Negotiated) {
        self.ext = (negotiated != Negotiated::default()).then(|| {
            Box::new(Extensions {
                #[cfg(feature = "deflate")]
                deflate: negotiated.deflate().map(|p| crate::deflate::Codec::new(*p)),
                negotiated,
            })
        });
    }

    // ----- Getters -----

    /// Our role.
    pub const fn role(&self) -> Role {
        self.role
    }

    /// The configuration.
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// The subprotocol the opening handshake agreed on, if any (see
    /// [`with_negotiated`](Self::with_negotiated)).
    pub fn protocol(&self) -> Option<&str> {
        self.negotiated().and_then(Negotiated::protocol)
    }

    /// What the opening handshake negotiated, or `None` when nothing was
    /// (no subprotocol, no extension) or it was not recorded (see
    /// [`with_negotiated`](Self::with_negotiated)).
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.ext.as_deref().map(|ext| &ext.negotiated)
    }

    /// The permessage-deflate parameters this connection runs with, if it
    /// was negotiated.
    #[cfg(feature = "deflate")]
    pub fn deflate(&self) -> Option<&crate::deflate::DeflateParams> {
        self.codec().map(crate::deflate::Codec::params)
    }

    /// Heap bytes the deflate codec holds now: the kept LZ77 windows and any
    /// compression state of a message in progress. For tests and memory
    /// accounting; 0 without deflate.
    #[cfg(feature = "deflate")]
    #[doc(hidden)]
    pub fn deflate_heap_size(&self) -> usize {
        self.codec().map_or(0, crate::deflate::Codec::heap_size)
    }

    /// Bytes held for the message being received (reassembled fragments,
    /// or a compressed message's inflated output). For tests.
    #[doc(hidden)]
    pub fn buffered_message_len(&self) -> usize {
        self.message.as_ref().map_or(0, |m| m.data.capacity())
    }

    #[cfg(feature = "deflate")]
    fn codec(&self) -> Option<&crate::deflate::Codec> {
        self.ext.as_deref().and_then(|ext| ext.deflate.as_ref())
    }

    #[cfg(feature = "deflate")]
    fn codec_mut(&mut self) -> Option<&mut crate::deflate::Codec> {
        self.ext.as_deref_mut().and_then(|ext| ext.deflate.as_mut())
    }

    /// Whether the codec's contexts wait for the timer to free them.
    fn codec_has_timer(&self) -> bool {
        #[cfg(feature = "deflate")]
        return self.codec().is_some_and(crate::deflate::Codec::has_timer);
        #[cfg(not(feature = "deflate"))]
        false
    }

    /// When the codec's idle contexts may be freed.
    #[cfg_attr(
        not(feature = "deflate"),
        allow(clippy::unused_self, clippy::needless_pass_by_ref_mut)
    )]
    fn codec_release_deadline(&mut self, now: Duration) -> Option<Duration> {
        #[cfg(feature = "deflate")]
        return self.codec_mut().and_then(|codec| codec.poll_timeout(now));
        #[cfg(not(feature = "deflate"))]
        {
            let _ = now;
            None
        }
    }

    /// Where the close handshake stands.
    #[inline]
    pub fn state(&self) -> State {
        if self.close_received
            || self.error.is_some()
            || self.finished
            || self.timer == Timer::Expired
        {
            State::Closed
        } else if self.close_sent {
            State::Closing
        } else {
            State::Open
        }
    }

    /// Whether we have queued a Close frame (ours or the reply to the peer's).
    pub const fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Whether the peer's Close frame has arrived.
    pub const fn close_received(&self) -> bool {
        self.close_received
    }

    /// Whether the event stream has ended: the Close event (or the protocol
    /// error) was delivered, and `next_event` will only return `Ok(None)` (or
    /// the same error) from now on.
    pub fn is_finished(&self) -> bool {
        self.finished && self.pending_close.is_none()
    }

    /// Whether the peer was given up on (close timeout or keepalive deadline):
    /// close the transport now. A Close frame may still be queued; writing it
    /// is best effort and must not wait.
    pub const fn is_abandoned(&self) -> bool {
        self.abandon
    }

    /// Whether a timer may be running or about to start, i.e. whether
    /// [`poll_timeout`](Self::poll_timeout) can return a deadline. When
    /// false, it returns `None` whatever `now` is, so a caller may skip
    /// reading its clock (which is most of the per-message timer cost).
    #[inline]
    pub fn has_timers(&self) -> bool {
        matches!(self.timer, Timer::Pending | Timer::Armed(_))
            || (self.config.ping_interval.is_some() && !self.close_sent && !self.finished)
            || self.codec_has_timer()
    }

    /// Whether bytes wait in [`outgoing`](Self::outgoing).
    #[inline]
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty() || self.out.pong_waiting()
    }

    /// Whether [`send`](Self::send) would answer [`SendError::Full`] now:
    /// the queue holds at least [`Config::max_write_buffer`] bytes. An empty
    /// queue is never full, so one message always fits.
    #[inline]
    pub fn is_write_buffer_full(&self) -> bool {
        !self.out.is_empty() && self.out.len() >= self.config.max_write_buffer
    }

    /// Whether the caller should now close the transport.
    ///
    /// True once the outgoing bytes are flushed and: the server has completed
    /// the close handshake (RFC 6455 section 7.1.1: the server closes first),
    /// the client has seen the server end the stream, or the connection
    /// failed. At once, flushed or not, when the close timeout or the
    /// keepalive deadline expired: the peer is not listening.
    #[inline]
    pub fn should_close_transport(&self) -> bool {
        self.abandon || (self.transport_done && self.out.is_empty())
    }

    // ----- Inputs -----

    /// Parses the next event from `buf`, the bytes read from the transport.
    ///
    /// Consumes from the front of `buf` and leaves any incomplete frame in
    /// it; returns `Ok(None)` when more bytes are needed. Call it repeatedly
    /// until `Ok(None)` after each read, always with the same buffer, only
    /// ever appending to it. Each call yields at most one event, so a flood
    /// of tiny frames never queues events inside the connection.
    ///
    /// A complete single-frame message is handed out without copying: the
    /// payload is unmasked in place and split off `buf`. Payloads are
    /// unmasked and UTF-8 checked as they arrive, so invalid text fails at
    /// the first bad byte even inside a frame still in flight.
    ///
    /// On a [`ProtocolError`] the matching Close frame is already queued in
    /// [`outgoing`](Self::outgoing); the same error is returned by every later
    /// call. After the Close event, incoming bytes are discarded.
    #[inline]
    pub fn next_event(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        let event = self.next_event_with(buf, false);
        // What was checked in this call is in the caller's hands from now on.
        self.prefix_exposed = true;
        event
    }

    /// [`next_event`](Self::next_event) for the [`Driver`](crate::Driver),
    /// which only ever appends to `buf` between calls: text checked as it
    /// arrived is still what was checked.
    #[inline]
    pub(crate) fn next_event_appended(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<Event>, ProtocolError> {
        self.next_event_with(buf, true)
    }

    /// The caller's buffer leaves the driver: what was checked in it may be
    /// changed from now on.
    pub(crate) fn expose_prefix(&mut self) {
        self.prefix_exposed = true;
    }

    #[inline]
    fn next_event_with(
        &mut self,
        buf: &mut BytesMut,
        appended: bool,
    ) -> Result<Option<Event>, ProtocolError> {
        // A run loop asks once more after every event, usually with nothing
        // left to read: answer that without the full call.
        if buf.is_empty() && self.error.is_none() && self.pending_close.is_none() && self.input == 0
        {
            return Ok(None);
        }
        self.next_event_slow(buf, appended)
    }

    /// Read-ahead advice for the caller's read buffer `buf` (the one passed
    /// to [`next_event`](Self::next_event)): how many more bytes the frame
    /// being received still needs, so that one reservation can make room for
    /// all of it instead of growing the buffer (and copying what it holds)
    /// again and again. 0 when no frame is in progress.
    ///
    /// The frame's length is only what the peer announced, so the advice is
    /// capped at [`READ_AHEAD_EARN`] times the payload bytes the peer has
    /// actually sent (at least [`READ_AHEAD_FREE`]): a peer that announces a
    /// huge frame and sends a few bytes cannot make the caller reserve much.
    #[inline]
    pub fn read_ahead(&self, buf: &BytesMut) -> usize {
        match &self.frame {
            // While a frame is incomplete, `buf` holds only its payload. A
            // streamed frame's payload leaves as it arrives: ordinary reads.
            Some(frame) if !frame.payload.is_streamed() => {
                let buffered = buf.len();
                let earned = buffered
                    .saturating_mul(READ_AHEAD_EARN)
                    .max(READ_AHEAD_FREE);
                frame.len.saturating_sub(buffered).min(earned)
            }
            _ => 0,
        }
    }

    /// [`next_event`](Self::next_event) when there may be something to report.
    fn next_event_slow(
        &mut self,
        buf: &mut BytesMut,
        appended: bool,
    ) -> Result<Option<Event>, ProtocolError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        if let Some(close) = self.pending_close.take() {
            return Ok(Some(Event::Close(close)));
        }
        if self.finished {
            buf.clear();
            return Ok(None);
        }
        match self.read_event(buf, appended) {
            Ok(Some(event)) => Ok(Some(event)),
            Ok(None) if self.input & EOF != 0 => {
                // The transport ended without a close handshake.
                self.finished = true;
                self.transport_done = true;
                Ok(Some(Event::Close(CloseFrame::new(
                    CloseCode::ABNORMAL,
                    Utf8Bytes::from_static("the transport ended without a close handshake"),
                ))))
            }
            Ok(None) => Ok(None),
            Err(error) => {
                self.fail(&error);
                Err(error)
            }
        }
    }

    /// The transport reported end of stream. Bytes already passed to
    /// `next_event` are still processed; then, unless the close handshake
    /// finished, `next_event` yields `Event::Close` with code 1006.
    pub fn handle_eof(&mut self) {
        self.input |= EOF;
        if self.finished {
            self.transport_done = true;
        }
    }

    /// The deadline from [`poll_timeout`](Self::poll_timeout) has passed (or
    /// may have; early calls are harmless).
    ///
    /// - The close timeout expired: the transport should be closed at once;
    ///   if the peer's Close never came, `next_event` yields `Event::Close`
    ///   with code 1006.
    /// - A keepalive ping is due: it is queued.
    /// - The keepalive deadline passed with no sign of life: Close 1011 is
    ///   queued, `next_event` yields `Event::Close` with code 1006, and the
    ///   transport should be closed at once.
    pub fn handle_timeout(&mut self, now: Duration) {
        #[cfg(feature = "deflate")]
        if let Some(codec) = self.codec_mut() {
            codec.on_timeout(now);
        }
        if let Timer::Armed(deadline) = self.timer
            && now >= deadline
        {
            self.timer = Timer::Expired;
            self.abandon("close timeout: the peer did not finish the close handshake");
            return;
        }
        if self.close_sent || self.finished {
            return;
        }
        if self.pong_deadline.is_some_and(|deadline| now >= deadline) {
            self.queue_close(Some(CloseCode::INTERNAL_ERROR), "keepalive ping timeout");
            self.abandon("keepalive ping timeout: the peer stopped answering");
            return;
        }
        if self.next_ping.is_some_and(|due| now >= due) {
            // Control frames bypass the write-buffer cap: one ping per interval.
            let ping = self.encode_frame(OpCode::Ping, true, &[]);
            self.out.push(ping);
            self.next_ping = None;
            match self.config.ping_timeout {
                Some(timeout) => self.pong_deadline = Some(now.saturating_add(timeout)),
                None => self.activity = true,
            }
        }
    }

    /// Gives up on the peer: close the transport now and report 1006. Later
    /// commands answer [`SendError::Closed`].
    pub(crate) fn abandon(&mut self, why: &'static str) {
        self.abandon = true;
        self.transport_done = true;
        if !self.finished && self.error.is_none() {
            self.finished = true;
            self.pending_close = Some(CloseFrame::new(
                CloseCode::ABNORMAL,
                Utf8Bytes::from_static(why),
            ));
        }
    }

    // ----- Commands -----

    /// Queues a message, split into frames of at most
    /// [`Config::max_send_frame_size`] payload bytes.
    ///
    /// A server sends payload `Bytes` larger than 4 KiB without copying them
    /// (smaller ones are copied next to their header, which is cheaper than
    /// a separate write); a client copies once while masking.
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        self.send_message(message, true)
    }

    /// Like [`send`](Self::send), but never compressed, whatever was
    /// negotiated: for data that is already compressed or must not share a
    /// compression context with other data (RFC 7692 section 10 and the
    /// CRIME/BREACH class of attacks: secrets next to attacker-chosen text).
    #[cfg(feature = "deflate")]
    pub fn send_uncompressed(&mut self, message: Message) -> Result<(), SendError> {
        self.send_message(message, false)
    }

    #[inline(always)]
    fn send_message(&mut self, message: Message, compress: bool) -> Result<(), SendError> {
        self.check_send()?;
        if self.sending_fragmented.is_some() {
            return Err(SendError::FragmentInProgress);
        }
        if self.is_write_buffer_full() {
            return Err(SendError::Full(message));
        }
        let (opcode, data) = split_message(message);
        #[cfg(feature = "deflate")]
        if compress
            && let Some(codec) = self.codec_mut()
            && data.len() >= codec.params().min_size
            && let Some(packed) = codec.compress_message(&data)
        {
            self.push_data(opcode, packed.freeze(), true, RSV1);
            return Ok(());
        }
        #[cfg(not(feature = "deflate"))]
        let _ = compress;
        self.push_data(opcode, data, true, 0);
        Ok(())
    }

    /// Queues one piece of a message whose total size need not be known in
    /// advance; `fin` ends the message. Every piece must have the type of the
    /// first. Text pieces are whole code points each (they are `Utf8Bytes`).
    ///
    /// With permessage-deflate, every fragmented message is compressed
    /// (whatever its size: it is not known in advance), each piece
    /// sync-flushed into its own frame.
    pub fn send_fragment(&mut self, fragment: Message, fin: bool) -> Result<(), SendError> {
        self.check_send()?;
        let text = fragment.is_text();
        let opcode = match self.sending_fragmented {
            None if text => OpCode::Text,
            None => OpCode::Binary,
            Some(was_text) if was_text == text => OpCode::Continuation,
            Some(_) => return Err(SendError::FragmentInProgress),
        };
        if self.is_write_buffer_full() {
            return Err(SendError::Full(fragment));
        }
        let (_, data) = split_message(fragment);
        self.sending_fragmented = if fin { None } else { Some(text) };
        #[cfg(feature = "deflate")]
        if let Some(codec) = self.codec_mut() {
            let packed = codec.compress_fragment(&data, fin).freeze();
            let rsv = if opcode == OpCode::Continuation {
                0
            } else {
                RSV1
            };
            self.push_data(opcode, packed, fin, rsv);
            return Ok(());
        }
        self.push_data(opcode, data, fin, 0);
        Ok(())
    }

    /// Whether a message started with [`send_fragment`](Self::send_fragment)
    /// is unfinished.
    pub const fn is_sending_fragmented(&self) -> bool {
        self.sending_fragmented.is_some()
    }

    /// The message being sent piece by piece will not be finished (its
    /// writer was dropped half way): rather than let the peer take the
    /// pieces sent so far for a whole message, the connection is closed with
    /// 1011, whose Close frame may come between a message's frames (RFC 6455
    /// section 5.4) and makes the peer drop the partial message. Nothing
    /// happens when no such message is in progress or a Close was sent.
    pub fn abandon_fragmented(&mut self) {
        if self.sending_fragmented.take().is_some() && self.check_send().is_ok() {
            self.queue_close(
                Some(CloseCode::INTERNAL_ERROR),
                "the message being sent was abandoned",
            );
            self.start_close_timer();
        }
    }

    /// Queues a ping with up to 125 bytes of payload.
    pub fn ping(&mut self, payload: Bytes) -> Result<(), SendError> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Queues an unsolicited pong with up to 125 bytes of payload. Replies to
    /// pings are sent automatically; this is for heartbeats.
    pub fn pong(&mut self, payload: Bytes) -> Result<(), SendError> {
        self.send_control(OpCode::Pong, payload)
    }

    /// Starts the close handshake: queues a Close frame and arms the close
    /// timer. Data received until the peer's Close is still delivered.
    ///
    /// `code` must be sendable ([`CloseCode::is_sendable`]), except that
    /// [`CloseCode::NO_STATUS`] with an empty reason sends a Close without a
    /// status code. The reason is at most 123 bytes.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        self.check_send()?;
        let no_status = code == CloseCode::NO_STATUS && reason.is_empty();
        if !code.is_sendable() && !no_status {
            return Err(SendError::InvalidCloseCode(code));
        }
        if reason.len() > MAX_CLOSE_REASON {
            return Err(SendError::ControlTooLong(reason.len()));
        }
        self.queue_close(if no_status { None } else { Some(code) }, reason);
        self.start_close_timer();
        Ok(())
    }

    /// Gives up on the connection at once: discards every byte still queued
    /// (a frame half written stays half written: the transport must be
    /// closed now), sends nothing more, and makes
    /// [`should_close_transport`](Self::should_close_transport) true. The
    /// event stream ends with a 1006 Close event unless it already ended.
    /// For shutting down a process or dropping a peer that cannot keep up.
    pub fn abort(&mut self) {
        self.out.discard();
        self.close_sent = true;
        self.abandon("aborted by the application");
    }

    // ----- Outputs -----

    /// The bytes waiting to be written, as a [`Buf`]: write from `chunk()`
    /// (or `chunks_vectored`) and `advance` by what the transport took.
    #[inline]
    pub fn outgoing(&mut self) -> &mut Outgoing {
        self.out.promote_pong();
        &mut self.out
    }

    /// When to call [`handle_timeout`](Self::handle_timeout), as a time on
    /// the caller's clock, or `None` for no timer.
    ///
    /// Takes `now` because timers start lazily: a command such as
    /// [`close`](Self::close) only marks the timer, and this call fixes its
    /// deadline, so commands need no clock argument. Call it after every
    /// input or command, as the run loop does anyway.
    pub fn poll_timeout(&mut self, now: Duration) -> Option<Duration> {
        if self.timer == Timer::Pending {
            match self.config.close_timeout {
                Some(timeout) => self.timer = Timer::Armed(now.saturating_add(timeout)),
                None => self.timer = Timer::Off,
            }
        }
        let close_deadline = match self.timer {
            Timer::Armed(deadline) => Some(deadline),
            _ => None,
        };
        let release = self.codec_release_deadline(now);
        let close_deadline = close_deadline.into_iter().chain(release).min();
        if self.close_sent || self.finished {
            return close_deadline;
        }
        if let Some(interval) = self.config.ping_interval
            && (self.activity || (self.next_ping.is_none() && self.pong_deadline.is_none()))
        {
            // Anything received proves the peer alive: restart the idle clock.
            self.activity = false;
            self.pong_deadline = None;
            self.next_ping = Some(now.saturating_add(interval));
        }
        [close_deadline, self.next_ping, self.pong_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    // ----- Receive internals -----

    fn read_event(
        &mut self,
        buf: &mut BytesMut,
        appended: bool,
    ) -> Result<Option<Event>, ProtocolError> {
        // Payload checked in an earlier call may since have been in the
        // caller's hands, which could change it: see `finish_message`.
        let mut resumed = self.frame.as_ref().is_some_and(|frame| frame.processed > 0)
            && (self.prefix_exposed || !appended);
        loop {
            let frame = match &mut self.frame {
                Some(frame) => frame,
                None => {
                    let Some((header, header_len)) = FrameHeader::parse(buf)? else {
                        return Ok(None);
                    };
                    let frame = self.check_header(&header)?;
                    buf.advance(header_len);
                    self.activity = true;
                    self.frame.insert(frame)
                }
            };
            let available = buf.len().min(frame.len);
            if available > frame.processed {
                let fresh = &mut buf[frame.processed..available];
                // Compressed text is checked as it is inflated.
                match (frame.mask, frame.payload.is_text()) {
                    (Some(key), true) => unmask_text(fresh, key, frame.processed, &mut self.utf8)?,
                    (Some(key), false) => apply_mask(fresh, key, frame.processed),
                    (None, true) => self
                        .utf8
                        .feed(fresh)
                        .map_err(|_| ProtocolError::InvalidUtf8)?,
                    (None, false) => {}
                }
                frame.processed = available;
                self.activity = true;
            }
            if available < frame.len && !frame.payload.is_streamed() {
                return Ok(None);
            }
            // Compressed and streamed frames leave here, with one compare,
            // so that the plain path below stays as it is without them.
            if frame.payload.is_special() {
                match self.on_special(buf, !resumed)? {
                    Step::Event(event) => return Ok(Some(event)),
                    Step::More => return Ok(None),
                    Step::Next => {
                        resumed = false;
                        continue;
                    }
                }
            }
            let frame = *frame;
            self.frame = None;
            self.prefix_exposed = false;
            // What the payload pins if shared: see `PIN_RATIO`.
            let buf_capacity = buf.capacity();
            let payload = buf.split_to(frame.len);
            if let Some(event) = self.on_frame(frame, payload, !resumed, buf_capacity)? {
                return Ok(Some(event));
            }
            resumed = false;
        }
    }

    /// Applies the role, state and size rules to a frame header before any of
    /// its payload is buffered.
    fn check_header(&mut self, header: &FrameHeader) -> Result<InFrame, ProtocolError> {
        // Section 5.2: RSV bits only with an extension that defines them.
        // RFC 7692 section 6: permessage-deflate defines RSV1, on the first
        // frame of a data message only (not continuations, not control).
        let mut compressed = false;
        if header.rsv != 0 {
            #[cfg(feature = "deflate")]
            let allowed = header.rsv == RSV1
                && matches!(header.opcode, OpCode::Text | OpCode::Binary)
                && self.codec().is_some();
            #[cfg(not(feature = "deflate"))]
            let allowed = false;
            if !allowed {
                return Err(ProtocolError::ReservedBits(header.rsv));
            }
            compressed = true;
        }
        // Section 5.1: clients mask every frame, servers none.
        match (self.role, header.mask) {
            (Role::Server, None) if !self.config.accept_unmasked_frames => {
                return Err(ProtocolError::UnmaskedFrameFromClient);
            }
            (Role::Client, Some(_)) => return Err(ProtocolError::MaskedFrameFromServer),
            _ => {}
        }
        let mut text = false;
        // Section 5.5: control frames are whole and short.
        if header.opcode.is_control() {
            if !header.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if header.payload_len > 125 {
                return Err(ProtocolError::ControlFrameTooLong(header.payload_len));
            }
        } else {
            // Section 5.4: continuations only inside a fragmented message,
            // new messages only outside one.
            let streamed;
            match (header.opcode, &self.message) {
                (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
                (OpCode::Continuation, Some(message)) => {
                    text = message.text;
                    compressed = message.compressed;
                    streamed = message.streamed;
                }
                (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
                (opcode, None) => {
                    text = opcode == OpCode::Text;
                    streamed = !matches!(self.config.streaming, Streaming::Off)
                        && self.streams(header, compressed);
                }
            }
            if streamed {
                // Never held whole: bounded by its own limit alone.
                let so_far = self.message.as_ref().map_or(0, |m| m.size);
                let total = so_far.saturating_add(header.payload_len);
                if let Some(max) = self.config.max_streamed_message_size
                    && !compressed
                    && total > max
                {
                    return Err(ProtocolError::MessageTooBig {
                        len: total,
                        max: usize::try_from(max).unwrap_or(usize::MAX),
                    });
                }
                let len = usize::try_from(header.payload_len).map_err(|_| {
                    ProtocolError::FrameTooBig {
                        len: header.payload_len,
                        max: usize::MAX,
                    }
                })?;
                let frame = InFrame {
                    fin: header.fin,
                    opcode: header.opcode,
                    mask: header.mask,
                    len,
                    processed: 0,
                    payload: match (compressed, text) {
                        (true, _) => Payload::StreamedCompressed,
                        (false, true) => Payload::StreamedText,
                        (false, false) => Payload::StreamedBinary,
                    },
                };
                self.start_streamed_frame(&frame, header.payload_len);
                return Ok(frame);
            }
            // Section 10.4: limits, enforced before any payload is buffered.
            let max_frame = self.config.max_frame_size;
            if header.payload_len > max_frame as u64 {
                return Err(ProtocolError::FrameTooBig {
                    len: header.payload_len,
                    max: max_frame,
                });
            }
            let so_far = self.message.as_ref().map_or(0, |m| m.data.len()) as u64;
            let total = so_far.saturating_add(header.payload_len);
            // A compressed message is bounded as it is inflated instead.
            if !compressed && total > self.config.max_message_size as u64 {
                return Err(ProtocolError::MessageTooBig {
                    len: total,
                    max: self.config.max_message_size,
                });
            }
        }
        Ok(InFrame {
            fin: header.fin,
            opcode: header.opcode,
            mask: header.mask,
            // Bounded by max_frame_size (a usize) or 125 above.
            len: usize::try_from(header.payload_len).unwrap_or(usize::MAX),
            processed: 0,
            payload: match (compressed, text) {
                (true, _) => Payload::Compressed,
                (false, true) => Payload::Text,
                (false, false) => Payload::Binary,
            },
        })
    }

    /// `checked_in_this_call`: the whole payload was unmasked and checked
    /// during the current `next_event` call (see `finish_message`).
    /// `buf_capacity`: the capacity of the caller's buffer that `payload`
    /// was split off (see `unpin_small`).
    fn on_frame(
        &mut self,
        frame: InFrame,
        payload: BytesMut,
        checked_in_this_call: bool,
        buf_capacity: usize,
    ) -> Result<Option<Event>, ProtocolError> {
        match frame.opcode {
            OpCode::Ping => {
                let payload = payload.freeze();
                if !self.close_sent {
                    let pong = self.encode_frame(OpCode::Pong, true, &payload);
                    self.out.push_pong(pong);
                }
                Ok(Some(Event::Ping(payload)))
            }
            OpCode::Pong => Ok(Some(Event::Pong(payload.freeze()))),
            OpCode::Close => self.on_close(payload.freeze()).map(Some),
            OpCode::Text | OpCode::Binary if frame.fin => self
                .finish_message(
                    frame.payload == Payload::Text,
                    unpin_small(payload, buf_capacity),
                    checked_in_this_call,
                )
                .map(Some),
            OpCode::Text | OpCode::Binary => {
                // Held until the last fragment. Appending a continuation's
                // data moves it into an allocation of its own, but empty
                // continuations would leave it sharing `buf` for good.
                self.message = Some(InMessage::new(
                    frame.payload == Payload::Text,
                    false,
                    unpin_small(payload, buf_capacity),
                    checked_in_this_call,
                ));
                Ok(None)
            }
            OpCode::Continuation => {
                let Some(message) = &mut self.message else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                message.data.extend_from_slice(&payload);
                message.checked &= checked_in_this_call;
                if !frame.fin {
                    return Ok(None);
                }
                let Some(message) = self.message.take() else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                // Each fragment was split off (out of the caller's reach) in
                // the call that finished it: they stand if each was checked
                // in that call.
                self.finish_message(message.text, message.data, message.checked)
                    .map(Some)
            }
        }
    }

    /// A frame of a compressed message: inflated (bounded by
    /// `max_message_size`, text checked on the inflated bytes) onto the
    /// message, which ends with the frame that has FIN.
    #[cfg(feature = "deflate")]
    #[cold]
    #[inline(never)]
    fn on_compressed(
        &mut self,
        frame: InFrame,
        payload: &[u8],
    ) -> Result<Option<Event>, ProtocolError> {
        // A new message: a continuation would have found it in progress.
        let mut message = self.message.take().unwrap_or_else(|| {
            InMessage::new(frame.opcode == OpCode::Text, true, BytesMut::new(), true)
        });
        let limit = self.config.max_message_size;
        let Some(codec) = self.ext.as_deref_mut().and_then(|ext| ext.deflate.as_mut()) else {
            return Err(ProtocolError::ReservedBits(RSV1));
        };
        let utf8 = message.text.then_some(&mut self.utf8);
        codec.inflate(payload, frame.fin, &mut message.data, limit, utf8)?;
        if !frame.fin {
            self.message = Some(message);
            return Ok(None);
        }
        // The inflated bytes never left the connection: checked for good.
        self.finish_message(message.text, message.data, true)
            .map(Some)
    }

    /// Whether a new data message with this first frame streams: always, or
    /// when it may exceed the threshold (a compressed one may always:
    /// only inflating tells its size).
    fn streams(&self, header: &FrameHeader, compressed: bool) -> bool {
        match self.config.streaming {
            Streaming::Above(n) => compressed || !header.fin || header.payload_len > n as u64,
            _ => true,
        }
    }

    /// The bytes a streamed message may buffer before its first piece goes
    /// out: below it, it arrives whole after all.
    fn stream_threshold(&self) -> usize {
        match self.config.streaming {
            Streaming::Above(n) => n.min(self.config.max_message_size),
            _ => 0,
        }
    }

    /// A data frame of a streamed message begins: the message's state is
    /// made with its first frame, and uncompressed bytes are counted.
    #[cold]
    #[inline(never)]
    fn start_streamed_frame(&mut self, frame: &InFrame, payload_len: u64) {
        let delivering = matches!(self.config.streaming, Streaming::Always);
        let message = self.message.get_or_insert_with(|| {
            let compressed = frame.payload == Payload::StreamedCompressed;
            let mut message = InMessage::new(
                frame.opcode == OpCode::Text,
                compressed,
                BytesMut::new(),
                true,
            );
            message.streamed = true;
            message.delivering = delivering;
            message
        });
        if !message.compressed {
            message.size = message.size.saturating_add(payload_len);
        }
    }

    /// A frame off the plain path: streamed (in progress or complete), or a
    /// complete frame of a compressed message.
    #[cold]
    #[inline(never)]
    fn on_special(&mut self, buf: &mut BytesMut, checked: bool) -> Result<Step, ProtocolError> {
        let Some(frame) = self.frame else {
            return Ok(Step::Next);
        };
        match frame.payload {
            #[cfg(feature = "deflate")]
            Payload::StreamedCompressed => self.on_streamed_compressed(buf),
            #[cfg(feature = "deflate")]
            Payload::Compressed => {
                self.frame = None;
                self.prefix_exposed = false;
                let payload = buf.split_to(frame.len);
                Ok(match self.on_compressed(frame, &payload)? {
                    Some(event) => Step::Event(event),
                    None => Step::Next,
                })
            }
            _ => self.on_streamed(buf, checked),
        }
    }

    /// The part of a streamed frame's payload at hand (unmasked, and if text
    /// checked, up to `frame.processed`) becomes a piece. Zero-copy where it
    /// can: the piece is split off `buf`. A code point cut by the end of a
    /// frame is carried in the message's `data` and completed, in a piece
    /// of its own, by the next frame's first bytes. `checked`: every
    /// processed byte of the frame was checked in this call (see
    /// `finish_message`).
    fn on_streamed(&mut self, buf: &mut BytesMut, checked: bool) -> Result<Step, ProtocolError> {
        let threshold = self.stream_threshold();
        let (Some(frame), Some(message)) = (self.frame.as_mut(), self.message.as_mut()) else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        let text = frame.payload.is_text();
        // Bytes of a code point still open at the end of what was checked.
        let open = if text { self.utf8.open_len() } else { 0 };
        let mut take = if frame.processed == frame.len {
            frame.len
        } else {
            frame.processed.saturating_sub(open)
        };
        if text && message.delivering && !message.data.is_empty() {
            // A carried code point: completed in a small piece of its own,
            // so that the rest leaves without a copy.
            let need = sequence_len(message.data[0]).unwrap_or(1);
            take = take.min(need.saturating_sub(message.data.len()));
        }
        let frame_ends = take == frame.len;
        if take == 0 && !frame_ends {
            return Ok(Step::More);
        }
        let last = frame_ends && frame.fin;
        message.checked &= checked;
        let capacity = buf.capacity();
        let zero_copy = message.delivering && message.data.is_empty();
        let mut piece = BytesMut::new();
        if zero_copy {
            piece = buf.split_to(take);
            if frame_ends && open > 0 {
                message.data.extend_from_slice(&piece[take - open..]);
                piece.truncate(take - open);
            }
            piece = unpin_small(piece, capacity);
        } else {
            message.data.extend_from_slice(&buf[..take]);
            buf.advance(take);
        }
        if frame_ends {
            self.frame = None;
        } else {
            frame.len -= take;
            frame.processed -= take;
            // The mask continues where the taken bytes left off.
            if let Some(key) = &mut frame.mask {
                key.rotate_left(take % 4);
            }
        }
        let checked = message.checked;
        if !zero_copy {
            if let Some(step) = self.hold_below_threshold(threshold, last, frame_ends) {
                return step;
            }
            let Some(message) = self.message.as_mut() else {
                return Err(ProtocolError::UnexpectedContinuation);
            };
            // Buffered bytes, or a carried code point now complete; an open
            // one at the end of the frame stays for the next piece.
            let keep = if frame_ends { open } else { 0 };
            piece = message.data.split_to(message.data.len() - keep);
        }
        self.piece(piece, last, checked).map(|event| match event {
            Some(event) => Step::Event(event),
            None if frame_ends => Step::Next,
            None => Step::More,
        })
    }

    /// A streamed compressed frame: the payload at hand is inflated, at most
    /// [`PIECE`] bytes at a time, and the output becomes a piece (or, below
    /// the streaming threshold, is buffered). Partial frames are inflated as
    /// they arrive: nothing waits for a whole frame.
    #[cfg(feature = "deflate")]
    fn on_streamed_compressed(&mut self, buf: &mut BytesMut) -> Result<Step, ProtocolError> {
        let threshold = self.stream_threshold();
        let limit = self.config.max_streamed_message_size;
        let (Some(frame), Some(message), Some(ext)) = (
            self.frame.as_mut(),
            self.message.as_mut(),
            self.ext.as_deref_mut(),
        ) else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        let Some(codec) = ext.deflate.as_mut() else {
            return Err(ProtocolError::ReservedBits(RSV1));
        };
        let room = if message.delivering {
            PIECE.saturating_sub(message.data.len()).max(1)
        } else {
            threshold + 1 - message.data.len().min(threshold)
        };
        let before = message.data.len();
        let input = &buf[..frame.processed];
        let utf8 = message.text.then_some(&mut self.utf8);
        let (consumed, drained) = codec.inflate_step(input, &mut message.data, room, utf8)?;
        buf.advance(consumed);
        frame.len -= consumed;
        frame.processed -= consumed;
        if let Some(key) = &mut frame.mask {
            key.rotate_left(consumed % 4);
        }
        let frame_done = frame.len == 0 && drained;
        // The restored tail may still inflate to a little (a stream cut
        // inside a block): a piece already near full goes out first, and
        // the tail waits for the next call.
        let defer_tail = frame_done
            && frame.fin
            && message.delivering
            && message.data.len() > PIECE - crate::deflate::TAIL_ROOM;
        let frame_ends = frame_done && !defer_tail;
        // Output held back for want of room (or the tail) comes out at the
        // next call, whether or not more bytes arrive.
        if drained && !defer_tail {
            self.input &= !INFLATING;
        } else {
            self.input |= INFLATING;
        }
        let last = frame_ends && frame.fin;
        if last {
            let utf8 = message.text.then_some(&mut self.utf8);
            codec.end_streamed_message(&mut message.data, utf8)?;
        }
        if frame_ends {
            self.frame = None;
        }
        message.size = message
            .size
            .saturating_add((message.data.len() - before) as u64);
        if let Some(max) = limit
            && message.size > max
        {
            return Err(ProtocolError::MessageTooBig {
                len: message.size,
                max: usize::try_from(max).unwrap_or(usize::MAX),
            });
        }
        if let Some(step) = self.hold_below_threshold(threshold, last, frame_ends) {
            return step;
        }
        let Some(message) = self.message.as_mut() else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        let keep = if message.text && !last {
            self.utf8.open_len()
        } else {
            0
        };
        let piece = message.data.split_to(message.data.len() - keep);
        self.piece(piece, last, true).map(|event| match event {
            Some(event) => Step::Event(event),
            None if frame_ends => Step::Next,
            None => Step::More,
        })
    }

    /// Under `Streaming::Above`, a streamed message is held until it has
    /// more than `threshold` bytes: `Some` while it has not (more to come,
    /// or, at its last frame, the whole message after all), `None` once it
    /// is delivered in pieces. A compressed message is always `checked`:
    /// inflated here, it never left the connection.
    fn hold_below_threshold(
        &mut self,
        threshold: usize,
        last: bool,
        frame_ends: bool,
    ) -> Option<Result<Step, ProtocolError>> {
        let message = self.message.as_mut()?;
        if message.delivering {
            return None;
        }
        if message.data.len() > threshold {
            message.delivering = true;
            return None;
        }
        if !last {
            return Some(Ok(if frame_ends { Step::Next } else { Step::More }));
        }
        let message = self.message.take()?;
        Some(
            self.finish_message(message.text, message.data, message.checked)
                .map(Step::Event),
        )
    }

    /// A streamed message's piece as an event (`None`: empty and not the
    /// last, nothing to deliver). `checked`: as for `finish_message`.
    fn piece(
        &mut self,
        piece: BytesMut,
        last: bool,
        checked: bool,
    ) -> Result<Option<Event>, ProtocolError> {
        if piece.is_empty() && !last {
            return Ok(None);
        }
        let Some(message) = self.message.as_mut() else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        let first = !message.started;
        message.started = true;
        let text = message.text;
        if last {
            self.message = None;
            if text {
                self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        }
        let piece = piece.freeze();
        let piece = match (text, checked) {
            (false, _) => Message::Binary(piece),
            (true, true) => Message::Text(Utf8Bytes::from_validated(piece)),
            (true, false) => Message::Text(check_again(piece)?),
        };
        Ok(Some(Event::Fragment { piece, first, last }))
    }

    /// `checked_in_this_call`: whether every byte of `data` was checked by
    /// `self.utf8` during the current `next_event` call. `Utf8Bytes` trusts
    /// its bytes to be UTF-8 (its `as_str` does not check them again), so
    /// the incremental check stands only for bytes no one could change since:
    /// `next_event` holds `&mut buf` for the whole call, but between calls
    /// safe code may overwrite what it already passed in (against the
    /// documented contract). Text checked in earlier calls (a frame split
    /// across reads, any fragmented message) is therefore checked again as
    /// a whole; a message received in one call (the common case for small
    /// ones) is not.
    #[inline(always)]
    fn finish_message(
        &mut self,
        text: bool,
        data: BytesMut,
        checked_in_this_call: bool,
    ) -> Result<Event, ProtocolError> {
        let data = data.freeze();
        let message = if text {
            self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
            let text = if checked_in_this_call {
                Utf8Bytes::from_validated(data)
            } else {
                check_again(data)?
            };
            Message::Text(text)
        } else {
            Message::Binary(data)
        };
        Ok(Event::Message(message))
    }

    fn on_close(&mut self, payload: Bytes) -> Result<Event, ProtocolError> {
        let frame = match payload.len() {
            0 => CloseFrame::new(CloseCode::NO_STATUS, Utf8Bytes::new()),
            1 => return Err(ProtocolError::InvalidClosePayload),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_sendable() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason = Utf8Bytes::try_from_bytes(payload.slice(2..))
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
                CloseFrame::new(code, reason)
            }
        };
        self.close_received = true;
        #[cfg(feature = "deflate")]
        if let Some(codec) = self.codec_mut() {
            codec.end_receive();
        }
        self.finished = true;
        if !self.close_sent {
            // Echo the status code (RFC 6455 section 5.5.1).
            let code = (frame.code != CloseCode::NO_STATUS).then_some(frame.code);
            self.queue_close(code, "");
        }
        match self.role {
            Role::Server => {
                self.transport_done = true;
                // Flushing the echo must not wait forever on a peer that
                // stopped reading after its Close.
                self.start_close_timer();
            }
            // The client waits for the server to close the transport, but not forever.
            Role::Client if self.input & EOF != 0 => self.transport_done = true,
            Role::Client => self.start_close_timer(),
        }
        Ok(Event::Close(frame))
    }

    /// Fails the connection: queues the Close frame for `error` and makes the
    /// error sticky.
    fn fail(&mut self, error: &ProtocolError) {
        if !self.close_sent {
            self.queue_close(Some(error.close_code()), error.reason());
        }
        self.error = Some(error.clone());
        self.finished = true;
        self.transport_done = true;
        // Bound the flush of our Close: a peer that stopped reading must not
        // keep the transport open forever.
        self.start_close_timer();
        self.frame = None;
        self.message = None;
        #[cfg(feature = "deflate")]
        if let Some(codec) = self.codec_mut() {
            codec.abandon();
        }
    }

    // ----- Send internals -----

    fn check_send(&self) -> Result<(), SendError> {
        if self.close_sent || self.error.is_some() || self.finished {
            Err(SendError::Closed)
        } else {
            Ok(())
        }
    }

    fn send_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), SendError> {
        self.check_send()?;
        if payload.len() > 125 {
            return Err(SendError::ControlTooLong(payload.len()));
        }
        if self.is_write_buffer_full() {
            return Err(SendError::ControlFull(payload));
        }
        let frame = self.encode_frame(opcode, true, &payload);
        self.out.push(frame);
        Ok(())
    }

    fn queue_close(&mut self, code: Option<CloseCode>, reason: &str) {
        // No data follows a Close: the compression state can go.
        #[cfg(feature = "deflate")]
        if let Some(codec) = self.codec_mut() {
            codec.end_send();
        }
        let mut payload = [0u8; 125];
        let len = match code {
            Some(code) => {
                let reason = &reason.as_bytes()[..reason.len().min(MAX_CLOSE_REASON)];
                payload[..2].copy_from_slice(&code.0.to_be_bytes());
                payload[2..2 + reason.len()].copy_from_slice(reason);
                2 + reason.len()
            }
            None => 0,
        };
        let frame = self.encode_frame(OpCode::Close, true, &payload[..len]);
        // Nothing may follow a Close, including a pong still waiting.
        self.out.drop_waiting_pong();
        self.out.push(frame);
        self.close_sent = true;
    }

    fn start_close_timer(&mut self) {
        if self.timer == Timer::Off && self.config.close_timeout.is_some() {
            self.timer = Timer::Pending;
        }
    }

    /// Queues a data payload, fragmenting at `max_send_frame_size`; `rsv`
    /// goes on the first frame only (RFC 7692 section 6: RSV1 marks the
    /// first frame of a compressed message).
    #[inline(always)]
    fn push_data(&mut self, first_opcode: OpCode, mut data: Bytes, fin: bool, mut rsv: u8) {
        let max = self.config.max_send_frame_size.max(1);
        let mut opcode = first_opcode;
        while data.len() > max {
            let part = data.split_to(max);
            self.push_payload(opcode, false, part, rsv);
            opcode = OpCode::Continuation;
            rsv = 0;
        }
        self.push_payload(opcode, fin, data, rsv);
    }

    /// Queues one data frame; a large unmasked payload is queued as its own
    /// chunk without copying.
    #[inline(always)]
    fn push_payload(&mut self, opcode: OpCode, fin: bool, payload: Bytes, rsv: u8) {
        let mut header = self.header(opcode, fin, payload.len());
        header.rsv = rsv;
        if header.mask.is_none() && payload.len() > INLINE_PAYLOAD {
            header.encode_bytes(self.out.tail_mut());
            self.out.push(payload);
        } else if header.encoded_len() + payload.len() <= TAIL_KEEP {
            // The common case: encoded in place, after what is queued.
            encode_into(self.out.tail_mut(), &header, &payload);
        } else {
            let mut own = BytesMut::new();
            encode_into(&mut own, &header, &payload);
            self.out.push(own.freeze());
        }
    }

    /// A final-or-not frame header for `len` payload bytes, with a fresh
    /// masking key for a client.
    #[inline]
    fn header(&mut self, opcode: OpCode, fin: bool, len: usize) -> FrameHeader {
        let mask = self.entropy.as_mut().map(|entropy| {
            let mut key = [0u8; 4];
            entropy.0.fill(&mut key);
            key
        });
        FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask,
            payload_len: len as u64,
        }
    }

    /// Encodes a whole control frame (header, then payload masked for a
    /// client) into one contiguous chunk.
    fn encode_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) -> Bytes {
        let header = self.header(opcode, fin, payload.len());
        let mut buf = BytesMut::new();
        encode_into(&mut buf, &header, payload);
        buf.freeze()
    }
}

/// Masked text is unmasked a block at a time, testing for ASCII in the same
/// pass: ASCII blocks need no validator.
const TEXT_BLOCK: usize = 8192;

/// A received message is split off the caller's read buffer, not copied,
/// so it shares (and keeps alive) that buffer's whole allocation for as
/// long as the application holds it: 256 KiB for a busy connection, 16 MiB
/// after a large frame, kept by a 10-byte message. A message more than this
/// many times smaller than the buffer's capacity is copied into its own
/// allocation instead, so what a message retains is bounded by this many
/// times its size (or by [`PIN_FREE`]). The copy costs in proportion to
/// the message, never to the buffer. (A 64 KiB message out of a 256 KiB
/// buffer, the steady state of 64 KiB echo traffic, is still shared.)
const PIN_RATIO: usize = 8;

/// ...but a buffer of at most this capacity is shared whatever the message
/// size: keeping it costs little, and small messages out of the 8 to 16 KiB
/// buffers of ordinary traffic stay zero-copy and allocation-free.
const PIN_FREE: usize = 64 * 1024;

/// `payload`, split off a buffer of capacity `buf_capacity` (from where the
/// payload started to the end of the allocation: a lower bound of its size),
/// or a copy of it if sharing would pin too much (see [`PIN_RATIO`]).
#[inline]
fn unpin_small(payload: BytesMut, buf_capacity: usize) -> BytesMut {
    if buf_capacity > PIN_FREE && payload.len().saturating_mul(PIN_RATIO) < buf_capacity {
        // Exactly sized: `freeze` then takes the allocation as it is.
        BytesMut::from(&payload[..])
    } else {
        payload
    }
}

/// Text whose incremental check no longer stands (see `finish_message`),
/// checked again whole. Out of line: the hot path never comes here.
#[cold]
#[inline(never)]
fn check_again(data: Bytes) -> Result<Utf8Bytes, ProtocolError> {
    Utf8Bytes::try_from_bytes(data).map_err(|_| ProtocolError::InvalidUtf8)
}

/// Unmasks `data` (which starts `offset` bytes into a text frame's payload)
/// and validates it as the continuation of the text fed to `utf8` so far.
fn unmask_text(
    data: &mut [u8],
    key: [u8; 4],
    offset: usize,
    utf8: &mut Utf8Validator,
) -> Result<(), ProtocolError> {
    let mut done = 0;
    while done < data.len() {
        let end = data.len().min(done + TEXT_BLOCK);
        let ascii = unmask_is_ascii(&mut data[done..end], key, offset + done);
        // ASCII is valid on its own, unless a code point is still open.
        if !(ascii && utf8.at_boundary()) {
            // Not plain ASCII: the text is likely mixed, and the validator
            // is fastest on long inputs, so the rest goes in one piece.
            apply_mask(&mut data[end..], key, offset + end);
            return utf8
                .feed(&data[done..])
                .map_err(|_| ProtocolError::InvalidUtf8);
        }
        done = end;
    }
    Ok(())
}

/// Appends `header` and `payload` (masked with the header's key, if any).
#[inline(always)]
fn encode_into(buf: &mut BytesMut, header: &FrameHeader, payload: &[u8]) {
    buf.reserve(header.encoded_len() + payload.len());
    header.encode_bytes(buf);
    let start = buf.len();
    buf.extend_from_slice(payload);
    if let Some(key) = header.mask {
        apply_mask(&mut buf[start..], key, 0);
    }
}

fn split_message(message: Message) -> (OpCode, Bytes) {
    match message {
        Message::Text(text) => (OpCode::Text, text.into_bytes()),
        Message::Binary(data) => (OpCode::Binary, data),
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn server(config: Config) -> Connection {
        Connection::with_entropy(Role::Server, config, |d: &mut [u8]| d.fill(0))
    }

    fn drain(conn: &mut Connection) -> Vec<u8> {
        let out = conn.outgoing();
        let bytes = out.copy_to_bytes(out.remaining());
        bytes.to_vec()
    }

    #[test]
    fn keepalive_pings_when_idle_and_gives_up_on_a_silent_peer() {
        let config = Config::default().with_keepalive(Some(5 * SECOND), Some(2 * SECOND));
        let mut conn = server(config);
        assert_eq!(conn.poll_timeout(Duration::ZERO), Some(5 * SECOND));
        conn.handle_timeout(4 * SECOND);
        assert!(!conn.wants_write(), "not due yet");
        conn.handle_timeout(5 * SECOND);
        assert_eq!(drain(&mut conn), [0x89, 0x00], "an empty ping");
        assert_eq!(conn.poll_timeout(5 * SECOND), Some(7 * SECOND));
        conn.handle_timeout(7 * SECOND);
        assert!(conn.should_close_transport(), "abandoned at once");
        assert!(conn.is_abandoned());
        assert!(!conn.is_finished(), "the 1006 event is still to come");
        let mut buf = BytesMut::new();
        match conn.next_event(&mut buf) {
            Ok(Some(Event::Close(frame))) => assert_eq!(frame.code, CloseCode::ABNORMAL),
            other => panic!("expected a 1006 close, got {other:?}"),
        }
        assert!(conn.is_finished());
        assert_eq!(
            drain(&mut conn)[..4],
            [0x88, 0x18, 0x03, 0xF3],
            "Close 1011 queued"
        );
        assert_eq!(conn.state(), State::Closed);
    }

    #[test]
    fn keepalive_clock_restarts_on_any_received_bytes() {
        let config = Config::default().with_keepalive(Some(5 * SECOND), Some(2 * SECOND));
        let mut conn = server(config);
        assert_eq!(conn.poll_timeout(Duration::ZERO), Some(5 * SECOND));
        conn.handle_timeout(5 * SECOND);
        let _ = drain(&mut conn);
        // A masked pong arrives before the deadline.
        let mut buf = BytesMut::from(&[0x8A, 0x80, 1, 2, 3, 4][..]);
        assert!(matches!(
            conn.next_event(&mut buf),
            Ok(Some(Event::Pong(_)))
        ));
        assert_eq!(conn.poll_timeout(6 * SECOND), Some(11 * SECOND));
        conn.handle_timeout(7 * SECOND);
        assert!(!conn.should_close_transport());
    }

    #[test]
    fn read_ahead_covers_a_frame_only_as_far_as_the_peer_earned_it() {
        const MIB: usize = 1 << 20;
        let config = Config::default().with_max_message_size(64 * MIB);
        let mut conn = server(config.with_max_frame_size(64 * MIB));
        let mut buf = BytesMut::new();
        assert_eq!(conn.read_ahead(&buf), 0, "no frame in progress");
        // A binary frame announcing 1 MiB (64-bit length), masked with zeros.
        let mut header = vec![0x82, 0xFF];
        header.extend_from_slice(&(MIB as u64).to_be_bytes());
        header.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&header);
        buf.extend_from_slice(&[7; 100]);
        assert_eq!(conn.next_event(&mut buf), Ok(None));
        assert_eq!(
            conn.read_ahead(&buf),
            READ_AHEAD_FREE,
            "a few bytes earn the free amount"
        );
        buf.extend_from_slice(&vec![7; 200 * 1024]);
        assert_eq!(conn.next_event(&mut buf), Ok(None));
        assert_eq!(
            conn.read_ahead(&buf),
            MIB - buf.len(),
            "earned: the whole rest"
        );
        buf.extend_from_slice(&vec![7; MIB - buf.len()]);
        assert!(matches!(
            conn.next_event(&mut buf),
            Ok(Some(Event::Message(_)))
        ));
        assert_eq!(conn.read_ahead(&buf), 0, "the frame is complete");

        // A peer announcing 64 MiB and sending 1 KiB earns no more than the
        // free amount, then eight times what it sent.
        let mut header = vec![0x82, 0xFF];
        header.extend_from_slice(&(64 * MIB as u64).to_be_bytes());
        header.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&header);
        buf.extend_from_slice(&[7; 1024]);
        assert_eq!(conn.next_event(&mut buf), Ok(None));
        assert_eq!(conn.read_ahead(&buf), READ_AHEAD_FREE);
        buf.extend_from_slice(&vec![7; MIB]);
        assert_eq!(conn.next_event(&mut buf), Ok(None));
        assert_eq!(conn.read_ahead(&buf), READ_AHEAD_EARN * buf.len());
    }

    #[test]
    fn a_stalled_partial_frame_is_not_activity() {
        let config = Config::default().with_keepalive(Some(5 * SECOND), Some(2 * SECOND));
        let mut conn = server(config);
        let mut buf = BytesMut::from(&[0x81, 0x85, 1, 2, 3, 4, b'a'][..]);
        assert_eq!(conn.next_event(&mut buf), Ok(None));
        assert_eq!(conn.poll_timeout(Duration::ZERO), Some(5 * SECOND));
        conn.handle_timeout(5 * SECOND);
        // The same partial bytes are offered again: no progress, no reprieve.
        assert_eq!(conn.next_event(&mut buf), Ok(None));
        assert_eq!(conn.poll_timeout(5 * SECOND), Some(7 * SECOND));
        conn.handle_timeout(7 * SECOND);
        assert!(conn.should_close_transport());
    }

    #[test]
    fn no_timer_without_keepalive_or_close() {
        let mut conn = server(Config::default());
        assert_eq!(conn.poll_timeout(Duration::ZERO), None);
        conn.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(conn.poll_timeout(SECOND), Some(11 * SECOND));
    }

    #[test]
    fn a_failed_connection_gives_up_flushing_at_the_close_timeout() {
        let mut conn = server(Config::default().with_close_timeout(Some(SECOND)));
        let mut buf = BytesMut::from(&[0x81, 0x05][..]); // unmasked from a client
        assert!(conn.next_event(&mut buf).is_err());
        assert!(
            !conn.should_close_transport(),
            "the Close waits to be flushed"
        );
        assert_eq!(conn.poll_timeout(Duration::ZERO), Some(SECOND));
        conn.handle_timeout(SECOND);
        assert!(
            conn.should_close_transport(),
            "the peer stopped reading: give up"
        );
    }

    #[test]
    fn a_zero_write_buffer_still_sends_one_message_at_a_time() {
        let mut conn = server(Config::default().with_max_write_buffer(0));
        assert!(!conn.is_write_buffer_full());
        conn.send(Message::text("a")).unwrap();
        assert!(conn.is_write_buffer_full());
        assert!(matches!(
            conn.send(Message::text("b")),
            Err(SendError::Full(_))
        ));
        let _ = drain(&mut conn);
        conn.send(Message::text("b")).unwrap();
    }

    #[test]
    fn has_timers_tells_when_poll_timeout_needs_no_clock() {
        let mut conn = server(Config::default());
        assert!(!conn.has_timers());
        assert_eq!(conn.poll_timeout(Duration::MAX), None);
        conn.close(CloseCode::NORMAL, "").unwrap();
        assert!(conn.has_timers(), "the close timer waits to be armed");
        let keepalive = server(Config::default().with_keepalive(Some(SECOND), None));
        assert!(keepalive.has_timers());
        let untimed = server(Config::default().with_close_timeout(None));
        let mut untimed = untimed;
        untimed.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(untimed.poll_timeout(Duration::ZERO), None);
        assert!(!untimed.has_timers());
    }

    #[test]
    fn text_changed_in_the_buffer_after_it_was_checked_is_rejected() {
        // Callers must only append to `buf`, but safe code can break that
        // rule: text checked in an earlier call is checked again at the end
        // (`Utf8Bytes` relies on its bytes being valid UTF-8).
        for fragmented in [false, true] {
            let mut conn = server(Config::default());
            // Masked with zeros, so the payload is the text itself.
            let first = if fragmented { 0x01 } else { 0x81 };
            let mut buf = BytesMut::from(&[first, 0x84, 0, 0, 0, 0, b'a', b'b'][..]);
            assert_eq!(conn.next_event(&mut buf), Ok(None));
            buf[0] = 0xFF;
            buf.extend_from_slice(b"cd");
            if fragmented {
                assert_eq!(conn.next_event(&mut buf), Ok(None));
                buf.extend_from_slice(&[0x80, 0x81, 0, 0, 0, 0, b'e']);
            }
            assert_eq!(
                conn.next_event(&mut buf),
                Err(ProtocolError::InvalidUtf8),
                "fragmented: {fragmented}"
            );
        }
        // Left alone, the same text split across calls is delivered.
        let mut conn = server(Config::default());
        let mut buf = BytesMut::from(&[0x81, 0x84, 0, 0, 0, 0, b'a', b'b'][..]);
        assert_eq!(conn.next_event(&mut buf), Ok(None));
        buf.extend_from_slice(b"cd");
        assert_eq!(
            conn.next_event(&mut buf),
            Ok(Some(Event::Message(Message::text("abcd"))))
        );
    }

    #[test]
    fn a_small_message_does_not_pin_a_large_read_buffer() {
        const KIB: usize = 1024;
        /// A masked (with zeros) single-frame message of `len` bytes.
        fn frame(opcode: u8, len: usize) -> Vec<u8> {
            let mut frame = match len {
                0..=125 => vec![0x80 | opcode, 0x80 | len as u8],
                _ => [&[0x80 | opcode, 0xFE][..], &(len as u16).to_be_bytes()].concat(),
            };
            frame.extend_from_slice(&[0; 4]);
            frame.resize(frame.len() + len, b'x');
            frame
        }
        /// Receives a `len`-byte message out of a buffer of `capacity`; returns
        /// whether its data lies inside that buffer, and whether the buffer
        /// is still pinned (cannot be reclaimed) while the message is held.
        fn receive(opcode: u8, len: usize, capacity: usize) -> (bool, bool) {
            let mut conn = server(Config::default());
            let mut buf = BytesMut::with_capacity(capacity);
            buf.extend_from_slice(&frame(opcode, len));
            let start = buf.as_ptr() as usize;
            let within = start..start + buf.capacity();
            let data = match conn.next_event(&mut buf) {
                Ok(Some(Event::Message(Message::Binary(data)))) => data,
                Ok(Some(Event::Message(Message::Text(text)))) => text.into_bytes(),
                other => panic!("expected a message, got {other:?}"),
            };
            assert_eq!(data.len(), len);
            assert!(data.iter().all(|&b| b == b'x'));
            let shared = within.contains(&(data.as_ptr() as usize));
            // More than the spare room: only the unique owner can reclaim.
            let pinned = !buf.try_reclaim(buf.capacity() + 1);
            (shared, pinned)
        }
        for opcode in [0x1, 0x2] {
            // 10 bytes out of 1 MiB: copied, the buffer is free to be reused.
            assert_eq!(receive(opcode, 10, 1024 * KIB), (false, false));
            // ...and so is an empty one.
            assert_eq!(receive(opcode, 0, 1024 * KIB), (false, false));
            // Out of an ordinary 8 KiB buffer: zero-copy.
            assert_eq!(receive(opcode, 10, 8 * KIB), (true, true));
            // 64 KiB echo traffic (a 256 KiB buffer): zero-copy.
            assert_eq!(receive(opcode, 64 * KIB - 1, 256 * KIB), (true, true));
        }

        // A first fragment is not left pinning the buffer either.
        let mut conn = server(Config::default());
        let mut buf = BytesMut::with_capacity(1024 * KIB);
        let mut first = frame(0x2, 10);
        first[0] &= 0x7F; // not FIN
        buf.extend_from_slice(&first);
        assert_eq!(conn.next_event(&mut buf), Ok(None));
        assert!(buf.try_reclaim(buf.capacity() + 1), "not pinned");
        buf.extend_from_slice(&frame(0x0, 0));
        assert!(matches!(
            conn.next_event(&mut buf),
            Ok(Some(Event::Message(Message::Binary(data)))) if data.len() == 10
        ));
    }

    #[test]
    fn abort_discards_the_queue_and_ends_with_1006() {
        let mut conn = server(Config::default());
        conn.send(Message::binary(vec![0; 10_000])).unwrap();
        conn.send(Message::text("more")).unwrap();
        conn.abort();
        assert!(!conn.wants_write(), "nothing queued is written");
        assert!(conn.should_close_transport());
        assert!(matches!(
            conn.send(Message::text("x")),
            Err(SendError::Closed)
        ));
        let mut buf = BytesMut::new();
        match conn.next_event(&mut buf) {
            Ok(Some(Event::Close(frame))) => assert_eq!(frame.code, CloseCode::ABNORMAL),
            other => panic!("expected a 1006 close, got {other:?}"),
        }
    }

    #[test]
    fn a_refused_ping_hands_its_payload_back_as_a_payload() {
        let mut conn = server(Config::default().with_max_write_buffer(0));
        conn.send(Message::text("fills the queue")).unwrap();
        assert_eq!(
            conn.ping(Bytes::from_static(b"p")),
            Err(SendError::ControlFull(Bytes::from_static(b"p")))
        );
    }

    #[test]
    fn idle_connection_is_small() {
        // Guards the per-connection footprint (no eager buffers inline).
        assert!(
            size_of::<Connection>() <= 512,
            "{}",
            size_of::<Connection>()
        );
    }
}
