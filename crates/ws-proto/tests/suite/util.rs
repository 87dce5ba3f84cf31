//! Shared helpers: deterministic entropy, an in-memory client/server pair,
//! hand-built (possibly hostile) frames, and parsing of outgoing bytes.

use bytes::{Buf, BytesMut};
use ws_proto::internals::{FrameHeader, OpCode};
use ws_proto::{
    AcceptOptions, ClientHandshake, ClientRequest, CloseCode, Config, Connection, Event,
    ProtocolError, Role, ServerHandshake, State,
};

/// The masking key of the RFC 6455 section 5.7 examples.
pub(crate) const RFC_KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The key the hand-built client-to-server frames are masked with.
pub(crate) const TEST_KEY: [u8; 4] = [0xa1, 0x5b, 0x03, 0xe7];

/// Upper bound on `next_event` calls in one drain, so a library bug that
/// never returns `Ok(None)` fails the test instead of hanging it.
const MAX_EVENTS: usize = 100_000;

/// Both roles, for symmetric tests.
pub(crate) const ROLES: [Role; 2] = [Role::Client, Role::Server];

/// Entropy that fills everything with 0x37.
pub(crate) fn fixed(dest: &mut [u8]) {
    dest.fill(0x37);
}

/// Entropy that yields the RFC key `37 fa 21 3d` for every 4-byte draw.
pub(crate) fn rfc_key(dest: &mut [u8]) {
    for (i, byte) in dest.iter_mut().enumerate() {
        *byte = RFC_KEY[i % 4];
    }
}

/// Entropy from a small counter: every mask key differs, deterministically.
pub(crate) fn counter_entropy() -> impl FnMut(&mut [u8]) + Send + 'static {
    let mut next: u8 = 0x11;
    move |dest: &mut [u8]| {
        for byte in dest {
            *byte = next;
            next = next.wrapping_mul(5).wrapping_add(0x3b);
        }
    }
}

/// A connection with deterministic entropy.
pub(crate) fn conn(role: Role, config: Config) -> Connection {
    Connection::with_entropy(role, config, counter_entropy())
}

/// The other role.
pub(crate) const fn peer_of(role: Role) -> Role {
    match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    }
}

/// Takes all of a connection's outgoing bytes, chunk by chunk.
pub(crate) fn drain(conn: &mut Connection) -> Vec<u8> {
    let mut bytes = Vec::new();
    // A pong that waited for the previous one is queued by `outgoing()`.
    while conn.wants_write() {
        let out = conn.outgoing();
        while out.has_remaining() {
            let chunk = out.chunk();
            assert!(!chunk.is_empty(), "remaining() > 0 but chunk() is empty");
            bytes.extend_from_slice(chunk);
            let n = chunk.len();
            out.advance(n);
        }
        assert_eq!(out.len(), 0);
    }
    bytes
}

/// Moves a connection's outgoing bytes into the peer's read buffer.
pub(crate) fn move_bytes(from: &mut Connection, to: &mut BytesMut) {
    while from.wants_write() {
        let out = from.outgoing();
        while out.has_remaining() {
            let chunk = out.chunk();
            assert!(!chunk.is_empty(), "remaining() > 0 but chunk() is empty");
            to.extend_from_slice(chunk);
            let n = chunk.len();
            out.advance(n);
        }
    }
}

/// Drains `next_event` until `Ok(None)` or an error (bounded).
pub(crate) fn events(
    conn: &mut Connection,
    buf: &mut BytesMut,
) -> (Vec<Event>, Option<ProtocolError>) {
    let mut events = Vec::new();
    for _ in 0..MAX_EVENTS {
        match conn.next_event(buf) {
            Ok(Some(event)) => events.push(event),
            Ok(None) => return (events, None),
            Err(error) => return (events, Some(error)),
        }
    }
    panic!("next_event did not return Ok(None) within {MAX_EVENTS} calls");
}

/// Drains `next_event` until `Ok(None)`; an error fails the test.
pub(crate) fn ok_events(conn: &mut Connection, buf: &mut BytesMut) -> Vec<Event> {
    match events(conn, buf) {
        (events, None) => events,
        (events, Some(error)) => panic!("unexpected {error:?} after {events:?}"),
    }
}

/// An in-memory connected client and server and the bytes in flight.
#[derive(Debug)]
pub(crate) struct Pair {
    pub(crate) client: Connection,
    pub(crate) server: Connection,
    /// Bytes written by the client, not yet read by the server.
    pub(crate) to_server: BytesMut,
    /// Bytes written by the server, not yet read by the client.
    pub(crate) to_client: BytesMut,
}

impl Pair {
    /// A pair with default configurations, after the opening handshake.
    pub(crate) fn new() -> Self {
        Self::with_configs(Config::default(), Config::default())
    }

    /// A pair after the full opening handshake: `ClientRequest` ->
    /// `ClientHandshake` -> `ServerHandshake::receive` -> `ServerRequest::accept`
    /// -> `ClientHandshake::receive`.
    pub(crate) fn with_configs(client_config: Config, server_config: Config) -> Self {
        let request = ClientRequest::new("ws://example.com/chat")
            .expect("valid URI")
            .protocol("chat")
            .protocol("superchat");
        let mut client_hs =
            ClientHandshake::with_entropy(&request, &mut fixed).expect("valid request");
        let mut to_server = BytesMut::from(client_hs.request());

        let mut server_hs = ServerHandshake::new();
        let request = server_hs
            .receive(&mut to_server)
            .expect("valid request")
            .expect("complete request");
        assert_eq!(request.path(), "/chat");
        assert_eq!(request.host(), "example.com");
        assert_eq!(request.protocols(), ["chat", "superchat"]);
        let accepted = request
            .accept(&AcceptOptions::new().protocol("chat"))
            .expect("offered protocol");
        let mut to_client = BytesMut::from(accepted.response());

        let response = client_hs
            .receive(&mut to_client)
            .expect("valid response")
            .expect("complete response");
        assert_eq!(response.protocol.as_deref(), Some("chat"));
        assert!(to_server.is_empty(), "{to_server:?}");
        assert!(to_client.is_empty(), "{to_client:?}");

        Self {
            client: Connection::with_entropy(Role::Client, client_config, counter_entropy()),
            server: Connection::with_entropy(Role::Server, server_config, fixed),
            to_server,
            to_client,
        }
    }

    /// Moves each side's outgoing bytes into the other's read buffer.
    pub(crate) fn transfer(&mut self) {
        move_bytes(&mut self.client, &mut self.to_server);
        move_bytes(&mut self.server, &mut self.to_client);
    }

    /// The client's events until `Ok(None)`; an error fails the test.
    pub(crate) fn client_events(&mut self) -> Vec<Event> {
        ok_events(&mut self.client, &mut self.to_client)
    }

    /// The server's events until `Ok(None)`; an error fails the test.
    pub(crate) fn server_events(&mut self) -> Vec<Event> {
        ok_events(&mut self.server, &mut self.to_server)
    }

    /// The connection of `role`.
    pub(crate) fn conn(&mut self, role: Role) -> &mut Connection {
        match role {
            Role::Client => &mut self.client,
            Role::Server => &mut self.server,
        }
    }

    /// The events of the connection of `role` until `Ok(None)`.
    pub(crate) fn events(&mut self, role: Role) -> Vec<Event> {
        match role {
            Role::Client => self.client_events(),
            Role::Server => self.server_events(),
        }
    }
}

// ----- Hand-built frames -----

/// Opcode values, for hand-built frames.
pub(crate) const CONT: u8 = 0x0;
pub(crate) const TEXT: u8 = 0x1;
pub(crate) const BINARY: u8 = 0x2;
pub(crate) const CLOSE: u8 = 0x8;
pub(crate) const PING: u8 = 0x9;
pub(crate) const PONG: u8 = 0xA;

/// A frame header with an announced payload length, built by hand (no
/// validation: any bits may be set).
pub(crate) fn raw_header(
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: u64,
) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 0x07) << 4) | (opcode & 0x0F)];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if len <= 125 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xFFFF {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    out
}

/// XOR with a mask key, byte by byte (independent of the library).
pub(crate) fn xor(data: &[u8], key: Option<[u8; 4]>) -> Vec<u8> {
    match key {
        Some(key) => data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect(),
        None => data.to_vec(),
    }
}

/// A whole frame built by hand: header, then the payload masked with `mask`.
pub(crate) fn raw_frame(
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = raw_header(fin, rsv, opcode, mask, payload.len() as u64);
    out.extend_from_slice(&xor(payload, mask));
    out
}

/// The mask a well-behaved peer of `receiver` uses: clients mask.
pub(crate) const fn mask_for(receiver: Role) -> Option<[u8; 4]> {
    match receiver {
        Role::Server => Some(TEST_KEY),
        Role::Client => None,
    }
}

/// A frame as a well-behaved peer of `receiver` would send it.
pub(crate) fn frame_to(receiver: Role, fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(fin, 0, opcode, mask_for(receiver), payload)
}

/// A Close frame payload: the code big-endian, then the reason.
pub(crate) fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

// ----- Parsing outgoing bytes -----

/// A frame parsed from wire bytes, payload unmasked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WireFrame {
    pub(crate) header: FrameHeader,
    pub(crate) payload: Vec<u8>,
}

impl WireFrame {
    /// The status code of a Close frame with one.
    pub(crate) fn close_code(&self) -> Option<u16> {
        (self.header.opcode == OpCode::Close && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Splits wire bytes into whole frames with `FrameHeader::parse`.
pub(crate) fn parse_frames(mut bytes: &[u8]) -> Vec<WireFrame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (header, header_len) = FrameHeader::parse(bytes)
            .expect("a valid header")
            .expect("a complete header");
        let end = header_len + usize::try_from(header.payload_len).expect("fits usize");
        assert!(end <= bytes.len(), "truncated frame {header:?}");
        let payload = xor(&bytes[header_len..end], header.mask);
        frames.push(WireFrame { header, payload });
        bytes = &bytes[end..];
    }
    frames
}

/// Feeds `input` to a fresh connection of `role` with `config` and checks the
/// protocol error, see [`assert_failed`].
pub(crate) fn fail_with(role: Role, config: Config, input: &[u8], code: u16) -> ProtocolError {
    let mut conn = conn(role, config);
    let mut buf = BytesMut::from(input);
    assert_failed(&mut conn, &mut buf, code)
}

/// Drains `conn` and checks that it failed with a protocol error with close
/// `code`: the close code, the Close frame queued in the outgoing bytes (as
/// `FrameHeader::parse` and a peer connection both read it), the error being
/// sticky, and the state afterwards.
pub(crate) fn assert_failed(conn: &mut Connection, buf: &mut BytesMut, code: u16) -> ProtocolError {
    let role = conn.role();
    let (seen, error) = events(conn, buf);
    let Some(error) = error else {
        panic!("{role:?}: expected a protocol error with close code {code}, got {seen:?}");
    };
    assert_eq!(error.close_code(), CloseCode(code), "{role:?}: {error:?}");
    // Sticky: every later call returns the same error.
    for _ in 0..3 {
        assert_eq!(
            conn.next_event(buf),
            Err(error.clone()),
            "{role:?}: not sticky"
        );
    }
    assert_eq!(conn.state(), State::Closed);
    assert!(conn.close_sent());

    // The Close frame with that code is queued, masked iff we are a client.
    let out = drain(conn);
    let frames = parse_frames(&out);
    let close = frames.last().expect("a Close frame is queued");
    assert_eq!(close.header.opcode, OpCode::Close, "{frames:?}");
    assert!(close.header.fin);
    assert_eq!(close.header.mask.is_some(), role == Role::Client);
    assert_eq!(close.close_code(), Some(code), "{frames:?}");
    assert!(core::str::from_utf8(&close.payload[2..]).is_ok());
    assert!(
        conn.should_close_transport(),
        "{role:?}: failed but keeps the transport"
    );

    // The peer reads it as a Close event with the same code.
    let mut peer = conn_for_peer(role);
    let mut wire = BytesMut::from(&out[..]);
    let (peer_events, peer_error) = events(&mut peer, &mut wire);
    assert_eq!(peer_error, None);
    match peer_events.last() {
        Some(Event::Close(frame)) => assert_eq!(frame.code, CloseCode(code)),
        other => panic!("peer saw {other:?}"),
    }
    // Nothing more can be sent.
    assert_eq!(
        conn.send("x".into()),
        Err(ws_proto::SendError::Closed),
        "{role:?}: send after failure"
    );
    error
}

fn conn_for_peer(role: Role) -> Connection {
    conn(peer_of(role), Config::default())
}

/// Text of exactly `len` bytes mixing 1- to 4-byte code points.
pub(crate) fn text_of_len(len: usize, seed: u64) -> String {
    const CHARS: [char; 6] = ['a', 'é', '€', '😀', 'Z', ' '];
    let mut text = String::with_capacity(len);
    let mut state = seed | 1;
    loop {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let ch = CHARS[(state % CHARS.len() as u64) as usize];
        if text.len() + ch.len_utf8() > len {
            break;
        }
        text.push(ch);
    }
    while text.len() < len {
        text.push('x');
    }
    text
}

/// `len` pseudo-random bytes from `seed`.
pub(crate) fn bytes_of_len(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
