//! permessage-deflate (RFC 7692): the section 7.2.3 examples byte for byte,
//! negotiation tables for both roles, round trips under every parameter
//! combination, and hostile input (RSV1 misuse, corrupt data, bombs).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proptest::{prelude::*, sample::Index};
use ws_proto::{
    AcceptOptions, ClientHandshake, ClientRequest, Config, Connection, DeflateConfig, DeflateError,
    DeflateParams, DeflatePolicy, Event, HandshakeConfig, HandshakeError, Message, Negotiated,
    ProtocolError, Role, ServerHandshake,
};

use crate::util::{
    TEST_KEY, assert_failed, counter_entropy, drain, events, fixed, ok_events, parse_frames,
    raw_frame,
};

// ----- Helpers -----

/// A connection of `role` that runs deflate with `params` (no handshake).
fn deflate_conn(role: Role, config: Config, params: DeflateParams) -> Connection {
    let negotiated = Negotiated::new(None, vec!["permessage-deflate".into()]).with_deflate(params);
    Connection::with_entropy(role, config, counter_entropy()).with_negotiated(negotiated)
}

/// Parameters: both directions with `bits`, takeover as given.
fn params(bits: u8, takeover: bool) -> DeflateParams {
    DeflateParams::new(&DeflateConfig::default(), bits, bits, takeover, takeover)
}

/// Feeds server-to-client `wire` to a deflate client and returns its events.
fn client_receives(wire: &[u8]) -> Vec<Event> {
    let mut client = deflate_conn(Role::Client, Config::default(), params(15, true));
    ok_events(&mut client, &mut BytesMut::from(wire))
}

fn text(s: &str) -> Event {
    Event::Message(Message::text(s))
}

// ----- RFC 7692 section 7.2.3 -----

#[test]
fn rfc7692_7_2_3_1_a_message_compressed_in_one_frame() {
    let wire = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(client_receives(&wire), [text("Hello")]);
}

#[test]
fn rfc7692_7_2_3_2_sharing_the_lz77_window() {
    let first = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let second = [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00];
    assert_eq!(
        client_receives(&[&first[..], &second[..]].concat()),
        [text("Hello"), text("Hello")]
    );
    // Without context takeover the second refers to a window we dropped.
    let mut client = deflate_conn(Role::Client, Config::default(), params(15, false));
    let mut buf = BytesMut::from(&[&first[..], &second[..]].concat()[..]);
    assert_failed(&mut client, &mut buf, 1007);
}

#[test]
fn rfc7692_7_2_3_3_an_uncompressed_deflate_block() {
    let wire = [
        0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(client_receives(&wire), [text("Hello")]);
}

#[test]
fn rfc7692_7_2_3_4_a_block_with_bfinal() {
    let wire = [0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(client_receives(&wire), [text("Hello")]);
    // The next message starts a new stream, still with the window.
    let second = [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00];
    assert_eq!(
        client_receives(&[&wire[..], &second[..]].concat()),
        [text("Hello"), text("Hello")]
    );
}

#[test]
fn rfc7692_7_2_3_5_a_fragmented_compressed_message() {
    let wire = [
        0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(client_receives(&wire), [text("Hello")]);
    // Any split of the wire bytes gives the same message.
    for cut in 0..=wire.len() {
        let mut client = deflate_conn(Role::Client, Config::default(), params(15, true));
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut seen = ok_events(&mut client, &mut buf);
        buf.extend_from_slice(&wire[cut..]);
        seen.extend(ok_events(&mut client, &mut buf));
        assert_eq!(seen, [text("Hello")], "cut at {cut}");
    }
}

#[test]
fn our_compressor_writes_the_rfc_bytes_for_hello() {
    // Context takeover: the first "Hello" is the 7.2.3.1 bytes, the second
    // refers back to it (7.2.3.2). With takeover every message at or above
    // the threshold goes out compressed, even one that grew: it is already
    // in the compressor's window, so it must be in the peer's too.
    let server_with = |takeover: bool| {
        // The RFC's bytes are zlib's at its default level (6).
        let d = DeflateConfig::default().with_min_size(0).with_level(6);
        deflate_conn(
            Role::Server,
            Config::default(),
            DeflateParams::new(&d, 15, 15, takeover, takeover),
        )
    };
    let mut server = server_with(true);
    server.send(Message::text("Hello")).unwrap();
    assert_eq!(
        drain(&mut server),
        [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
    );
    server.send_fragment(Message::text("Hello"), true).unwrap();
    assert_eq!(
        drain(&mut server),
        [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]
    );
    // Without takeover, a whole "Hello" that compresses to 7 bytes, more
    // than its 5, is sent uncompressed (RFC 7692 allows either);
    // `send_fragment` always compresses.
    let mut server = server_with(false);
    server.send(Message::text("Hello")).unwrap();
    assert_eq!(
        drain(&mut server),
        [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']
    );
    for _ in 0..2 {
        server.send_fragment(Message::text("Hello"), true).unwrap();
        assert_eq!(
            drain(&mut server),
            [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
        );
    }
}

// ----- RSV1 rules and hostile data (RFC 7692 section 6) -----

#[test]
fn rsv1_is_refused_without_deflate() {
    let mut client = Connection::with_entropy(Role::Client, Config::default(), fixed);
    let mut buf = BytesMut::from(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00][..]);
    assert_eq!(
        assert_failed(&mut client, &mut buf, 1002),
        ProtocolError::ReservedBits(4)
    );
}

#[test]
fn rsv1_on_a_continuation_or_control_frame_fails_with_1002() {
    let cases: [&[u8]; 4] = [
        // RSV1 on the continuation of a compressed message.
        &[
            0x41, 0x03, 0xf2, 0x48, 0xcd, 0xc0, 0x04, 0xc9, 0xc9, 0x07, 0x00,
        ],
        // RSV1 on a continuation of an uncompressed message.
        &[0x01, 0x01, b'a', 0xc0, 0x01, b'b'],
        // RSV1 on a ping, and on a close.
        &[0xc9, 0x00],
        &[0xc8, 0x02, 0x03, 0xe8],
    ];
    for wire in cases {
        let mut client = deflate_conn(Role::Client, Config::default(), params(15, true));
        let mut buf = BytesMut::from(wire);
        assert_failed(&mut client, &mut buf, 1002);
    }
    // RSV2 and RSV3 stay reserved.
    for first in [0xa1, 0x91] {
        let mut client = deflate_conn(Role::Client, Config::default(), params(15, true));
        let mut buf = BytesMut::from(&[first, 0x01, b'a'][..]);
        assert_failed(&mut client, &mut buf, 1002);
    }
}

#[test]
fn uncompressed_messages_are_still_accepted() {
    let wire = [0x81, 0x02, b'h', b'i', 0x01, 0x01, b'a', 0x80, 0x01, b'b'];
    assert_eq!(client_receives(&wire), [text("hi"), text("ab")]);
}

#[test]
fn corrupt_deflate_data_fails_with_1007() {
    // Block type 3 is reserved in RFC 1951.
    let mut client = deflate_conn(Role::Client, Config::default(), params(15, true));
    let mut buf = BytesMut::from(&[0xc2, 0x02, 0xff, 0xff][..]);
    assert_eq!(
        assert_failed(&mut client, &mut buf, 1007),
        ProtocolError::InvalidCompressedData
    );
}

#[test]
fn invalid_utf8_inside_compressed_text_fails_with_1007() {
    // A stored block holding 0xff.
    let wire = [0xc1, 0x07, 0x00, 0x01, 0x00, 0xfe, 0xff, 0xff, 0x00];
    let mut client = deflate_conn(Role::Client, Config::default(), params(15, true));
    let mut buf = BytesMut::from(&wire[..]);
    assert_eq!(
        assert_failed(&mut client, &mut buf, 1007),
        ProtocolError::InvalidUtf8
    );
}

/// Raw deflate of `data` (zlib level 9, sync flush, tail dropped), as a
/// peer would send it.
fn compress(data: &[u8]) -> Vec<u8> {
    let mut server = deflate_conn(
        Role::Server,
        Config::default().with_max_send_frame_size(usize::MAX),
        DeflateParams::new(
            &DeflateConfig::default().with_level(9),
            15,
            15,
            false,
            false,
        ),
    );
    server.send(Message::binary(data.to_vec())).unwrap();
    let wire = drain(&mut server);
    let frames = parse_frames(&wire);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].header.rsv, 4, "compressed");
    frames[0].payload.clone()
}

#[test]
fn a_deflate_bomb_stops_at_max_message_size_with_1009() {
    const MIB: usize = 1 << 20;
    // 100 MiB of zeros: 1 MiB compressed by a fresh context (a literal 0,
    // then matches one byte back) and sync-flushed is a valid piece of
    // stream anywhere after another, so 100 copies inflate to 100 MiB.
    let mut piece = compress(&vec![0u8; MIB]);
    piece.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    let mut bomb = piece.repeat(100);
    bomb.truncate(bomb.len() - 4);
    assert!(bomb.len() < 200 * 1024, "{}", bomb.len());
    // The same stream, unbounded, really is 100 MiB.
    let mut unbounded = deflate_conn(
        Role::Client,
        Config::default()
            .with_max_message_size(usize::MAX)
            .with_max_frame_size(usize::MAX),
        params(15, true),
    );
    let mut buf = BytesMut::from(&raw_frame(true, 4, 2, None, &bomb)[..]);
    match unbounded.next_event(&mut buf) {
        Ok(Some(Event::Message(m))) => assert_eq!(m.len(), 100 * MIB),
        other => panic!("{other:?}"),
    }
    let limit = MIB;
    let config = Config::default().with_max_message_size(limit);
    // As one frame, and as many small fragments.
    for fragment in [bomb.len(), 4096] {
        let mut server = deflate_conn(Role::Server, config.clone(), params(15, true));
        let mut buf = BytesMut::new();
        let pieces: Vec<&[u8]> = bomb.chunks(fragment).collect();
        let mut result: Result<(), ProtocolError> = Ok(());
        for (i, piece) in pieces.iter().enumerate() {
            let (fin, opcode, rsv) = (
                i + 1 == pieces.len(),
                if i == 0 { 2 } else { 0 },
                if i == 0 { 4 } else { 0 },
            );
            buf.extend_from_slice(&raw_frame(fin, rsv, opcode, Some(TEST_KEY), piece));
            let (_, error) = events(&mut server, &mut buf);
            // While the bomb inflates, what the connection holds stays
            // within the limit (and the deflate state).
            assert!(server.buffered_message_len() <= 2 * limit + 1);
            if let Some(error) = error {
                result = Err(error);
                break;
            }
        }
        match result {
            Err(ProtocolError::MessageTooBig { len, max }) => {
                assert_eq!(max, limit);
                assert_eq!(len, limit as u64 + 1, "stopped one byte past the limit");
            }
            other => panic!("expected 1009, got {other:?}"),
        }
        assert_failed(&mut server, &mut buf, 1009);
    }
}

// ----- Negotiation -----

fn hs_config(deflate: DeflateConfig) -> HandshakeConfig {
    HandshakeConfig::default().with_deflate(deflate)
}

/// The client's `Sec-WebSocket-Extensions` request line, if any.
fn offer_line(deflate: DeflateConfig) -> Option<String> {
    let request = ClientRequest::new("ws://h/").unwrap();
    let hs = ClientHandshake::with_entropy(&request, &mut fixed)
        .unwrap()
        .with_config(hs_config(deflate));
    let text = String::from_utf8(hs.request().to_vec()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
        .map(str::to_string)
}

#[test]
fn client_offers_follow_the_configuration() {
    let d = DeflateConfig::default();
    assert_eq!(offer_line(DeflateConfig::OFF), None);
    assert_eq!(
        offer_line(d).as_deref(),
        Some(
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits, \
             permessage-deflate; client_max_window_bits"
        )
    );
    assert_eq!(
        offer_line(d.with_window_bits(15, 15)).as_deref(),
        Some("permessage-deflate; client_max_window_bits")
    );
    assert_eq!(
        offer_line(
            d.with_window_bits(10, 15)
                .with_no_context_takeover(true, true)
        )
        .as_deref(),
        Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             client_max_window_bits"
        )
    );
}

/// A server with `deflate` answers `offers`: the answer header and the
/// parameters, or the accept error.
fn server_answers(
    deflate: DeflateConfig,
    offers: &str,
) -> Result<(Option<String>, Option<DeflateParams>), HandshakeError> {
    let head = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {offers}\r\n\r\n"
    );
    let mut buf = BytesMut::from(head.as_bytes());
    let request = ServerHandshake::with_config(hs_config(deflate))
        .receive(&mut buf)
        .unwrap()
        .unwrap();
    let accepted = request.accept(&AcceptOptions::new())?;
    let answer = accepted
        .headers()
        .iter()
        .find(|(n, _)| n == "Sec-WebSocket-Extensions")
        .map(|(_, v)| v.clone());
    Ok((answer, accepted.negotiated().deflate().copied()))
}

#[test]
fn server_answers_each_parameter_combination() {
    let d = DeflateConfig::default(); // 12 / 12, takeover both ways
    let p = |send, recv, send_takeover, recv_takeover| {
        Some(DeflateParams::new(
            &d,
            send,
            recv,
            send_takeover,
            recv_takeover,
        ))
    };
    // (offer, answer, params: server sends with, receives with, takeovers)
    let table: &[(&str, Option<&str>, Option<DeflateParams>)] = &[
        (
            "permessage-deflate",
            Some("permessage-deflate"),
            p(12, 15, true, true),
        ),
        (
            "permessage-deflate; client_max_window_bits",
            Some("permessage-deflate; client_max_window_bits=12"),
            p(12, 12, true, true),
        ),
        (
            "permessage-deflate; client_max_window_bits=10",
            Some("permessage-deflate; client_max_window_bits=10"),
            p(12, 10, true, true),
        ),
        (
            "permessage-deflate; client_max_window_bits=8",
            Some("permessage-deflate; client_max_window_bits=8"),
            p(12, 8, true, true),
        ),
        (
            "permessage-deflate; server_max_window_bits=10",
            Some("permessage-deflate; server_max_window_bits=10"),
            p(10, 15, true, true),
        ),
        (
            "permessage-deflate; server_max_window_bits=15",
            Some("permessage-deflate; server_max_window_bits=12"),
            p(12, 15, true, true),
        ),
        (
            "permessage-deflate; server_no_context_takeover",
            Some("permessage-deflate; server_no_context_takeover"),
            p(12, 15, false, true),
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            Some("permessage-deflate; client_no_context_takeover"),
            p(12, 15, true, false),
        ),
        (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=9; client_max_window_bits=9",
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=9; client_max_window_bits=9",
            ),
            p(9, 9, false, false),
        ),
        // Quoted values and any case of parameter names.
        (
            "permessage-deflate; Server_Max_Window_Bits=\"11\"",
            Some("permessage-deflate; server_max_window_bits=11"),
            p(11, 15, true, true),
        ),
        // 8 would bind our compressor: declined, the next offer taken.
        (
            "permessage-deflate; server_max_window_bits=8, permessage-deflate",
            Some("permessage-deflate"),
            p(12, 15, true, true),
        ),
        ("permessage-deflate; server_max_window_bits=8", None, None),
        // Malformed, duplicate, out-of-range and unknown: declined.
        ("permessage-deflate; server_max_window_bits", None, None),
        ("permessage-deflate; server_max_window_bits=16", None, None),
        ("permessage-deflate; client_max_window_bits=7", None, None),
        ("permessage-deflate; client_max_window_bits=010", None, None),
        (
            "permessage-deflate; server_no_context_takeover=1",
            None,
            None,
        ),
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            None,
            None,
        ),
        (
            "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
            None,
            None,
        ),
        ("permessage-deflate; x-unknown", None, None),
        ("x-other; server_max_window_bits=10", None, None),
        // The first acceptable offer wins.
        (
            "permessage-deflate; bogus, permessage-deflate; client_max_window_bits=11, permessage-deflate",
            Some("permessage-deflate; client_max_window_bits=11"),
            p(12, 11, true, true),
        ),
    ];
    for (offer, answer, params) in table {
        let got = server_answers(d, offer).unwrap();
        assert_eq!(
            (got.0.as_deref(), got.1),
            (*answer, *params),
            "offer {offer:?}"
        );
    }
    // The server's own no-takeover settings are announced unasked.
    let got = server_answers(d.with_no_context_takeover(true, true), "permessage-deflate").unwrap();
    assert_eq!(
        got.0.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    // Off: offers are ignored.
    assert_eq!(
        server_answers(DeflateConfig::OFF, "permessage-deflate").unwrap(),
        (None, None)
    );
}

#[test]
fn a_server_that_requires_deflate_rejects_without_an_acceptable_offer() {
    let require = DeflateConfig::default().with_policy(DeflatePolicy::Require);
    let error = server_answers(require, "permessage-deflate; x=1").unwrap_err();
    assert_eq!(error, HandshakeError::Deflate(DeflateError::Required));
    assert_eq!(error.status(), Some(400));
    assert!(error.response().unwrap().starts_with(b"HTTP/1.1 400"));
    assert!(
        server_answers(require, "permessage-deflate")
            .unwrap()
            .1
            .is_some()
    );
}

/// What a client makes of an answer: the parameters, none, or the error.
type Checked = Result<Option<DeflateParams>, HandshakeError>;

/// A client with `deflate` checks a 101 answer carrying `answer`.
fn client_checks(deflate: DeflateConfig, answer: Option<&str>) -> Checked {
    let request = ClientRequest::new("ws://h/").unwrap();
    let mut hs = ClientHandshake::with_entropy(&request, &mut fixed)
        .unwrap()
        .with_config(hs_config(deflate));
    // The accept key for a nonce of 16 bytes of 0x37.
    let key = ws_proto::accept_key(b"Nzc3Nzc3Nzc3Nzc3Nzc3Nw==");
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {key}\r\n"
    );
    if let Some(answer) = answer {
        head.push_str(&format!("Sec-WebSocket-Extensions: {answer}\r\n"));
    }
    head.push_str("\r\n");
    let response = hs.receive(&mut BytesMut::from(head.as_bytes()))?.unwrap();
    let negotiated = response.negotiated();
    assert_eq!(negotiated.deflate().copied(), response.deflate);
    Ok(response.deflate)
}

#[test]
fn client_checks_each_answer_strictly() {
    let d = DeflateConfig::default(); // asks for a server window of 12, with a fallback without
    let p = |send, recv, send_takeover, recv_takeover| {
        Ok(Some(DeflateParams::new(
            &d,
            send,
            recv,
            send_takeover,
            recv_takeover,
        )))
    };
    let err = |e: DeflateError| Err(HandshakeError::Deflate(e));
    let table: Vec<(Option<&str>, Checked)> = vec![
        (None, Ok(None)),
        (Some("permessage-deflate"), p(12, 15, true, true)),
        (
            Some("permessage-deflate; server_max_window_bits=12"),
            p(12, 12, true, true),
        ),
        (
            Some("permessage-deflate; server_max_window_bits=8"),
            p(12, 8, true, true),
        ),
        (
            Some("permessage-deflate; client_max_window_bits=10"),
            p(10, 15, true, true),
        ),
        (
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            p(12, 15, false, false),
        ),
        (
            Some("PerMessage-Deflate; Server_Max_Window_Bits=\"9\""),
            p(12, 9, true, true),
        ),
        // We offer client_max_window_bits without a value: a limit above
        // our own window (Autobahn 13.4 answers 15) leaves us at ours.
        (
            Some("permessage-deflate; client_max_window_bits=15"),
            p(12, 15, true, true),
        ),
        // Hostile or broken answers.
        (
            Some("permessage-deflate; client_max_window_bits=8"),
            err(DeflateError::UnsupportedWindowBits(8)),
        ),
        (
            Some("permessage-deflate; client_max_window_bits"),
            err(DeflateError::InvalidValue("client_max_window_bits".into())),
        ),
        (
            Some("permessage-deflate; server_max_window_bits=16"),
            err(DeflateError::InvalidValue("server_max_window_bits".into())),
        ),
        (
            Some("permessage-deflate; server_max_window_bits=ab"),
            err(DeflateError::InvalidValue("server_max_window_bits".into())),
        ),
        (
            Some("permessage-deflate; server_max_window_bits"),
            err(DeflateError::InvalidValue("server_max_window_bits".into())),
        ),
        (
            Some("permessage-deflate; server_no_context_takeover=yes"),
            err(DeflateError::InvalidValue(
                "server_no_context_takeover".into(),
            )),
        ),
        (
            Some("permessage-deflate; foo"),
            err(DeflateError::UnknownParameter("foo".into())),
        ),
        (
            Some("permessage-deflate; client_no_context_takeover; client_no_context_takeover"),
            err(DeflateError::DuplicateParameter(
                "client_no_context_takeover".into(),
            )),
        ),
        (
            Some("permessage-deflate, permessage-deflate"),
            err(DeflateError::DuplicateExtension),
        ),
        (
            Some("x-unoffered"),
            Err(HandshakeError::UnofferedExtension("x-unoffered".into())),
        ),
    ];
    for (answer, expected) in table {
        assert_eq!(client_checks(d, answer), expected, "answer {answer:?}");
    }
    // A client without the server limit in its offer accepts any window;
    // one that asked the server not to take over insists on the answer.
    let asked = d.with_no_context_takeover(false, true);
    assert_eq!(
        client_checks(asked, Some("permessage-deflate")),
        err(DeflateError::NotOffered(
            "server_no_context_takeover".into()
        ))
    );
    let require = d.with_policy(DeflatePolicy::Require);
    assert_eq!(client_checks(require, None), err(DeflateError::Required));
    // Off: the answer is an unoffered extension.
    assert!(matches!(
        client_checks(DeflateConfig::OFF, Some("permessage-deflate")),
        Err(HandshakeError::UnofferedExtension(_))
    ));
}

#[test]
fn a_full_handshake_hands_the_parameters_to_both_connections() {
    let config = hs_config(DeflateConfig::default().with_min_size(0));
    let request = ClientRequest::new("ws://h/").unwrap();
    let mut client_hs = ClientHandshake::with_entropy(&request, &mut fixed)
        .unwrap()
        .with_config(config.clone());
    let mut to_server = BytesMut::from(client_hs.request());
    let server_req = ServerHandshake::with_config(config)
        .receive(&mut to_server)
        .unwrap()
        .unwrap();
    let accepted = server_req.accept(&AcceptOptions::new()).unwrap();
    let mut to_client = BytesMut::from(accepted.response());
    let response = client_hs.receive(&mut to_client).unwrap().unwrap();
    let mut client = response.connection_with_entropy(Config::default(), fixed);
    let mut server = accepted.connection(Config::default());
    let (c, s) = (*client.deflate().unwrap(), *server.deflate().unwrap());
    assert_eq!((c.send_window_bits(), c.receive_window_bits()), (12, 12));
    assert_eq!((s.send_window_bits(), s.receive_window_bits()), (12, 12));
    assert!(
        server.deflate_heap_size() == 0,
        "nothing allocated before traffic"
    );

    let text = "hello hello hello hello hello hello hello";
    client.send(Message::text(text)).unwrap();
    let wire = drain(&mut client);
    assert_eq!(wire[0], 0xc1, "compressed, RSV1 set");
    assert!(wire.len() < text.len());
    let events = ok_events(&mut server, &mut BytesMut::from(&wire[..]));
    assert_eq!(events, [Event::Message(Message::text(text))]);
    // The opt-out.
    server.send_uncompressed(Message::text(text)).unwrap();
    let wire = drain(&mut server);
    assert_eq!(wire[0], 0x81);
    assert_eq!(
        ok_events(&mut client, &mut BytesMut::from(&wire[..])),
        [Event::Message(Message::text(text))]
    );
}

// ----- Round trips -----

fn message(text: bool, data: &[u8]) -> Message {
    if text {
        Message::text(String::from_utf8_lossy(data).into_owned())
    } else {
        Message::binary(Bytes::copy_from_slice(data))
    }
}

/// Compressible bytes: words from a small alphabet, with some noise.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![3 => 0u8..8, 1 => any::<u8>()], 0..3000).prop_map(|v| {
        v.into_iter()
            .map(|b| if b < 8 { b"abc defg"[b as usize] } else { b })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any messages survive compress-then-inflate in both directions, with
    /// every window size and takeover setting, whole or fragmented, and any
    /// split of the wire bytes gives the same messages.
    #[test]
    fn messages_survive_every_parameter_combination(
        client_bits in 9u8..=15,
        server_bits in 9u8..=15,
        client_takeover: bool,
        server_takeover: bool,
        release_contexts: bool,
        frame_size in prop_oneof![Just(usize::MAX), 1usize..300],
        messages in prop::collection::vec((any::<bool>(), payload(), 0usize..4), 1..6),
        cuts in prop::collection::vec(any::<Index>(), 0..4),
    ) {
        // Contexts kept for the connection's life, or freed after every
        // message and chunk (then rebuilt from the kept windows).
        let release = release_contexts.then_some(Duration::ZERO);
        let d = DeflateConfig::default().with_min_size(0).with_release_contexts_after(release);
        let config = Config::default().with_max_send_frame_size(frame_size);
        for from in [Role::Client, Role::Server] {
            let (send_bits, recv_bits, send_t, recv_t) = match from {
                Role::Client => (client_bits, server_bits, client_takeover, server_takeover),
                Role::Server => (server_bits, client_bits, server_takeover, client_takeover),
            };
            let mut sender = deflate_conn(from, config.clone(), DeflateParams::new(&d, send_bits, recv_bits, send_t, recv_t));
            let to = if from == Role::Client { Role::Server } else { Role::Client };
            let mut receiver = deflate_conn(to, Config::default(), DeflateParams::new(&d, recv_bits, send_bits, recv_t, send_t));
            let mut expected = Vec::new();
            for (is_text, data, pieces) in &messages {
                let m = message(*is_text, data);
                if *pieces == 0 {
                    sender.send(m.clone()).unwrap();
                } else {
                    // Split on char boundaries for text.
                    let s = Bytes::copy_from_slice(m.as_bytes());
                    let mut start = 0;
                    for i in 1..=*pieces {
                        let mut end = if i == *pieces { s.len() } else { s.len() * i / pieces };
                        if *is_text {
                            let text = core::str::from_utf8(&s).unwrap();
                            while !text.is_char_boundary(end) { end += 1; }
                        }
                        let end = end.max(start);
                        let part = s.slice(start..end);
                        let piece = if *is_text { Message::Text(ws_proto::Utf8Bytes::try_from_bytes(part).unwrap()) } else { Message::Binary(part) };
                        sender.send_fragment(piece, i == *pieces).unwrap();
                        start = end;
                    }
                }
                expected.push(Event::Message(m));
                if release_contexts { go_idle(&mut sender); }
            }
            let wire = drain(&mut sender);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.sort_unstable();
            points.push(wire.len());
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut at = 0;
            for p in points {
                buf.extend_from_slice(&wire[at..p]);
                at = p;
                got.extend(ok_events(&mut receiver, &mut buf));
                if release_contexts { go_idle(&mut receiver); }
            }
            prop_assert_eq!(got, expected);
        }
    }
}

#[test]
fn an_8_bit_receive_window_inflates_what_a_9_bit_compressor_sends() {
    // zlib-rs compresses with 9 bits at least, but its matches reach back
    // at most 2^9 - 262 = 250 bytes, within an 8-bit window.
    let d = DeflateConfig::default().with_min_size(0);
    let mut server = deflate_conn(
        Role::Server,
        Config::default(),
        DeflateParams::new(&d, 9, 8, true, true),
    );
    let mut client = deflate_conn(
        Role::Client,
        Config::default(),
        DeflateParams::new(&d, 8, 9, true, true),
    );
    let texts: Vec<String> = (0..20)
        .map(|i| {
            format!(
                "{i} the quick brown fox {} jumps over the lazy dog {i}",
                "ab".repeat(i * 7)
            )
        })
        .collect();
    for text in &texts {
        client.send(Message::text(text.clone())).unwrap();
    }
    let wire = drain(&mut client);
    let expected: Vec<Event> = texts
        .iter()
        .map(|t| Event::Message(Message::text(t.clone())))
        .collect();
    assert_eq!(
        ok_events(&mut server, &mut BytesMut::from(&wire[..])),
        expected
    );
}

#[test]
fn the_close_handshake_frees_the_deflate_state() {
    let p = params(12, true);
    let mut client = deflate_conn(Role::Client, Config::default(), p);
    let mut server = deflate_conn(Role::Server, Config::default(), p);
    let text = "a message long enough to be compressed, a message long enough to be compressed";
    client.send(Message::text(text)).unwrap();
    let mut to_server = BytesMut::from(&drain(&mut client)[..]);
    assert_eq!(ok_events(&mut server, &mut to_server).len(), 1);
    server.send(Message::text(text)).unwrap();
    let mut to_client = BytesMut::from(&drain(&mut server)[..]);
    assert_eq!(ok_events(&mut client, &mut to_client).len(), 1);
    // With takeover each keeps a 4 KiB window per direction, and its
    // contexts until the connection goes idle or closes.
    assert!(client.deflate_heap_size() > 100 << 10);
    go_idle(&mut client);
    go_idle(&mut server);
    assert_eq!(client.deflate_heap_size(), 2 * 4096);
    assert_eq!(server.deflate_heap_size(), 2 * 4096);
    client.close(ws_proto::CloseCode::NORMAL, "").unwrap();
    assert_eq!(client.deflate_heap_size(), 4096, "the send side is freed");
    let mut to_server = BytesMut::from(&drain(&mut client)[..]);
    ok_events(&mut server, &mut to_server);
    assert_eq!(server.deflate_heap_size(), 0, "closed both ways");
    let mut to_client = BytesMut::from(&drain(&mut server)[..]);
    ok_events(&mut client, &mut to_client);
    assert_eq!(client.deflate_heap_size(), 0);
}

/// Runs a full handshake between a client and a server configured with
/// `client` and `server`; returns both connections (or `None` when the
/// handshake declined deflate).
fn handshake_pair(client: DeflateConfig, server: DeflateConfig) -> (Connection, Connection) {
    let request = ClientRequest::new("ws://h/").unwrap();
    let mut client_hs = ClientHandshake::with_entropy(&request, &mut fixed)
        .unwrap()
        .with_config(hs_config(client));
    let mut to_server = BytesMut::from(client_hs.request());
    let server_req = ServerHandshake::with_config(hs_config(server))
        .receive(&mut to_server)
        .unwrap()
        .unwrap();
    let accepted = server_req.accept(&AcceptOptions::new()).unwrap();
    let mut to_client = BytesMut::from(accepted.response());
    let response = client_hs
        .receive(&mut to_client)
        .unwrap_or_else(|e| panic!("{client:?} / {server:?}: {e}"))
        .unwrap();
    (
        response.connection_with_entropy(Config::default(), counter_entropy()),
        accepted.connection(Config::default()),
    )
}

#[test]
fn every_pair_of_configurations_agrees_and_interoperates() {
    let configs: Vec<DeflateConfig> = [9u8, 12, 15]
        .iter()
        .flat_map(|&c| [9u8, 12, 15].map(move |s| (c, s)))
        .flat_map(|(c, s)| {
            [(false, false), (true, false), (false, true), (true, true)].map(move |(ct, st)| {
                DeflateConfig::default()
                    .with_min_size(0)
                    .with_window_bits(c, s)
                    .with_no_context_takeover(ct, st)
            })
        })
        .collect();
    let texts = [
        "Hello, hello, hello, hello!",
        "Hello again, hello again, hello!",
    ];
    for &client_cfg in &configs {
        for &server_cfg in &configs {
            let (mut client, mut server) = handshake_pair(client_cfg, server_cfg);
            let (c, s) = (*client.deflate().unwrap(), *server.deflate().unwrap());
            let case = format!("{client_cfg:?} / {server_cfg:?}: {c:?} / {s:?}");
            // Each compresses with no more than the other accepts, and
            // keeps its context only if the other keeps the window.
            assert!(c.send_window_bits() <= s.receive_window_bits(), "{case}");
            assert!(s.send_window_bits() <= c.receive_window_bits(), "{case}");
            assert!(
                !c.send_context_takeover() || s.receive_context_takeover(),
                "{case}"
            );
            assert!(
                !s.send_context_takeover() || c.receive_context_takeover(),
                "{case}"
            );
            // Each side's own limits hold.
            assert!(
                c.send_window_bits() <= client_cfg.client_max_window_bits,
                "{case}"
            );
            assert!(
                s.send_window_bits() <= server_cfg.server_max_window_bits,
                "{case}"
            );
            // Our client always offers client_max_window_bits and, first,
            // its server_max_window_bits: our server honours both.
            assert!(
                c.receive_window_bits() <= client_cfg.server_max_window_bits,
                "{case}"
            );
            assert!(
                s.receive_window_bits() <= server_cfg.client_max_window_bits,
                "{case}"
            );
            if client_cfg.client_no_context_takeover {
                assert!(!c.send_context_takeover(), "{case}");
            }
            if client_cfg.server_no_context_takeover || server_cfg.server_no_context_takeover {
                assert!(!s.send_context_takeover(), "{case}");
            }
            for t in texts {
                client.send(Message::text(t)).unwrap();
                server.send(Message::text(t)).unwrap();
            }
            let expected: Vec<Event> = texts.iter().map(|t| text(t)).collect();
            let mut to_server = BytesMut::from(&drain(&mut client)[..]);
            let mut to_client = BytesMut::from(&drain(&mut server)[..]);
            assert_eq!(ok_events(&mut server, &mut to_server), expected, "{case}");
            assert_eq!(ok_events(&mut client, &mut to_client), expected, "{case}");
        }
    }
}

/// Lets the connection's timer run as if the clock moved on with no
/// traffic: idle compression contexts are freed (twice, because the first
/// expiry only notes that they were used).
fn go_idle(conn: &mut Connection) {
    let mut now = Duration::ZERO;
    for _ in 0..2 {
        if let Some(deadline) = conn.poll_timeout(now) {
            now = now.max(deadline);
            conn.handle_timeout(now);
        }
    }
}

#[test]
fn contexts_live_while_busy_and_are_freed_once_idle() {
    const SECOND: Duration = Duration::from_secs(1);
    let d = DeflateConfig::default()
        .with_min_size(0)
        .with_release_contexts_after(Some(SECOND));
    let p = DeflateParams::new(&d, 12, 12, true, true);
    let mut server = deflate_conn(Role::Server, Config::default(), p);
    let mut client = deflate_conn(Role::Client, Config::default(), p);
    assert!(!server.has_timers(), "no context yet, so no timer");
    let text = "the deploy is done, can you check latency on staging? ".repeat(8);
    let echo = |server: &mut Connection, client: &mut Connection| {
        client.send(Message::text(text.as_str())).unwrap();
        let mut wire = BytesMut::from(&drain(client)[..]);
        assert_eq!(
            ok_events(server, &mut wire),
            [Event::Message(Message::text(text.as_str()))]
        );
        server.send(Message::text(text.as_str())).unwrap();
        let mut wire = BytesMut::from(&drain(server)[..]);
        assert_eq!(
            ok_events(client, &mut wire),
            [Event::Message(Message::text(text.as_str()))]
        );
    };
    echo(&mut server, &mut client);
    let busy = server.deflate_heap_size();
    assert!(
        busy > 100 << 10,
        "a compressor and a decompressor: {busy} B"
    );
    assert!(server.has_timers());
    // Armed at 0 for 1 s; a message in the meantime keeps the contexts
    // through the first expiry, and the timer re-arms once, not per message.
    assert_eq!(server.poll_timeout(Duration::ZERO), Some(SECOND));
    echo(&mut server, &mut client);
    assert_eq!(server.poll_timeout(SECOND / 2), Some(SECOND));
    server.handle_timeout(SECOND);
    assert_eq!(server.deflate_heap_size(), busy, "used since armed: kept");
    assert_eq!(server.poll_timeout(SECOND), Some(2 * SECOND));
    server.handle_timeout(2 * SECOND);
    let idle = server.deflate_heap_size();
    assert_eq!(idle, 2 * 4096, "only the two 12-bit windows: {idle} B");
    assert!(!server.has_timers());
    assert_eq!(server.poll_timeout(2 * SECOND), None);
    // Fresh contexts primed with the windows: the peers still agree.
    for _ in 0..3 {
        echo(&mut server, &mut client);
        go_idle(&mut server);
        echo(&mut server, &mut client);
    }
}

#[test]
fn a_fragmented_message_keeps_its_contexts_through_the_timer() {
    let d = DeflateConfig::default()
        .with_min_size(0)
        .with_release_contexts_after(Some(Duration::ZERO));
    let p = DeflateParams::new(&d, 12, 12, true, true);
    let mut server = deflate_conn(Role::Server, Config::default(), p);
    let mut client = deflate_conn(Role::Client, Config::default(), p);
    client
        .send_fragment(Message::text("first half, "), false)
        .unwrap();
    let mut wire = BytesMut::from(&drain(&mut client)[..]);
    assert_eq!(ok_events(&mut server, &mut wire), []);
    for _ in 0..3 {
        go_idle(&mut client);
        go_idle(&mut server);
    }
    client
        .send_fragment(Message::text("second half"), true)
        .unwrap();
    let mut wire = BytesMut::from(&drain(&mut client)[..]);
    assert_eq!(
        ok_events(&mut server, &mut wire),
        [text("first half, second half")]
    );
}

/// Found by the `roundtrip` fuzz target: with a kept compressor, zlib skips
/// the sync flush of an empty message that follows another flush, so its
/// payload came out empty instead of 0x00 (RFC 7692 7.2.3.6); the receiver
/// then fed the tail alone to its kept decompressor, which broke the next
/// message. Now the sender writes 0x00, and a receiver treats a message of
/// no compressed bytes as empty.
#[test]
fn empty_messages_between_others_with_kept_contexts() {
    let d = DeflateConfig::default()
        .with_min_size(0)
        .with_level(0)
        .with_release_contexts_after(None);
    let config = Config::default().with_max_send_frame_size(1);
    let p = DeflateParams::new(&d, 11, 11, true, true);
    let mut client = deflate_conn(Role::Client, config.clone(), p);
    let mut server = deflate_conn(Role::Server, config, p);
    let texts = [
        "\u{6}\u{7}\u{8}\t\n",
        "",
        "",
        "\u{18}",
        "\u{1a}\u{1b}+,-.",
        "",
    ];
    for t in texts {
        client.send(Message::text(t)).unwrap();
    }
    let wire = drain(&mut client);
    let empty: Vec<_> = parse_frames(&wire)
        .into_iter()
        .filter(|f| f.header.rsv != 0 && f.header.fin)
        .map(|f| f.payload)
        .collect();
    assert_eq!(
        empty,
        vec![vec![0x00]; 3],
        "empty messages are 0x00 on the wire"
    );
    let events = ok_events(&mut server, &mut BytesMut::from(&wire[..]));
    assert_eq!(events, texts.map(text));

    // A peer that sends no bytes at all for an empty message.
    let mut server = deflate_conn(Role::Server, Config::default(), p);
    let mut wire = raw_frame(true, 0x4, 0x1, Some([1, 2, 3, 4]), b"");
    client.send(Message::text("after")).unwrap();
    wire.extend(drain(&mut client));
    let mut buf = BytesMut::from(&wire[..]);
    assert_eq!(ok_events(&mut server, &mut buf), [text(""), text("after")]);
}
