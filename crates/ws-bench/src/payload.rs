//! The load generator's permessage-deflate messages: a rotating set of
//! distinct, realistic text payloads (chat-like JSON objects of about 1 KiB,
//! or about 64 KiB of log lines), each compressed *independently* as RFC 7692
//! allows: a fresh raw-deflate stream, sync-flushed, its `00 00 ff ff` tail
//! removed. A message compressed without reference to earlier ones is valid
//! whatever context takeover was agreed, so the server still inflates with
//! the window it keeps and compresses its echoes with takeover, as against a
//! real client.
//!
//! Everything is deterministic (a fixed-seed generator): every server gets
//! the same bytes.

use zlib_rs::{Deflate, DeflateFlush};

/// The LZ77 window the load generator compresses with: 9 bits (512 bytes),
/// the smallest zlib produces, so the messages are valid under any
/// `client_max_window_bits` a server answers (yawc answers 9, ws-tokio 12
/// by default) and every server inflates the same bytes.
pub const CLIENT_WINDOW_BITS: u8 = 9;

/// The zlib level the load generator compresses with (zlib's default).
pub const CLIENT_LEVEL: i32 = 6;

/// The kind of text in a rotating set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Text {
    /// Chat-like JSON objects (ids, user names, timestamps, varying text).
    Json,
    /// Server log lines (timestamps, levels, request paths, status codes).
    Log,
}

/// A small xorshift generator: deterministic and dependency-free.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const WORDS: [&str; 48] = [
    "the",
    "deploy",
    "is",
    "green",
    "again",
    "can",
    "you",
    "check",
    "latency",
    "on",
    "staging",
    "before",
    "we",
    "merge",
    "I",
    "think",
    "cache",
    "was",
    "cold",
    "after",
    "restart",
    "lunch",
    "meeting",
    "moved",
    "to",
    "three",
    "thanks",
    "looks",
    "good",
    "ship",
    "it",
    "tomorrow",
    "review",
    "please",
    "build",
    "failed",
    "flaky",
    "test",
    "retry",
    "works",
    "now",
    "server",
    "client",
    "websocket",
    "compression",
    "window",
    "bytes",
    "ok",
];
const USERS: [&str; 12] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "oscar",
];
const ROOMS: [&str; 6] = ["general", "random", "dev", "ops", "design", "support"];
const PATHS: [&str; 8] = [
    "/api/v1/users",
    "/api/v1/orders",
    "/api/v1/search",
    "/static/app.js",
    "/api/v1/messages",
    "/healthz",
    "/api/v2/sessions",
    "/api/v1/rooms",
];

fn sentence(rng: &mut Rng, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(rng.pick(&WORDS));
    }
    s
}

fn timestamp(rng: &mut Rng, base: u64) -> String {
    let t = base + rng.below(86_400_000) as u64;
    format!(
        "2026-12-06T{:02}:{:02}:{:02}.{:03}Z",
        t / 3_600_000 % 24,
        t / 60_000 % 60,
        t / 1000 % 60,
        t % 1000
    )
}

/// One chat-like JSON object of about `size` bytes (never more).
fn json(rng: &mut Rng, index: usize, size: usize) -> String {
    let room_name = rng.pick(&ROOMS);
    let head =
        format!("{{\"type\":\"history\",\"room\":\"{room_name}\",\"seq\":{index},\"messages\":[");
    let mut items = Vec::new();
    let mut out;
    loop {
        let user = rng.pick(&USERS);
        let uid = 1000 + rng.below(9000);
        let words = 6 + rng.below(14);
        items.push(format!(
            "{{\"id\":{},\"user\":{{\"id\":{uid},\"name\":\"{user}_{uid}\",\"display\":\"{}{}\"}},\
             \"ts\":\"{}\",\"text\":\"{}\",\"reactions\":{},\"edited\":{}}}",
            9_000_000 + index * 97 + items.len(),
            user[..1].to_ascii_uppercase(),
            &user[1..],
            timestamp(rng, 0),
            sentence(rng, words),
            rng.below(5),
            rng.below(4) == 0,
        ));
        out = format!("{head}{}]}}", items.join(","));
        if out.len() >= size {
            break;
        }
    }
    // Drop the last item (the one that went over), unless it is the only one.
    if items.len() > 1 {
        items.pop();
        out = format!("{head}{}]}}", items.join(","));
    }
    // Pad with a varying note to land close to `size`.
    let room = size.saturating_sub(out.len() + 12);
    if room > 0 {
        let mut note = sentence(rng, room / 4 + 1);
        note.truncate(room);
        out.truncate(out.len() - 1);
        out += &format!(",\"note\":\"{note}\"}}");
    }
    out
}

/// Log lines, about `size` bytes (never more): an access log with rising
/// timestamps and request ids, as a server writes it (about 6x compressible
/// at level 6 with the client's 512-byte window).
fn log(rng: &mut Rng, size: usize) -> String {
    let mut out = String::with_capacity(size);
    let mut t = rng.below(80_000_000) as u64;
    let mut id = rng.next() % 1_000_000_000;
    loop {
        t += rng.below(40) as u64;
        id += 1 + rng.below(3) as u64;
        let ok = rng.below(12) != 0;
        let line = format!(
            "2026-12-06T{:02}:{:02}:{:02}.{:03}Z {} [worker-{}] req={id} {} {}/{} {} {}ms user={} \
             ua=\"Mozilla/5.0 (X11; Linux x86_64) app/2.3\"\n",
            t / 3_600_000 % 24,
            t / 60_000 % 60,
            t / 1000 % 60,
            t % 1000,
            if ok { "INFO" } else { "WARN" },
            rng.below(4),
            if rng.below(4) == 0 { "POST" } else { "GET" },
            rng.pick(&PATHS),
            rng.below(100),
            if ok { 200 } else { 404 },
            rng.below(40),
            rng.pick(&USERS),
        );
        if out.len() + line.len() > size {
            return out;
        }
        out += &line;
    }
}

/// `count` distinct texts of about `size` bytes each (the same for the same
/// arguments).
pub fn texts(kind: Text, size: usize, count: usize) -> Vec<String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ size as u64);
    (0..count)
        .map(|i| match kind {
            Text::Json => json(&mut rng, i, size),
            Text::Log => log(&mut rng, size),
        })
        .collect()
}

/// `data` compressed as one permessage-deflate message on its own: a fresh
/// raw-deflate stream ([`CLIENT_LEVEL`], [`CLIENT_WINDOW_BITS`]), sync-flushed,
/// without the trailing `00 00 ff ff`.
pub fn compress(data: &[u8]) -> Vec<u8> {
    // zlib-rs: memLevel 8 (the default) with the negative window of raw deflate.
    let mut deflate = Deflate::new(CLIENT_LEVEL, false, CLIENT_WINDOW_BITS);
    let mut out = vec![0; data.len() + data.len() / 8 + 64];
    let mut read = 0;
    let mut written = 0;
    loop {
        let (in0, out0) = (deflate.total_in(), deflate.total_out());
        let status = deflate.compress(&data[read..], &mut out[written..], DeflateFlush::SyncFlush);
        read += (deflate.total_in() - in0) as usize;
        written += (deflate.total_out() - out0) as usize;
        assert!(status.is_ok(), "deflate failed");
        if read == data.len() && written < out.len() {
            break;
        }
        out.resize(out.len() * 2, 0);
    }
    out.truncate(written);
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]), "no sync-flush tail");
    out.truncate(written - 4);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use zlib_rs::{Inflate, InflateFlush};

    fn inflate(data: &[u8], dictionary: &[u8]) -> Vec<u8> {
        let mut inflate = Inflate::new(false, 15);
        if !dictionary.is_empty() {
            inflate.set_dictionary(dictionary).unwrap();
        }
        let mut input = data.to_vec();
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = vec![0; 1 << 20];
        inflate
            .decompress(&input, &mut out, InflateFlush::SyncFlush)
            .unwrap();
        out.truncate(inflate.total_out() as usize);
        out
    }

    #[test]
    fn json_is_about_1_kib_distinct_and_compressible() {
        let texts = texts(Text::Json, 1024, 64);
        for t in &texts {
            assert!((900..=1024).contains(&t.len()), "{} bytes: {t}", t.len());
            assert!(t.starts_with('{') && t.ends_with('}'), "{t}");
        }
        let distinct: std::collections::HashSet<_> = texts.iter().collect();
        assert_eq!(distinct.len(), 64);
        let c = compress(texts[0].as_bytes());
        assert!(
            c.len() < texts[0].len() * 3 / 4,
            "{} of {}",
            c.len(),
            texts[0].len()
        );
    }

    #[test]
    fn logs_compress_5_to_10_times() {
        let text = &texts(Text::Log, 64 << 10, 2)[1];
        assert!(text.len() > 63 << 10);
        let ratio = text.len() as f64 / compress(text.as_bytes()).len() as f64;
        assert!((5.0..10.0).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn independent_messages_inflate_under_takeover() {
        let texts = texts(Text::Json, 1024, 3);
        // The server primes its inflater with the previous message (takeover):
        // an independently compressed message must not care.
        let first = inflate(&compress(texts[0].as_bytes()), b"");
        assert_eq!(first, texts[0].as_bytes());
        let second = inflate(&compress(texts[1].as_bytes()), &first);
        assert_eq!(second, texts[1].as_bytes());
    }
}
