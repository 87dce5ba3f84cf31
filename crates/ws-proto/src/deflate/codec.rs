//! The permessage-deflate codec (RFC 7692 section 7.2): raw deflate with a
//! sync flush per message, the `00 00 ff ff` tail dropped on the way out
//! and restored on the way in; context takeover through a kept window.

use alloc::{boxed::Box, vec::Vec};
use core::{fmt, time::Duration};

use bytes::BytesMut;
use zlib_rs::{
    Deflate, DeflateConfig as ZConfig, DeflateFlush, Inflate, InflateFlush, Method, Status,
    Strategy,
};

use super::DeflateParams;
use crate::{error::ProtocolError, utf8::Utf8Validator};

/// What a sync flush ends with; removed from each compressed message and
/// appended again before inflating it (RFC 7692 sections 7.2.1 and 7.2.2).
pub(crate) const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// One connection's codec. Its zlib contexts live while messages flow and
/// are freed after [`DeflateParams::release_after`] without one (a zlib-rs
/// compressor holds 134 KiB or more whatever its window); with context
/// takeover the kept windows prime the next fresh context.
pub(crate) struct Codec {
    params: DeflateParams,
    /// The last `2^send_bits` uncompressed bytes of our compressed
    /// messages: the peer's LZ77 window (takeover only).
    send_window: Vec<u8>,
    /// The last `2^recv_bits` bytes the peer's compressed messages
    /// inflated to (takeover only).
    recv_window: Vec<u8>,
    /// Our compressor, while in use.
    deflate: Option<Box<Deflate>>,
    /// The peer's decompressor, while in use.
    inflate: Option<Box<Inflater>>,
    /// A fragmented message is being compressed.
    sending: bool,
    /// A compressed message is being inflated.
    receiving: bool,
    /// A context was used since the release timer was armed.
    used: bool,
    /// When to free idle contexts, on the connection's clock.
    release_at: Option<Duration>,
}

struct Inflater {
    inner: Inflate,
    /// The peer ended the deflate stream (a block with BFINAL): what
    /// follows in this message is ignored (RFC 7692 section 7.2.3.3), and
    /// the next message starts a new stream.
    ended: bool,
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec")
            .field("params", &self.params)
            .field("send_window", &self.send_window.len())
            .field("recv_window", &self.recv_window.len())
            .field("compressor", &self.deflate.is_some())
            .field("decompressor", &self.inflate.is_some())
            .field("release_at", &self.release_at)
            .finish_non_exhaustive()
    }
}

impl Codec {
    pub(crate) const fn new(params: DeflateParams) -> Self {
        Self {
            params,
            send_window: Vec::new(),
            recv_window: Vec::new(),
            deflate: None,
            inflate: None,
            sending: false,
            receiving: false,
            used: false,
            release_at: None,
        }
    }

    pub(crate) const fn params(&self) -> &DeflateParams {
        &self.params
    }

    /// Bytes this codec holds on the heap now (windows and live contexts,
    /// the latter estimated from zlib-rs' allocation sizes).
    pub(crate) fn heap_size(&self) -> usize {
        let deflate = self
            .deflate
            .as_ref()
            .map_or(0, |_| deflate_size(&self.params));
        let inflate = self.inflate.as_ref().map_or(0, |_| INFLATE_SIZE);
        self.send_window.capacity() + self.recv_window.capacity() + deflate + inflate
    }

    /// Compresses a whole message. `None` when that would not make it
    /// smaller and it may go out uncompressed instead (RFC 7692 section 6):
    /// only without takeover, since with it the message is already in our
    /// compressor's window, and so must reach the peer's.
    pub(crate) fn compress_message(&mut self, data: &[u8]) -> Option<BytesMut> {
        let out = self.compress_fragment(data, true);
        (self.params.send_takeover || out.len() < data.len()).then_some(out)
    }

    /// Compresses one fragment of a message; `fin` ends it. Fragments are
    /// sync-flushed one by one so each frame can go out at once.
    pub(crate) fn compress_fragment(&mut self, data: &[u8], fin: bool) -> BytesMut {
        let mut deflate = match self.deflate.take() {
            Some(deflate) => deflate,
            None => self.new_deflate(),
        };
        let mut out = BytesMut::new();
        run_deflate(&mut deflate, data, &mut out);
        if self.params.send_takeover {
            remember(&mut self.send_window, data, self.params.send_bits);
        }
        self.sending = !fin;
        if fin {
            strip_tail(&mut out);
            if out.is_empty() {
                // zlib skips a sync flush that follows another with no
                // input in between: an empty message is one empty stored
                // block, 0x00 once the tail is gone (RFC 7692 7.2.3.6).
                out.extend_from_slice(&[0x00]);
            }
            if !self.params.send_takeover {
                // Section 7.1.1.1 / 7.1.1.2: a fresh LZ77 window per message.
                deflate.reset();
            }
        }
        self.deflate = Some(deflate);
        self.used = true;
        out
    }

    /// A compressor primed with the kept window (section 7.1.1: with
    /// takeover the peer still has it).
    fn new_deflate(&self) -> Box<Deflate> {
        let config = ZConfig {
            level: i32::from(self.params.level),
            method: Method::Deflated,
            // Negative: raw deflate, no zlib header (section 7.2.1).
            window_bits: -i32::from(self.params.send_bits),
            mem_level: i32::from(self.params.mem_level),
            strategy: Strategy::Default,
        };
        let mut deflate = Box::new(Deflate::new_with_config(config));
        if !self.send_window.is_empty() {
            // Cannot fail: a fresh raw stream accepts a dictionary.
            let _ = deflate.set_dictionary(&self.send_window);
        }
        deflate
    }

    /// Inflates one frame's payload of a compressed message onto `out`;
    /// `fin` ends the message (the tail is restored).
    /// Text is UTF-8 checked as it is inflated (`utf8`), and `out` never
    /// grows beyond `limit` + 1 bytes: more fails with 1009 (RFC 6455
    /// section 10.4), so a deflate bomb costs at most `limit`.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
        mut utf8: Option<&mut Utf8Validator>,
    ) -> Result<(), ProtocolError> {
        let mut inflater = match self.inflate.take() {
            Some(inflater) => inflater,
            None => self.new_inflate(),
        };
        run_inflate(&mut inflater, input, out, limit, utf8.as_deref_mut())?;
        let message_had_input = self.receiving || !input.is_empty();
        self.receiving = !fin && message_had_input;
        self.used = true;
        if !fin {
            self.inflate = Some(inflater);
            return Ok(());
        }
        // A message of no compressed bytes at all (some compressors send
        // that for an empty message instead of 0x00) is empty: the tail on
        // its own would leave the decompressor inside a stored block's
        // header, breaking the next message.
        if message_had_input {
            run_inflate(&mut inflater, &TAIL, out, limit, utf8)?;
        }
        if self.params.recv_takeover {
            remember(&mut self.recv_window, out, self.params.recv_bits);
        }
        // Without takeover (section 7.1.1.1 / 7.1.1.2), or after the peer
        // ended its stream, the next message starts afresh: a new context,
        // since zlib-rs' reset forgets the negotiated window size.
        if self.params.recv_takeover && !inflater.ended {
            self.inflate = Some(inflater);
        }
        Ok(())
    }

    /// One step of a streamed message: inflates from `input` onto `out`, at
    /// most `room` bytes (text checked as it comes out). Returns the input
    /// bytes consumed, and whether the decompressor is drained: all of
    /// `input` consumed and no output held back for lack of room.
    pub(crate) fn inflate_step(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
        room: usize,
        utf8: Option<&mut Utf8Validator>,
    ) -> Result<(usize, bool), ProtocolError> {
        let mut inflater = match self.inflate.take() {
            Some(inflater) => inflater,
            None => self.new_inflate(),
        };
        let start = out.len();
        let stepped = step_inflate(&mut inflater, input, out, room, utf8);
        self.inflate = Some(inflater);
        self.receiving |= !input.is_empty();
        self.used = true;
        if self.params.recv_takeover {
            remember(&mut self.recv_window, &out[start..], self.params.recv_bits);
        }
        stepped
    }

    /// Ends a streamed message once its input is all inflated: restores the
    /// tail (its output, a few bytes at most, goes onto `out`), and keeps or
    /// drops the context as [`inflate`](Self::inflate) does.
    pub(crate) fn end_streamed_message(
        &mut self,
        out: &mut BytesMut,
        utf8: Option<&mut Utf8Validator>,
    ) -> Result<(), ProtocolError> {
        let Some(mut inflater) = self.inflate.take() else {
            return Ok(());
        };
        let start = out.len();
        if core::mem::take(&mut self.receiving) {
            run_inflate(&mut inflater, &TAIL, out, start + TAIL_ROOM, utf8)?;
        }
        if self.params.recv_takeover {
            remember(&mut self.recv_window, &out[start..], self.params.recv_bits);
            if !inflater.ended {
                self.inflate = Some(inflater);
            }
        }
        Ok(())
    }

    /// Drops a message in progress (the connection failed).
    pub(crate) fn abandon(&mut self) {
        self.end_send();
        self.end_receive();
    }

    /// Nothing more will be sent (our Close is queued): free the send side.
    pub(crate) fn end_send(&mut self) {
        self.deflate = None;
        self.sending = false;
        self.send_window = Vec::new();
    }

    /// Nothing more will be received (the peer's Close arrived).
    pub(crate) fn end_receive(&mut self) {
        self.inflate = None;
        self.receiving = false;
        self.recv_window = Vec::new();
    }

    /// When [`on_timeout`](Self::on_timeout) may free idle contexts, arming
    /// that deadline if contexts are live (see [`Connection::poll_timeout`](crate::Connection::poll_timeout)).
    pub(crate) fn poll_timeout(&mut self, now: Duration) -> Option<Duration> {
        if self.has_timer() {
            let after = self.params.release_after?;
            return Some(
                *self
                    .release_at
                    .get_or_insert_with(|| now.saturating_add(after)),
            );
        }
        self.release_at = None;
        None
    }

    /// Whether contexts wait to be freed by the timer.
    pub(crate) fn has_timer(&self) -> bool {
        self.params.release_after.is_some() && (self.deflate.is_some() || self.inflate.is_some())
    }

    /// Frees the contexts if none was used since the deadline was armed;
    /// otherwise the next [`poll_timeout`](Self::poll_timeout) re-arms it. So
    /// a busy connection meets the timer once per interval, not per message.
    pub(crate) fn on_timeout(&mut self, now: Duration) {
        if self.release_at.is_none_or(|at| now < at) {
            return;
        }
        self.release_at = None;
        if core::mem::take(&mut self.used) || self.sending || self.receiving {
            return;
        }
        self.deflate = None;
        self.inflate = None;
    }

    fn new_inflate(&self) -> Box<Inflater> {
        let mut inner = Inflate::new(false, self.params.recv_bits);
        if !self.recv_window.is_empty() {
            // Cannot fail for a raw stream (section 7.1.1: the window the
            // peer's compressor may still refer to).
            let _ = inner.set_dictionary(&self.recv_window);
        }
        Box::new(Inflater {
            inner,
            ended: false,
        })
    }
}

/// zlib-rs' allocation for a decompressor (measured: 47,552 bytes for any
/// window, see benches/backends).
const INFLATE_SIZE: usize = 47_552;

/// zlib-rs' allocation for a compressor: a fixed 64 Ki-entry hash head, a
/// window and chain of `2^bits` entries each, and `2^(mem_level + 6)`
/// symbols of 7 bytes (close to what benches/backends measures).
fn deflate_size(params: &DeflateParams) -> usize {
    let w = 1usize << params.send_bits;
    let lit = 1usize << (params.mem_level + 6);
    (64 << 10) * 2 + w * 2 + w * 2 + lit * 7
}

/// Keeps the last `2^bits` bytes of everything `data` has been appended to.
fn remember(window: &mut Vec<u8>, data: &[u8], bits: u8) {
    let size = 1usize << bits;
    if window.capacity() < size {
        window.reserve_exact(size - window.len());
    }
    if data.len() >= size {
        window.clear();
        window.extend_from_slice(&data[data.len() - size..]);
    } else {
        let excess = (window.len() + data.len()).saturating_sub(size);
        window.drain(..excess);
        window.extend_from_slice(data);
    }
}

fn strip_tail(out: &mut BytesMut) {
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
}

/// Compresses all of `input` onto `out` and sync-flushes (output is
/// complete once zlib leaves room in the output buffer).
fn run_deflate(deflate: &mut Deflate, input: &[u8], out: &mut BytesMut) {
    let mut read = 0;
    loop {
        let start = out.len();
        let room = (input.len() - read) / 2 + 64;
        out.resize(start + room, 0);
        let (in0, out0) = (deflate.total_in(), deflate.total_out());
        let status = deflate.compress(&input[read..], &mut out[start..], DeflateFlush::SyncFlush);
        let consumed = usize::try_from(deflate.total_in() - in0).unwrap_or(0);
        let wrote = usize::try_from(deflate.total_out() - out0).unwrap_or(0);
        read += consumed;
        out.truncate(start + wrote);
        if status.is_err() || (read == input.len() && wrote < room) {
            return;
        }
    }
}

/// Inflates `input` onto `out`, bounded by `limit` (see [`Codec::inflate`]).
fn run_inflate(
    inflater: &mut Inflater,
    input: &[u8],
    out: &mut BytesMut,
    limit: usize,
    mut utf8: Option<&mut Utf8Validator>,
) -> Result<(), ProtocolError> {
    let mut read = 0;
    while !inflater.ended {
        let start = out.len();
        // Grow by doubling from 4 KiB, never past one byte over the limit:
        // that byte tells "too big" from "exactly the limit".
        let room = start
            .max(4096)
            .min(limit.saturating_add(1) - start.min(limit));
        if room == 0 {
            return Err(too_big(start, limit));
        }
        out.resize(start + room, 0);
        let inner = &mut inflater.inner;
        let (in0, out0) = (inner.total_in(), inner.total_out());
        let status = inner.decompress(&input[read..], &mut out[start..], InflateFlush::SyncFlush);
        let consumed = usize::try_from(inner.total_in() - in0).unwrap_or(0);
        let wrote = usize::try_from(inner.total_out() - out0).unwrap_or(0);
        read += consumed;
        out.truncate(start + wrote);
        if let Some(utf8) = utf8.as_deref_mut() {
            utf8.feed(&out[start..])
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        if out.len() > limit {
            return Err(too_big(out.len(), limit));
        }
        match status {
            Ok(Status::StreamEnd) => inflater.ended = true,
            Ok(_) => {}
            Err(_) => return Err(ProtocolError::InvalidCompressedData),
        }
        let stalled = consumed == 0 && wrote == 0;
        if (read == input.len() && wrote < room) || stalled {
            return Ok(());
        }
    }
    Ok(())
}

/// The most the tail of a streamed message may inflate to: 4 bytes of
/// input that end a truncated block make at most 16 length codes of 258
/// bytes; more fails the message.
pub(crate) const TAIL_ROOM: usize = 8 * 1024;

/// One bounded step of [`Codec::inflate_step`].
fn step_inflate(
    inflater: &mut Inflater,
    input: &[u8],
    out: &mut BytesMut,
    room: usize,
    utf8: Option<&mut Utf8Validator>,
) -> Result<(usize, bool), ProtocolError> {
    if inflater.ended {
        // After the peer's final block the rest of the message is ignored
        // (RFC 7692 section 7.2.3.3).
        return Ok((input.len(), true));
    }
    let start = out.len();
    out.resize(start + room, 0);
    let inner = &mut inflater.inner;
    let (in0, out0) = (inner.total_in(), inner.total_out());
    let status = inner.decompress(input, &mut out[start..], InflateFlush::SyncFlush);
    let mut consumed = usize::try_from(inner.total_in() - in0).unwrap_or(0);
    let wrote = usize::try_from(inner.total_out() - out0).unwrap_or(0);
    out.truncate(start + wrote);
    if let Some(utf8) = utf8 {
        utf8.feed(&out[start..])
            .map_err(|_| ProtocolError::InvalidUtf8)?;
    }
    match status {
        Ok(Status::StreamEnd) => {
            inflater.ended = true;
            consumed = input.len();
        }
        Ok(_) => {}
        Err(_) => return Err(ProtocolError::InvalidCompressedData),
    }
    if consumed == 0 && wrote == 0 && !input.is_empty() && !inflater.ended {
        // No progress with input and room: the stream is broken, and
        // waiting for more bytes would only pile them up.
        return Err(ProtocolError::InvalidCompressedData);
    }
    let drained = inflater.ended || wrote < room;
    Ok((consumed, drained))
}

const fn too_big(len: usize, max: usize) -> ProtocolError {
    ProtocolError::MessageTooBig {
        len: len as u64,
        max,
    }
}
