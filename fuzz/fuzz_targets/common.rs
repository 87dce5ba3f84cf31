//! Shared driver for the connection targets: feeds peer bytes in chunks and
//! checks the invariants after every step.

use ws_proto::internals::{FrameHeader, OpCode, READ_AHEAD_EARN, READ_AHEAD_FREE, apply_mask};
use ws_proto::{
    Config, Connection, DeflateConfig, DeflateParams, Event, Message, Negotiated, Role,
    bytes::{Buf, BytesMut},
};

/// Small limits so that the memory bounds are tight enough to check.
pub const MAX_FRAME: usize = 4096;
pub const MAX_MESSAGE: usize = 16 * 1024;

/// Input layout: byte 0 chunk size (0: everything at once), byte 1 flags
/// (bit 0: drain outgoing after every event, bit 1: EOF at the end; with
/// `deflate`, bits 2-4 the peer's window bits minus 8 and bit 5 no context
/// takeover), then the bytes the peer sends.
pub fn drive(role: Role, data: &[u8], deflate: bool) {
    let [chunk, flags, wire @ ..] = data else {
        return;
    };
    let chunk = if *chunk == 0 {
        wire.len().max(1)
    } else {
        usize::from(*chunk)
    };
    let drain_each = flags & 1 != 0;
    let config = Config::default()
        .with_max_frame_size(MAX_FRAME)
        .with_max_message_size(MAX_MESSAGE);
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
    let mut buf = BytesMut::new();
    let mut written = Vec::new();
    let mut fed = 0usize;
    let mut failed = None;
    let mut closed = false;
    for piece in wire.chunks(chunk).map(Some).chain([None]) {
        match piece {
            Some(piece) => {
                buf.extend_from_slice(piece);
                fed += piece.len();
            }
            None if flags & 2 != 0 => conn.handle_eof(),
            None => {}
        }
        // Each call yields at most one event; bound the loop anyway.
        for _ in 0..=wire.len() + 2 {
            match conn.next_event(&mut buf) {
                Ok(Some(event)) => {
                    assert!(!closed, "no event after Close");
                    match event {
                        Event::Message(message) => check_message(&message),
                        Event::Ping(p) | Event::Pong(p) => assert!(p.len() <= 125),
                        Event::Close(_) => closed = true,
                        _ => {}
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    // Sticky, and the matching Close is queued.
                    assert_eq!(conn.next_event(&mut buf), Err(error.clone()));
                    failed = Some(error);
                    break;
                }
            }
            if drain_each {
                drain(&mut conn, &mut written);
            }
        }
        assert!(buf.len() <= fed, "the buffer only ever holds fed bytes");
        // A message in progress (inflated or reassembled) stays within the
        // limit; the deflate codec holds at most two windows and an
        // inflater (the peer cannot make it allocate more).
        assert!(conn.buffered_message_len() <= 2 * MAX_MESSAGE + 4096);
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
        if failed.is_some() {
            break;
        }
    }
    drain(&mut conn, &mut written);
    let frames = parse_frames(role, &written);
    if let Some(error) = failed {
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
