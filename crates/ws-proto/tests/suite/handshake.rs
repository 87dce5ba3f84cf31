//! The opening handshake: the client's request bytes, the server's parse and
//! checks (with the right HTTP status), accept and reject, and the client's
//! validation of the response.

use bytes::BytesMut;
use ws_proto::{
    AcceptOptions, ClientHandshake, ClientRequest, Config, Connection, Event, HandshakeConfig,
    HandshakeError, Message, Negotiated, Role, ServerHandshake, ServerRequest, accept_key,
};

use crate::util::{TEXT, fixed, frame_to, ok_events};

/// The key `ClientHandshake::with_entropy` sends with 16 bytes of 0x37.
const FIXED_KEY: &str = "Nzc3Nzc3Nzc3Nzc3Nzc3Nw==";
const FIXED_ACCEPT: &str = "jY4oAsN7VzS6JrBKTdlDsxNGhFM=";

/// The sample request of RFC 6455 section 1.3.
const RFC_REQUEST: &str = "GET /chat HTTP/1.1\r\n\
    Host: server.example.com\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Origin: http://example.com\r\n\
    Sec-WebSocket-Protocol: chat, superchat\r\n\
    Sec-WebSocket-Version: 13\r\n\
    \r\n";

fn client_hs(request: &ClientRequest) -> ClientHandshake {
    ClientHandshake::with_entropy(request, &mut fixed).expect("valid request")
}

fn host_line(uri: &str) -> String {
    let request = ClientRequest::new(uri).unwrap();
    let hs = client_hs(&request);
    let text = core::str::from_utf8(hs.request()).unwrap();
    text.split("\r\n")
        .find(|line| line.starts_with("Host: "))
        .unwrap()
        .to_string()
}

#[test]
fn client_request_bytes() {
    let request = ClientRequest::new("ws://example.com:8080/chat?x=1")
        .unwrap()
        .origin("http://example.com")
        .protocol("chat")
        .protocol("superchat")
        .extension("permessage-deflate; client_max_window_bits")
        .header("User-Agent", "ws-proto-tests/1");
    assert_eq!(request.host(), "example.com");
    assert_eq!(request.port(), 8080);
    assert_eq!(request.path(), "/chat?x=1");
    assert!(!request.is_secure());
    let hs = client_hs(&request);
    let text = core::str::from_utf8(hs.request()).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(
        lines,
        [
            "GET /chat?x=1 HTTP/1.1",
            "Host: example.com:8080",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: Nzc3Nzc3Nzc3Nzc3Nzc3Nw==",
            "Sec-WebSocket-Version: 13",
            "Origin: http://example.com",
            "Sec-WebSocket-Protocol: chat, superchat",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
            "User-Agent: ws-proto-tests/1",
            "",
            "",
        ]
    );
}

#[test]
fn host_header_includes_only_a_non_default_port() {
    assert_eq!(
        host_line("ws://example.com:8080/"),
        "Host: example.com:8080"
    );
    assert_eq!(host_line("ws://example.com:80/"), "Host: example.com");
    assert_eq!(host_line("ws://example.com"), "Host: example.com");
    assert_eq!(host_line("wss://example.com:443/x"), "Host: example.com");
    assert_eq!(host_line("wss://example.com:80/x"), "Host: example.com:80");
    assert_eq!(host_line("ws://[::1]:9001/"), "Host: [::1]:9001");
    assert_eq!(host_line("ws://[::1]/"), "Host: [::1]");
    // An explicit Host header replaces the derived one.
    let request = ClientRequest::new("ws://10.0.0.1:8080/")
        .unwrap()
        .header("Host", "virtual.example");
    let hs = client_hs(&request);
    let text = core::str::from_utf8(hs.request()).unwrap();
    assert_eq!(text.matches("Host:").count(), 1, "{text}");
    assert!(text.contains("\r\nHost: virtual.example\r\n"), "{text}");
}

#[test]
fn server_parses_the_rfc_sample_request() {
    let mut buf = BytesMut::from(RFC_REQUEST.as_bytes());
    let request = ServerHandshake::new()
        .receive(&mut buf)
        .unwrap()
        .expect("complete");
    assert!(buf.is_empty());
    assert_eq!(request.path(), "/chat");
    assert_eq!(request.host(), "server.example.com");
    assert_eq!(request.origin(), Some("http://example.com"));
    assert_eq!(request.protocols(), ["chat", "superchat"]);
    assert!(request.extensions().is_empty());
    assert_eq!(request.header("SEC-WEBSOCKET-VERSION"), Some("13"));

    let accepted = request
        .accept(&AcceptOptions::new().protocol("chat"))
        .unwrap();
    assert_eq!(
        core::str::from_utf8(accepted.response()).unwrap(),
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
         Sec-WebSocket-Protocol: chat\r\n\
         \r\n"
    );
    // A protocol the client did not offer is the caller's bug.
    assert_eq!(
        request.accept(&AcceptOptions::new().protocol("other")),
        Err(HandshakeError::UnofferedSubprotocol("other".into()))
    );
}

#[test]
fn server_waits_for_the_whole_request_at_every_split() {
    let bytes = RFC_REQUEST.as_bytes();
    for cut in 0..bytes.len() {
        let mut server = ServerHandshake::new();
        let mut buf = BytesMut::from(&bytes[..cut]);
        assert_eq!(server.receive(&mut buf), Ok(None), "cut {cut}");
        assert_eq!(buf.len(), cut, "a partial request is left alone");
        buf.extend_from_slice(&bytes[cut..]);
        let request = server.receive(&mut buf).unwrap().expect("complete");
        assert_eq!(request.path(), "/chat");
        assert!(buf.is_empty());
    }
    // Byte by byte into one buffer.
    let mut server = ServerHandshake::new();
    let mut buf = BytesMut::new();
    for (i, &byte) in bytes.iter().enumerate() {
        buf.extend_from_slice(&[byte]);
        let result = server.receive(&mut buf).unwrap();
        assert_eq!(result.is_some(), i + 1 == bytes.len());
    }
}

#[test]
fn bytes_after_the_request_stay_in_the_buffer() {
    let frame = frame_to(Role::Server, true, TEXT, b"early");
    let mut buf = BytesMut::from(RFC_REQUEST.as_bytes());
    buf.extend_from_slice(&frame);
    let request = ServerHandshake::new().receive(&mut buf).unwrap().unwrap();
    assert_eq!(request.path(), "/chat");
    assert_eq!(buf[..], frame[..]);
    let mut server = Connection::with_entropy(Role::Server, Config::default(), fixed);
    assert_eq!(
        ok_events(&mut server, &mut buf),
        [Event::Message(Message::text("early"))]
    );
}

/// The RFC sample with `edit` applied to its header lines.
fn edited(edit: impl FnOnce(&mut Vec<String>)) -> String {
    let mut lines: Vec<String> = RFC_REQUEST
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    edit(&mut lines);
    let mut text = lines.join("\r\n");
    text.push_str("\r\n\r\n");
    text
}

fn without(name: &str) -> String {
    let prefix = format!("{name}:");
    edited(|lines| lines.retain(|l| !l.starts_with(&prefix)))
}

fn replaced(name: &str, value: &str) -> String {
    let prefix = format!("{name}:");
    let line = format!("{name}: {value}");
    edited(|lines| {
        for l in lines.iter_mut() {
            if l.starts_with(&prefix) {
                l.clone_from(&line);
            }
        }
    })
}

fn server_error(request: &str) -> HandshakeError {
    server_error_with(HandshakeConfig::default(), request)
}

fn server_error_with(config: HandshakeConfig, request: &str) -> HandshakeError {
    let mut buf = BytesMut::from(request.as_bytes());
    match ServerHandshake::with_config(config).receive(&mut buf) {
        Err(error) => {
            let status = error.status().expect("a server error has a status");
            let response = error.response().expect("a server error has a response");
            let text = String::from_utf8(response).unwrap();
            assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
            error
        }
        other => panic!("expected an error, got {other:?} for {request:?}"),
    }
}

fn accepted(request: &str) {
    let mut buf = BytesMut::from(request.as_bytes());
    let result = ServerHandshake::new().receive(&mut buf);
    assert!(matches!(result, Ok(Some(_))), "{result:?} for {request:?}");
}

#[test]
fn server_rejects_a_bad_method_or_version_with_400() {
    let post = RFC_REQUEST.replacen("GET", "POST", 1);
    assert_eq!(server_error(&post), HandshakeError::Method("POST".into()));
    assert_eq!(server_error(&post).status(), Some(400));
    let http10 = RFC_REQUEST.replacen("HTTP/1.1", "HTTP/1.0", 1);
    assert_eq!(server_error(&http10), HandshakeError::Version);
    assert_eq!(server_error(&http10).status(), Some(400));
    let garbage = server_error("GARBAGE\0\r\n\r\n");
    assert!(
        matches!(garbage, HandshakeError::MalformedHttp(_)),
        "{garbage:?}"
    );
    assert_eq!(garbage.status(), Some(400));
}

#[test]
fn server_rejects_missing_headers_with_400() {
    assert_eq!(server_error(&without("Host")), HandshakeError::MissingHost);
    assert_eq!(server_error(&replaced("Host", "")).status(), Some(400));
    let error = server_error(&without("Upgrade"));
    assert!(
        matches!(error, HandshakeError::MissingUpgrade(_)),
        "{error:?}"
    );
    assert_eq!(error.status(), Some(400));
    assert_eq!(
        server_error(&replaced("Upgrade", "h2c")).status(),
        Some(400)
    );
    let error = server_error(&without("Connection"));
    assert!(
        matches!(error, HandshakeError::MissingUpgrade(_)),
        "{error:?}"
    );
    assert_eq!(error.status(), Some(400));
    let error = server_error(&replaced("Connection", "keep-alive"));
    assert!(
        matches!(error, HandshakeError::MissingUpgrade(_)),
        "{error:?}"
    );
    assert_eq!(error.status(), Some(400));
}

#[test]
fn server_accepts_token_lists_and_any_case() {
    accepted(&replaced("Connection", "keep-alive, Upgrade"));
    accepted(&replaced("Connection", "upgrade"));
    accepted(&replaced("Upgrade", "WebSocket"));
    accepted(&edited(|lines| {
        // Header names and tokens in lower case (not the request line).
        for l in lines.iter_mut().skip(1) {
            *l = l.to_ascii_lowercase();
        }
        // The key is case-sensitive base64: restore it.
        for l in lines.iter_mut() {
            if l.starts_with("sec-websocket-key:") {
                *l = "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==".into();
            }
        }
    }));
}

#[test]
fn server_rejects_a_bad_key_with_400() {
    for key in [
        "dGhlIHNhbXBsZQ==",          // 10 bytes
        "dGhlIHNhbXBsZSBub25jZSEh",  // 18 bytes
        "not base64 at all!!!!!!!!", // not base64
        "",
    ] {
        let error = server_error(&replaced("Sec-WebSocket-Key", key));
        assert_eq!(error, HandshakeError::InvalidKey, "{key:?}");
        assert_eq!(error.status(), Some(400));
    }
    assert_eq!(
        server_error(&without("Sec-WebSocket-Key")),
        HandshakeError::InvalidKey
    );
}

#[test]
fn server_rejects_other_versions_with_426() {
    for request in [
        replaced("Sec-WebSocket-Version", "8"),
        without("Sec-WebSocket-Version"),
    ] {
        let error = server_error(&request);
        assert_eq!(error, HandshakeError::UnsupportedVersion);
        assert_eq!(error.status(), Some(426));
        let response = String::from_utf8(error.response().unwrap()).unwrap();
        assert!(response.starts_with("HTTP/1.1 426 "), "{response}");
        assert!(
            response.contains("\r\nSec-WebSocket-Version: 13\r\n"),
            "{response}"
        );
    }
}

#[test]
fn server_rejects_too_many_headers_with_431() {
    let request = edited(|lines| {
        for i in 0..64 {
            lines.push(format!("X-Filler-{i}: {i}"));
        }
    });
    let error = server_error(&request);
    assert_eq!(error, HandshakeError::TooManyHeaders { max: 64 });
    assert_eq!(error.status(), Some(431), "{error:?}");
    // With a lower limit, fewer headers suffice.
    let error = server_error_with(HandshakeConfig::default().with_max_headers(4), RFC_REQUEST);
    assert_eq!(error, HandshakeError::TooManyHeaders { max: 4 });
    assert_eq!(error.status(), Some(431), "{error:?}");
    assert_eq!(error.to_string(), "more than 4 header lines");
}

#[test]
fn server_rejects_a_head_over_the_limit_with_431() {
    let big = "a".repeat(17 * 1024);
    // Complete but too large.
    let request = edited(|lines| lines.push(format!("X-Big: {big}")));
    let error = server_error(&request);
    assert_eq!(error, HandshakeError::TooLarge { max: 16 * 1024 });
    assert_eq!(error.status(), Some(431));
    // Still incomplete and already too large: no need to wait for the end.
    let partial = format!("GET /chat HTTP/1.1\r\nX-Big: {big}");
    let error = server_error(&partial);
    assert_eq!(error.status(), Some(431));
    // A configured limit.
    let error = server_error_with(
        HandshakeConfig::default().with_max_head_size(64),
        RFC_REQUEST,
    );
    assert_eq!(error, HandshakeError::TooLarge { max: 64 });
}

#[test]
fn reject_bytes_and_the_client_reading_them() {
    let mut buf = BytesMut::from(RFC_REQUEST.as_bytes());
    let request = ServerHandshake::new().receive(&mut buf).unwrap().unwrap();
    let response = request.reject(403, &[("X-Why", "no")], b"forbidden");
    assert_eq!(
        core::str::from_utf8(&response).unwrap(),
        "HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nX-Why: no\r\n\
         Sec-WebSocket-Version: 13\r\nContent-Length: 9\r\n\r\nforbidden"
    );
    // Invalid header pairs are left out rather than injected.
    let sneaky = request.reject(
        401,
        &[("X-Bad", "a\r\nSet-Cookie: x"), ("Bad Name", "v")],
        b"",
    );
    assert_eq!(
        core::str::from_utf8(&sneaky).unwrap(),
        "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nSec-WebSocket-Version: 13\r\n\
         Content-Length: 0\r\n\r\n"
    );

    let client_request = ClientRequest::new("ws://example.com/chat").unwrap();
    // Split anywhere before the body is complete: the client waits.
    for cut in 0..response.len() {
        let mut hs = client_hs(&client_request);
        let mut buf = BytesMut::from(&response[..cut]);
        assert_eq!(hs.receive(&mut buf), Ok(None), "cut {cut}");
    }
    let mut hs = client_hs(&client_request);
    let mut buf = BytesMut::from(&response[..]);
    match hs.receive(&mut buf) {
        Err(HandshakeError::Rejected(rejected)) => {
            assert_eq!(rejected.status, 403);
            assert_eq!(rejected.reason, "Forbidden");
            assert_eq!(rejected.header("x-why"), Some("no"));
            assert_eq!(rejected.body, b"forbidden");
        }
        other => panic!("{other:?}"),
    }
    assert!(buf.is_empty());
}

// ----- Client validation of the response -----

fn offer() -> ClientRequest {
    ClientRequest::new("ws://example.com/chat")
        .unwrap()
        .protocol("chat")
        .protocol("superchat")
        .extension("x-offered; level=1")
}

fn response(extra: &[&str]) -> String {
    let mut text = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {FIXED_ACCEPT}\r\n"
    );
    for line in extra {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text
}

fn client_receive(
    request: &ClientRequest,
    response: &str,
) -> Result<Option<ws_proto::ClientResponse>, HandshakeError> {
    let mut hs = client_hs(request);
    let mut buf = BytesMut::from(response.as_bytes());
    hs.receive(&mut buf)
}

#[test]
fn fixed_key_and_accept() {
    assert_eq!(accept_key(FIXED_KEY.as_bytes()), FIXED_ACCEPT);
    let hs = client_hs(&offer());
    let text = core::str::from_utf8(hs.request()).unwrap();
    assert!(text.contains(&format!("\r\nSec-WebSocket-Key: {FIXED_KEY}\r\n")));
}

#[test]
fn client_accepts_a_valid_response_and_reports_the_choices() {
    let chosen = client_receive(
        &offer(),
        &response(&[
            "Sec-WebSocket-Protocol: superchat",
            "Sec-WebSocket-Extensions: x-offered; level=1",
            "Set-Cookie: a=b",
        ]),
    )
    .unwrap()
    .expect("complete");
    assert_eq!(chosen.protocol.as_deref(), Some("superchat"));
    assert_eq!(chosen.extensions, ["x-offered; level=1"]);
    assert_eq!(chosen.header("set-cookie"), Some("a=b"));

    let plain = client_receive(&offer(), &response(&[])).unwrap().unwrap();
    assert_eq!(plain.protocol, None);
    assert!(plain.extensions.is_empty());
}

#[test]
fn client_rejects_a_wrong_accept() {
    let wrong = response(&[]).replace(FIXED_ACCEPT, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(
        client_receive(&offer(), &wrong),
        Err(HandshakeError::InvalidAccept)
    );
    let missing = response(&[]).replace(&format!("Sec-WebSocket-Accept: {FIXED_ACCEPT}\r\n"), "");
    assert_eq!(
        client_receive(&offer(), &missing),
        Err(HandshakeError::InvalidAccept)
    );
}

#[test]
fn client_rejects_a_missing_upgrade() {
    let no_upgrade = response(&[]).replace("Upgrade: websocket\r\n", "");
    let error = client_receive(&offer(), &no_upgrade).unwrap_err();
    assert!(
        matches!(error, HandshakeError::MissingUpgrade(_)),
        "{error:?}"
    );
    let no_connection = response(&[]).replace("Connection: Upgrade\r\n", "");
    let error = client_receive(&offer(), &no_connection).unwrap_err();
    assert!(
        matches!(error, HandshakeError::MissingUpgrade(_)),
        "{error:?}"
    );
}

#[test]
fn client_rejects_an_unoffered_subprotocol() {
    assert_eq!(
        client_receive(&offer(), &response(&["Sec-WebSocket-Protocol: other"])),
        Err(HandshakeError::UnofferedSubprotocol("other".into()))
    );
    // Two at once is not a choice.
    assert!(matches!(
        client_receive(
            &offer(),
            &response(&["Sec-WebSocket-Protocol: chat, superchat"])
        ),
        Err(HandshakeError::UnofferedSubprotocol(_))
    ));
    // None offered, one chosen.
    let plain = ClientRequest::new("ws://example.com/chat").unwrap();
    assert!(matches!(
        client_receive(&plain, &response(&["Sec-WebSocket-Protocol: chat"])),
        Err(HandshakeError::UnofferedSubprotocol(_))
    ));
}

#[test]
fn client_rejects_an_unoffered_extension() {
    assert_eq!(
        client_receive(
            &offer(),
            &response(&["Sec-WebSocket-Extensions: permessage-deflate"])
        ),
        Err(HandshakeError::UnofferedExtension(
            "permessage-deflate".into()
        ))
    );
    let plain = ClientRequest::new("ws://example.com/chat").unwrap();
    assert!(matches!(
        client_receive(&plain, &response(&["Sec-WebSocket-Extensions: x-offered"])),
        Err(HandshakeError::UnofferedExtension(_))
    ));
}

#[test]
fn client_waits_for_the_whole_response_and_leaves_the_frame_after_it() {
    let frame = frame_to(Role::Client, true, TEXT, b"hello");
    let mut bytes = response(&["Sec-WebSocket-Protocol: chat"]).into_bytes();
    let head_len = bytes.len();
    bytes.extend_from_slice(&frame);
    for cut in 0..head_len {
        let mut hs = client_hs(&offer());
        let mut buf = BytesMut::from(&bytes[..cut]);
        assert_eq!(hs.receive(&mut buf), Ok(None), "cut {cut}");
        assert_eq!(buf.len(), cut);
    }
    let mut hs = client_hs(&offer());
    let mut buf = BytesMut::from(&bytes[..]);
    let response = hs.receive(&mut buf).unwrap().expect("complete");
    assert_eq!(response.protocol.as_deref(), Some("chat"));
    assert_eq!(buf[..], frame[..]);
    let mut client = Connection::with_entropy(Role::Client, Config::default(), fixed);
    assert_eq!(
        ok_events(&mut client, &mut buf),
        [Event::Message(Message::text("hello"))]
    );
}

#[test]
fn client_request_refuses_bad_input() {
    for uri in [
        "http://example.com",
        "ws://",
        "ws://h:0",
        "ws://h/#f",
        "ws://u@h",
    ] {
        let error = ClientRequest::new(uri).unwrap_err();
        assert!(matches!(error, HandshakeError::InvalidRequest(_)), "{uri}");
        assert_eq!(error.status(), None);
    }
    let request = ClientRequest::new("ws://h")
        .unwrap()
        .header("Sec-WebSocket-Key", "x");
    assert!(ClientHandshake::with_entropy(&request, &mut fixed).is_err());
    let request = ClientRequest::new("ws://h")
        .unwrap()
        .header("X-Evil", "a\r\nInjected: 1");
    assert!(ClientHandshake::with_entropy(&request, &mut fixed).is_err());
}

#[test]
fn handshake_then_connection_end_to_end() {
    let request = ClientRequest::new("ws://example.com:9000/feed?v=2")
        .unwrap()
        .protocol("v2");
    let mut hs = client_hs(&request);
    let mut to_server = BytesMut::from(hs.request());
    let req = ServerHandshake::new()
        .receive(&mut to_server)
        .unwrap()
        .unwrap();
    assert_eq!(req.host(), "example.com:9000");
    assert_eq!(req.target(), "/feed?v=2");
    assert_eq!(req.path(), "/feed");
    assert_eq!(req.query(), Some("v=2"));
    let accepted = req
        .accept(
            &AcceptOptions::new()
                .protocol("v2")
                .header("X-Server", "test"),
        )
        .unwrap();
    let mut to_client = BytesMut::from(accepted.response());
    let response = hs.receive(&mut to_client).unwrap().unwrap();
    assert_eq!(response.protocol.as_deref(), Some("v2"));
    assert_eq!(response.header("x-server"), Some("test"));
    // Both connections know the subprotocol.
    let server = accepted.connection(Config::default());
    let client = response.connection_with_entropy(Config::default(), fixed);
    assert_eq!(server.role(), Role::Server);
    assert_eq!(client.role(), Role::Client);
    assert_eq!(
        (server.protocol(), client.protocol()),
        (Some("v2"), Some("v2"))
    );
    // Bad response headers are the caller's bug, refused before writing.
    assert!(
        req.accept(&AcceptOptions::new().header("X-Bad", "a\nb"))
            .is_err()
    );
}

// ----- A request from parsed parts (hyper, axum) -----

/// A request as an HTTP library hands it over: method, target, headers.
type Parts = (String, String, Vec<(String, String)>);

/// Splits a raw request the way an HTTP library would (values trimmed).
fn parts(request: &str) -> Parts {
    let mut lines = request.split("\r\n").filter(|l| !l.is_empty());
    let mut start = lines.next().unwrap().split(' ');
    let (method, target) = (start.next().unwrap(), start.next().unwrap());
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_string(), value.trim().to_string())
        })
        .collect();
    (method.to_string(), target.to_string(), headers)
}

fn from_parts(request: &str) -> Result<ServerRequest, HandshakeError> {
    let (method, target, headers) = parts(request);
    ServerRequest::from_parts(&method, &target, headers)
}

fn from_bytes(request: &str) -> Result<ServerRequest, HandshakeError> {
    let mut buf = BytesMut::from(request.as_bytes());
    ServerHandshake::new()
        .receive(&mut buf)
        .map(|r| r.expect("complete"))
}

/// Every bad request above that an HTTP library would still hand over
/// (the HTTP version, the syntax and the size limits are the byte parser's
/// alone).
fn bad_requests() -> Vec<String> {
    let mut bad = vec![
        RFC_REQUEST.replacen("GET", "POST", 1),
        without("Host"),
        replaced("Host", ""),
        without("Upgrade"),
        replaced("Upgrade", "h2c"),
        without("Connection"),
        replaced("Connection", "keep-alive"),
        without("Sec-WebSocket-Key"),
        replaced("Sec-WebSocket-Version", "8"),
        without("Sec-WebSocket-Version"),
    ];
    for key in [
        "dGhlIHNhbXBsZQ==",
        "dGhlIHNhbXBsZSBub25jZSEh",
        "not base64 at all!!!!!!!!",
        "",
    ] {
        bad.push(replaced("Sec-WebSocket-Key", key));
    }
    bad
}

#[test]
fn from_parts_rejects_what_the_byte_parser_rejects() {
    for request in bad_requests() {
        let expected = from_bytes(&request).expect_err("a bad request");
        let error = from_parts(&request).expect_err("a bad request");
        assert_eq!(error, expected, "{request:?}");
        assert_eq!(error.status(), expected.status());
        assert_eq!(error.response(), expected.response());
    }
}

#[test]
fn from_parts_accepts_what_the_byte_parser_accepts() {
    for request in [
        RFC_REQUEST.to_string(),
        RFC_REQUEST.replacen("/chat", "/chat?room=1&x", 1),
        replaced("Connection", "keep-alive, Upgrade"),
        replaced("Upgrade", "WebSocket"),
        edited(|lines| lines.push("Sec-WebSocket-Extensions: x-a; p=1, x-b".into())),
    ] {
        let expected = from_bytes(&request).unwrap();
        assert_eq!(from_parts(&request).unwrap(), expected, "{request:?}");
    }
}

#[test]
fn from_parts_takes_text_or_byte_values_and_checks_the_syntax() {
    // `http::HeaderMap` users pass `(name.as_str(), value.as_bytes())`.
    let headers: [(&str, &[u8]); 5] = [
        ("host", b"example.com"),
        ("upgrade", b"websocket"),
        ("connection", b"Upgrade"),
        ("sec-websocket-version", b"13"),
        ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let request = ServerRequest::from_parts("GET", "/chat?a=b", headers).unwrap();
    assert_eq!(
        (request.path(), request.query(), request.host()),
        ("/chat", Some("a=b"), "example.com")
    );
    let accepted = request.accept(&AcceptOptions::new()).unwrap();
    assert!(accepted.headers().contains(&(
        "Sec-WebSocket-Accept".into(),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into()
    )));

    let (_, _, good) = parts(RFC_REQUEST);
    let with = |name: &str, value: &str| {
        let mut headers = good.clone();
        headers.push((name.to_string(), value.to_string()));
        headers
    };
    for (target, headers) in [
        ("/chat", with("Bad Name", "v")),
        ("/chat", with("", "v")),
        ("/chat", with("X-Evil", "a\r\nInjected: 1")),
        ("/chat", with("X-Nul", "a\0b")),
        ("", good.clone()),
        ("/a b", good.clone()),
    ] {
        let error = ServerRequest::from_parts("GET", target, headers).unwrap_err();
        assert!(
            matches!(error, HandshakeError::MalformedHttp(_)),
            "{error:?}"
        );
        assert_eq!(error.status(), Some(400));
    }
    assert!(matches!(
        ServerRequest::from_parts("G T", "/", good.clone()),
        Err(HandshakeError::MalformedHttp(_))
    ));
    // Tabs in values are fine, as on the wire.
    assert!(ServerRequest::from_parts("GET", "/", with("X-Tab", "a\tb")).is_ok());
}

// ----- Path, query, target -----

#[test]
fn path_and_query_are_split() {
    for (target, path, query) in [
        ("/chat", "/chat", None),
        ("/chat?room=1&x=%20", "/chat", Some("room=1&x=%20")),
        ("/?", "/", Some("")),
        ("/a?b?c", "/a", Some("b?c")),
    ] {
        let request = from_bytes(&RFC_REQUEST.replacen("/chat", target, 1)).unwrap();
        assert_eq!(
            (request.target(), request.path(), request.query()),
            (target, path, query)
        );
    }
}

// ----- Subprotocol choice -----

#[test]
fn the_server_picks_its_preferred_offered_protocol() {
    // The client offers "chat, superchat".
    let request = from_bytes(RFC_REQUEST).unwrap();
    let pick = |options: AcceptOptions| {
        let accepted = request.accept(&options).unwrap();
        let text = String::from_utf8(accepted.response().to_vec()).unwrap();
        let protocol = accepted.negotiated().protocol().map(str::to_string);
        match &protocol {
            Some(p) => assert!(text.contains(&format!("\r\nSec-WebSocket-Protocol: {p}\r\n"))),
            None => assert!(!text.contains("Sec-WebSocket-Protocol"), "{text}"),
        }
        protocol
    };
    // The server's order, not the client's.
    assert_eq!(
        pick(AcceptOptions::new().protocols(["superchat", "chat"])).as_deref(),
        Some("superchat")
    );
    assert_eq!(
        pick(AcceptOptions::new().protocols(["v3", "chat"])).as_deref(),
        Some("chat")
    );
    // Nothing in common is not an error: no subprotocol.
    assert_eq!(pick(AcceptOptions::new().protocols(["v3"])), None);
    assert_eq!(
        pick(AcceptOptions::new().protocols(Vec::<String>::new())),
        None
    );
    assert_eq!(pick(AcceptOptions::new()), None);
    // Exact match only: subprotocols are case-sensitive.
    assert_eq!(pick(AcceptOptions::new().protocols(["CHAT"])), None);
    // The last of `protocol` and `protocols` wins.
    assert_eq!(
        pick(AcceptOptions::new().protocol("other").protocols(["chat"])).as_deref(),
        Some("chat")
    );
    let exact = AcceptOptions::new().protocols(["chat"]).protocol("other");
    assert_eq!(exact.chosen_protocol(), Some("other"));
    assert_eq!(
        request.accept(&exact),
        Err(HandshakeError::UnofferedSubprotocol("other".into()))
    );
    assert_eq!(
        AcceptOptions::new().protocols(["chat"]).chosen_protocol(),
        None
    );
    // The same choice without accepting.
    assert_eq!(
        request.choose_protocol(&["superchat", "chat"]),
        Some("superchat")
    );
    assert_eq!(request.choose_protocol(&["v3"]), None);
    // A client that offered nothing.
    let plain = from_bytes(&without("Sec-WebSocket-Protocol")).unwrap();
    assert_eq!(
        plain
            .accept(&AcceptOptions::new().protocols(["chat"]))
            .unwrap()
            .negotiated()
            .protocol(),
        None
    );
}

// ----- Accepted -----

#[test]
fn accepted_hands_over_headers_bytes_and_the_connection() {
    let request = from_bytes(RFC_REQUEST).unwrap();
    let accepted = request
        .accept(
            &AcceptOptions::new()
                .protocols(["chat"])
                .header("Set-Cookie", "a=b"),
        )
        .unwrap();
    let headers: Vec<(&str, &str)> = accepted
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        headers,
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ("Sec-WebSocket-Protocol", "chat"),
            ("Set-Cookie", "a=b"),
        ]
    );
    // The bytes are the status line, those headers, and a blank line.
    let mut expected = String::from("HTTP/1.1 101 Switching Protocols\r\n");
    for (name, value) in &headers {
        expected.push_str(&format!("{name}: {value}\r\n"));
    }
    expected.push_str("\r\n");
    assert_eq!(accepted.response(), expected.as_bytes());
    assert_eq!(
        accepted.negotiated(),
        &Negotiated::new(Some("chat".into()), vec![])
    );

    let conn = accepted.connection(Config::default().with_max_message_size(1234));
    assert_eq!(conn.role(), Role::Server);
    assert_eq!(conn.protocol(), Some("chat"));
    assert_eq!(conn.negotiated(), Some(accepted.negotiated()));
    assert_eq!(conn.config().max_message_size, 1234);
    assert_eq!(accepted.clone().into_response(), expected.into_bytes());

    // Nothing negotiated: nothing stored.
    let plain = request.accept(&AcceptOptions::new()).unwrap();
    let conn = plain.connection(Config::default());
    assert_eq!((conn.protocol(), conn.negotiated()), (None, None));
}

#[test]
fn client_response_hands_over_the_negotiated_choices() {
    let answer = client_receive(
        &offer(),
        &response(&[
            "Sec-WebSocket-Protocol: superchat",
            "Sec-WebSocket-Extensions: x-offered; level=1",
        ]),
    )
    .unwrap()
    .unwrap();
    let negotiated = answer.negotiated();
    assert_eq!(negotiated.protocol(), Some("superchat"));
    assert_eq!(negotiated.extensions(), ["x-offered; level=1"]);

    let conn = answer.connection_with_entropy(Config::default(), fixed);
    assert_eq!(conn.role(), Role::Client);
    assert_eq!(conn.protocol(), Some("superchat"));
    assert_eq!(conn.negotiated(), Some(&negotiated));
    let conn = answer.connection(Config::default());
    assert_eq!(conn.role(), Role::Client);
    assert_eq!(conn.protocol(), Some("superchat"));

    let plain = client_receive(&offer(), &response(&[])).unwrap().unwrap();
    assert_eq!(plain.negotiated(), Negotiated::default());
    assert_eq!(plain.connection(Config::default()).negotiated(), None);
}

#[test]
fn a_default_negotiation_is_not_stored() {
    let conn = Connection::with_entropy(Role::Server, Config::default(), fixed)
        .with_negotiated(Negotiated::default());
    assert_eq!(conn.negotiated(), None);
    let only_extension = Negotiated::new(None, vec!["x-a".into()]);
    let conn = Connection::with_entropy(Role::Server, Config::default(), fixed)
        .with_negotiated(only_extension.clone());
    assert_eq!(conn.protocol(), None);
    assert_eq!(conn.negotiated(), Some(&only_extension));
}

// ----- Refusals: text, and one encoder -----

fn rejected(response: &[u8]) -> HandshakeError {
    let mut hs = client_hs(&offer());
    let mut buf = BytesMut::from(response);
    hs.receive(&mut buf).expect_err("a refusal")
}

#[test]
fn a_refusal_reads_as_text() {
    let error = rejected(
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n\
          Content-Length: 12\r\n\r\nwho are you\n",
    );
    assert_eq!(
        error.to_string(),
        r#"server answered 401 Unauthorized: "who are you""#
    );
    let debug = format!("{error:?}");
    assert!(debug.contains(r#"value: "Bearer""#), "{debug}");
    assert!(debug.contains(r#"body: "who are you\n""#), "{debug}");
    assert!(!debug.contains("[66, "), "no byte arrays: {debug}");

    // Long bodies are cut; control characters are escaped; bad UTF-8 replaced.
    let mut long =
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 300\r\n\r\n\x1b[31m".to_vec();
    long.extend_from_slice(&[b'x'; 294]);
    long.push(0xff);
    let text = rejected(&long).to_string();
    assert!(
        text.starts_with(r#"server answered 503 Service Unavailable: "\u{1b}[31mxxx"#),
        "{text}"
    );
    assert!(text.ends_with(r#"xxx" (and 100 more bytes)"#), "{text}");
    let debug = format!("{:?}", rejected(&long));
    assert!(debug.contains('\u{fffd}'), "{debug}");

    // No body: just the status.
    let error = rejected(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(error.to_string(), "server answered 404 Not Found");
}

#[test]
fn reject_and_error_answers_share_their_headers() {
    let request = from_bytes(RFC_REQUEST).unwrap();
    let lines = |bytes: Vec<u8>| -> Vec<String> {
        let text = String::from_utf8(bytes).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap().to_string();
        head.split("\r\n").map(str::to_string).collect()
    };
    let reject = lines(request.reject(400, &[], b"bad"));
    let own = lines(HandshakeError::InvalidKey.response().unwrap());
    assert_eq!(
        reject[..5],
        [
            "HTTP/1.1 400 Bad Request",
            "Connection: close",
            "Content-Type: text/plain; charset=utf-8",
            "Sec-WebSocket-Version: 13",
            "Content-Length: 3",
        ]
    );
    assert_eq!(reject[..4], own[..4], "{own:?}");
    // The caller's Content-Type and version replace the defaults; the
    // encoder's own headers cannot be doubled.
    let custom = lines(request.reject(
        401,
        &[
            ("content-type", "application/json"),
            ("Content-Length", "99"),
            ("Connection", "keep-alive"),
            ("Transfer-Encoding", "chunked"),
            ("Sec-WebSocket-Version", "13, 8"),
        ],
        b"{}",
    ));
    assert_eq!(
        custom,
        [
            "HTTP/1.1 401 Unauthorized",
            "Connection: close",
            "content-type: application/json",
            "Sec-WebSocket-Version: 13, 8",
            "Content-Length: 2",
        ]
    );
    // 426 still says which version to use, and which upgrade.
    let upgrade = lines(HandshakeError::UnsupportedVersion.response().unwrap());
    assert!(
        upgrade.contains(&"Upgrade: websocket".to_string()),
        "{upgrade:?}"
    );
    assert!(
        upgrade.contains(&"Sec-WebSocket-Version: 13".to_string()),
        "{upgrade:?}"
    );
}

#[test]
fn malformed_http_is_our_own_error() {
    let error = server_error("GET /chat HTTP/1.1\r\nBad Name: x\r\n\r\n");
    assert_eq!(error, HandshakeError::MalformedHttp("invalid header name"));
    assert_eq!(error.to_string(), "malformed HTTP: invalid header name");
    let mut hs = client_hs(&offer());
    let mut buf = BytesMut::from(&b"HTTP/1.1 abc OK\r\n\r\n"[..]);
    assert!(matches!(
        hs.receive(&mut buf),
        Err(HandshakeError::MalformedHttp(_))
    ));
}
