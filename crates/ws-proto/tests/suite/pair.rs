//! A client and a server talking through in-memory buffers: messages of every
//! size, fragmentation, ping/pong, the close handshake, and protocol errors
//! from both roles.

use core::time::Duration;

use bytes::{Bytes, BytesMut};
use ws_proto::internals::{FrameHeader, OpCode};
use ws_proto::{
    CloseCode, CloseFrame, Config, Event, Message, ProtocolError, Role, SendError, State,
};

use crate::util::{
    BINARY, CLOSE, CONT, PING, PONG, Pair, ROLES, TEST_KEY, TEXT, assert_failed, bytes_of_len,
    close_payload, conn, drain, fail_with, frame_to, mask_for, ok_events, parse_frames, peer_of,
    raw_frame, raw_header, text_of_len,
};

const SIZES: [usize; 6] = [0, 125, 126, 65535, 65536, 1 << 20];

fn message(text: bool, len: usize, seed: u64) -> Message {
    if text {
        Message::text(text_of_len(len, seed))
    } else {
        Message::binary(bytes_of_len(len, seed))
    }
}

/// The header length a frame of `len` payload bytes should use.
fn header_len(len: usize, masked: bool) -> usize {
    let base = match len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    };
    base + if masked { 4 } else { 0 }
}

/// Sends `message` from `from`, checks it went out as one frame with the
/// shortest length encoding, and that the peer receives it intact.
fn send_and_check(pair: &mut Pair, from: Role, message: &Message) {
    pair.conn(from).send(message.clone()).unwrap();
    pair.transfer();
    let to = peer_of(from);
    let wire = match to {
        Role::Server => &pair.to_server,
        Role::Client => &pair.to_client,
    };
    let (header, len) = FrameHeader::parse(wire).unwrap().unwrap();
    assert_eq!(len, header_len(message.len(), from == Role::Client));
    assert_eq!(header.payload_len, message.len() as u64);
    assert_eq!(wire.len(), len + message.len());
    assert!(header.fin);
    assert_eq!(
        header.opcode,
        if message.is_text() {
            OpCode::Text
        } else {
            OpCode::Binary
        }
    );
    assert_eq!(pair.events(to), [Event::Message(message.clone())]);
}

#[test]
fn echo_every_size_text_and_binary_both_directions() {
    let mut pair = Pair::new();
    for (i, &len) in SIZES.iter().enumerate() {
        for text in [true, false] {
            let message = message(text, len, i as u64 + 1);
            assert_eq!(message.len(), len);
            send_and_check(&mut pair, Role::Client, &message);
            send_and_check(&mut pair, Role::Server, &message);
        }
    }
    assert_eq!(pair.client.state(), State::Open);
    assert_eq!(pair.server.state(), State::Open);
    assert!(!pair.client.wants_write() && !pair.server.wants_write());
}

#[test]
fn fragments_from_send_fragment_both_directions() {
    for from in ROLES {
        let to = peer_of(from);
        let mut pair = Pair::new();
        let sender = pair.conn(from);
        sender.send_fragment(Message::text("Hel"), false).unwrap();
        sender.send_fragment(Message::text("lo wö"), false).unwrap();
        // Mixing types or sending a whole message in between is refused.
        assert_eq!(
            sender.send_fragment(Message::binary(vec![1]), false),
            Err(SendError::FragmentInProgress)
        );
        assert_eq!(
            sender.send(Message::text("x")),
            Err(SendError::FragmentInProgress)
        );
        // A control frame may go between fragments.
        sender.ping(Bytes::from_static(b"mid")).unwrap();
        sender.send_fragment(Message::text("rld"), true).unwrap();
        sender
            .send_fragment(Message::binary(vec![1, 2]), false)
            .unwrap();
        sender
            .send_fragment(Message::binary(vec![]), false)
            .unwrap();
        sender
            .send_fragment(Message::binary(vec![3]), true)
            .unwrap();
        sender.send(Message::text("after")).unwrap();
        pair.transfer();
        assert_eq!(
            pair.events(to),
            [
                Event::Ping(Bytes::from_static(b"mid")),
                Event::Message(Message::text("Hello wörld")),
                Event::Message(Message::binary(vec![1, 2, 3])),
                Event::Message(Message::text("after")),
            ],
            "from {from:?}"
        );
        pair.transfer();
        assert_eq!(pair.events(from), [Event::Pong(Bytes::from_static(b"mid"))]);
    }
}

#[test]
fn automatic_fragmentation_at_max_send_frame_size() {
    for from in ROLES {
        let to = peer_of(from);
        let config = Config::default().with_max_send_frame_size(7);
        let mut pair = Pair::with_configs(config.clone(), config);
        // Multi-byte code points are split across frames: the receiver
        // validates the message as a whole.
        let text = text_of_len(100, 9);
        pair.conn(from).send(Message::text(text.clone())).unwrap();
        let wire = drain(pair.conn(from));
        let frames = parse_frames(&wire);
        assert_eq!(frames.len(), 100usize.div_ceil(7));
        let mut joined = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            let first = i == 0;
            let last = i + 1 == frames.len();
            assert_eq!(
                frame.header.opcode,
                if first {
                    OpCode::Text
                } else {
                    OpCode::Continuation
                }
            );
            assert_eq!(frame.header.fin, last);
            assert_eq!(frame.header.mask.is_some(), from == Role::Client);
            assert!(frame.payload.len() <= 7);
            joined.extend_from_slice(&frame.payload);
        }
        assert_eq!(joined, text.as_bytes());
        let buf = match to {
            Role::Server => &mut pair.to_server,
            Role::Client => &mut pair.to_client,
        };
        buf.extend_from_slice(&wire);
        assert_eq!(pair.events(to), [Event::Message(Message::text(text))]);
    }
}

#[test]
fn automatic_fragmentation_of_a_large_binary_message() {
    for from in ROLES {
        let to = peer_of(from);
        let config = Config::default().with_max_send_frame_size(64 * 1024);
        let mut pair = Pair::with_configs(config.clone(), config);
        let data = bytes_of_len(1 << 20, 77);
        pair.conn(from).send(Message::binary(data.clone())).unwrap();
        let wire = drain(pair.conn(from));
        let frames = parse_frames(&wire);
        assert_eq!(frames.len(), 16);
        assert!(frames.iter().all(|f| f.payload.len() == 64 * 1024));
        assert_eq!(frames[0].header.opcode, OpCode::Binary);
        assert!(frames[15].header.fin && !frames[14].header.fin);
        let buf = match to {
            Role::Server => &mut pair.to_server,
            Role::Client => &mut pair.to_client,
        };
        buf.extend_from_slice(&wire);
        assert_eq!(pair.events(to), [Event::Message(Message::binary(data))]);
    }
}

#[test]
fn pings_between_fragments_deliver_the_message_and_are_answered() {
    for role in ROLES {
        let mut wire = frame_to(role, false, TEXT, b"Hel");
        wire.extend(frame_to(role, true, PING, b"p1"));
        wire.extend(frame_to(role, false, CONT, b"lo "));
        wire.extend(frame_to(role, true, PING, b"p2"));
        wire.extend(frame_to(role, true, PONG, b"unsolicited"));
        wire.extend(frame_to(role, true, CONT, b"world"));
        let mut conn = conn(role, Config::default());
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(
            ok_events(&mut conn, &mut buf),
            [
                Event::Ping(Bytes::from_static(b"p1")),
                Event::Ping(Bytes::from_static(b"p2")),
                Event::Pong(Bytes::from_static(b"unsolicited")),
                Event::Message(Message::text("Hello world")),
            ],
            "{role:?}"
        );
        let frames = parse_frames(&drain(&mut conn));
        let pongs: Vec<_> = frames
            .iter()
            .map(|f| (f.header.opcode, f.header.mask.is_some(), &f.payload[..]))
            .collect();
        let masked = role == Role::Client;
        assert_eq!(
            pongs,
            [
                (OpCode::Pong, masked, &b"p1"[..]),
                (OpCode::Pong, masked, &b"p2"[..])
            ],
            "{role:?}"
        );
    }
}

#[test]
fn unsolicited_pongs_are_reported_and_not_answered() {
    let mut pair = Pair::new();
    pair.server.pong(Bytes::from_static(b"hb")).unwrap();
    pair.client.pong(Bytes::new()).unwrap();
    pair.transfer();
    assert_eq!(
        pair.client_events(),
        [Event::Pong(Bytes::from_static(b"hb"))]
    );
    assert_eq!(pair.server_events(), [Event::Pong(Bytes::new())]);
    assert!(!pair.client.wants_write() && !pair.server.wants_write());
    // The connection is unaffected.
    send_and_check(&mut pair, Role::Client, &Message::text("still open"));
}

#[test]
fn ping_flood_queues_at_most_two_pongs() {
    for role in ROLES {
        let mut conn = conn(role, Config::default());
        let pong_len = 2 + 4 + if role == Role::Client { 4 } else { 0 };
        let mut buf = BytesMut::new();
        let mut pings = 0;
        // In bursts, without ever writing the outgoing bytes.
        for burst in 0..10u32 {
            for i in 0..100u32 {
                let n = burst * 100 + i;
                buf.extend_from_slice(&frame_to(role, true, PING, &n.to_be_bytes()));
            }
            let events = ok_events(&mut conn, &mut buf);
            assert_eq!(events.len(), 100);
            pings += events.len();
            assert!(
                conn.outgoing().len() <= 2 * pong_len,
                "{role:?}: {} bytes queued after {pings} pings",
                conn.outgoing().len()
            );
        }
        assert_eq!(pings, 1000);
        let frames = parse_frames(&drain(&mut conn));
        assert!(
            (1..=2).contains(&frames.len()),
            "{role:?}: {} pongs",
            frames.len()
        );
        assert!(frames.iter().all(|f| f.header.opcode == OpCode::Pong));
        // The most recent ping is the one answered last.
        assert_eq!(frames.last().unwrap().payload, 999u32.to_be_bytes());
    }
}

#[test]
fn ping_flood_in_one_read() {
    let mut conn = conn(Role::Server, Config::default());
    let mut buf = BytesMut::new();
    for n in 0..1000u32 {
        buf.extend_from_slice(&frame_to(Role::Server, true, PING, &n.to_be_bytes()));
    }
    let events = ok_events(&mut conn, &mut buf);
    assert_eq!(events.len(), 1000);
    assert!(conn.outgoing().len() <= 12, "{}", conn.outgoing().len());
    let frames = parse_frames(&drain(&mut conn));
    assert!(frames.len() <= 2);
    assert_eq!(frames.last().unwrap().payload, 999u32.to_be_bytes());
}

#[test]
fn close_initiated_by_the_client() {
    let mut pair = Pair::new();
    let t0 = Duration::from_secs(1000);
    assert_eq!(pair.client.poll_timeout(t0), None);
    pair.client.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(pair.client.state(), State::Closing);
    assert!(pair.client.close_sent() && !pair.client.close_received());
    let deadline = pair.client.poll_timeout(t0).expect("close timer armed");
    assert_eq!(deadline, t0 + Duration::from_secs(10));
    assert!(!pair.client.should_close_transport());

    pair.transfer();
    assert_eq!(
        pair.server_events(),
        [Event::Close(CloseFrame::new(CloseCode::NORMAL, "bye"))]
    );
    assert_eq!(pair.server.state(), State::Closed);
    assert!(pair.server.close_received() && pair.server.close_sent());
    // The echo is queued: the server closes the transport once it is written.
    assert!(pair.server.wants_write());
    assert!(!pair.server.should_close_transport());
    pair.transfer();
    assert!(pair.server.should_close_transport());

    // The client gets the echoed code.
    let events = pair.client_events();
    match &events[..] {
        [Event::Close(frame)] => assert_eq!(frame.code, CloseCode::NORMAL),
        other => panic!("{other:?}"),
    }
    assert_eq!(pair.client.state(), State::Closed);
    assert!(
        !pair.client.wants_write(),
        "the client does not echo an echo"
    );
    // The client waits for the server to end the transport.
    assert!(!pair.client.should_close_transport());
    pair.client.handle_eof();
    assert!(pair.client.should_close_transport());
    assert_eq!(pair.client_events(), []);
}

#[test]
fn close_initiated_by_the_server() {
    let mut pair = Pair::new();
    pair.server.close(CloseCode(4000), "going").unwrap();
    assert_eq!(pair.server.state(), State::Closing);
    assert_eq!(
        pair.server.poll_timeout(Duration::ZERO),
        Some(Duration::from_secs(10))
    );
    pair.transfer();
    assert_eq!(
        pair.client_events(),
        [Event::Close(CloseFrame::new(CloseCode(4000), "going"))]
    );
    assert_eq!(pair.client.state(), State::Closed);
    pair.transfer();
    assert!(!pair.client.should_close_transport());
    let events = pair.server_events();
    match &events[..] {
        [Event::Close(frame)] => assert_eq!(frame.code, CloseCode(4000)),
        other => panic!("{other:?}"),
    }
    assert_eq!(pair.server.state(), State::Closed);
    // The server closes first, as soon as the handshake is complete.
    assert!(!pair.server.wants_write());
    assert!(pair.server.should_close_transport());
    // The client closes when the server has (EOF).
    pair.client.handle_eof();
    assert!(pair.client.should_close_transport());
}

#[test]
fn client_closes_the_transport_after_the_close_timer_if_the_server_does_not() {
    let mut pair = Pair::new();
    pair.server.close(CloseCode::GOING_AWAY, "").unwrap();
    pair.transfer();
    let now = Duration::from_secs(5);
    assert_eq!(pair.client_events().len(), 1);
    assert!(!pair.client.should_close_transport());
    let deadline = pair.client.poll_timeout(now).expect("client arms a timer");
    assert!(deadline > now);
    pair.client
        .handle_timeout(deadline - Duration::from_millis(1));
    assert!(!pair.client.should_close_transport());
    pair.client.handle_timeout(deadline);
    assert!(pair.client.should_close_transport());
    // The close handshake had completed: no abnormal-closure event follows.
    assert_eq!(pair.client_events(), []);
    assert_eq!(pair.client.state(), State::Closed);
}

#[test]
fn data_is_still_delivered_while_closing() {
    let mut pair = Pair::new();
    pair.client.close(CloseCode::NORMAL, "").unwrap();
    pair.server.send(Message::text("late")).unwrap();
    pair.transfer();
    // The server sent data before it saw the Close; the client delivers it.
    assert_eq!(
        pair.client_events(),
        [Event::Message(Message::text("late"))]
    );
    assert_eq!(pair.client.state(), State::Closing);
    assert_eq!(
        pair.server_events(),
        [Event::Close(CloseFrame::new(CloseCode::NORMAL, ""))]
    );
    pair.transfer();
    assert_eq!(
        pair.client_events(),
        [Event::Close(CloseFrame::new(CloseCode::NORMAL, ""))]
    );
    assert_eq!(pair.client.state(), State::Closed);
}

#[test]
fn close_without_status_is_reported_as_1005_and_echoed_empty() {
    let mut pair = Pair::new();
    pair.client.close(CloseCode::NO_STATUS, "").unwrap();
    pair.transfer();
    assert_eq!(
        pair.server_events(),
        [Event::Close(CloseFrame::new(CloseCode::NO_STATUS, ""))]
    );
    let echo = parse_frames(&drain(&mut pair.server));
    assert_eq!(echo.len(), 1);
    assert_eq!(echo[0].header.opcode, OpCode::Close);
    assert!(echo[0].payload.is_empty());
}

#[test]
fn sending_after_close_is_refused() {
    let mut pair = Pair::new();
    pair.client.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(pair.client.send(Message::text("x")), Err(SendError::Closed));
    assert_eq!(
        pair.client.send_fragment(Message::text("x"), true),
        Err(SendError::Closed)
    );
    assert_eq!(pair.client.ping(Bytes::new()), Err(SendError::Closed));
    assert_eq!(pair.client.pong(Bytes::new()), Err(SendError::Closed));
    assert_eq!(
        pair.client.close(CloseCode::NORMAL, ""),
        Err(SendError::Closed)
    );
    pair.transfer();
    pair.server_events();
    // The side that answered the Close cannot send either.
    assert_eq!(
        pair.server.send(Message::binary(vec![1])),
        Err(SendError::Closed)
    );
    assert_eq!(
        pair.server.close(CloseCode::NORMAL, ""),
        Err(SendError::Closed)
    );
}

#[test]
fn invalid_close_commands_are_refused() {
    let mut pair = Pair::new();
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        if code == 1005 {
            // 1005 with a reason cannot be expressed on the wire.
            assert_eq!(
                pair.client.close(CloseCode(code), "why"),
                Err(SendError::InvalidCloseCode(CloseCode(code)))
            );
        } else {
            assert_eq!(
                pair.client.close(CloseCode(code), ""),
                Err(SendError::InvalidCloseCode(CloseCode(code)))
            );
        }
    }
    let long = "x".repeat(124);
    assert_eq!(
        pair.client.close(CloseCode::NORMAL, &long),
        Err(SendError::ControlTooLong(124))
    );
    assert_eq!(
        pair.client.ping(Bytes::from(vec![0; 126])),
        Err(SendError::ControlTooLong(126))
    );
    assert_eq!(pair.client.state(), State::Open);
    assert!(!pair.client.wants_write());
    // The longest reason goes through whole.
    let longest = "y".repeat(123);
    pair.client.close(CloseCode::NORMAL, &longest).unwrap();
    pair.transfer();
    assert_eq!(
        pair.server_events(),
        [Event::Close(CloseFrame::new(CloseCode::NORMAL, longest))]
    );
}

/// Exactly one event: `Close` with 1006 (the reason text is informational).
fn assert_abnormal(events: &[Event]) {
    match events {
        [Event::Close(frame)] => assert_eq!(frame.code, CloseCode::ABNORMAL, "{frame:?}"),
        other => panic!("expected one Close 1006 event, got {other:?}"),
    }
}

#[test]
fn eof_before_close_is_an_abnormal_closure() {
    for role in ROLES {
        let mut pair = Pair::new();
        let peer = peer_of(role);
        pair.conn(peer).send(Message::text("last words")).unwrap();
        pair.transfer();
        let conn = pair.conn(role);
        conn.handle_eof();
        // Bytes already received are still delivered, then the 1006 event.
        let events = pair.events(role);
        assert_eq!(events.len(), 2, "{role:?}: {events:?}");
        assert_eq!(events[0], Event::Message(Message::text("last words")));
        assert_abnormal(&events[1..]);
        let conn = pair.conn(role);
        assert_eq!(conn.state(), State::Closed);
        assert!(conn.should_close_transport());
        // 1006 is never sent.
        assert!(!conn.wants_write());
        assert_eq!(pair.events(role), []);
    }
}

#[test]
fn eof_inside_a_frame_is_an_abnormal_closure() {
    for role in ROLES {
        let mut conn = conn(role, Config::default());
        let frame = frame_to(role, true, BINARY, &[7; 50]);
        let mut buf = BytesMut::from(&frame[..20]);
        assert_eq!(conn.next_event(&mut buf), Ok(None));
        conn.handle_eof();
        assert_abnormal(&ok_events(&mut conn, &mut buf));
        assert!(conn.should_close_transport());
    }
}

#[test]
fn close_timer_expiry_without_reply_is_an_abnormal_closure() {
    for role in ROLES {
        let config = Config::default().with_close_timeout(Some(Duration::from_secs(2)));
        let mut conn = conn(role, config);
        let now = Duration::from_millis(12_345);
        conn.close(CloseCode::NORMAL, "").unwrap();
        let deadline = conn.poll_timeout(now).expect("armed");
        assert_eq!(deadline, now + Duration::from_secs(2));
        // Polling again does not move the deadline.
        assert_eq!(
            conn.poll_timeout(now + Duration::from_secs(1)),
            Some(deadline)
        );
        // Early calls are harmless.
        conn.handle_timeout(now + Duration::from_secs(1));
        assert_eq!(conn.state(), State::Closing);
        assert!(!conn.should_close_transport());
        let mut buf = BytesMut::new();
        assert_eq!(ok_events(&mut conn, &mut buf), []);

        conn.handle_timeout(deadline);
        assert_eq!(conn.state(), State::Closed);
        // Even with the Close frame not written, the transport must go.
        assert!(conn.should_close_transport());
        assert_abnormal(&ok_events(&mut conn, &mut buf));
        assert_eq!(ok_events(&mut conn, &mut buf), []);
    }
}

#[test]
fn no_close_timeout_means_no_timer() {
    let config = Config::default().with_close_timeout(None);
    let mut conn = conn(Role::Client, config);
    conn.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(conn.poll_timeout(Duration::ZERO), None);
    conn.handle_timeout(Duration::MAX);
    assert_eq!(conn.state(), State::Closing);
}

// ----- Protocol errors, from both roles -----

#[test]
fn reserved_bits_fail_with_1002() {
    for role in ROLES {
        for rsv in 1..=7u8 {
            let input = raw_frame(true, rsv, TEXT, mask_for(role), b"hi");
            let error = fail_with(role, Config::default(), &input, 1002);
            assert_eq!(error, ProtocolError::ReservedBits(rsv));
        }
        // Also on a control frame and a continuation inside a message.
        let input = raw_frame(true, 0b100, PING, mask_for(role), b"");
        fail_with(role, Config::default(), &input, 1002);
        let mut input = frame_to(role, false, BINARY, b"a");
        input.extend(raw_frame(true, 0b001, CONT, mask_for(role), b"b"));
        fail_with(role, Config::default(), &input, 1002);
    }
}

#[test]
fn reserved_opcodes_fail_with_1002() {
    for role in ROLES {
        for opcode in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            let input = raw_frame(true, 0, opcode, mask_for(role), b"x");
            let error = fail_with(role, Config::default(), &input, 1002);
            assert_eq!(error, ProtocolError::ReservedOpcode(opcode));
            // Two bytes of header are enough to tell.
            fail_with(role, Config::default(), &input[..2], 1002);
        }
    }
}

#[test]
fn control_frame_over_125_bytes_fails_with_1002() {
    for role in ROLES {
        for opcode in [PING, PONG, CLOSE] {
            let mut payload = close_payload(1000, &[b'r'; 124]);
            assert_eq!(payload.len(), 126);
            let input = frame_to(role, true, opcode, &payload);
            let error = fail_with(role, Config::default(), &input, 1002);
            assert_eq!(error, ProtocolError::ControlFrameTooLong(126));
            // The header alone is enough.
            let header = raw_header(true, 0, opcode, mask_for(role), 126);
            fail_with(role, Config::default(), &header, 1002);
            // 125 is fine.
            payload.pop();
            let input = frame_to(role, true, opcode, &payload);
            let mut conn = conn(role, Config::default());
            let mut buf = BytesMut::from(&input[..]);
            assert_eq!(ok_events(&mut conn, &mut buf).len(), 1);
        }
    }
}

#[test]
fn fragmented_control_frame_fails_with_1002() {
    for role in ROLES {
        for opcode in [PING, PONG, CLOSE] {
            let input = frame_to(role, false, opcode, &close_payload(1000, b""));
            let error = fail_with(role, Config::default(), &input, 1002);
            assert_eq!(error, ProtocolError::FragmentedControlFrame);
        }
    }
}

#[test]
fn server_receives_unmasked_frame() {
    let input = raw_frame(true, 0, TEXT, None, b"Hello");
    let error = fail_with(Role::Server, Config::default(), &input, 1002);
    assert_eq!(error, ProtocolError::UnmaskedFrameFromClient);
    // Control frames too, and it is known from the header alone.
    let input = raw_frame(true, 0, PING, None, b"");
    fail_with(Role::Server, Config::default(), &input, 1002);
    let header = raw_header(true, 0, BINARY, None, 1000);
    fail_with(Role::Server, Config::default(), &header, 1002);
}

#[test]
fn client_receives_masked_frame() {
    let input = raw_frame(true, 0, TEXT, Some(TEST_KEY), b"Hello");
    let error = fail_with(Role::Client, Config::default(), &input, 1002);
    assert_eq!(error, ProtocolError::MaskedFrameFromServer);
    let input = raw_frame(true, 0, PING, Some(TEST_KEY), b"");
    fail_with(Role::Client, Config::default(), &input, 1002);
    let header = raw_header(true, 0, BINARY, Some(TEST_KEY), 1000);
    fail_with(Role::Client, Config::default(), &header, 1002);
}

#[test]
fn server_may_accept_unmasked_frames_when_configured() {
    let config = Config::default().with_accept_unmasked_frames(true);
    let mut server = conn(Role::Server, config);
    let mut buf = BytesMut::from(&raw_frame(true, 0, TEXT, None, b"Hello")[..]);
    buf.extend(raw_frame(true, 0, TEXT, Some(TEST_KEY), b"masked"));
    assert_eq!(
        ok_events(&mut server, &mut buf),
        [
            Event::Message(Message::text("Hello")),
            Event::Message(Message::text("masked"))
        ]
    );
}

#[test]
fn length_with_the_top_bit_set_fails_with_1002() {
    for role in ROLES {
        for len in [1u64 << 63, u64::MAX] {
            let header = raw_header(true, 0, BINARY, mask_for(role), len);
            let error = fail_with(role, Config::default(), &header, 1002);
            assert_eq!(error, ProtocolError::InvalidLength);
            // Ten bytes are enough to tell, mask key or not.
            fail_with(role, Config::default(), &header[..10], 1002);
        }
    }
}

#[test]
fn continuation_without_a_message_fails_with_1002() {
    for role in ROLES {
        for fin in [true, false] {
            let input = frame_to(role, fin, CONT, b"orphan");
            let error = fail_with(role, Config::default(), &input, 1002);
            assert_eq!(error, ProtocolError::UnexpectedContinuation);
        }
        // Also right after a message has ended.
        let mut input = frame_to(role, false, TEXT, b"a");
        input.extend(frame_to(role, true, CONT, b"b"));
        input.extend(frame_to(role, true, CONT, b"c"));
        let mut conn = conn(role, Config::default());
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(
            conn.next_event(&mut buf),
            Ok(Some(Event::Message(Message::text("ab"))))
        );
        let error = assert_failed(&mut conn, &mut buf, 1002);
        assert_eq!(error, ProtocolError::UnexpectedContinuation);
    }
}

#[test]
fn new_data_frame_inside_a_fragmented_message_fails_with_1002() {
    for role in ROLES {
        for (first, second) in [
            (TEXT, TEXT),
            (TEXT, BINARY),
            (BINARY, TEXT),
            (BINARY, BINARY),
        ] {
            for fin in [true, false] {
                let mut input = frame_to(role, false, first, b"start");
                input.extend(frame_to(role, true, PING, b""));
                input.extend(frame_to(role, fin, second, b"again"));
                let error = fail_with(role, Config::default(), &input, 1002);
                assert_eq!(error, ProtocolError::ExpectedContinuation);
            }
        }
    }
}

#[test]
fn invalid_utf8_fails_with_1007_at_the_first_invalid_fragment() {
    for role in ROLES {
        // The final fragment never arrives: the first one is enough.
        let input = frame_to(role, false, TEXT, b"ok \xff");
        let error = fail_with(role, Config::default(), &input, 1007);
        assert_eq!(error, ProtocolError::InvalidUtf8);

        // In the second of three fragments, before the third arrives.
        let mut input = frame_to(role, false, TEXT, b"fine ");
        input.extend(frame_to(role, false, CONT, b"bad \xed\xa0\x80 surrogate"));
        fail_with(role, Config::default(), &input, 1007);

        // A single-frame text message.
        let input = frame_to(role, true, TEXT, b"\xc0\xaf overlong");
        fail_with(role, Config::default(), &input, 1007);
    }
}

#[test]
fn invalid_utf8_fails_inside_a_frame_still_arriving() {
    for role in ROLES {
        let payload = b"abc\xf4\x90\x80\x80 and the rest of a long frame";
        let input = frame_to(role, true, TEXT, payload);
        let header_len = if role == Role::Server { 6 } else { 2 };
        // The header and the first half, which holds the bad bytes.
        let cut = header_len + payload.len() / 2;
        let mut conn = conn(role, Config::default());
        let mut buf = BytesMut::from(&input[..cut]);
        let error = assert_failed(&mut conn, &mut buf, 1007);
        assert_eq!(error, ProtocolError::InvalidUtf8);

        // And byte by byte: the error comes with the first bad byte.
        let mut conn = self::conn(role, Config::default());
        let mut buf = BytesMut::new();
        for (i, &byte) in input.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            match conn.next_event(&mut buf) {
                Ok(None) => assert!(i < header_len + 4, "no error after {} bytes", i + 1),
                Err(ProtocolError::InvalidUtf8) => {
                    // 0xF4 0x90 is invalid at the second byte.
                    assert_eq!(i, header_len + 4, "{role:?}");
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn utf8_split_across_fragments_and_reads_is_fine() {
    for role in ROLES {
        let text = "κόσμε 😀 €";
        let bytes = text.as_bytes();
        // Fragment boundaries inside code points.
        let mut input = frame_to(role, false, TEXT, &bytes[..1]);
        input.extend(frame_to(role, false, CONT, &bytes[1..12]));
        input.extend(frame_to(role, true, PING, b"between"));
        input.extend(frame_to(role, false, CONT, &bytes[12..13]));
        input.extend(frame_to(role, true, CONT, &bytes[13..]));
        let mut conn = conn(role, Config::default());
        let mut buf = BytesMut::new();
        let mut events = Vec::new();
        for &byte in &input {
            buf.extend_from_slice(&[byte]);
            events.extend(ok_events(&mut conn, &mut buf));
        }
        assert_eq!(
            events,
            [
                Event::Ping(Bytes::from_static(b"between")),
                Event::Message(Message::text(text))
            ]
        );
    }
}

#[test]
fn truncated_code_point_at_the_end_of_a_message_fails_with_1007() {
    for role in ROLES {
        let input = frame_to(role, true, TEXT, b"euro \xe2\x82");
        fail_with(role, Config::default(), &input, 1007);
        let mut input = frame_to(role, false, TEXT, b"euro \xe2");
        input.extend(frame_to(role, true, CONT, b"\x82"));
        fail_with(role, Config::default(), &input, 1007);
    }
}

#[test]
fn invalid_utf8_close_reason_fails_with_1007() {
    for role in ROLES {
        let input = frame_to(role, true, CLOSE, &close_payload(1000, b"bad \xff"));
        let error = fail_with(role, Config::default(), &input, 1007);
        assert_eq!(error, ProtocolError::InvalidUtf8);
    }
}

#[test]
fn one_byte_close_payload_fails_with_1002() {
    for role in ROLES {
        let input = frame_to(role, true, CLOSE, &[0x03]);
        let error = fail_with(role, Config::default(), &input, 1002);
        assert_eq!(error, ProtocolError::InvalidClosePayload);
    }
}

#[test]
fn close_codes_that_may_not_be_sent_fail_with_1002() {
    for role in ROLES {
        for code in [
            0u16,
            999,
            1004,
            1005,
            1006,
            1015,
            1016,
            2999,
            5000,
            u16::MAX,
        ] {
            let input = frame_to(role, true, CLOSE, &close_payload(code, b""));
            let error = fail_with(role, Config::default(), &input, 1002);
            assert_eq!(error, ProtocolError::InvalidCloseCode(code));
        }
    }
}

#[test]
fn close_codes_that_may_be_sent_are_accepted_and_echoed() {
    let codes = (1000..=1003)
        .chain(1007..=1014)
        .chain([3000, 3999, 4000, 4999]);
    for role in ROLES {
        for code in codes.clone() {
            let input = frame_to(role, true, CLOSE, &close_payload(code, b"r\xc3\xa9ason"));
            let mut conn = conn(role, Config::default());
            let mut buf = BytesMut::from(&input[..]);
            assert_eq!(
                ok_events(&mut conn, &mut buf),
                [Event::Close(CloseFrame::new(CloseCode(code), "réason"))],
                "{role:?} {code}"
            );
            let echo = parse_frames(&drain(&mut conn));
            assert_eq!(echo.len(), 1);
            assert_eq!(echo[0].close_code(), Some(code));
            assert_eq!(echo[0].header.mask.is_some(), role == Role::Client);
            assert_eq!(conn.should_close_transport(), role == Role::Server);
        }
    }
}

#[test]
fn bytes_after_the_close_are_ignored() {
    for role in ROLES {
        let mut input = frame_to(role, true, CLOSE, &close_payload(1000, b""));
        input.extend(frame_to(role, true, TEXT, b"ignored"));
        input.extend(raw_frame(true, 7, 0xF, None, b"garbage"));
        let mut conn = conn(role, Config::default());
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(
            ok_events(&mut conn, &mut buf),
            [Event::Close(CloseFrame::new(CloseCode::NORMAL, ""))]
        );
        assert_eq!(ok_events(&mut conn, &mut buf), []);
    }
}

#[test]
fn frame_over_max_frame_size_fails_with_1009_from_the_header_alone() {
    for role in ROLES {
        let config = Config::default().with_max_frame_size(1000);
        for len in [1001u64, 65536, 1 << 40] {
            let header = raw_header(true, 0, BINARY, mask_for(role), len);
            let error = fail_with(role, config.clone(), &header, 1009);
            assert_eq!(error, ProtocolError::FrameTooBig { len, max: 1000 });
        }
        // Also a text frame and a continuation.
        let header = raw_header(false, 0, TEXT, mask_for(role), 1001);
        fail_with(role, config.clone(), &header, 1009);
        let mut input = frame_to(role, false, TEXT, b"a");
        input.extend(raw_header(true, 0, CONT, mask_for(role), 1001));
        fail_with(role, config.clone(), &input, 1009);
        // Exactly the limit is fine.
        let input = frame_to(role, true, BINARY, &[1; 1000]);
        let mut conn = conn(role, config);
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(ok_events(&mut conn, &mut buf).len(), 1);
    }
}

#[test]
fn message_over_max_message_size_fails_with_1009_at_the_offending_fragment_header() {
    for role in ROLES {
        let config = Config::default()
            .with_max_frame_size(1000)
            .with_max_message_size(100);
        let mut input = frame_to(role, false, BINARY, &[1; 60]);
        input.extend(frame_to(role, true, PING, b""));
        // Only the header of the fragment that goes over the limit.
        input.extend(raw_header(false, 0, CONT, mask_for(role), 41));
        let mut conn = conn(role, config.clone());
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(
            conn.next_event(&mut buf),
            Ok(Some(Event::Ping(Bytes::new())))
        );
        let error = assert_failed(&mut conn, &mut buf, 1009);
        assert_eq!(error, ProtocolError::MessageTooBig { len: 101, max: 100 });

        // A single frame over the message limit (within the frame limit).
        let header = raw_header(true, 0, TEXT, mask_for(role), 101);
        let error = fail_with(role, config.clone(), &header, 1009);
        assert_eq!(error, ProtocolError::MessageTooBig { len: 101, max: 100 });

        // Exactly the limit is fine.
        let mut input = frame_to(role, false, BINARY, &[1; 60]);
        input.extend(frame_to(role, true, CONT, &[2; 40]));
        let mut conn = self::conn(role, config);
        let mut buf = BytesMut::from(&input[..]);
        match &ok_events(&mut conn, &mut buf)[..] {
            [Event::Message(m)] => assert_eq!(m.len(), 100),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_protocol_error_after_our_close_does_not_send_a_second_close() {
    for role in ROLES {
        let mut conn = conn(role, Config::default());
        conn.close(CloseCode::GOING_AWAY, "bye").unwrap();
        let mut buf = BytesMut::from(&raw_frame(true, 0b010, TEXT, mask_for(role), b"x")[..]);
        let (events, error) = crate::util::events(&mut conn, &mut buf);
        assert_eq!(events, []);
        assert_eq!(error, Some(ProtocolError::ReservedBits(0b010)));
        assert_eq!(
            conn.next_event(&mut buf),
            Err(ProtocolError::ReservedBits(0b010))
        );
        let frames = parse_frames(&drain(&mut conn));
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(frames[0].close_code(), Some(1001));
        assert!(conn.should_close_transport());
    }
}

#[test]
fn a_protocol_error_in_a_pair_reaches_the_peer_as_a_close() {
    let mut pair = Pair::new();
    // The client gets a frame with a reserved opcode.
    pair.to_client
        .extend_from_slice(&raw_frame(true, 0, 0x3, None, b""));
    let (_, error) = crate::util::events(&mut pair.client, &mut pair.to_client);
    assert_eq!(error, Some(ProtocolError::ReservedOpcode(3)));
    pair.transfer();
    assert_eq!(
        pair.server_events(),
        [Event::Close(CloseFrame::new(
            CloseCode::PROTOCOL_ERROR,
            ProtocolError::ReservedOpcode(3).reason()
        ))]
    );
    pair.transfer();
    assert!(pair.server.should_close_transport());
    assert!(pair.client.should_close_transport());
}

// ----- The outgoing queue -----

#[test]
fn a_full_write_buffer_hands_the_message_back() {
    let config = Config::default().with_max_write_buffer(100);
    let mut pair = Pair::with_configs(config.clone(), config);
    // One message is always accepted into a queue below the limit...
    pair.server.send(Message::binary(vec![1; 300])).unwrap();
    // ...then the queue is full until written.
    let refused = Message::text("wait");
    assert_eq!(
        pair.server.send(refused.clone()),
        Err(SendError::Full(refused))
    );
    assert_eq!(
        pair.server.send_fragment(Message::binary(vec![2]), false),
        Err(SendError::Full(Message::binary(vec![2])))
    );
    assert_eq!(
        pair.server.ping(Bytes::from_static(b"p")),
        Err(SendError::ControlFull(Bytes::from_static(b"p")))
    );
    // Answers to pings and the Close still go out.
    pair.to_server
        .extend_from_slice(&frame_to(Role::Server, true, PING, b"auto"));
    assert_eq!(
        pair.server_events(),
        [Event::Ping(Bytes::from_static(b"auto"))]
    );
    pair.transfer();
    assert_eq!(
        pair.client_events(),
        [
            Event::Message(Message::binary(vec![1; 300])),
            Event::Pong(Bytes::from_static(b"auto"))
        ]
    );
    pair.server.send(Message::text("now")).unwrap();
    pair.transfer();
    assert_eq!(pair.client_events(), [Event::Message(Message::text("now"))]);
}

#[test]
fn outgoing_chunks_vectored_and_pop_chunk_give_the_same_bytes() {
    use bytes::Buf as _;

    let build = || {
        let mut server = conn(Role::Server, Config::default());
        server.send(Message::binary(vec![5; 1000])).unwrap();
        server.send(Message::text("small")).unwrap();
        server.ping(Bytes::from_static(b"p")).unwrap();
        server
    };
    let mut reference = build();
    let expected = drain(&mut reference);

    let mut server = build();
    let out = server.outgoing();
    assert_eq!(out.remaining(), expected.len());
    let mut slots = [std::io::IoSlice::new(&[]); 16];
    let n = out.chunks_vectored(&mut slots);
    assert!(n >= 1);
    let joined: Vec<u8> = slots[..n].iter().flat_map(|s| s.iter().copied()).collect();
    assert_eq!(joined, expected);
    let mut one = [std::io::IoSlice::new(&[]); 1];
    assert_eq!(out.chunks_vectored(&mut one), 1);
    assert_eq!(&*one[0], out.chunk());

    let mut popped = Vec::new();
    while let Some(chunk) = server.outgoing().pop_chunk() {
        assert!(!chunk.is_empty());
        popped.extend_from_slice(&chunk);
    }
    assert_eq!(popped, expected);
    assert!(!server.wants_write());

    // Advancing past the end is clamped, not a panic.
    let mut server = build();
    server.outgoing().advance(usize::MAX);
    assert!(!server.wants_write());
    assert_eq!(server.outgoing().remaining(), 0);
}

#[test]
fn pongs_never_split_a_frame_being_written() {
    use bytes::Buf as _;

    let mut server = conn(Role::Server, Config::default());
    server.send(Message::binary(vec![9; 40])).unwrap();
    let mut wire = Vec::new();
    // Write one byte at a time while pings keep arriving.
    let mut n = 0u8;
    while server.wants_write() {
        let mut buf = BytesMut::from(&frame_to(Role::Server, true, PING, &[n])[..]);
        n = n.wrapping_add(1);
        ok_events(&mut server, &mut buf);
        let out = server.outgoing();
        wire.push(out.chunk()[0]);
        out.advance(1);
        if n == 200 {
            break;
        }
    }
    wire.extend(drain(&mut server));
    let frames = parse_frames(&wire);
    assert_eq!(frames[0].payload, [9; 40]);
    assert!(frames[1..].iter().all(|f| f.header.opcode == OpCode::Pong));
    let answered: Vec<u8> = frames[1..].iter().map(|f| f.payload[0]).collect();
    assert!(answered.windows(2).all(|w| w[0] < w[1]), "{answered:?}");
}

// ----- Keepalive -----

fn keepalive() -> Config {
    Config::default().with_keepalive(Some(Duration::from_secs(5)), Some(Duration::from_secs(2)))
}

#[test]
fn no_timer_by_default() {
    let mut pair = Pair::new();
    assert_eq!(pair.client.poll_timeout(Duration::ZERO), None);
    assert_eq!(pair.server.poll_timeout(Duration::ZERO), None);
}

#[test]
fn keepalive_ping_is_answered_and_the_clock_restarts() {
    for role in ROLES {
        let peer = peer_of(role);
        let (client_config, server_config) = match role {
            Role::Client => (keepalive(), Config::default()),
            Role::Server => (Config::default(), keepalive()),
        };
        let mut pair = Pair::with_configs(client_config, server_config);
        let sec = Duration::from_secs;
        assert_eq!(pair.conn(role).poll_timeout(sec(0)), Some(sec(5)));
        pair.conn(role).handle_timeout(sec(4));
        assert!(!pair.conn(role).wants_write(), "not due yet");
        pair.conn(role).handle_timeout(sec(5));
        assert_eq!(pair.conn(role).poll_timeout(sec(5)), Some(sec(7)));
        pair.transfer();
        assert_eq!(pair.events(peer), [Event::Ping(Bytes::new())]);
        pair.transfer();
        assert_eq!(pair.events(role), [Event::Pong(Bytes::new())]);
        // Any sign of life restarts the idle clock.
        assert_eq!(pair.conn(role).poll_timeout(sec(6)), Some(sec(11)));
        pair.conn(role).handle_timeout(sec(7));
        assert_eq!(pair.conn(role).state(), State::Open);
        assert!(!pair.conn(role).should_close_transport());
        assert!(!pair.conn(role).wants_write());
    }
}

#[test]
fn keepalive_gives_up_on_a_silent_peer() {
    for role in ROLES {
        let mut conn = conn(role, keepalive());
        let sec = Duration::from_secs;
        assert_eq!(conn.poll_timeout(sec(100)), Some(sec(105)));
        conn.handle_timeout(sec(105));
        let ping = parse_frames(&drain(&mut conn));
        assert_eq!(ping.len(), 1);
        assert_eq!(ping[0].header.opcode, OpCode::Ping);
        assert_eq!(ping[0].header.mask.is_some(), role == Role::Client);
        assert_eq!(conn.poll_timeout(sec(105)), Some(sec(107)));
        conn.handle_timeout(sec(107));
        assert!(conn.should_close_transport(), "{role:?}");
        let mut buf = BytesMut::new();
        assert_abnormal(&ok_events(&mut conn, &mut buf));
        let close = parse_frames(&drain(&mut conn));
        assert_eq!(close.len(), 1);
        assert_eq!(close[0].close_code(), Some(1011));
        assert_eq!(conn.state(), State::Closed);
        assert_eq!(conn.send(Message::text("x")), Err(SendError::Closed));
    }
}

#[test]
fn long_text_is_validated_across_the_unmasking_blocks() {
    // Masked text is unmasked and checked in blocks of a few KiB, and a
    // block that unmasks to ASCII skips the validator: a code point open at
    // a block's end must still be finished by the next block, whichever way
    // the bytes arrive.
    for role in ROLES {
        for cut in [2046, 2047, 8190, 8191, 8192, 16383] {
            let mut text = "a".repeat(cut);
            text.push('€'); // 3 bytes across the boundary near `cut`
            text.push_str(&"b".repeat(9000));
            let input = frame_to(role, true, TEXT, text.as_bytes());
            for read in [input.len(), 1000, 8193] {
                let mut conn = conn(role, Config::default());
                let mut buf = BytesMut::new();
                let mut events = Vec::new();
                for piece in input.chunks(read) {
                    buf.extend_from_slice(piece);
                    events.extend(ok_events(&mut conn, &mut buf));
                }
                assert_eq!(events, [Event::Message(Message::text(text.as_str()))]);
            }

            // A lead byte left open at a block's end, followed by ASCII.
            let mut bad = vec![b'a'; cut];
            bad.push(0xE2);
            bad.extend_from_slice(&[b'c'; 9000]);
            let input = frame_to(role, true, TEXT, &bad);
            let error = fail_with(role, Config::default(), &input, 1007);
            assert_eq!(error, ProtocolError::InvalidUtf8);
        }
    }
}
