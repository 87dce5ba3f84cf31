//! Property tests: read-split independence, encode/decode identity, masking,
//! incremental UTF-8 validation, and hostile input against small limits.

use bytes::{Bytes, BytesMut};
use proptest::{prelude::*, sample::Index};
use ws_proto::internals::{MAX_HEADER_LEN, OpCode, Utf8Validator, apply_mask, apply_mask_bytewise};
use ws_proto::{CloseCode, CloseFrame, Config, Connection, Event, Message, Role};

use crate::util::{
    Pair, bytes_of_len, close_payload, conn, drain, events, ok_events, parse_frames, raw_frame,
    raw_header, text_of_len,
};

// ----- Strategies -----

fn small_string(max_chars: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..max_chars).prop_map(String::from_iter)
}

fn small_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Sorted, distinct cut points into `len` bytes.
fn cuts(indices: &[Index], len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = indices.iter().map(|i| i.index(len + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// `bytes` split at `cuts`.
fn pieces<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain([&bytes.len()]) {
        pieces.push(&bytes[start..cut]);
        start = cut;
    }
    pieces
}

/// What a client application does.
#[derive(Clone, Debug)]
enum Op {
    Text(String),
    Binary(Vec<u8>),
    TextFragments(Vec<String>),
    BinaryFragments(Vec<Vec<u8>>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        small_string(24).prop_map(Op::Text),
        small_bytes(300).prop_map(Op::Binary),
        prop::collection::vec(small_string(6), 1..5).prop_map(Op::TextFragments),
        prop::collection::vec(small_bytes(40), 1..5).prop_map(Op::BinaryFragments),
        small_bytes(126).prop_map(Op::Ping),
        small_bytes(126).prop_map(Op::Pong),
    ]
}

fn sendable_close_code() -> impl Strategy<Value = u16> {
    prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999]
}

/// Runs `ops` (and an optional close) on a real client and returns its
/// wire bytes and the events a server should report for them.
fn client_wire(
    ops: &[Op],
    close: Option<&(u16, String)>,
    frame_size: usize,
) -> (Vec<u8>, Vec<Event>) {
    let config = Config::default().with_max_send_frame_size(frame_size);
    let mut client = conn(Role::Client, config);
    let mut expected = Vec::new();
    for op in ops {
        match op {
            Op::Text(text) => {
                client.send(Message::text(text.as_str())).unwrap();
                expected.push(Event::Message(Message::text(text.as_str())));
            }
            Op::Binary(data) => {
                client.send(Message::binary(data.clone())).unwrap();
                expected.push(Event::Message(Message::binary(data.clone())));
            }
            Op::TextFragments(parts) => {
                for (i, part) in parts.iter().enumerate() {
                    let fin = i + 1 == parts.len();
                    client
                        .send_fragment(Message::text(part.as_str()), fin)
                        .unwrap();
                }
                expected.push(Event::Message(Message::text(parts.concat())));
            }
            Op::BinaryFragments(parts) => {
                for (i, part) in parts.iter().enumerate() {
                    let fin = i + 1 == parts.len();
                    client
                        .send_fragment(Message::binary(part.clone()), fin)
                        .unwrap();
                }
                expected.push(Event::Message(Message::binary(parts.concat())));
            }
            Op::Ping(data) => {
                client.ping(Bytes::from(data.clone())).unwrap();
                expected.push(Event::Ping(Bytes::from(data.clone())));
            }
            Op::Pong(data) => {
                client.pong(Bytes::from(data.clone())).unwrap();
                expected.push(Event::Pong(Bytes::from(data.clone())));
            }
        }
    }
    if let Some((code, reason)) = close {
        client.close(CloseCode(*code), reason).unwrap();
        expected.push(Event::Close(CloseFrame::new(
            CloseCode(*code),
            reason.as_str(),
        )));
    }
    (drain(&mut client), expected)
}

fn server() -> Connection {
    conn(Role::Server, Config::default())
}

/// Message lengths at and around the length-encoding boundaries.
fn message_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(125),
        Just(126),
        Just(65535),
        Just(65536),
        0usize..300,
        120usize..132,
        65530usize..65542,
    ]
}

/// The UTF-8 verdict on a prefix: `true` when it can no longer become valid.
fn definitely_invalid(prefix: &[u8]) -> bool {
    core::str::from_utf8(prefix).is_err_and(|e| e.error_len().is_some())
}

/// Bytes that are UTF-8, nearly UTF-8, or anything.
fn utf8ish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        small_bytes(48),
        any::<String>().prop_map(String::into_bytes),
        (small_string(16), any::<Index>(), any::<u8>()).prop_map(|(s, at, byte)| {
            let mut bytes = s.into_bytes();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            bytes
        }),
        (small_string(16), any::<Index>()).prop_map(|(s, at)| {
            // Truncated: may end inside a code point.
            let bytes = s.into_bytes();
            let keep = at.index(bytes.len() + 1);
            bytes[..keep].to_vec()
        }),
    ]
}

/// One piece of hostile input.
#[derive(Clone, Debug)]
enum Hostile {
    Garbage(Vec<u8>),
    Frame {
        fin: bool,
        rsv: u8,
        opcode: u8,
        proper_mask: bool,
        key: [u8; 4],
        payload: Vec<u8>,
    },
    Header {
        fin: bool,
        opcode: u8,
        proper_mask: bool,
        len: u64,
    },
}

fn opcode() -> impl Strategy<Value = u8> {
    prop_oneof![
        6 => prop::sample::select(vec![0u8, 1, 2, 8, 9, 10]),
        1 => 0u8..16,
    ]
}

fn hostile() -> impl Strategy<Value = Hostile> {
    let payload = prop_oneof![
        small_bytes(64),
        small_string(20).prop_map(String::into_bytes),
        (sendable_close_code(), small_string(8))
            .prop_map(|(code, reason)| close_payload(code, reason.as_bytes())),
        small_bytes(400),
    ];
    prop_oneof![
        1 => small_bytes(24).prop_map(Hostile::Garbage),
        8 => (
            any::<bool>(),
            prop_oneof![9 => Just(0u8), 1 => 0u8..8],
            opcode(),
            prop::bool::weighted(0.9),
            any::<[u8; 4]>(),
            payload,
        )
            .prop_map(|(fin, rsv, opcode, proper_mask, key, payload)| Hostile::Frame {
                fin,
                rsv,
                opcode,
                proper_mask,
                key,
                payload,
            }),
        1 => (
            any::<bool>(),
            opcode(),
            prop::bool::weighted(0.9),
            prop_oneof![0u64..5000, any::<u64>()],
        )
            .prop_map(|(fin, opcode, proper_mask, len)| Hostile::Header {
                fin,
                opcode,
                proper_mask,
                len,
            }),
    ]
}

fn hostile_bytes(receiver: Role, parts: &[Hostile]) -> Vec<u8> {
    let mask = |proper: bool, key: [u8; 4]| (proper == (receiver == Role::Server)).then_some(key);
    let mut wire = Vec::new();
    for part in parts {
        match part {
            Hostile::Garbage(bytes) => wire.extend_from_slice(bytes),
            Hostile::Frame {
                fin,
                rsv,
                opcode,
                proper_mask,
                key,
                payload,
            } => wire.extend(raw_frame(
                *fin,
                *rsv,
                *opcode,
                mask(*proper_mask, *key),
                payload,
            )),
            Hostile::Header {
                fin,
                opcode,
                proper_mask,
                len,
            } => wire.extend(raw_header(
                *fin,
                0,
                *opcode,
                mask(*proper_mask, [9, 8, 7, 6]),
                *len,
            )),
        }
    }
    wire
}

const SMALL_FRAME: usize = 1024;
const SMALL_MESSAGE: usize = 4096;

/// Feeds hostile `wire` in `cuts` pieces and checks the connection's
/// invariants after each piece.
fn check_hostile(role: Role, wire: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
    let config = Config::default()
        .with_max_frame_size(SMALL_FRAME)
        .with_max_message_size(SMALL_MESSAGE);
    let mut conn = conn(role, config);
    let mut buf = BytesMut::new();
    let mut fed = 0usize;
    let mut closed = false;
    for piece in pieces(wire, cuts) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        let before = buf.len();
        let (events, error) = events(&mut conn, &mut buf);
        prop_assert!(buf.len() <= before && buf.len() <= fed);
        for event in &events {
            prop_assert!(!closed, "an event after Close: {event:?}");
            match event {
                Event::Message(message) => prop_assert!(message.len() <= SMALL_MESSAGE),
                Event::Ping(data) | Event::Pong(data) => prop_assert!(data.len() <= 125),
                Event::Close(frame) => {
                    prop_assert!(frame.code.is_sendable() || frame.code == CloseCode::NO_STATUS);
                    closed = true;
                }
                other => prop_assert!(false, "unknown event {other:?}"),
            }
        }
        // Pongs are coalesced and a Close is tiny: the queue stays small.
        prop_assert!(conn.outgoing().len() <= 2 * (MAX_HEADER_LEN + 125) + MAX_HEADER_LEN + 125);
        if let Some(error) = error {
            let code = error.close_code().0;
            prop_assert!(
                matches!(code, 1002 | 1007 | 1009),
                "{error:?} has close code {code}"
            );
            prop_assert_eq!(conn.next_event(&mut buf), Err(error));
            // The Close frame for the error is the last thing queued.
            let frames = parse_frames(&drain(&mut conn));
            let last = frames.last();
            prop_assert!(last.is_some());
            if let Some(last) = last {
                prop_assert_eq!(last.header.opcode, OpCode::Close);
                prop_assert_eq!(last.close_code(), Some(code));
            }
            prop_assert!(conn.should_close_transport());
            return Ok(());
        }
        // Waiting for more: at most one incomplete header or one frame's payload.
        prop_assert!(
            buf.len() < MAX_HEADER_LEN.max(SMALL_FRAME),
            "{} bytes held",
            buf.len()
        );
        if closed {
            prop_assert!(buf.is_empty());
        }
        drain(&mut conn);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any split of a client's wire bytes gives a server the same events and
    /// the same outgoing bytes as one read of all of them.
    #[test]
    fn any_split_gives_the_same_events_and_output(
        ops in prop::collection::vec(op(), 0..10),
        close in prop::option::of((sendable_close_code(), small_string(12))),
        frame_size in prop_oneof![Just(usize::MAX), 1usize..40],
        split in prop::collection::vec(any::<Index>(), 0..24),
    ) {
        let (wire, expected) = client_wire(&ops, close.as_ref(), frame_size);

        let mut whole = server();
        let mut buf = BytesMut::from(&wire[..]);
        let whole_events = ok_events(&mut whole, &mut buf);
        prop_assert_eq!(&whole_events, &expected);
        let whole_out = drain(&mut whole);

        let mut split_server = server();
        let mut buf = BytesMut::new();
        let mut split_events = Vec::new();
        for piece in pieces(&wire, &cuts(&split, wire.len())) {
            buf.extend_from_slice(piece);
            split_events.extend(ok_events(&mut split_server, &mut buf));
        }
        prop_assert_eq!(&split_events, &expected);
        prop_assert_eq!(drain(&mut split_server), whole_out);
        prop_assert_eq!(split_server.state(), whole.state());
        prop_assert_eq!(split_server.should_close_transport(), whole.should_close_transport());
    }

    /// Hostile bytes in arbitrary pieces never panic, stay within the limits,
    /// and fail only with 1002, 1007 or 1009.
    #[test]
    fn hostile_input_respects_the_limits(
        parts in prop::collection::vec(hostile(), 0..12),
        split in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        for role in [Role::Server, Role::Client] {
            let wire = hostile_bytes(role, &parts);
            check_hostile(role, &wire, &cuts(&split, wire.len()))?;
        }
    }

    /// Pure garbage, too.
    #[test]
    fn random_bytes_respect_the_limits(
        wire in small_bytes(600),
        split in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        for role in [Role::Server, Role::Client] {
            check_hostile(role, &wire, &cuts(&split, wire.len()))?;
        }
    }

    /// `apply_mask` equals the bytewise reference for any data, key and
    /// offset, and masking in pieces equals masking at once.
    #[test]
    fn apply_mask_matches_bytewise(
        data in small_bytes(200),
        key in any::<[u8; 4]>(),
        offset in prop_oneof![0usize..64, 0usize..(usize::MAX / 2)],
        at in any::<Index>(),
    ) {
        let mut fast = data.clone();
        let mut slow = data.clone();
        apply_mask(&mut fast, key, offset);
        apply_mask_bytewise(&mut slow, key, offset);
        prop_assert_eq!(&fast, &slow);

        let mut parts = data.clone();
        let split = at.index(parts.len() + 1);
        let (a, b) = parts.split_at_mut(split);
        apply_mask(a, key, offset);
        apply_mask(b, key, offset + split);
        prop_assert_eq!(&parts, &fast);

        // Masking twice is the identity.
        apply_mask(&mut fast, key, offset);
        prop_assert_eq!(fast, data);
    }

    /// `Utf8Validator` fed any split agrees with `std::str::from_utf8`, and
    /// fails exactly when the bytes fed so far can no longer become valid.
    #[test]
    fn utf8_validator_agrees_with_std(
        input in utf8ish(),
        split in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let mut validator = Utf8Validator::new();
        let mut end = 0;
        let mut failed = false;
        for piece in pieces(&input, &cuts(&split, input.len())) {
            end += piece.len();
            let result = validator.feed(piece);
            prop_assert_eq!(
                result.is_err(),
                definitely_invalid(&input[..end]),
                "after {} of {} bytes", end, input.len()
            );
            if result.is_err() {
                failed = true;
                break;
            }
        }
        let valid = core::str::from_utf8(&input).is_ok();
        if !failed {
            prop_assert_eq!(validator.finish().is_ok(), valid);
        }
        prop_assert_eq!(!failed && valid, valid);
    }

    /// Valid strings in any split are always accepted, and the validator is
    /// reusable after `finish`.
    #[test]
    fn utf8_validator_accepts_valid_strings(
        text in any::<String>(),
        split in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let mut validator = Utf8Validator::new();
        for _ in 0..2 {
            for piece in pieces(text.as_bytes(), &cuts(&split, text.len())) {
                prop_assert!(validator.feed(piece).is_ok());
            }
            prop_assert!(validator.finish().is_ok());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Encode then decode is the identity, in both directions, at the
    /// length-encoding boundaries.
    #[test]
    fn encode_then_decode_is_the_identity(
        len in message_len(),
        seed in any::<u64>(),
        text in any::<bool>(),
        from_client in any::<bool>(),
        split in any::<Index>(),
    ) {
        let message = if text {
            Message::text(text_of_len(len, seed))
        } else {
            Message::binary(bytes_of_len(len, seed))
        };
        prop_assert_eq!(message.len(), len);
        let mut pair = Pair::new();
        let (from, to) = if from_client {
            (Role::Client, Role::Server)
        } else {
            (Role::Server, Role::Client)
        };
        pair.conn(from).send(message.clone()).unwrap();
        let wire = drain(pair.conn(from));
        let frames = parse_frames(&wire);
        prop_assert_eq!(frames.len(), 1);
        prop_assert_eq!(frames[0].header.mask.is_some(), from_client);
        prop_assert_eq!(&frames[0].payload[..], message.as_bytes());

        // Delivered in two reads, split anywhere.
        let cut = split.index(wire.len() + 1);
        let mut events = Vec::new();
        for piece in [&wire[..cut], &wire[cut..]] {
            match to {
                Role::Server => pair.to_server.extend_from_slice(piece),
                Role::Client => pair.to_client.extend_from_slice(piece),
            }
            events.extend(pair.events(to));
        }
        prop_assert_eq!(events, vec![Event::Message(message)]);
    }
}

#[test]
fn apply_mask_bytewise_at_offsets_near_usize_max() {
    // `apply_mask_bytewise` is the public reference implementation and takes
    // any `usize` offset; `offset + i` must not overflow.
    let key = [1, 2, 3, 4];
    for offset in [usize::MAX - 3, usize::MAX - 1, usize::MAX] {
        let mut fast = [0u8; 8];
        let mut slow = [0u8; 8];
        apply_mask(&mut fast, key, offset);
        apply_mask_bytewise(&mut slow, key, offset);
        assert_eq!(fast, slow, "offset {offset}");
    }
}

/// What happens to a server between writes.
#[derive(Clone, Debug)]
enum Step {
    /// The peer pings.
    PeerPing,
    /// The application sends a binary message of this length.
    Send(usize),
    /// The transport takes this many bytes.
    Write(usize),
    /// The transport takes one whole chunk (`pop_chunk`).
    Pop,
    /// The application closes.
    Close,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::PeerPing),
        2 => (0usize..700).prop_map(Step::Send),
        4 => (0usize..64).prop_map(Step::Write),
        1 => Just(Step::Pop),
        1 => Just(Step::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the interleaving of pings, sends and partial writes, the
    /// written bytes are whole frames in order, pongs answer pings in order
    /// (the latest one last), and nothing follows the Close.
    #[test]
    fn partial_writes_and_pings_keep_the_wire_well_formed(
        steps in prop::collection::vec(step(), 0..60),
    ) {
        use bytes::Buf as _;

        let mut server = server();
        let mut wire = Vec::new();
        let mut sent = Vec::new();
        let mut pings = 0u32;
        let mut last_ping_before_close = None;
        let mut closed = false;
        for step in &steps {
            match step {
                Step::PeerPing => {
                    let mut buf = BytesMut::from(
                        &raw_frame(true, 0, 0x9, Some([1, 2, 3, 4]), &pings.to_be_bytes())[..],
                    );
                    let events = ok_events(&mut server, &mut buf);
                    prop_assert_eq!(events.len(), 1);
                    if !closed {
                        last_ping_before_close = Some(pings);
                    }
                    pings += 1;
                }
                Step::Send(len) => {
                    let data = bytes_of_len(*len, sent.len() as u64 + 1);
                    if server.send(Message::binary(data.clone())).is_ok() {
                        sent.push(data);
                    } else {
                        prop_assert!(closed);
                    }
                }
                Step::Write(n) => {
                    let out = server.outgoing();
                    let mut left = *n;
                    while left > 0 && out.has_remaining() {
                        let chunk = out.chunk();
                        let take = chunk.len().min(left);
                        wire.extend_from_slice(&chunk[..take]);
                        out.advance(take);
                        left -= take;
                    }
                }
                Step::Pop => {
                    if let Some(chunk) = server.outgoing().pop_chunk() {
                        wire.extend_from_slice(&chunk);
                    }
                }
                Step::Close => {
                    if server.close(CloseCode::NORMAL, "").is_ok() {
                        prop_assert!(!closed);
                        closed = true;
                    }
                }
            }
        }
        wire.extend(drain(&mut server));
        let frames = parse_frames(&wire);
        let data: Vec<Vec<u8>> = frames
            .iter()
            .filter(|f| f.header.opcode == OpCode::Binary)
            .map(|f| f.payload.clone())
            .collect();
        prop_assert_eq!(data, sent);
        let pongs: Vec<u32> = frames
            .iter()
            .filter(|f| f.header.opcode == OpCode::Pong)
            .map(|f| u32::from_be_bytes(f.payload[..].try_into().unwrap()))
            .collect();
        prop_assert!(pongs.windows(2).all(|w| w[0] < w[1]), "pongs out of order: {:?}", pongs);
        if !closed {
            prop_assert_eq!(pongs.last().copied(), last_ping_before_close);
        }
        let close_at = frames.iter().position(|f| f.header.opcode == OpCode::Close);
        prop_assert_eq!(close_at.is_some(), closed);
        if let Some(at) = close_at {
            prop_assert_eq!(at + 1, frames.len(), "frames after the Close");
        }
    }
}
