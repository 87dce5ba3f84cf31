//! The server's request parser: any bytes in any chunks. A request is only
//! accepted when it really is one; every error has an HTTP answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_proto::{AcceptOptions, HandshakeConfig, ServerHandshake, bytes::BytesMut};

fuzz_target!(|data: &[u8]| {
    let [chunk, wire @ ..] = data else { return };
    let chunk = usize::from(*chunk).max(1);
    let config = HandshakeConfig::default().with_max_head_size(2048);
    let mut handshake = ServerHandshake::with_config(config);
    let mut buf = BytesMut::new();
    for piece in wire.chunks(chunk) {
        buf.extend_from_slice(piece);
        let before = buf.len();
        match handshake.receive(&mut buf) {
            Ok(None) => assert_eq!(buf.len(), before, "nothing consumed while partial"),
            Ok(Some(request)) => {
                assert!(buf.len() < before);
                let accepted = request.accept(&AcceptOptions::new()).expect("plain accept");
                let response = accepted.response();
                let mut headers = [httparse::EMPTY_HEADER; 8];
                let mut parsed = httparse::Response::new(&mut headers);
                assert!(parsed.parse(response).is_ok_and(|s| s.is_complete()));
                assert_eq!(parsed.code, Some(101));
                return;
            }
            Err(error) => {
                let status = error.status().expect("server errors have a status");
                let response = error.response().expect("and a response");
                let mut headers = [httparse::EMPTY_HEADER; 16];
                let mut parsed = httparse::Response::new(&mut headers);
                assert!(parsed.parse(&response).is_ok_and(|s| s.is_complete()));
                assert_eq!(parsed.code, Some(status));
                return;
            }
        }
    }
});
