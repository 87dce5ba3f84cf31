//! Core throughput: decode and encode (text and binary, masked and unmasked)
//! at 16 B, 1 KiB, 64 KiB and 1 MiB (text is JSON-like with a Greek word
//! every 37 bytes; `decode/ascii-text` is the same JSON in plain ASCII), masking alone, incremental UTF-8 alone,
//! and the server handshake parse. Each group also runs tungstenite's
//! equivalent over an in-memory stream and a `memcpy` of the same size, the
//! physical reference.
//!
//! ```text
//! cargo bench -p ws-proto --bench core
//! cargo bench -p ws-proto --features deflate --bench core -- deflate
//! ```

use std::{
    hint::black_box,
    io::{self, Read, Write},
};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tungstenite::protocol::{Role as TRole, WebSocket as TWebSocket};
use ws_proto::internals::{Utf8Validator, apply_mask};
use ws_proto::{
    Config, Connection, Event, Message, Role, ServerHandshake,
    bytes::{Buf, BytesMut},
};

const SIZES: [usize; 4] = [16, 1024, 64 * 1024, 1024 * 1024];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn config() -> Config {
    Config::default()
        .with_max_frame_size(64 << 20)
        .with_max_message_size(64 << 20)
}

/// Text that is mostly ASCII with some multi-byte code points, as JSON is.
fn text(len: usize) -> String {
    repeat_to("{\"key\": \"value\", \"κόσμε\": 12345} ", len)
}

/// JSON-like text in plain ASCII, as most text messages are.
fn ascii_text(len: usize) -> String {
    repeat_to("{\"key\": \"value\", \"kosme\": 12345} ", len)
}

fn repeat_to(pattern: &str, len: usize) -> String {
    let mut s = String::with_capacity(len + pattern.len());
    while s.len() < len {
        s.push_str(pattern);
    }
    while s.len() > len {
        s.pop();
    }
    s
}

/// What a message holds.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    AsciiText,
    Binary,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::AsciiText => "ascii-text",
            Self::Binary => "binary",
        }
    }
}

fn message(is_text: bool, len: usize) -> Message {
    message_of(if is_text { Kind::Text } else { Kind::Binary }, len)
}

fn message_of(kind: Kind, len: usize) -> Message {
    match kind {
        Kind::Text => Message::text(text(len)),
        Kind::AsciiText => Message::text(ascii_text(len)),
        Kind::Binary => Message::binary(vec![0xA5; len]),
    }
}

/// The wire bytes of one message sent by `role`.
fn wire(role: Role, message: &Message) -> Vec<u8> {
    let mut conn = Connection::with_entropy(role, config(), |d: &mut [u8]| {
        d.copy_from_slice(&KEY[..d.len()])
    });
    conn.send(message.clone()).unwrap();
    let out = conn.outgoing();
    out.copy_to_bytes(out.remaining()).to_vec()
}

/// A stream whose input the benchmark refills, and which discards writes.
#[derive(Default)]
struct Memory {
    input: Vec<u8>,
    pos: usize,
}

impl Memory {
    fn refill(&mut self, bytes: &[u8]) {
        self.input.clear();
        self.pos = 0;
        self.input.extend_from_slice(bytes);
    }
}

impl Read for Memory {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.input[self.pos..];
        if rest.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Memory {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tungstenite_config() -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
}

fn decode(c: &mut Criterion) {
    let cases = [
        (Kind::Text, true),
        (Kind::AsciiText, true),
        (Kind::Binary, true),
        (Kind::Text, false),
        (Kind::Binary, false),
    ];
    for (kind, masked) in cases {
        let name = format!(
            "decode/{}/{}",
            kind.name(),
            if masked { "masked" } else { "unmasked" }
        );
        let mut group = c.benchmark_group(name);
        for size in SIZES {
            let msg = message_of(kind, size);
            // A server receives masked frames, a client unmasked ones.
            let (sender, receiver) = if masked {
                (Role::Client, Role::Server)
            } else {
                (Role::Server, Role::Client)
            };
            let bytes = wire(sender, &msg);
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(BenchmarkId::new("ws-proto", size), &bytes, |b, bytes| {
                let mut conn =
                    Connection::with_entropy(receiver, config(), |d: &mut [u8]| d.fill(1));
                let mut buf = BytesMut::with_capacity(bytes.len());
                b.iter(|| {
                    buf.extend_from_slice(bytes);
                    match conn.next_event(&mut buf) {
                        Ok(Some(Event::Message(m))) => black_box(m),
                        other => panic!("{other:?}"),
                    };
                });
            });
            let t_role = if receiver == Role::Server {
                TRole::Server
            } else {
                TRole::Client
            };
            group.bench_with_input(BenchmarkId::new("tungstenite", size), &bytes, |b, bytes| {
                // Reused across iterations, as our connection is: both sides
                // copy the wire bytes into their read buffer once per message.
                let mut ws = TWebSocket::from_raw_socket(
                    Memory::default(),
                    t_role,
                    Some(tungstenite_config()),
                );
                b.iter(|| {
                    ws.get_mut().refill(bytes);
                    black_box(ws.read().unwrap());
                });
            });
            group.bench_with_input(BenchmarkId::new("memcpy", size), &bytes, |b, bytes| {
                let mut dst = vec![0u8; bytes.len()];
                b.iter(|| {
                    dst.copy_from_slice(black_box(bytes));
                    black_box(&dst);
                });
            });
        }
        group.finish();
    }
}

fn encode(c: &mut Criterion) {
    for (is_text, masked) in [(true, false), (false, false), (true, true), (false, true)] {
        let name = format!(
            "encode/{}/{}",
            if is_text { "text" } else { "binary" },
            if masked { "masked" } else { "unmasked" }
        );
        let mut group = c.benchmark_group(name);
        // A client masks, a server does not.
        let role = if masked { Role::Client } else { Role::Server };
        for size in SIZES {
            let msg = message(is_text, size);
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(BenchmarkId::new("ws-proto", size), &msg, |b, msg| {
                let mut conn = Connection::with_entropy(role, config(), |d: &mut [u8]| d.fill(7));
                let mut sink = io::sink();
                b.iter(|| {
                    conn.send(msg.clone()).unwrap();
                    let out = conn.outgoing();
                    while out.has_remaining() {
                        let n = sink.write(out.chunk()).unwrap();
                        out.advance(n);
                    }
                });
            });
            let t_msg = match &msg {
                Message::Text(t) => tungstenite::Message::text(t.as_str()),
                Message::Binary(b) => tungstenite::Message::binary(b.clone()),
            };
            let t_role = if masked { TRole::Client } else { TRole::Server };
            group.bench_with_input(BenchmarkId::new("tungstenite", size), &t_msg, |b, t_msg| {
                let mut ws = TWebSocket::from_raw_socket(
                    Memory::default(),
                    t_role,
                    Some(tungstenite_config()),
                );
                b.iter(|| ws.send(t_msg.clone()).unwrap());
            });
            let payload = msg.as_bytes().to_vec();
            group.bench_with_input(BenchmarkId::new("memcpy", size), &payload, |b, payload| {
                let mut dst = vec![0u8; payload.len()];
                b.iter(|| {
                    dst.copy_from_slice(black_box(payload));
                    black_box(&dst);
                });
            });
        }
        group.finish();
    }
}

fn masking(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut data = vec![0x5Au8; size];
        group.bench_function(BenchmarkId::new("ws-proto", size), |b| {
            b.iter(|| apply_mask(black_box(&mut data), KEY, 0));
        });
        let src = vec![0x5Au8; size];
        group.bench_function(BenchmarkId::new("memcpy", size), |b| {
            b.iter(|| {
                data.copy_from_slice(black_box(&src));
                black_box(&data);
            });
        });
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let input = text(size).into_bytes();
        group.bench_function(BenchmarkId::new("ws-proto incremental", size), |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                v.feed(black_box(&input)).unwrap();
                v.finish().unwrap();
            });
        });
        group.bench_function(BenchmarkId::new("std from_utf8", size), |b| {
            b.iter(|| black_box(std::str::from_utf8(black_box(&input)).is_ok()));
        });
    }
    group.finish();
}

fn handshake(c: &mut Criterion) {
    let request: &[u8] =
        b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\nUser-Agent: bench\r\n\r\n";
    let mut group = c.benchmark_group("handshake");
    group.bench_function("ws-proto server parse + accept", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(request);
            let req = ServerHandshake::new().receive(&mut buf).unwrap().unwrap();
            black_box(req.accept(&ws_proto::AcceptOptions::new()).unwrap());
        });
    });
    group.bench_function("httparse only", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut req = httparse::Request::new(&mut headers);
            black_box(req.parse(black_box(request)).unwrap());
        });
    });
    group.finish();
}

fn bytes_echo_alloc_free(c: &mut Criterion) {
    // A server receiving a masked 16 B message and echoing it: the hot loop
    // of an echo server, without I/O.
    let bytes = wire(Role::Client, &Message::text("0123456789abcdef"));
    let mut conn = Connection::with_entropy(Role::Server, config(), |d: &mut [u8]| d.fill(1));
    let mut buf = BytesMut::with_capacity(4096);
    c.bench_function("echo/16B server step", |b| {
        b.iter(|| {
            buf.extend_from_slice(&bytes);
            if let Ok(Some(Event::Message(m))) = conn.next_event(&mut buf) {
                conn.send(m).unwrap();
            }
            let out = conn.outgoing();
            let n = out.remaining();
            out.advance(n);
        });
    });
}

/// permessage-deflate: a server sending and receiving ~760-byte chat JSON,
/// plain and compressed (12-bit windows, with and without context
/// takeover). "server receive" starts a fresh server per iteration, so it
/// includes setting up the decompressor once per 64 messages.
#[cfg(feature = "deflate")]
fn deflate(c: &mut Criterion) {
    use ws_proto::{DeflateConfig, DeflateParams, Negotiated};

    let chat: Vec<String> = (0..64)
        .map(|i| {
            format!(
                "{{\"type\":\"message\",\"id\":\"msg-{i:08x}\",\"channel\":\"#ops\",\
                 \"user\":{{\"name\":\"user{}\",\"status\":\"online\"}},\"text\":\"{}\"}}",
                i % 8,
                "the deploy is done can you check latency on staging ".repeat(1 + i % 20)
            )
        })
        .collect();
    let bytes: u64 = chat.iter().map(|m| m.len() as u64).sum();
    let conn = |role: Role, takeover: Option<bool>| {
        let conn = Connection::with_entropy(role, config(), |d: &mut [u8]| d.fill(1));
        match takeover {
            None => conn,
            Some(takeover) => {
                let params =
                    DeflateParams::new(&DeflateConfig::default(), 12, 12, takeover, takeover);
                conn.with_negotiated(
                    Negotiated::new(None, vec!["permessage-deflate".into()]).with_deflate(params),
                )
            }
        }
    };
    let mut group = c.benchmark_group("deflate/chat-64-messages");
    group.throughput(Throughput::Bytes(bytes));
    for (name, takeover) in [
        ("plain", None),
        ("takeover", Some(true)),
        ("no-takeover", Some(false)),
    ] {
        group.bench_function(BenchmarkId::new("server send", name), |b| {
            let mut server = conn(Role::Server, takeover);
            b.iter(|| {
                for m in &chat {
                    server.send(Message::text(m.as_str())).unwrap();
                }
                let out = server.outgoing();
                let n = out.remaining();
                out.advance(n);
            });
        });
        // What a client sent, received by a fresh server each iteration.
        let mut client = conn(Role::Client, takeover);
        for m in &chat {
            client.send(Message::text(m.as_str())).unwrap();
        }
        let out = client.outgoing();
        let wire = out.copy_to_bytes(out.remaining());
        group.bench_function(BenchmarkId::new("server receive", name), |b| {
            b.iter(|| {
                let mut server = conn(Role::Server, takeover);
                let mut buf = BytesMut::from(&wire[..]);
                let mut n = 0;
                while let Ok(Some(event)) = server.next_event(&mut buf) {
                    black_box(event);
                    n += 1;
                }
                assert_eq!(n, chat.len());
            });
        });
    }
    group.finish();
}

#[cfg(not(feature = "deflate"))]
fn deflate(_: &mut Criterion) {}

criterion_group!(
    benches,
    decode,
    encode,
    masking,
    utf8,
    handshake,
    bytes_echo_alloc_free,
    deflate
);
criterion_main!(benches);
