//! Streaming receive (`Config::streaming`, `Event::Fragment`) and streaming
//! send (`PieceSender`): any message, fragmentation and read chunking gives
//! the same bytes, text stays whole code points, limits hold, memory stays
//! bounded by a piece.

use bytes::{Bytes, BytesMut};
use proptest::{prelude::*, sample::Index};
use ws_proto::{
    CloseCode, Config, Connection, Event, Message, PieceSender, ProtocolError, Role, SendError,
    Streaming, Utf8Bytes,
};

use crate::util::{conn, drain, events};

/// A message received: its type, its bytes, and how it came (whole or in
/// pieces).
#[derive(Debug, PartialEq, Eq)]
struct Received {
    text: bool,
    data: Vec<u8>,
    pieces: usize,
}

/// Reassembles the data events of a connection (checking the piece flags).
#[derive(Default)]
struct Collector {
    done: Vec<Received>,
    current: Option<Received>,
}

impl Collector {
    fn feed(&mut self, event: Event) {
        match event {
            Event::Message(message) => {
                assert!(
                    self.current.is_none(),
                    "a whole message inside a streamed one"
                );
                self.done.push(Received {
                    text: message.is_text(),
                    data: message.as_bytes().to_vec(),
                    pieces: 0,
                });
            }
            Event::Fragment { piece, first, last } => {
                assert_eq!(first, self.current.is_none(), "first flag");
                if let Message::Text(text) = &piece {
                    // Whole code points: a valid str on its own.
                    assert!(core::str::from_utf8(text.as_bytes()).is_ok());
                }
                assert!(
                    !piece.is_empty() || last,
                    "an empty piece that is not the last"
                );
                let current = self.current.get_or_insert_with(|| Received {
                    text: piece.is_text(),
                    data: Vec::new(),
                    pieces: 0,
                });
                assert_eq!(current.text, piece.is_text(), "a piece changed type");
                current.data.extend_from_slice(piece.as_bytes());
                current.pieces += 1;
                if last {
                    self.done.push(self.current.take().unwrap());
                }
            }
            _ => {}
        }
    }
}

/// Text of random code points of every width, or random bytes.
fn body(text: bool, seed: &[u32]) -> Vec<u8> {
    if text {
        let chars = ['a', 'é', '€', '😀', ' ', 'ß', '中'];
        seed.iter()
            .map(|&n| chars[n as usize % chars.len()])
            .collect::<String>()
            .into_bytes()
    } else {
        seed.iter().map(|&n| n as u8).collect()
    }
}

/// Sends `data` as one message in frames of about `frame` bytes (text cut
/// anywhere: the `PieceSender` keeps code points whole).
fn send_in_pieces(sender: &mut Connection, text: bool, data: &[u8], frame: usize) {
    let mut writer = PieceSender::new(text);
    for chunk in data.chunks(frame.max(1)) {
        writer.write(sender, chunk).unwrap();
    }
    writer.finish(sender).unwrap();
}

fn receiver(config: Config, deflate: bool) -> Connection {
    let conn = conn(Role::Server, config);
    with_deflate(conn, deflate)
}

fn sender(deflate: bool) -> Connection {
    with_deflate(conn(Role::Client, Config::default()), deflate)
}

#[cfg(feature = "deflate")]
fn with_deflate(conn: Connection, deflate: bool) -> Connection {
    use ws_proto::{DeflateConfig, DeflateParams, Negotiated};
    if !deflate {
        return conn;
    }
    let params = DeflateParams::new(
        &DeflateConfig::default().with_min_size(0),
        15,
        15,
        true,
        true,
    );
    let negotiated = Negotiated::new(None, vec!["permessage-deflate".into()]).with_deflate(params);
    conn.with_negotiated(negotiated)
}

#[cfg(not(feature = "deflate"))]
fn with_deflate(conn: Connection, _deflate: bool) -> Connection {
    conn
}

/// Feeds `wire` to `receiver` cut at `points`; returns what arrived.
fn receive(receiver: &mut Connection, wire: &[u8], cuts: &[Index]) -> Vec<Received> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
    points.sort_unstable();
    points.push(wire.len());
    let mut buf = BytesMut::new();
    let mut collector = Collector::default();
    let mut at = 0;
    for p in points {
        buf.extend_from_slice(&wire[at..p]);
        at = p;
        let (got, error) = events(receiver, &mut buf);
        assert_eq!(error, None);
        got.into_iter().for_each(|event| collector.feed(event));
    }
    assert!(collector.current.is_none(), "a message left unfinished");
    collector.done
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any messages, any fragmentation, any read chunking, with and without
    /// deflate: the pieces concatenated are the message, and each streaming
    /// policy delivers whole what it should.
    #[test]
    fn pieces_concatenate_to_the_message(
        messages in prop::collection::vec(
            (any::<bool>(), prop::collection::vec(any::<u32>(), 0..600), 1usize..700),
            1..5,
        ),
        policy in prop_oneof![Just(Streaming::Always), (0usize..2000).prop_map(Streaming::Above)],
        deflate: bool,
        cuts in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let mut tx = sender(deflate);
        let mut expected = Vec::new();
        for (text, seed, frame) in &messages {
            let data = body(*text, seed);
            send_in_pieces(&mut tx, *text, &data, *frame);
            expected.push((*text, data));
        }
        let wire = drain(&mut tx);
        let mut rx = receiver(Config::default().with_streaming(policy), deflate);
        let got = receive(&mut rx, &wire, &cuts);
        prop_assert_eq!(got.len(), expected.len());
        for (received, (text, data)) in got.iter().zip(&expected) {
            prop_assert_eq!(received.text, *text);
            prop_assert_eq!(&received.data, data);
            match policy {
                Streaming::Always => prop_assert!(received.pieces >= 1),
                Streaming::Above(n) if data.len() <= n => prop_assert_eq!(received.pieces, 0),
                Streaming::Above(_) => prop_assert!(received.pieces >= 1),
                _ => unreachable!(),
            }
        }
    }
}

/// A masked frame from a client (key 0 keeps the payload readable).
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::from(fin) << 7 | opcode];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(payload);
    out
}

#[test]
fn invalid_utf8_fails_with_1007_at_the_bad_byte_after_the_good_pieces() {
    let mut rx = receiver(Config::default().with_streaming(Streaming::Always), false);
    let mut buf = BytesMut::from(&frame(false, 0x1, "héllo ".as_bytes())[..]);
    let (got, error) = events(&mut rx, &mut buf);
    assert_eq!(error, None);
    assert_eq!(
        got,
        [Event::Fragment {
            piece: Message::text("héllo "),
            first: true,
            last: false
        }]
    );
    // The second frame starts valid, then a bad byte: what came before it in
    // the same read is not delivered, and the connection fails with 1007.
    let mut bad = b"world ".to_vec();
    bad.push(0xFF);
    bad.extend_from_slice(&[b'x'; 100]);
    let mut second = frame(true, 0x0, &bad);
    // Only up to the bad byte has arrived.
    second.truncate(second.len() - 100);
    buf.extend_from_slice(&second);
    let (got, error) = events(&mut rx, &mut buf);
    assert_eq!(got, []);
    assert_eq!(error, Some(ProtocolError::InvalidUtf8));
    assert_eq!(error.unwrap().close_code(), CloseCode::INVALID_PAYLOAD);
}

#[test]
fn a_code_point_split_across_frames_is_delivered_whole() {
    let mut rx = receiver(Config::default().with_streaming(Streaming::Always), false);
    let euro = "€".as_bytes();
    let mut wire = frame(false, 0x1, &[b'a', euro[0]]);
    wire.extend(frame(false, 0x0, &euro[1..2]));
    wire.extend(frame(true, 0x0, &[euro[2], b'b']));
    let mut buf = BytesMut::from(&wire[..]);
    let (got, error) = events(&mut rx, &mut buf);
    assert_eq!(error, None);
    let pieces: Vec<String> = got
        .into_iter()
        .map(|event| match event {
            Event::Fragment {
                piece: Message::Text(text),
                ..
            } => text.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(pieces.concat(), "a€b");
}

#[test]
fn a_message_ending_inside_a_code_point_fails_with_1007() {
    let mut rx = receiver(Config::default().with_streaming(Streaming::Always), false);
    let mut buf = BytesMut::from(&frame(true, 0x1, &"€".as_bytes()[..2])[..]);
    let (_, error) = events(&mut rx, &mut buf);
    assert_eq!(error, Some(ProtocolError::InvalidUtf8));
}

#[test]
fn a_streamed_message_is_bounded_by_its_own_limit() {
    let config = Config::default()
        .with_streaming(Streaming::Always)
        .with_max_message_size(10)
        .with_max_frame_size(10)
        .with_max_streamed_message_size(Some(1000));
    let mut rx = receiver(config, false);
    // Larger than max_message_size and max_frame_size: streamed, accepted.
    let mut buf = BytesMut::from(&frame(true, 0x2, &[7; 600])[..]);
    let (got, error) = events(&mut rx, &mut buf);
    assert_eq!(error, None);
    assert_eq!(got.len(), 1);
    // Two frames of 600: the header of the second exceeds 1000.
    let mut wire = frame(false, 0x2, &[7; 600]);
    wire.extend(frame(true, 0x0, &[7; 600]));
    buf.extend_from_slice(&wire);
    let (_, error) = events(&mut rx, &mut buf);
    assert!(
        matches!(error, Some(ProtocolError::MessageTooBig { .. })),
        "{error:?}"
    );
    assert_eq!(error.unwrap().close_code(), CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn memory_stays_bounded_by_the_read_and_one_piece() {
    // A 64 MiB message in one frame, read 64 KiB at a time: every read
    // becomes a piece (at once: no read-ahead), and nothing is reassembled.
    const MIB: usize = 1 << 20;
    let config = Config::default().with_streaming(Streaming::Above(1024));
    let mut rx = receiver(config, false);
    let mut header = frame(true, 0x2, &[]);
    header[1] = 0x80 | 127;
    header.splice(2..2, (64 * MIB as u64).to_be_bytes());
    let mut buf = BytesMut::from(&header[..]);
    let mut total = 0;
    let mut pieces = 0;
    let chunk = vec![9u8; 64 * 1024];
    while total < 64 * MIB {
        buf.extend_from_slice(&chunk);
        let (got, error) = events(&mut rx, &mut buf);
        assert_eq!(error, None);
        for event in got {
            let Event::Fragment { piece, first, last } = event else {
                panic!()
            };
            assert_eq!(first, pieces == 0);
            assert!(piece.len() <= 64 * 1024);
            total += piece.len();
            pieces += 1;
            assert_eq!(last, total == 64 * MIB);
        }
        assert!(
            buf.capacity() <= 256 * 1024,
            "the read buffer grew: {}",
            buf.capacity()
        );
        assert_eq!(rx.buffered_message_len(), 0);
        assert_eq!(rx.read_ahead(&buf), 0, "no read-ahead for a streamed frame");
    }
    assert_eq!(total, 64 * MIB);
}

#[cfg(feature = "deflate")]
#[test]
fn a_compressed_bomb_streams_in_bounded_pieces() {
    // 64 MiB of zeros compressed to a few tens of KiB: inflated at most 64 KiB
    // at a time, bounded only by the streamed limit.
    let mut tx = sender(true);
    tx.send(Message::binary(vec![0u8; 64 << 20])).unwrap();
    let wire = drain(&mut tx);
    assert!(wire.len() < 1 << 20);
    let config = Config::default()
        .with_streaming(Streaming::Always)
        .with_max_streamed_message_size(Some(32 << 20));
    let mut rx = receiver(config, true);
    let mut buf = BytesMut::from(&wire[..]);
    let mut total = 0;
    let error = loop {
        match rx.next_event(&mut buf) {
            Ok(Some(Event::Fragment { piece, .. })) => {
                assert!(piece.len() <= 64 * 1024);
                total += piece.len();
            }
            Ok(other) => panic!("{other:?}"),
            Err(error) => break error,
        }
    };
    assert!(matches!(error, ProtocolError::MessageTooBig { .. }));
    assert!(total <= 32 << 20);
}

#[test]
fn below_the_threshold_a_fragmented_message_arrives_whole() {
    let mut rx = receiver(
        Config::default().with_streaming(Streaming::Above(10)),
        false,
    );
    let mut wire = frame(false, 0x1, b"abc");
    wire.extend(frame(true, 0x0, b"def"));
    let (got, _) = events(&mut rx, &mut BytesMut::from(&wire[..]));
    assert_eq!(got, [Event::Message(Message::text("abcdef"))]);
    // Crossing it, the buffered bytes are the first piece.
    let mut wire = frame(false, 0x1, b"abcdefgh");
    wire.extend(frame(false, 0x0, b"ijkl"));
    let mut buf = BytesMut::from(&wire[..]);
    let (got, _) = events(&mut rx, &mut buf);
    assert_eq!(
        got,
        [Event::Fragment {
            piece: Message::text("abcdefghijkl"),
            first: true,
            last: false
        }]
    );
    buf.extend_from_slice(&frame(true, 0x0, b"mn"));
    let (got, _) = events(&mut rx, &mut buf);
    assert_eq!(
        got,
        [Event::Fragment {
            piece: Message::text("mn"),
            first: false,
            last: true
        }]
    );
}

#[test]
fn an_empty_message_streams_as_one_empty_last_piece() {
    let mut rx = receiver(Config::default().with_streaming(Streaming::Always), false);
    let (got, _) = events(&mut rx, &mut BytesMut::from(&frame(true, 0x2, b"")[..]));
    assert_eq!(
        got,
        [Event::Fragment {
            piece: Message::binary(Bytes::new()),
            first: true,
            last: true
        }]
    );
}

#[test]
fn control_frames_arrive_between_pieces() {
    let mut rx = receiver(Config::default().with_streaming(Streaming::Always), false);
    let mut wire = frame(false, 0x2, b"ab");
    wire.extend(frame(true, 0x9, b"p"));
    wire.extend(frame(true, 0x0, b"cd"));
    let (got, _) = events(&mut rx, &mut BytesMut::from(&wire[..]));
    assert!(matches!(got[1], Event::Ping(_)), "{got:?}");
    assert_eq!(got.len(), 3);
}

#[test]
fn the_piece_sender_keeps_code_points_whole_and_refuses_bad_text() {
    let mut tx = conn(Role::Server, Config::default());
    let mut writer = PieceSender::new(true);
    let text = "a€😀b".as_bytes();
    for byte in text {
        writer.write(&mut tx, std::slice::from_ref(byte)).unwrap();
    }
    writer.finish(&mut tx).unwrap();
    let mut rx = conn(Role::Client, Config::default());
    let (got, error) = events(&mut rx, &mut BytesMut::from(&drain(&mut tx)[..]));
    assert_eq!(error, None);
    assert_eq!(got, [Event::Message(Message::text("a€😀b"))]);

    let mut writer = PieceSender::new(true);
    assert_eq!(
        writer.write(&mut tx, &[b'a', 0xFF]),
        Err(SendError::InvalidUtf8)
    );
    writer.write(&mut tx, &"€".as_bytes()[..1]).unwrap();
    assert_eq!(
        writer.finish(&mut tx),
        Err(SendError::InvalidUtf8),
        "ends inside a code point"
    );
}

#[test]
fn an_abandoned_piece_sender_closes_with_1011() {
    let mut tx = conn(Role::Server, Config::default());
    let mut writer = PieceSender::new(false);
    writer.write(&mut tx, b"half").unwrap();
    writer.abandon(&mut tx);
    let mut rx = conn(Role::Client, Config::default());
    let (got, _) = events(&mut rx, &mut BytesMut::from(&drain(&mut tx)[..]));
    match got.last() {
        Some(Event::Close(frame)) => assert_eq!(frame.code, CloseCode::INTERNAL_ERROR),
        other => panic!("expected a close, got {other:?}"),
    }
    assert!(
        !got.iter().any(|e| matches!(e, Event::Message(_))),
        "no truncated message"
    );
    // Nothing started: dropping it sends nothing.
    let mut tx = conn(Role::Server, Config::default());
    PieceSender::new(true).abandon(&mut tx);
    assert!(!tx.wants_write());
    let _ = Utf8Bytes::new();
}

#[cfg(feature = "deflate")]
#[test]
fn empty_compressed_continuations_are_accepted_streamed_or_not() {
    // "Hello" compressed (RFC 7692 section 7.2.3.1), then two empty
    // continuation frames, the last with FIN.
    let mut wire = vec![
        0x41, 0x87, 0, 0, 0, 0, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00,
    ];
    wire.extend(frame(false, 0x0, b""));
    wire.extend(frame(true, 0x0, b""));
    for streaming in [Streaming::Off, Streaming::Always, Streaming::Above(3)] {
        let mut rx = receiver(Config::default().with_streaming(streaming), true);
        let got = receive(&mut rx, &wire, &[]);
        assert_eq!(got.len(), 1, "{streaming:?}");
        assert_eq!(got[0].data, b"Hello", "{streaming:?}");
    }
}

#[cfg(feature = "deflate")]
#[test]
fn output_held_back_by_a_full_piece_comes_out_without_more_bytes() {
    // One compressed frame whose last input bytes inflate to more than the
    // piece in progress can take: the rest must come out on the next call,
    // with nothing more to read (found by the deflate_connection fuzzer).
    for (len, streaming) in [
        (65_537, Streaming::Always),
        (65_762, Streaming::Always),
        (1 << 20, Streaming::Always),
        (68, Streaming::Above(27)),
        (65_537, Streaming::Above(65_536)),
    ] {
        let mut tx = sender(true);
        let data: Vec<u8> = (0..len).map(|i| b"ab"[i % 2]).collect();
        tx.send(Message::binary(data.clone())).unwrap();
        let wire = drain(&mut tx);
        let mut rx = receiver(Config::default().with_streaming(streaming), true);
        let got = receive(&mut rx, &wire, &[]);
        assert_eq!(got.len(), 1, "{len} {streaming:?}");
        assert_eq!(got[0].data, data, "{len} {streaming:?}");
    }
}
