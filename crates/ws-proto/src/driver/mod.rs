//! The run loop, owned by the core: a sans-IO [`Driver`] that decides when
//! to read, write, wait and shut down, so that a runtime adapter (or your own
//! event loop) only performs what it asks and reports what happened.
//!
//! A [`Connection`] decides the protocol; the driver decides everything an
//! adapter would otherwise decide again: which events end a receive call and
//! what is kept while the application only sends, read sizes (read-ahead for
//! large frames, idle buffers released), the one timer (keepalive and close),
//! what a transport failure means (1006, with one reason), draining what
//! arrives while closing, and when to shut the write side down.
//!
//! # The loop
//! An adapter runs one loop per operation ([`Op`]): it asks
//! [`poll`](Driver::poll) and performs the [`Action`]:
//!
//! | action | perform | report |
//! |---|---|---|
//! | [`Deliver`](Action::Deliver) | hand the application the event [`take_event`](Driver::take_event) returns | nothing: the operation is over |
//! | [`Write`](Action::Write) | write (waiting only if `wait`) from [`outgoing`](Driver::outgoing) (a `Buf`), `advance` it | [`wrote`](Driver::wrote), or [`write_blocked`](Driver::write_blocked), or [`io_error`](Driver::io_error) |
//! | [`Flush`](Action::Flush) | flush the transport (a TLS or buffered stream holds written bytes until then) | [`flushed`](Driver::flushed), or [`write_blocked`](Driver::write_blocked), or [`io_error`](Driver::io_error) |
//! | [`Timer`](Action::Timer) | read the clock, call [`timer`](Driver::timer); arm a sleep at the deadline it gives | [`timer_fired`](Driver::timer_fired), or [`timer_blocked`](Driver::timer_blocked) |
//! | [`Read`](Action::Read) | read into [`read_buf`](Driver::read_buf) (or [`read_slice`](Driver::read_slice); completion I/O lends the kernel [`take_read_room`](Driver::take_read_room)) | [`filled`](Driver::filled) (0 is end of stream), or [`read_blocked`](Driver::read_blocked), or [`io_error`](Driver::io_error) |
//! | [`Shutdown`](Action::Shutdown) | shut the transport's write side (errors do not matter), dropping held bytes if `discard` | [`shut_down`](Driver::shut_down) |
//! | [`Wait`](Action::Wait) | wait for whatever reported blocked (async: return `Pending`) | nothing |
//! | [`Done`](Action::Done) | finish the operation: failed with [`take_error`](Driver::take_error)'s error, if any | nothing |
//!
//! Written bytes are flushed before the driver waits for the peer or the
//! operation ends: once the queue is written out, the driver asks for a
//! [`Flush`](Action::Flush) where it would otherwise ask for a write (a
//! blocked write is flushed once it completes: flushing then would wait
//! the same way). A transport whose flush does nothing just reports
//! [`flushed`](Driver::flushed).
//!
//! "Blocked" means the transport would have to wait (`Poll::Pending`, or
//! `WouldBlock`). An async adapter has then registered its waker; the driver
//! stops asking for that kind of I/O until the operation ends or makes
//! progress, and answers [`Wait`](Action::Wait) once everything it needs is
//! blocked. A blocking adapter never reports blocked except for a read
//! timeout, so it just performs each action in turn.
//!
//! ```
//! use bytes::Buf;
//! use ws_proto::{Action, Config, Connection, Driver, Message, Op, Role};
//!
//! // A server whose "transport" is two byte vectors.
//! let conn = Connection::with_entropy(Role::Server, Config::default(), |_: &mut [u8]| {});
//! let mut driver = Driver::new(conn);
//! let mut input: &[u8] = &[0x81, 0x82, 0, 0, 0, 0, b'h', b'i']; // "hi", masked with zeros
//! let mut output = Vec::new();
//! let message = loop {
//!     match driver.poll(Op::RecvMessage) {
//!         Action::Deliver => break driver.take_event(),
//!         Action::Read { .. } => {
//!             let buf = driver.read_slice();
//!             let n = input.len().min(buf.len());
//!             buf[..n].copy_from_slice(&input[..n]);
//!             input = &input[n..];
//!             driver.filled(n);
//!         }
//!         Action::Write { .. } => {
//!             let out = driver.outgoing();
//!             output.extend_from_slice(out.chunk());
//!             let n = out.chunk().len();
//!             driver.wrote(n);
//!         }
//!         other => panic!("unexpected {other:?}"),
//!     }
//! };
//! assert_eq!(message, Some(ws_proto::Event::Message(Message::text("hi"))));
//! driver.send(Message::text("hi"))?;
//! assert!(matches!(driver.poll(Op::WriteOut), Action::Write { .. }));
//! # Ok::<(), ws_proto::SendError>(())
//! ```
//!
//! # The opening handshake
//! [`Driver::client`] and [`Driver::server`] make a driver that first runs
//! the HTTP handshake with the same actions ([`Op::Open`]): it writes the
//! request or response, reads the other side's head, answers a malformed
//! request with its 400 / 426 / 431, and bounds it all with the handshake
//! timeout through the one timer. The client then takes the response
//! ([`Driver::take_response`]); the server's driver keeps the request
//! ([`Driver::request`]) until the application
//! [`accept`](Driver::accept)s or [`reject`](Driver::reject)s it, and
//! `Op::Open` runs again to write the answer. What was negotiated
//! (subprotocol, extensions) configures the connection there; bytes read
//! past the head stay in the read buffer as the connection's first input.
//! A stream upgraded elsewhere (hyper, axum)
//! skips this: [`Driver::new`] or [`Driver::with_buffer`] with the
//! connection from [`Accepted::connection`](crate::Accepted::connection).
//!
//! # Split halves
//! Two tasks (or threads) can share one driver behind a lock that is held
//! only for these sans-IO calls, never across I/O: the read buffer is taken
//! out for a read ([`take_read_buf`](Driver::take_read_buf) /
//! [`give_read_buf`](Driver::give_read_buf)), and the writer writes owned
//! chunks popped from [`outgoing`](Driver::outgoing). The reader runs
//! [`Op::Recv`] / [`Op::RecvMessage`] (it owns the timer), the writer
//! [`Op::Reserve`] and [`Op::WriteOut`].

mod broadcast;
mod opening;
mod pool;
mod read_buffer;

pub use self::{
    broadcast::{Broadcast, Offer, Offered, WhenFull, broadcast},
    opening::Options,
    read_buffer::ReadBuffer,
};

use alloc::{boxed::Box, collections::VecDeque};
use core::time::Duration;

use bytes::BytesMut;

use crate::{
    close::{CloseCode, CloseFrame},
    connection::{Connection, Outgoing, State},
    error::{ProtocolError, SendError},
    event::{Event, Message},
    utf8::Utf8Bytes,
};

/// The read size of a quiet connection (spare room made before a read). It
/// doubles while reads fill the buffer, up to [`MAX_READ_SIZE`], and halves
/// when the transport has nothing more.
pub const READ_SIZE: usize = 8 * 1024;
/// The largest read size of a busy connection.
pub const MAX_READ_SIZE: usize = 256 * 1024;
/// Non-blocking reads a [`Op::Flush`] makes after writing, so that pings are
/// answered and Close frames echoed while the application only sends.
const BACKGROUND_READS: u8 = 4;

/// The reason of the 1006 closure after a transport error.
const TRANSPORT_FAILED: &str = "the transport failed";

/// The longest single wait the driver asks for: an adapter's clock may not
/// represent "never" (`Instant + Duration::MAX` overflows), and waking once
/// a day to find nothing due costs nothing.
const MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// The operation an adapter is running: what ends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Receive the next event: data messages, pings, pongs and the Close.
    /// Ends with [`Action::Deliver`], or [`Action::Done`] once the connection
    /// is over ([`Driver::take_error`] reports a protocol error, once).
    Recv,
    /// Receive the next data message; pings, pongs and the Close are handled
    /// inside (the Close is kept for [`Driver::close_frame`]).
    RecvMessage,
    /// Write everything queued; then read, without waiting, what already
    /// arrived (unless the application is receiving too), so that automatic
    /// replies go out while the application only sends. Events read then are
    /// kept for the next receive: reading stops behind a data message or
    /// Close, so memory stays bounded. Protocol errors found then are
    /// reported by the next receive.
    Flush,
    /// Write everything queued, and nothing else (a split writer).
    WriteOut,
    /// Write until one more message fits ([`Connection::is_write_buffer_full`]
    /// is false): backpressure before [`Driver::send`]. It does not ask for
    /// a flush (a `feed` is not a flush); the [`Op::Flush`] after the send
    /// does.
    Reserve,
    /// Run the opening handshake of a driver made with [`Driver::client`]
    /// or [`Driver::server`] until the application's turn: the response
    /// ([`Driver::take_response`]) or the request ([`Driver::request`])
    /// is in, or, after [`Driver::accept`] / [`Driver::reject`], the answer
    /// is written (and, for a refusal, the transport shut down). Ends at
    /// once when the connection is open. A failure ends it too: see
    /// [`Driver::handshake_result`].
    Open,
    /// Run the close handshake to its end after [`Driver::close`]: write,
    /// read until the peer's Close (and, for a client, the end of the
    /// stream), bounded by the close timeout. Data messages that arrive
    /// meanwhile are kept for later receive calls (up to
    /// [`Config::max_message_size`](crate::Config::max_message_size) bytes
    /// of them; beyond that the operation ends early and the receive calls
    /// finish the handshake), so nothing the peer sent before its Close is
    /// lost.
    Close,
}

/// What the driver asks the adapter to do next; see the [module
/// docs](self) for how to perform and report each.
///
/// It carries no payload (the event and the error wait in the driver), so
/// it is one byte and costs nothing to return from the hot loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Action {
    /// Write from [`Driver::outgoing`]. With `wait: false` the write must
    /// not wait for the transport to take bytes (a receive never stalls on
    /// a peer that does not read): report [`Driver::write_blocked`] instead.
    /// Async adapters never wait anyway.
    Write {
        /// Whether the write may wait for the transport.
        wait: bool,
    },
    /// Flush the transport (everything queued was written, and a TLS or
    /// buffered stream may hold it), then call [`Driver::flushed`]; report
    /// [`Driver::write_blocked`] if the flush has to wait.
    Flush,
    /// Read into [`Driver::read_buf`] or [`Driver::read_slice`]. With `wait:
    /// false` the read must not wait for bytes: report
    /// [`Driver::read_blocked`] if none are there already.
    Read {
        /// Whether the read may wait for bytes to arrive.
        wait: bool,
    },
    /// Read the clock and call [`Driver::timer`].
    Timer,
    /// Shut down the write side of the transport, then call
    /// [`Driver::shut_down`].
    Shutdown {
        /// The peer was given up on (close or keepalive timeout): drop any
        /// bytes the adapter still holds (popped chunks, a transport buffer)
        /// rather than wait for them to be written.
        discard: bool,
    },
    /// Hand the event [`Driver::take_event`] returns to the application;
    /// the operation is over.
    Deliver,
    /// Everything the operation needs is blocked: wait for the transport or
    /// the timer, then poll again.
    Wait,
    /// The operation is over: it failed if [`Driver::take_error`] returns
    /// an error.
    Done,
}

/// Kinds of I/O reported blocked during the current operation.
const READ: u8 = 1;
const WRITE: u8 = 2;
const TIMER: u8 = 4;

/// The run loop of one connection: a [`Connection`], its read buffer and the
/// state between calls. See the [module docs](self).
#[derive(Debug)]
pub struct Driver {
    conn: Connection,
    read: ReadBuffer,
    /// The current read size: `READ_SIZE` to `MAX_READ_SIZE`.
    read_size: usize,
    /// Events read while no receive call was running, oldest first.
    stash: VecDeque<Event>,
    /// Payload bytes of the data messages in `stash`.
    stash_bytes: usize,
    /// The event being delivered: written after its automatic reply, then
    /// handed out by [`take_event`](Self::take_event).
    ready: Option<Event>,
    close_frame: Option<CloseFrame>,
    /// A protocol error not yet reported to the application.
    error: Option<ProtocolError>,
    /// The last [`Action::Done`] ended a receive with `error`.
    failed: bool,
    /// Bit set of the I/O kinds reported blocked in this operation.
    blocked: u8,
    /// Non-blocking reads made by the current [`Op::Flush`].
    background_reads: u8,
    /// Whether a receive operation ran since the last flush.
    receiving: bool,
    /// Bytes taken with [`pop_chunk`](Self::pop_chunk) and not yet reported
    /// written: still to go out, though no longer in the queue.
    in_flight: usize,
    /// The read buffer is out with the adapter ([`take_read_buf`](Self::take_read_buf)).
    buf_out: bool,
    /// Bytes were written since the transport was last flushed.
    unflushed: bool,
    /// The write side was shut down.
    shut: bool,
    /// The transport is finished with: no more I/O.
    done: bool,
    /// The rest of the streamed message being received is dropped
    /// ([`discard_message`](Self::discard_message)).
    discarding: bool,
    /// The opening handshake, until the connection is open.
    opening: Option<Box<opening::Opening>>,
}

impl Driver {
    /// A driver for `conn` with an empty read buffer.
    pub fn new(conn: Connection) -> Self {
        Self::with_buffer(conn, BytesMut::new())
    }

    /// A driver whose first input is `buf`: bytes read past the opening
    /// handshake.
    pub fn with_buffer(conn: Connection, buf: BytesMut) -> Self {
        Self {
            conn,
            read: ReadBuffer {
                buf,
                slice_from: None,
                room: 0,
            },
            read_size: READ_SIZE,
            stash: VecDeque::new(),
            stash_bytes: 0,
            ready: None,
            close_frame: None,
            error: None,
            failed: false,
            blocked: 0,
            background_reads: 0,
            receiving: false,
            in_flight: 0,
            unflushed: false,
            buf_out: false,
            shut: false,
            done: false,
            discarding: false,
            opening: None,
        }
    }

    // ----- Getters -----

    /// The connection (state, role, configuration, negotiated parameters).
    pub const fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The connection, for commands the driver does not wrap
    /// ([`Connection::send_fragment`], [`Connection::pong`]). Commands only
    /// queue bytes: run [`Op::Flush`] afterwards.
    pub const fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Why the connection ended: the peer's Close frame, or code 1006 when
    /// the transport ended or failed, or a timeout fired, without one. `None`
    /// while open (and after a protocol error, which is reported instead).
    pub const fn close_frame(&self) -> Option<&CloseFrame> {
        self.close_frame.as_ref()
    }

    /// Whether the connection is over: nothing more will be read or written.
    pub const fn is_done(&self) -> bool {
        self.done
    }

    /// The connection and the read buffer, for an adapter that wants to hand
    /// them elsewhere (bytes read but not yet parsed stay in the buffer).
    pub fn into_parts(mut self) -> (Connection, BytesMut) {
        // The buffer leaves the driver's care: see `ReadBuffer`.
        self.conn.expose_prefix();
        (self.conn, self.read.buf)
    }

    // ----- Commands -----

    /// Queues a data message. Run [`Op::Reserve`] first to wait for room
    /// (otherwise a full queue answers [`SendError::Full`] with the message),
    /// and [`Op::Flush`] after.
    #[inline]
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        self.conn.send(message)
    }

    /// Queues a ping (payload up to 125 bytes).
    pub fn ping(&mut self, payload: bytes::Bytes) -> Result<(), SendError> {
        self.conn.ping(payload)
    }

    /// Starts the close handshake unless it already started or the connection
    /// is over (then nothing happens): queues a Close frame and arms the close
    /// timer. Run [`Op::Close`] to finish it, or keep receiving.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if self.conn.state() == State::Open && !self.done {
            self.conn.close(code, reason)?;
        }
        Ok(())
    }

    /// Gives back the event the last [`Action::Deliver`] handed out, for
    /// the next receive: an adapter's whole-message `recv` that met a
    /// streamed message's piece keeps it for the stream receive.
    pub fn put_back(&mut self, event: Event) {
        if let Some(older) = self.ready.replace(event) {
            self.stash_bytes += data_len(&older);
            self.stash.push_front(older);
        }
    }

    /// Drops the rest of the streamed message being received: its remaining
    /// [`Event::Fragment`] pieces are read and discarded, not delivered.
    /// For a reader that stops half way (an adapter's message stream
    /// dropped after a piece that was not the last).
    pub fn discard_message(&mut self) {
        self.discarding = true;
        // Pieces already read and kept go first, oldest first.
        if let Some(event) = self.ready.take()
            && !self.discarded(&event)
        {
            self.ready = Some(event);
        }
        for event in core::mem::take(&mut self.stash) {
            if self.discarded(&event) {
                self.stash_bytes = self.stash_bytes.saturating_sub(data_len(&event));
            } else {
                self.stash.push_back(event);
            }
        }
    }

    /// Whether `event` is a piece of a message being discarded (the last
    /// piece ends the discarding).
    fn discarded(&mut self, event: &Event) -> bool {
        match event {
            Event::Fragment { last, .. } if self.discarding => {
                self.discarding = !*last;
                true
            }
            _ => false,
        }
    }

    /// Gives up on the connection at once ([`Connection::abort`]): queued
    /// bytes are dropped, and the next operation shuts the transport down
    /// and ends.
    pub fn abort(&mut self) {
        self.conn.abort();
    }

    // ----- The loop -----

    /// What to do next for operation `op`.
    #[inline]
    pub fn poll(&mut self, op: Op) -> Action {
        let action = self.next_action(op);
        if matches!(action, Action::Deliver | Action::Wait | Action::Done) {
            // The operation returns to the application (or waits): blocked
            // I/O is polled afresh next time.
            self.blocked = 0;
            self.background_reads = 0;
            if matches!(action, Action::Wait) {
                self.release_idle_buffer();
            }
        }
        action
    }

    #[inline]
    fn next_action(&mut self, op: Op) -> Action {
        match op {
            Op::Recv | Op::RecvMessage | Op::Close => {
                self.receiving = true;
                if (self.ready.is_some() || !self.stash.is_empty())
                    && let Some(action) = self.resume(op)
                {
                    return action;
                }
                self.poll_receive(op)
            }
            Op::Flush | Op::WriteOut => {
                if !self.done
                    && let Some(step) = self.write_step(true)
                {
                    return self.unless_write_blocked(step);
                }
                if op == Op::Flush && !core::mem::take(&mut self.receiving) {
                    return self.poll_background();
                }
                Action::Done
            }
            Op::Open => self.poll_open(),
            Op::Reserve => {
                if self.conn.is_write_buffer_full() && !self.done {
                    self.unless_write_blocked(Action::Write { wait: true })
                } else {
                    Action::Done
                }
            }
        }
    }

    /// A receive that finds an event waiting: one whose reply was being
    /// written, or one read while the application only sent.
    #[cold]
    fn resume(&mut self, op: Op) -> Option<Action> {
        if self.ready.is_some() && op != Op::Close {
            return Some(self.deliver_ready());
        }
        if let Some(event) = self.ready.take() {
            // A receive call was dropped before its event left.
            self.stash_bytes += data_len(&event);
            self.stash.push_front(event);
        }
        if op == Op::Close {
            return None;
        }
        let event = self.unstash(op)?;
        Some(self.deliver_after_write(event))
    }

    /// The next stashed event that `op` delivers (others are dropped: their
    /// replies went out already).
    fn unstash(&mut self, op: Op) -> Option<Event> {
        while let Some(event) = self.stash.pop_front() {
            self.stash_bytes -= data_len(&event);
            if self.discarded(&event)
                || (op == Op::RecvMessage
                    && !matches!(event, Event::Message(_) | Event::Fragment { .. }))
            {
                continue;
            }
            return Some(event);
        }
        None
    }

    /// The next step of writing out, if one is due: the bytes (queued, or
    /// popped and unwritten), then the flush.
    #[inline]
    fn write_step(&self, wait: bool) -> Option<Action> {
        if self.conn.wants_write() || self.in_flight > 0 {
            Some(Action::Write { wait })
        } else if self.unflushed {
            Some(Action::Flush)
        } else {
            None
        }
    }

    /// `step`, or a wait while the transport takes no bytes.
    fn unless_write_blocked(&self, step: Action) -> Action {
        if self.blocked & WRITE == 0 {
            step
        } else {
            Action::Wait
        }
    }

    /// Delivers `event`, after its automatic reply if one is queued.
    #[inline]
    fn deliver_after_write(&mut self, event: Event) -> Action {
        self.ready = Some(event);
        self.deliver_ready()
    }

    /// Delivers the `ready` event; a queued reply is written first when the
    /// transport takes it, so a pong is not held up by the application.
    #[inline]
    fn deliver_ready(&self) -> Action {
        if self.blocked & WRITE == 0
            && !self.done
            && let Some(step) = self.write_step(false)
        {
            return step;
        }
        Action::Deliver
    }

    /// The event of the last [`Action::Deliver`] (`None` once taken).
    #[inline]
    pub fn take_event(&mut self) -> Option<Event> {
        self.ready.take()
    }

    /// After [`Action::Done`]: the protocol error the connection ended with,
    /// returned once (the matching Close frame went out as far as the
    /// transport allowed, and the transport was shut down). `None`: the
    /// operation succeeded.
    #[inline]
    pub fn take_error(&mut self) -> Option<ProtocolError> {
        if self.failed {
            self.failed = false;
            self.error.take()
        } else {
            None
        }
    }

    #[inline]
    fn poll_receive(&mut self, op: Op) -> Action {
        loop {
            if self.done {
                self.failed = self.error.is_some();
                return Action::Done;
            }
            if self.error.is_none() && !self.buf_out {
                match self.conn.next_event_appended(&mut self.read.buf) {
                    Ok(Some(event)) => {
                        if let Some(action) = self.on_event(op, event) {
                            return action;
                        }
                        if self.blocked & WRITE == 0
                            && let Some(step) = self.write_step(false)
                        {
                            // Answer each ping before parsing the next, so a
                            // burst of pings gets every pong the transport
                            // takes (RFC 6455 section 5.5.3 allows fewer).
                            return step;
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(error) => self.error = Some(error),
                }
            }
            if self.blocked & WRITE == 0
                && let Some(step) = self.write_step(false)
            {
                return step;
            }
            if self.error.is_some() || self.conn.should_close_transport() {
                match self.poll_over() {
                    Some(action) => return action,
                    None => continue,
                }
            }
            if self.conn.has_timers() && self.blocked & TIMER == 0 {
                return Action::Timer;
            }
            if self.blocked & READ != 0 || self.buf_out {
                return Action::Wait;
            }
            return Action::Read { wait: true };
        }
    }

    /// The connection is over (failed, or the close handshake is done):
    /// flush the Close (bounded by the close timeout), shut down, finish.
    /// `None`: finished; the receive reports it.
    #[cold]
    fn poll_over(&mut self) -> Option<Action> {
        if self.write_step(false).is_none() || self.conn.is_abandoned() {
            if !self.shut {
                return Some(Action::Shutdown {
                    discard: self.conn.is_abandoned(),
                });
            }
            self.finish();
            return None;
        }
        if self.conn.has_timers() && self.blocked & TIMER == 0 {
            return Some(Action::Timer);
        }
        // Still flushing the Close: wait for the write or the close timeout.
        Some(Action::Wait)
    }

    /// Routes an event read during `op`; `Some` ends the operation.
    #[inline]
    fn on_event(&mut self, op: Op, event: Event) -> Option<Action> {
        // The hot case first, tested without moving the event.
        if matches!(event, Event::Message(_)) && matches!(op, Op::RecvMessage | Op::Recv) {
            // A data message queues no reply: nothing to write first, but
            // replies written before it (pongs) may wait for a flush.
            self.ready = Some(event);
            if self.unflushed {
                return Some(self.deliver_ready());
            }
            return Some(Action::Deliver);
        }
        self.on_other_event(op, event)
    }

    #[cold]
    fn on_other_event(&mut self, op: Op, event: Event) -> Option<Action> {
        if let Event::Close(frame) = &event {
            self.close_frame = Some(frame.clone());
        }
        if self.discarded(&event) {
            return None;
        }
        match (op, event) {
            (Op::Recv, event) => Some(self.deliver_after_write(event)),
            (Op::RecvMessage, event @ Event::Fragment { .. }) => {
                Some(self.deliver_after_write(event))
            }
            (Op::Close, event @ (Event::Message(_) | Event::Fragment { .. })) => {
                self.stash_bytes += data_len(&event);
                self.stash.push_back(event);
                // Keeping more would let the peer grow memory: the receive
                // calls finish the handshake instead.
                (self.stash_bytes > self.conn.config().max_message_size).then_some(Action::Done)
            }
            _ => None,
        }
    }

    /// Non-blocking reads after a flush; events are stashed.
    #[inline(never)]
    fn poll_background(&mut self) -> Action {
        loop {
            let stop = self.done
                || self.error.is_some()
                || self.buf_out
                || self.background_reads >= BACKGROUND_READS
                || self.blocked & READ != 0
                || matches!(
                    self.stash.back(),
                    Some(Event::Message(_) | Event::Fragment { .. } | Event::Close(_))
                );
            if stop {
                if self.blocked & WRITE == 0
                    && !self.done
                    && let Some(step) = self.write_step(true)
                {
                    return step;
                }
                return Action::Done;
            }
            match self.conn.next_event_appended(&mut self.read.buf) {
                Ok(Some(event)) => {
                    if let Event::Close(frame) = &event {
                        self.close_frame = Some(frame.clone());
                    }
                    if self.discarded(&event) {
                        continue;
                    }
                    match &event {
                        Event::Message(_) | Event::Fragment { .. } => {
                            self.stash_bytes += data_len(&event);
                        }
                        // Only the latest control event is kept, and only
                        // while nothing else waits.
                        Event::Ping(_) | Event::Pong(_) if !self.stash.is_empty() => continue,
                        _ => {}
                    }
                    self.stash.push_back(event);
                }
                Ok(None) => {
                    self.background_reads += 1;
                    return Action::Read { wait: false };
                }
                // Reported by the next receive, after the Close is flushed.
                Err(error) => self.error = Some(error),
            }
        }
    }

    /// The transport is finished with: free what it held.
    fn finish(&mut self) {
        self.done = true;
        self.unflushed = false;
        self.read.buf = BytesMut::new();
    }

    // ----- Reports: writing -----

    /// The bytes to write, as a [`bytes::Buf`]: write from `chunk()` (or
    /// `chunks_vectored`) and `advance` by what the transport took; or pop
    /// owned chunks with [`Outgoing::pop_chunk`].
    #[inline]
    pub fn outgoing(&mut self) -> &mut Outgoing {
        self.conn.outgoing()
    }

    /// Takes the next chunk of the queue, owned, for a write performed
    /// without holding the driver (a split half). Until reported
    /// [`wrote`](Self::wrote), its bytes still count as waiting: the driver
    /// neither shuts down nor finishes a close before they left (or the
    /// close timeout gave up on the peer). Popped bytes must be written
    /// before anything else.
    pub fn pop_chunk(&mut self) -> Option<bytes::Bytes> {
        let chunk = self.conn.outgoing().pop_chunk()?;
        self.in_flight += chunk.len();
        Some(chunk)
    }

    /// `n` bytes were written: popped ones first, else `advance`d in
    /// [`outgoing`](Self::outgoing) already. A write of 0 bytes is an error
    /// the adapter reports as [`io_error`](Self::io_error) (`WriteZero`).
    ///
    /// An adapter may flush right after each write it performs (and report
    /// it as for [`Action::Flush`]): that saves the poll asking for the
    /// flush once the queue is written out.
    #[inline]
    pub fn wrote(&mut self, n: usize) {
        if n > 0 {
            self.in_flight = self.in_flight.saturating_sub(n);
            self.blocked = 0;
            self.unflushed = true;
        }
    }

    /// The transport was flushed ([`Action::Flush`]).
    #[inline]
    pub fn flushed(&mut self) {
        self.unflushed = false;
    }

    /// The transport cannot take bytes now (a write or a flush waits).
    #[inline]
    pub fn write_blocked(&mut self) {
        self.blocked |= WRITE;
    }

    // ----- Reports: reading -----

    /// The read buffer, with room made for the next read: a `BufMut` over
    /// its spare room only (`tokio_util::io::poll_read_buf`); then report
    /// [`filled`](Self::filled) with the count.
    #[inline]
    pub fn read_buf(&mut self) -> &mut ReadBuffer {
        self.make_room();
        self.read.room = self.read.buf.capacity() - self.read.buf.len();
        &mut self.read
    }

    /// The read room as an initialised slice, for transports that read into
    /// `&mut [u8]` (`std::io::Read`, `futures_io::AsyncRead`); report
    /// [`filled`](Self::filled) with the count read into its front. At most
    /// the current read size (or the read-ahead of a large frame) is
    /// zero-filled per call.
    pub fn read_slice(&mut self) -> &mut [u8] {
        self.make_room();
        self.read.room = self.read_size.max(self.ahead());
        self.read.room_mut()
    }

    /// `n` bytes were read (0: the transport reached end of stream).
    #[inline]
    pub fn filled(&mut self, n: usize) {
        if let Some(start) = self.read.slice_from.take() {
            self.read.buf.truncate(start + n);
        }
        self.blocked = 0;
        if n == 0 {
            if self.opening.is_some() {
                self.opening_eof();
            } else {
                self.conn.handle_eof();
            }
        } else if n >= self.read.room {
            // The read filled the room: more is likely waiting.
            self.read_size = (self.read_size * 2).min(MAX_READ_SIZE);
        }
    }

    /// The transport has no bytes now (`Pending`, `WouldBlock`).
    #[inline]
    pub fn read_blocked(&mut self) {
        if let Some(start) = self.read.slice_from.take() {
            self.read.buf.truncate(start);
        }
        self.blocked |= READ;
        // Halved, not reset: a stream of large messages pauses between
        // reads all the time, and a small room would move the part of a
        // message already read again and again.
        self.read_size = (self.read_size / 2).max(READ_SIZE);
    }

    /// Takes the read buffer (with room made) out of the driver, for a read
    /// performed without holding the driver (a split reader): read into it
    /// as a `BufMut` or through [`ReadBuffer::room_mut`], then hand it back
    /// with [`give_read_buf`](Self::give_read_buf). Meanwhile the driver
    /// parses nothing.
    pub fn take_read_buf(&mut self) -> ReadBuffer {
        self.make_room();
        self.read.room = self.read.buf.capacity() - self.read.buf.len();
        self.read.room = self.read.room.min(self.read_size.max(self.ahead()));
        self.buf_out = true;
        core::mem::take(&mut self.read)
    }

    /// Returns the buffer from [`take_read_buf`](Self::take_read_buf) with
    /// the outcome of the read: `Some(n)` read `n` bytes (0: end of stream),
    /// `None` blocked (or failed: report [`io_error`](Self::io_error) too).
    pub fn give_read_buf(&mut self, buf: ReadBuffer, read: Option<usize>) {
        self.read = buf;
        self.buf_out = false;
        match read {
            Some(n) => self.filled(n),
            None => self.read_blocked(),
        }
    }

    /// Splits the read room off the read buffer as an owned, empty
    /// `BytesMut`, for completion-based I/O (io_uring), where the kernel
    /// fills a buffer it was lent: read into at most the first `room` bytes
    /// of its spare capacity (`room`, returned: the read size, or the
    /// read-ahead of a large frame), then hand it back with
    /// [`give_read_room`](Self::give_read_room). Meanwhile the driver parses
    /// what it already holds. The room comes from the buffer's own
    /// allocation and rejoins it without a copy.
    pub fn take_read_room(&mut self) -> (BytesMut, usize) {
        self.make_room();
        let len = self.read.buf.len();
        let room = (self.read.buf.capacity() - len).min(self.read_size.max(self.ahead()));
        self.read.room = room;
        (self.read.buf.split_off(len), room)
    }

    /// Returns the room from [`take_read_room`](Self::take_read_room) with
    /// the outcome of the read: `Some(n)`, the `n` bytes it now holds were
    /// read (0: end of stream); `None`, failed (report
    /// [`io_error`](Self::io_error) too).
    pub fn give_read_room(&mut self, room: BytesMut, read: Option<usize>) {
        debug_assert_eq!(
            room.len(),
            read.unwrap_or(0),
            "the room holds what was read"
        );
        self.read.buf.unsplit(room);
        match read {
            Some(n) => self.filled(n),
            None => self.read_blocked(),
        }
    }

    /// Bytes read and not yet parsed (the start of a frame in progress).
    ///
    /// A completion-based adapter uses it to lend the kernel no room while
    /// it is 0: a connection between messages then reads into a buffer the
    /// kernel picks when bytes arrive (io_uring's provided buffers) and
    /// hands them over with [`filled_from`](Self::filled_from), so that an
    /// idle connection pins no read buffer of its own.
    #[inline]
    pub fn buffered(&self) -> usize {
        self.read.len()
    }

    /// Reports a read into a buffer the adapter owns: `bytes` are copied
    /// into the read buffer (taken from the pool) and parsed as if read
    /// there; empty, the transport reached end of stream.
    pub fn filled_from(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.make_room();
            self.read.buf.extend_from_slice(bytes);
        }
        // A read as large as the read size hints that more is waiting.
        self.read.room = self.read_size;
        self.filled(bytes.len());
    }

    /// Read-ahead advice for the frame in progress (see
    /// [`Connection::read_ahead`]).
    fn ahead(&self) -> usize {
        // An HTTP head is no frame header.
        if self.read.buf.is_empty() || self.opening.is_some() {
            0
        } else {
            self.conn.read_ahead(&self.read.buf)
        }
    }

    /// Makes room for the next read: the read size, or the rest of a large
    /// frame at once (as far as the core advises) rather than growing the
    /// buffer, and copying what it holds, a read size at a time.
    #[inline]
    fn make_room(&mut self) {
        let spare = self.read.buf.capacity() - self.read.buf.len();
        // The common case, room enough, costs one comparison.
        if spare < self.read_size / 4 || (!self.read.buf.is_empty() && spare < self.read_size) {
            self.grow();
        }
    }

    #[inline(never)]
    fn grow(&mut self) {
        if self.read.buf.capacity() == 0 {
            self.read.buf = pool::take();
        }
        let spare = self.read.buf.capacity() - self.read.buf.len();
        let ahead = self.ahead();
        if ahead > self.read_size && ahead > spare {
            self.read.buf.reserve(ahead);
        } else if spare < self.read_size / 4 {
            self.read.buf.reserve(self.read_size);
        }
    }

    /// A connection that waits for bytes holds no read buffer: an empty one
    /// goes back to the pool (with `std`) or is freed.
    fn release_idle_buffer(&mut self) {
        if self.read.buf.is_empty() && self.read.buf.capacity() > 0 && !self.buf_out {
            pool::give(core::mem::take(&mut self.read.buf));
        }
    }

    // ----- Reports: timer, shutdown, failure -----

    /// The timer's deadline at `now` (a time on the adapter's clock, as for
    /// [`Connection::poll_timeout`]): arm a sleep until it and report
    /// [`timer_fired`](Self::timer_fired) or
    /// [`timer_blocked`](Self::timer_blocked). `None`: nothing to wait for
    /// (a timeout that was due has been handled); poll again.
    pub fn timer(&mut self, now: Duration) -> Option<Duration> {
        if self.opening.is_some() {
            return self.opening_timer(now);
        }
        let Some(deadline) = self.conn.poll_timeout(now) else {
            self.blocked |= TIMER;
            return None;
        };
        if deadline <= now {
            self.conn.handle_timeout(now);
            self.blocked = 0;
            return None;
        }
        Some(deadline.min(now.saturating_add(MAX_WAIT)))
    }

    /// The sleep armed at `deadline` completed.
    pub fn timer_fired(&mut self, deadline: Duration) {
        if self.opening.is_some() {
            return self.opening_timer_fired(deadline);
        }
        self.conn.handle_timeout(deadline);
        self.blocked = 0;
    }

    /// The sleep is still running.
    pub fn timer_blocked(&mut self) {
        self.blocked |= TIMER;
    }

    /// The write side was shut down (or shutting it down failed, which
    /// changes nothing).
    pub fn shut_down(&mut self) {
        // Popped bytes of an abandoned peer are dropped with the transport.
        self.in_flight = 0;
        self.unflushed = false;
        self.shut = true;
        self.blocked = 0;
    }

    /// The transport failed (a read or write error, a reset). The connection
    /// is over: [`close_frame`](Self::close_frame) reports 1006 unless it had
    /// closed already, and later sends and pings answer
    /// [`SendError::Closed`]. Returns whether to report the error to the
    /// application: not when the connection had already ended cleanly.
    pub fn io_error(&mut self) -> bool {
        if let Some(start) = self.read.slice_from.take() {
            self.read.buf.truncate(start);
        }
        self.blocked = 0;
        self.in_flight = 0;
        let closed = self.done || self.close_frame.is_some() || self.error.is_some();
        // Nothing can be sent any more: a later send or ping answers
        // `SendError::Closed` instead of queueing bytes that never leave.
        self.conn.abandon(TRANSPORT_FAILED);
        if self.close_frame.is_none() {
            let reason = Utf8Bytes::from_static(TRANSPORT_FAILED);
            self.close_frame = Some(CloseFrame::new(CloseCode::ABNORMAL, reason));
        }
        self.finish();
        !closed
    }
}

#[cfg(test)]
mod tests;

/// Payload bytes of a data event (0 for control events): what the stash
/// counts against its bound.
fn data_len(event: &Event) -> usize {
    match event {
        Event::Message(message) | Event::Fragment { piece: message, .. } => message.len(),
        _ => 0,
    }
}
