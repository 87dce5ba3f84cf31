//! Shared driver for the connection targets: feeds peer bytes in chunks and
//! checks the invariants after every step. With a streaming policy chosen
//! (see [`drive`]), the same bytes also go through a connection with
//! `Streaming::Off`, and the two must agree.

use ws_proto::internals::{FrameHeader, OpCode, READ_AHEAD_EARN, READ_AHEAD_FREE, apply_mask};
use ws_proto::{
    Config, Connection, DeflateConfig, DeflateParams, Event, Message, Negotiated, ProtocolError,
    Role, Streaming,
    bytes::{Buf, BytesMut},
};

/// Small limits so that the memory bounds are tight enough to check.
pub const MAX_FRAME: usize = 4096;
pub const MAX_MESSAGE: usize = 16 * 1024;
/// The largest piece of a streamed compressed message (ws-proto inflates at
/// most this much at a time).
pub const PIECE: usize = 64 * 1024;

/// `Streaming::Above` thresholds (flags bits 6-7 = 2), by the low nibble of
/// the streaming byte: around the frame length encodings and the limits.
const ABOVE: [usize; 16] = [
    0,
    1,
    2,
    3,
    4,
    7,
    64,
    125,
    126,
    1000,
    4095,
    4096,
    4097,
    16384,
    16385,
    1 << 20,
];
/// `max_streamed_message_size`, by the high nibble of the streaming byte.
const MAX_STREAMED: [Option<u64>; 16] = [
    None,
    Some(0),
    Some(1),
    Some(2),
    Some(3),
    Some(7),
    Some(64),
    Some(125),
    Some(126),
    Some(1000),
    Some(4096),
    Some(8192),
    Some(16384),
    Some(16385),
    Some(65536),
    Some(1 << 20),
];

/// Input layout: byte 0 chunk size (0: everything at once), byte 1 flags
/// (bit 0: drain outgoing after every event, bit 1: EOF at the end; with
/// `deflate`, bits 2-4 the peer's window bits minus 8 and bit 5 no context
/// takeover; bits 6-7 the streaming policy: 0 `Off`, 1 `Always`, 2
/// `Above(ABOVE[low nibble])`, 3 `Above(low nibble * 13 + 1)`), then, only
/// when the policy is not `Off`, the streaming byte (high nibble:
/// `max_streamed_message_size` from `MAX_STREAMED`), then the bytes the peer
/// sends.
pub fn drive(role: Role, data: &[u8], deflate: bool) {
    let [chunk, flags, rest @ ..] = data else {
        return;
    };
    let (policy, wire) = match flags >> 6 {
        0 => (None, rest),
        mode => {
            let [byte, wire @ ..] = rest else {
                return;
            };
            let low = usize::from(byte & 15);
            let streaming = match mode {
                1 => Streaming::Always,
                2 => Streaming::Above(ABOVE[low]),
                _ => Streaming::Above(low * 13 + 1),
            };
            (
                Some((streaming, MAX_STREAMED[usize::from(byte >> 4)])),
                wire,
            )
        }
    };
    let reference = run(role, *chunk, *flags, wire, deflate, None);
    if let Some(policy) = policy {
        let streamed = run(role, *chunk, *flags, wire, deflate, Some(policy));
        compare(&reference, &streamed, policy.1);
    }
}

/// What a run delivered, for comparing a streamed run with the `Off` one.
#[derive(Debug)]
struct Outcome {
    /// Completed data messages (whole, or all their pieces) and control
    /// events, in order.
    items: Vec<Item>,
    /// The message whose pieces were still arriving when the run ended.
    partial: Option<Partial>,
    failed: Option<ProtocolError>,
    /// Bytes left in the read buffer after the last of the input (a frame
    /// still incomplete); with an error before that, 0.
    leftover: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum Item {
    /// A data message: type, length, and its first `MAX_MESSAGE + 1` bytes
    /// (an `Off` run delivers no more).
    Message(bool, u64, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
}

/// A streamed message being assembled from its pieces.
#[derive(Debug)]
struct Partial {
    text: bool,
    compressed: bool,
    len: u64,
    kept: Vec<u8>,
}

impl Partial {
    fn add(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        let room = (MAX_MESSAGE + 1).saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// The frame headers of `wire`, in order, as far as they parse, each with
/// whether its whole payload is there: the scan ends after one that is not.
fn frame_headers(mut wire: &[u8]) -> impl Iterator<Item = (FrameHeader, bool)> {
    core::iter::from_fn(move || {
        let (header, len) = FrameHeader::parse(wire).ok()??;
        let end = usize::try_from(header.payload_len)
            .ok()
            .and_then(|n| n.checked_add(len))
            .filter(|&end| end <= wire.len());
        wire = end.map_or(&[], |end| &wire[end..]);
        Some((header, end.is_some()))
    })
}

/// Whether each data message of `wire` (in order) starts with RSV1 set: a
/// scan of the frame headers, as far as they parse.
fn compressed_messages(wire: &[u8]) -> Vec<bool> {
    frame_headers(wire)
        .filter(|(header, _)| matches!(header.opcode, OpCode::Text | OpCode::Binary))
        .map(|(header, _)| header.rsv & 0b100 != 0)
        .collect()
}

/// How many data messages `wire` holds whole (every frame, up to the one
/// with FIN, entirely there) before a Close frame or the first header that
/// does not parse: a connection that did not fail must deliver them all.
fn whole_messages(wire: &[u8]) -> usize {
    let mut whole = 0;
    for (header, complete) in frame_headers(wire) {
        match header.opcode {
            _ if !complete => break,
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary | OpCode::Continuation if header.fin => whole += 1,
            _ => {}
        }
    }
    whole
}

/// One connection fed `wire`; with `streaming`, its policy and limit.
fn run(
    role: Role,
    chunk: u8,
    flags: u8,
    wire: &[u8],
    deflate: bool,
    streaming: Option<(Streaming, Option<u64>)>,
) -> Outcome {
    let chunk = if chunk == 0 {
        wire.len().max(1)
    } else {
        usize::from(chunk)
    };
    let drain_each = flags & 1 != 0;
    let mut config = Config::default()
        .with_max_frame_size(MAX_FRAME)
        .with_max_message_size(MAX_MESSAGE);
    let (policy, max_streamed) = streaming.unwrap_or((Streaming::Off, None));
    config = config
        .with_streaming(policy)
        .with_max_streamed_message_size(max_streamed);
    // Below this many bytes (after decompression) a message arrives whole.
    let threshold = match policy {
        Streaming::Above(n) => Some(n.min(MAX_MESSAGE)),
        _ => None,
    };
    let compressed = if deflate && streaming.is_some() {
        compressed_messages(wire)
    } else {
        Vec::new()
    };
    let mut conn = Connection::with_entropy(role, config, |d: &mut [u8]| d.fill(0x5A));
    if deflate {
        // permessage-deflate agreed as a handshake would hand it over.
        let recv_bits = 8 + ((flags >> 2) & 7);
        let takeover = flags & 0x20 == 0;
        let params = DeflateParams::new(&DeflateConfig::default(), 15, recv_bits, true, takeover);
        let negotiated =
            Negotiated::new(None, vec!["permessage-deflate".into()]).with_deflate(params);
        conn = conn.with_negotiated(negotiated);
    }
    let mut out = Outcome {
        items: Vec::new(),
        partial: None,
        failed: None,
        leftover: 0,
    };
    // Data messages started so far (indexes `compressed`).
    let mut messages = 0usize;
    let mut buf = BytesMut::new();
    let mut written = Vec::new();
    let mut fed = 0usize;
    let mut closed = false;
    for piece in wire.chunks(chunk).map(Some).chain([None]) {
        match piece {
            Some(piece) => {
                buf.extend_from_slice(piece);
                fed += piece.len();
            }
            // (Before the EOF, which may clear it.)
            None if flags & 2 != 0 => {
                out.leftover = buf.len();
                conn.handle_eof();
            }
            None => out.leftover = buf.len(),
        }
        // Each call yields at most one event; bound the loop anyway (a
        // compressed bomb streams in many pieces from few bytes).
        for _ in 0..=(wire.len() + 2) * 64 {
            match conn.next_event(&mut buf) {
                Ok(Some(event)) => {
                    assert!(!closed, "no event after Close");
                    match event {
                        Event::Message(message) => {
                            assert!(
                                out.partial.is_none(),
                                "a whole message inside a streamed one"
                            );
                            messages += 1;
                            check_message(&message);
                            match (streaming, threshold) {
                                (None, _) => {}
                                (Some(_), None) => {
                                    panic!("Streaming::Always delivered a whole message")
                                }
                                (Some(_), Some(threshold)) => assert!(
                                    message.len() <= threshold,
                                    "a whole message of {} bytes above the threshold {threshold}",
                                    message.len()
                                ),
                            }
                            let bytes = message.as_bytes();
                            out.items.push(Item::Message(
                                message.is_text(),
                                bytes.len() as u64,
                                bytes.to_vec(),
                            ));
                        }
                        Event::Fragment { piece, first, last } => {
                            assert!(streaming.is_some(), "a piece without streaming");
                            assert_eq!(
                                first,
                                out.partial.is_none(),
                                "`first` on the first piece only"
                            );
                            if first {
                                out.partial = Some(Partial {
                                    text: piece.is_text(),
                                    compressed: compressed.get(messages).copied().unwrap_or(false),
                                    len: 0,
                                    kept: Vec::new(),
                                });
                                messages += 1;
                            }
                            let Some(partial) = out.partial.as_mut() else {
                                unreachable!()
                            };
                            assert_eq!(piece.is_text(), partial.text, "pieces of one type");
                            assert!(
                                !piece.is_empty() || last,
                                "an empty piece that is not the last"
                            );
                            if let Message::Text(text) = &piece {
                                assert!(
                                    std::str::from_utf8(text.as_bytes()).is_ok(),
                                    "a text piece is whole code points"
                                );
                            }
                            if partial.compressed {
                                // The first piece under `Above(n)` holds what
                                // was buffered to decide: up to n + 1 bytes.
                                let max = match (first, threshold) {
                                    (true, Some(n)) => PIECE.max(n + 1),
                                    _ => PIECE,
                                };
                                assert!(
                                    piece.len() <= max,
                                    "a piece of {} bytes of a compressed message",
                                    piece.len()
                                );
                            } else {
                                // Uncompressed pieces are bytes that were fed.
                                assert!(piece.len() <= fed, "a piece larger than the input");
                            }
                            partial.add(piece.as_bytes());
                            if let Some(max) = max_streamed {
                                assert!(
                                    partial.len <= max,
                                    "{} bytes delivered past max_streamed_message_size {max}",
                                    partial.len
                                );
                            }
                            if last {
                                let Some(done) = out.partial.take() else {
                                    unreachable!()
                                };
                                if let Some(threshold) = threshold {
                                    assert!(
                                        done.len > threshold as u64,
                                        "a streamed message of {} bytes, threshold {threshold}",
                                        done.len
                                    );
                                }
                                out.items
                                    .push(Item::Message(done.text, done.len, done.kept));
                            }
                        }
                        Event::Ping(p) => {
                            assert!(p.len() <= 125);
                            out.items.push(Item::Ping(p.to_vec()));
                        }
                        Event::Pong(p) => {
                            assert!(p.len() <= 125);
                            out.items.push(Item::Pong(p.to_vec()));
                        }
                        Event::Close(frame) => {
                            closed = true;
                            out.items
                                .push(Item::Close(frame.code.0, frame.reason.to_string()));
                        }
                        _ => {}
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    // Sticky, and the matching Close is queued.
                    assert_eq!(conn.next_event(&mut buf), Err(error.clone()));
                    out.failed = Some(error);
                    break;
                }
            }
            if drain_each {
                drain(&mut conn, &mut written);
            }
        }
        assert!(buf.len() <= fed, "the buffer only ever holds fed bytes");
        // A message in progress (inflated or reassembled) stays within the
        // limit; a streamed one holds at most a piece (inflated) or what
        // `Above(n)` buffers to decide; the deflate codec holds at most two
        // windows and an inflater (the peer cannot make it allocate more).
        let held = conn.buffered_message_len();
        match streaming {
            None => assert!(held <= 2 * MAX_MESSAGE + 4096, "{held} bytes held"),
            Some(_) => assert!(
                held <= (2 * MAX_MESSAGE).max(2 * PIECE) + 4096,
                "{held} bytes held for a streamed message"
            ),
        }
        assert!(conn.deflate_heap_size() <= 2 * 32 * 1024 + 64 * 1024);
        // Read-ahead advice never exceeds the frame limit, nor what the
        // bytes actually sent have earned.
        let ahead = conn.read_ahead(&buf);
        assert!(
            ahead <= MAX_FRAME,
            "read ahead {ahead} beyond the frame limit"
        );
        assert!(
            ahead <= (buf.len() * READ_AHEAD_EARN).max(READ_AHEAD_FREE),
            "read ahead {ahead} not earned by {} bytes",
            buf.len()
        );
        // Unwritten output stays tiny: one pong queued, one waiting, a Close.
        assert!(
            conn.outgoing().len() <= 3 * (MAX_CONTROL_FRAME),
            "{}",
            conn.outgoing().len()
        );
        if out.failed.is_some() {
            break;
        }
    }
    if out.failed.is_none() {
        // Nothing stalls: every message whose bytes all came was delivered
        // (before the EOF's Close, if any).
        let delivered = out
            .items
            .iter()
            .filter(|item| matches!(item, Item::Message(..)))
            .count();
        assert_eq!(
            delivered,
            whole_messages(wire),
            "messages delivered, of those whose bytes all came (a message in pieces: {:?})",
            out.partial.as_ref().map(|p| (p.len, p.compressed))
        );
    }
    drain(&mut conn, &mut written);
    let frames = parse_frames(role, &written);
    if let Some(error) = &out.failed {
        let close = frames
            .iter()
            .rev()
            .find(|(op, _)| *op == OpCode::Close)
            .expect("a protocol error queues a Close");
        // Our own Close is the last frame; its code matches the error.
        assert_eq!(frames.last().map(|f| f.0), Some(OpCode::Close));
        let code = u16::from_be_bytes([close.1[0], close.1[1]]);
        assert_eq!(code, error.close_code().0);
    }
    // Nothing follows a Close.
    if let Some(at) = frames.iter().position(|(op, _)| *op == OpCode::Close) {
        assert_eq!(at, frames.len() - 1, "frames after our Close");
    }
    out
}

/// A size limit: `Off` and streaming apply different ones.
fn size_error(error: &ProtocolError) -> bool {
    matches!(
        error,
        ProtocolError::FrameTooBig { .. } | ProtocolError::MessageTooBig { .. }
    )
}

/// A streamed run against the `Off` run of the same bytes: the same
/// messages and control events in the same order as far as both went; the
/// message still arriving is a prefix of the one `Off` delivered; where
/// `Off` went through every byte cleanly, so does the streamed run (unless
/// `max_streamed_message_size` stopped it); where `Off` met a protocol
/// error other than a size limit, so does the streamed run.
fn compare(off: &Outcome, streamed: &Outcome, max_streamed: Option<u64>) {
    let common = off.items.len().min(streamed.items.len());
    assert_eq!(
        off.items[..common],
        streamed.items[..common],
        "the streamed run delivered something else"
    );
    if let Some(partial) = &streamed.partial
        && let Some(Item::Message(text, len, bytes)) = off.items[common..]
            .iter()
            .find(|item| matches!(item, Item::Message(..)))
        && streamed.items.len() <= off.items.len()
    {
        assert_eq!(partial.text, *text, "the type of the message in pieces");
        assert!(partial.len <= *len, "more pieces than the message");
        assert_eq!(
            partial.kept[..],
            bytes[..partial.kept.len()],
            "pieces differ from the message"
        );
    }
    let stopped_by_limit = max_streamed.is_some()
        && matches!(streamed.failed, Some(ProtocolError::MessageTooBig { .. }));
    if off.failed.is_none() && off.leftover == 0 && !stopped_by_limit {
        assert_eq!(streamed.failed, None, "only the streamed run failed");
        assert_eq!(
            off.items, streamed.items,
            "the streamed run delivered something else"
        );
    }
    if let Some(error) = &off.failed
        && !size_error(error)
    {
        assert!(
            streamed.failed.is_some(),
            "Off failed with {error:?}, the streamed run did not"
        );
    }
}

const MAX_CONTROL_FRAME: usize = 2 + 4 + 125;

fn check_message(message: &Message) {
    assert!(message.len() <= MAX_MESSAGE);
    if let Message::Text(text) = message {
        assert!(std::str::from_utf8(text.as_bytes()).is_ok());
    }
}

fn drain(conn: &mut Connection, written: &mut Vec<u8>) {
    let out = conn.outgoing();
    while out.has_remaining() {
        let chunk = out.chunk();
        written.extend_from_slice(chunk);
        let n = chunk.len();
        out.advance(n);
    }
}

/// Splits what we wrote into frames; every frame must be well formed,
/// masked exactly when we are the client.
fn parse_frames(role: Role, mut bytes: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (header, len) = FrameHeader::parse(bytes)
            .expect("we write valid frames")
            .expect("we write whole frames");
        assert_eq!(header.mask.is_some(), role == Role::Client);
        let end = len + header.payload_len as usize;
        let mut payload = bytes[len..end].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        frames.push((header.opcode, payload));
        bytes = &bytes[end..];
    }
    frames
}
