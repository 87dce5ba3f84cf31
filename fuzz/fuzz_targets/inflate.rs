//! Arbitrary bytes as the compressed payload of one permessage-deflate
//! message, in fragments: inflation is bounded (never more than
//! `max_message_size` delivered, 1009 beyond), text is valid UTF-8, and
//! failures carry 1002, 1007 or 1009.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_proto::{
    Config, Connection, DeflateConfig, DeflateParams, Event, Message, Negotiated, Role,
    bytes::BytesMut,
};

const LIMIT: usize = 64 * 1024;

// Input layout: byte 0 flags (bits 0-2 window bits minus 8, bit 3 text,
// bit 4 no context takeover, bit 5 send the payload twice as two
// messages), byte 1 fragment size (0: one frame), then the payload.
fuzz_target!(|data: &[u8]| {
    let [flags, fragment, payload @ ..] = data else {
        return;
    };
    let bits = 8 + (flags & 7);
    let params = DeflateParams::new(&DeflateConfig::default(), 15, bits, true, flags & 0x10 == 0);
    let config = Config::default().with_max_message_size(LIMIT);
    let mut conn = Connection::with_entropy(Role::Client, config, |d: &mut [u8]| d.fill(0))
        .with_negotiated(
            Negotiated::new(None, vec!["permessage-deflate".into()]).with_deflate(params),
        );
    let opcode = if flags & 8 != 0 { 1 } else { 2 };
    let size = if *fragment == 0 {
        payload.len().max(1)
    } else {
        usize::from(*fragment)
    };
    let mut wire = Vec::new();
    for _ in 0..if flags & 0x20 != 0 { 2 } else { 1 } {
        let pieces: Vec<&[u8]> = if payload.is_empty() {
            vec![&[][..]]
        } else {
            payload.chunks(size).collect()
        };
        for (i, piece) in pieces.iter().enumerate() {
            let fin = i + 1 == pieces.len();
            let first = if i == 0 { 0x40 | opcode } else { 0 };
            wire.push(u8::from(fin) << 7 | first);
            match piece.len() {
                n @ 0..=125 => wire.push(n as u8),
                n @ 126..=0xffff => {
                    wire.push(126);
                    wire.extend_from_slice(&(n as u16).to_be_bytes());
                }
                n => {
                    wire.push(127);
                    wire.extend_from_slice(&(n as u64).to_be_bytes());
                }
            }
            wire.extend_from_slice(piece);
        }
    }
    let mut buf = BytesMut::from(&wire[..]);
    for _ in 0..8 {
        match conn.next_event(&mut buf) {
            Ok(Some(Event::Message(message))) => {
                assert!(message.len() <= LIMIT);
                assert_eq!(message.is_text(), opcode == 1);
                if let Message::Text(text) = &message {
                    assert!(std::str::from_utf8(text.as_bytes()).is_ok());
                }
            }
            Ok(Some(other)) => panic!("only messages were sent: {other:?}"),
            Ok(None) => break,
            Err(error) => {
                assert!(
                    [1002, 1007, 1009].contains(&error.close_code().0),
                    "{error:?}"
                );
                break;
            }
        }
        assert!(conn.buffered_message_len() <= 2 * LIMIT + 4096);
    }
});
