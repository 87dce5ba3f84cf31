//! Arbitrary sends through a client/server pair, moved in arbitrary chunk
//! sizes: every message arrives intact and in order, in both directions,
//! with or without permessage-deflate (any windows, takeover settings and
//! threshold).
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ws_proto::{
    Config, Connection, DeflateConfig, DeflateParams, Event, Message, Negotiated, Role,
    bytes::{Buf, Bytes, BytesMut},
};

#[derive(Arbitrary, Debug)]
enum Op {
    Text(String),
    Binary(Vec<u8>),
    Fragments(Vec<String>),
    Ping(u8),
    /// Sent with `send_uncompressed` (plain `send` without deflate).
    Uncompressed(String),
    /// Move up to this many bytes each way.
    Transfer(u16),
    /// Time passes: the timer frees idle compression contexts (when the
    /// deflate settings release them).
    Idle,
}

#[derive(Arbitrary, Debug)]
struct Input {
    frame_size: u8,
    client_ops: Vec<Op>,
    server_ops: Vec<Op>,
    deflate: Option<Deflate>,
}

/// permessage-deflate as a handshake would agree it.
#[derive(Arbitrary, Debug)]
struct Deflate {
    client_bits: u8,
    server_bits: u8,
    client_takeover: bool,
    server_takeover: bool,
    min_size: u8,
    level: u8,
    release_contexts: bool,
}

struct Side {
    conn: Connection,
    inbox: BytesMut,
    expected: Vec<Message>,
    received: Vec<Message>,
}

impl Side {
    fn new(role: Role, frame_size: usize, deflate: Option<&Deflate>) -> Self {
        let config = Config::default().with_max_send_frame_size(frame_size);
        let mut n = 0u8;
        let entropy = move |d: &mut [u8]| {
            for b in d {
                n = n.wrapping_add(77);
                *b = n;
            }
        };
        let mut conn = Connection::with_entropy(role, config, entropy);
        if let Some(d) = deflate {
            let config = DeflateConfig::default()
                .with_min_size(usize::from(d.min_size))
                .with_level(d.level % 10)
                .with_release_contexts_after(d.release_contexts.then_some(Duration::ZERO));
            // Window bits 9..=15 for each direction, seen from this side.
            let (client, server) = (9 + d.client_bits % 7, 9 + d.server_bits % 7);
            let params = match role {
                Role::Client => DeflateParams::new(
                    &config,
                    client,
                    server,
                    d.client_takeover,
                    d.server_takeover,
                ),
                Role::Server => DeflateParams::new(
                    &config,
                    server,
                    client,
                    d.server_takeover,
                    d.client_takeover,
                ),
            };
            conn = conn.with_negotiated(
                Negotiated::new(None, vec!["permessage-deflate".into()]).with_deflate(params),
            );
        }
        Self {
            conn,
            inbox: BytesMut::new(),
            expected: Vec::new(),
            received: Vec::new(),
        }
    }

    fn apply(&mut self, op: &Op, peer: &mut Self) {
        match op {
            Op::Text(text) => self.send(Message::text(text.as_str()), peer),
            Op::Binary(data) => self.send(Message::binary(data.clone()), peer),
            Op::Fragments(parts) if !parts.is_empty() => {
                for (i, part) in parts.iter().enumerate() {
                    let fin = i + 1 == parts.len();
                    self.conn
                        .send_fragment(Message::text(part.as_str()), fin)
                        .expect("fragment");
                }
                peer.expected.push(Message::text(parts.concat()));
            }
            Op::Fragments(_) => {}
            Op::Uncompressed(text) => {
                let message = Message::text(text.as_str());
                let sent = if self.conn.deflate().is_some() {
                    self.conn.send_uncompressed(message.clone())
                } else {
                    self.conn.send(message.clone())
                };
                sent.expect("the default buffer is large");
                peer.expected.push(message);
            }
            Op::Ping(n) => self
                .conn
                .ping(Bytes::from(vec![*n; usize::from(*n % 126)]))
                .expect("ping"),
            Op::Transfer(limit) => {
                move_bytes(&mut self.conn, &mut peer.inbox, usize::from(*limit));
                peer.drain();
            }
            Op::Idle => {
                // Twice: the first expiry only notes the contexts were used.
                for _ in 0..2 {
                    if let Some(deadline) = self.conn.poll_timeout(Duration::ZERO) {
                        self.conn.handle_timeout(deadline);
                    }
                }
            }
        }
    }

    fn send(&mut self, message: Message, peer: &mut Self) {
        self.conn
            .send(message.clone())
            .expect("the default buffer is large");
        peer.expected.push(message);
    }

    fn drain(&mut self) {
        while let Some(event) = self.conn.next_event(&mut self.inbox).expect("valid peer") {
            if let Event::Message(message) = event {
                self.received.push(message);
            }
        }
    }
}

fn move_bytes(from: &mut Connection, to: &mut BytesMut, mut limit: usize) {
    let out = from.outgoing();
    while limit > 0 && out.has_remaining() {
        let chunk = out.chunk();
        let n = chunk.len().min(limit);
        to.extend_from_slice(&chunk[..n]);
        out.advance(n);
        limit -= n;
    }
}

fuzz_target!(|input: Input| {
    let frame_size = usize::from(input.frame_size).max(1);
    let deflate = input.deflate.as_ref();
    let mut client = Side::new(Role::Client, frame_size, deflate);
    let mut server = Side::new(Role::Server, frame_size, deflate);
    let rounds = input.client_ops.len().max(input.server_ops.len());
    for i in 0..rounds {
        if let Some(op) = input.client_ops.get(i) {
            client.apply(op, &mut server);
        }
        if let Some(op) = input.server_ops.get(i) {
            server.apply(op, &mut client);
        }
    }
    // Deliver everything left.
    for _ in 0..4 {
        move_bytes(&mut client.conn, &mut server.inbox, usize::MAX);
        server.drain();
        move_bytes(&mut server.conn, &mut client.inbox, usize::MAX);
        client.drain();
    }
    assert_eq!(server.received, server.expected);
    assert_eq!(client.received, client.expected);
});
