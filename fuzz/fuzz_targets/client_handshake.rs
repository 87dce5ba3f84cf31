//! The client's response parser: any bytes in any chunks. Success only with
//! a valid accept key, an offered subprotocol, and offered extensions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_proto::{ClientHandshake, ClientRequest, HandshakeError, bytes::BytesMut};

fuzz_target!(|data: &[u8]| {
    let [chunk, eof, wire @ ..] = data else {
        return;
    };
    let chunk = usize::from(*chunk).max(1);
    let request = ClientRequest::new("ws://127.0.0.1:9001/")
        .expect("valid URI")
        .protocol("chat")
        .extension("x-test");
    // A zero nonce: the matching accept key is fixed, so the fuzzer can find it.
    let mut handshake =
        ClientHandshake::with_entropy(&request, &mut |d: &mut [u8]| d.fill(0)).expect("request");
    let mut buf = BytesMut::new();
    for piece in wire.chunks(chunk) {
        buf.extend_from_slice(piece);
        let before = buf.len();
        match handshake.receive(&mut buf) {
            Ok(None) => assert_eq!(buf.len(), before),
            Ok(Some(response)) => {
                assert!(buf.len() < before);
                assert!(response.protocol.as_deref().is_none_or(|p| p == "chat"));
                // Extension names match case-insensitively, like other HTTP tokens.
                let offered =
                    |e: &String| e.get(..6).is_some_and(|n| n.eq_ignore_ascii_case("x-test"));
                assert!(response.extensions.iter().all(offered));
                return;
            }
            Err(HandshakeError::Rejected(response)) => {
                assert_ne!(response.status, 101);
                return;
            }
            Err(_) => return,
        }
    }
    if *eof & 1 != 0 {
        let _ = handshake.receive_eof(&mut buf);
    }
});
