//! RFC 6455 test vectors, byte for byte: section 1.3 (the accept key) and
//! section 5.7 (example frames), each decoded and encoded.

use bytes::{Bytes, BytesMut};
use ws_proto::internals::{FrameHeader, OpCode};
use ws_proto::{CloseCode, CloseFrame, Config, Connection, Event, Message, Role, accept_key};

use crate::util::{drain, fixed, ok_events, parse_frames, rfc_key};

const HELLO_UNMASKED: [u8; 7] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
const HELLO_MASKED: [u8; 11] = [
    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];
const HEL: [u8; 5] = [0x01, 0x03, 0x48, 0x65, 0x6c];
const LO: [u8; 4] = [0x80, 0x02, 0x6c, 0x6f];
const PING_UNMASKED: [u8; 7] = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
const PONG_MASKED: [u8; 11] = [
    0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];

fn server() -> Connection {
    Connection::with_entropy(Role::Server, Config::default(), fixed)
}

/// A client whose mask key is always the RFC's `37 fa 21 3d`.
fn client() -> Connection {
    Connection::with_entropy(Role::Client, Config::default(), rfc_key)
}

/// Decodes `wire` with a connection of `role`, checking that every proper
/// prefix yields nothing and the whole yields `expected`.
fn decode(role: Role, wire: &[u8], expected: &[Event]) {
    let mut conn = match role {
        Role::Client => client(),
        Role::Server => server(),
    };
    let mut buf = BytesMut::from(wire);
    assert_eq!(ok_events(&mut conn, &mut buf), expected, "{role:?}");
    assert!(buf.is_empty());

    // Byte by byte: the same single result, only once the last byte arrived.
    let mut conn = match role {
        Role::Client => client(),
        Role::Server => server(),
    };
    let mut buf = BytesMut::new();
    for (i, &byte) in wire.iter().enumerate() {
        buf.extend_from_slice(&[byte]);
        let events = ok_events(&mut conn, &mut buf);
        if i + 1 < wire.len() {
            assert!(
                events.is_empty(),
                "{role:?} after {} bytes: {events:?}",
                i + 1
            );
        } else {
            assert_eq!(events, expected, "{role:?} byte by byte");
        }
    }
    assert!(buf.is_empty());
}

fn binary_vector(len: usize) -> (Vec<u8>, Vec<u8>) {
    let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    let mut wire = match len {
        256 => vec![0x82, 0x7E, 0x01, 0x00],
        65536 => vec![0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00],
        _ => unreachable!(),
    };
    wire.extend_from_slice(&payload);
    (payload, wire)
}

#[test]
fn section_1_3_accept_key() {
    assert_eq!(
        accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn single_frame_unmasked_text_decodes_in_client_role() {
    decode(
        Role::Client,
        &HELLO_UNMASKED,
        &[Event::Message(Message::text("Hello"))],
    );
}

#[test]
fn single_frame_unmasked_text_encodes_as_server() {
    let mut server = server();
    server.send(Message::text("Hello")).unwrap();
    assert_eq!(drain(&mut server), HELLO_UNMASKED);
}

#[test]
fn single_frame_masked_text_decodes_in_server_role() {
    decode(
        Role::Server,
        &HELLO_MASKED,
        &[Event::Message(Message::text("Hello"))],
    );
}

#[test]
fn single_frame_masked_text_encodes_as_client() {
    let mut client = client();
    client.send(Message::text("Hello")).unwrap();
    assert_eq!(drain(&mut client), HELLO_MASKED);
    // The key is drawn per frame: the second frame uses the next draw.
    client.send(Message::text("Hello")).unwrap();
    assert_eq!(drain(&mut client), HELLO_MASKED);
}

#[test]
fn fragmented_unmasked_text_decodes_to_one_message() {
    let mut wire = HEL.to_vec();
    wire.extend_from_slice(&LO);
    decode(
        Role::Client,
        &wire,
        &[Event::Message(Message::text("Hello"))],
    );

    // Nothing after the first fragment alone.
    let mut client = client();
    let mut buf = BytesMut::from(&HEL[..]);
    assert_eq!(client.next_event(&mut buf), Ok(None));
    buf.extend_from_slice(&LO);
    assert_eq!(
        client.next_event(&mut buf),
        Ok(Some(Event::Message(Message::text("Hello"))))
    );
    assert_eq!(client.next_event(&mut buf), Ok(None));
}

#[test]
fn fragmented_unmasked_text_encodes_as_server() {
    let mut expected = HEL.to_vec();
    expected.extend_from_slice(&LO);

    let mut server = server();
    server.send_fragment(Message::text("Hel"), false).unwrap();
    server.send_fragment(Message::text("lo"), true).unwrap();
    assert_eq!(drain(&mut server), expected);

    // The same bytes from automatic fragmentation at 3 bytes per frame.
    let mut server = Connection::with_entropy(
        Role::Server,
        Config::default().with_max_send_frame_size(3),
        fixed,
    );
    server.send(Message::text("Hello")).unwrap();
    assert_eq!(drain(&mut server), expected);
}

#[test]
fn unmasked_ping_decodes_and_is_answered_with_the_rfc_masked_pong() {
    decode(
        Role::Client,
        &PING_UNMASKED,
        &[Event::Ping(Bytes::from_static(b"Hello"))],
    );
    // The client's automatic answer is the RFC's masked pong, byte for byte.
    let mut client = client();
    let mut buf = BytesMut::from(&PING_UNMASKED[..]);
    assert_eq!(
        ok_events(&mut client, &mut buf),
        [Event::Ping(Bytes::from_static(b"Hello"))]
    );
    assert_eq!(drain(&mut client), PONG_MASKED);
}

#[test]
fn unmasked_ping_encodes_as_server() {
    let mut server = server();
    server.ping(Bytes::from_static(b"Hello")).unwrap();
    assert_eq!(drain(&mut server), PING_UNMASKED);
}

#[test]
fn masked_pong_decodes_in_server_role() {
    decode(
        Role::Server,
        &PONG_MASKED,
        &[Event::Pong(Bytes::from_static(b"Hello"))],
    );
    // A pong needs no answer.
    let mut server = server();
    let mut buf = BytesMut::from(&PONG_MASKED[..]);
    ok_events(&mut server, &mut buf);
    assert!(!server.wants_write());
}

#[test]
fn masked_pong_encodes_as_client() {
    let mut client = client();
    client.pong(Bytes::from_static(b"Hello")).unwrap();
    assert_eq!(drain(&mut client), PONG_MASKED);
}

#[test]
fn binary_256_bytes_16_bit_length() {
    let (payload, wire) = binary_vector(256);
    decode(
        Role::Client,
        &wire,
        &[Event::Message(Message::binary(payload.clone()))],
    );
    let mut server = server();
    server.send(Message::binary(payload)).unwrap();
    assert_eq!(drain(&mut server), wire);
}

#[test]
fn binary_65536_bytes_64_bit_length() {
    let (payload, wire) = binary_vector(65536);
    let mut client = client();
    let mut buf = BytesMut::from(&wire[..]);
    assert_eq!(
        ok_events(&mut client, &mut buf),
        [Event::Message(Message::binary(payload.clone()))]
    );
    // Only the header plus part of the payload: nothing yet.
    let mut client = self::client();
    let mut buf = BytesMut::from(&wire[..10 + 65535]);
    assert_eq!(client.next_event(&mut buf), Ok(None));
    buf.extend_from_slice(&wire[10 + 65535..]);
    assert_eq!(
        client.next_event(&mut buf),
        Ok(Some(Event::Message(Message::binary(payload.clone()))))
    );

    let mut server = server();
    server.send(Message::binary(payload)).unwrap();
    assert_eq!(drain(&mut server), wire);
}

#[test]
fn masked_binary_256_and_65536_roundtrip_through_the_server() {
    for len in [256, 65536] {
        let (payload, _) = binary_vector(len);
        let mut client = client();
        client.send(Message::binary(payload.clone())).unwrap();
        let wire = drain(&mut client);
        let frames = parse_frames(&wire);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].header.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(frames[0].payload, payload);
        let mut server = server();
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(
            ok_events(&mut server, &mut buf),
            [Event::Message(Message::binary(payload))]
        );
    }
}

#[test]
fn close_frame_encodes_and_decodes() {
    let mut server = server();
    server.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(drain(&mut server), [0x88, 0x02, 0x03, 0xe8]);

    let mut client = client();
    let mut buf = BytesMut::from(&[0x88, 0x02, 0x03, 0xe8][..]);
    assert_eq!(
        ok_events(&mut client, &mut buf),
        [Event::Close(CloseFrame::new(CloseCode::NORMAL, ""))]
    );
    // The echoed close, masked with the RFC key.
    let code = [0x03 ^ 0x37, 0xe8 ^ 0xfa];
    assert_eq!(
        drain(&mut client),
        [0x88, 0x82, 0x37, 0xfa, 0x21, 0x3d, code[0], code[1]]
    );
}

fn header(fin: bool, opcode: OpCode, mask: Option<[u8; 4]>, payload_len: u64) -> FrameHeader {
    FrameHeader {
        fin,
        rsv: 0,
        opcode,
        mask,
        payload_len,
    }
}

#[test]
fn frame_header_parse_and_encode_on_the_rfc_vectors() {
    let (_, wire256) = binary_vector(256);
    let (_, wire64k) = binary_vector(65536);
    let cases: [(&[u8], FrameHeader, usize); 7] = [
        (&HELLO_UNMASKED, header(true, OpCode::Text, None, 5), 2),
        (
            &HELLO_MASKED,
            header(true, OpCode::Text, Some([0x37, 0xfa, 0x21, 0x3d]), 5),
            6,
        ),
        (&HEL, header(false, OpCode::Text, None, 3), 2),
        (&LO, header(true, OpCode::Continuation, None, 2), 2),
        (&PING_UNMASKED, header(true, OpCode::Ping, None, 5), 2),
        (&wire256, header(true, OpCode::Binary, None, 256), 4),
        (&wire64k, header(true, OpCode::Binary, None, 65536), 10),
    ];
    for (wire, expected, header_len) in cases {
        assert_eq!(
            FrameHeader::parse(wire),
            Ok(Some((expected, header_len))),
            "{expected:?}"
        );
        for cut in 0..header_len {
            assert_eq!(FrameHeader::parse(&wire[..cut]), Ok(None), "cut {cut}");
        }
        assert_eq!(expected.encoded_len(), header_len);
        let mut encoded = Vec::new();
        expected.encode(&mut encoded);
        assert_eq!(encoded, wire[..header_len]);
    }
    let pong = header(true, OpCode::Pong, Some([0x37, 0xfa, 0x21, 0x3d]), 5);
    assert_eq!(FrameHeader::parse(&PONG_MASKED), Ok(Some((pong, 6))));
    let mut encoded = BytesMut::new();
    pong.encode(&mut encoded);
    assert_eq!(encoded[..], PONG_MASKED[..6]);
}

#[test]
fn frame_header_rsv_bits_roundtrip() {
    for rsv in 0..8u8 {
        let h = FrameHeader {
            fin: rsv % 2 == 0,
            rsv,
            opcode: OpCode::Binary,
            mask: None,
            payload_len: 1,
        };
        let mut encoded = Vec::new();
        h.encode(&mut encoded);
        assert_eq!(encoded[0] & 0x70, rsv << 4);
        assert_eq!(FrameHeader::parse(&encoded), Ok(Some((h, 2))));
    }
}

#[test]
fn opcodes_roundtrip() {
    for bits in 0u8..16 {
        match OpCode::from_u8(bits) {
            Ok(op) => {
                assert!(matches!(bits, 0 | 1 | 2 | 8 | 9 | 10));
                assert_eq!(op.as_u8(), bits);
                assert_eq!(op.is_control(), bits >= 8);
            }
            Err(e) => {
                assert_eq!(e, ws_proto::ProtocolError::ReservedOpcode(bits));
                assert_eq!(e.close_code(), CloseCode::PROTOCOL_ERROR);
            }
        }
    }
}
