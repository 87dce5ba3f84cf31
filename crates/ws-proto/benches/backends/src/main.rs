//! permessage-deflate backend comparison: raw deflate, sync flush, the
//! trailing `00 00 ff ff` dropped and restored as RFC 7692 section 7.2 does,
//! context takeover across the messages of a corpus.
//!
//! Prints, per backend, corpus and window: the compressed size (% of input),
//! compression and decompression throughput (MB/s, best of several runs),
//! and the bytes a context holds after use, counted by a global allocator.
#![forbid(unsafe_code)]

use std::alloc::System;
use std::hint::black_box;
use std::time::Instant;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// One direction of a backend: a compressor or a decompressor context.
trait Codec {
    /// Compresses one message (sync flush, tail dropped) into `out`.
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>);
    /// Decompresses one message (tail restored) into `out`.
    fn decompress(&mut self, input: &[u8], out: &mut Vec<u8>);
}

fn strip_tail(out: &mut Vec<u8>) {
    assert!(out.ends_with(&TAIL), "sync flush ends with 00 00 ff ff");
    out.truncate(out.len() - 4);
}

// ----- flate2 (backend chosen by feature) -----

struct Flate2 {
    c: flate2::Compress,
    d: flate2::Decompress,
}

impl Flate2 {
    #[cfg(feature = "flate2-zlib-rs")]
    fn new(level: u32, bits: u8) -> Self {
        Self {
            c: flate2::Compress::new_with_window_bits(flate2::Compression::new(level), false, bits),
            d: flate2::Decompress::new_with_window_bits(false, bits),
        }
    }
    /// miniz_oxide has no window-bits constructor: always 32 KiB.
    #[cfg(not(feature = "flate2-zlib-rs"))]
    fn new(level: u32, bits: u8) -> Self {
        assert_eq!(bits, 15, "flate2 + miniz_oxide: 15 window bits only");
        Self {
            c: flate2::Compress::new(flate2::Compression::new(level), false),
            d: flate2::Decompress::new(false),
        }
    }
}

impl Codec for Flate2 {
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.reserve(input.len() + 64);
        let start = self.c.total_in();
        loop {
            let done = (self.c.total_in() - start) as usize;
            self.c
                .compress_vec(&input[done..], out, flate2::FlushCompress::Sync)
                .unwrap();
            if (self.c.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity());
        }
        strip_tail(out);
    }
    fn decompress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        let mut data = Vec::with_capacity(input.len() + 4);
        data.extend_from_slice(input);
        data.extend_from_slice(&TAIL);
        let start = self.d.total_in();
        loop {
            out.reserve(4096.max(out.capacity()));
            let done = (self.d.total_in() - start) as usize;
            self.d
                .decompress_vec(&data[done..], out, flate2::FlushDecompress::Sync)
                .unwrap();
            if (self.d.total_in() - start) as usize == data.len() && out.len() < out.capacity() {
                break;
            }
        }
    }
}

// ----- zlib-rs directly: its safe `Deflate` / `Inflate` -----

struct ZlibRs {
    c: zlib_rs::Deflate,
    d: zlib_rs::Inflate,
}

impl ZlibRs {
    fn new(level: i32, bits: u8, mem_level: i32) -> Self {
        let config = zlib_rs::DeflateConfig {
            level,
            method: zlib_rs::Method::Deflated,
            window_bits: -i32::from(bits),
            mem_level,
            strategy: zlib_rs::Strategy::Default,
        };
        Self {
            c: zlib_rs::Deflate::new_with_config(config),
            d: zlib_rs::Inflate::new(false, bits),
        }
    }
}

impl Codec for ZlibRs {
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.resize(input.len() + 64, 0);
        let (mut read, mut written) = (0, 0);
        loop {
            let (i0, o0) = (self.c.total_in(), self.c.total_out());
            self.c
                .compress(
                    &input[read..],
                    &mut out[written..],
                    zlib_rs::DeflateFlush::SyncFlush,
                )
                .unwrap();
            read += (self.c.total_in() - i0) as usize;
            written += (self.c.total_out() - o0) as usize;
            if read == input.len() && written < out.len() {
                break;
            }
            out.resize(out.len() * 2, 0);
        }
        out.truncate(written);
        strip_tail(out);
    }
    fn decompress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        let mut data = Vec::with_capacity(input.len() + 4);
        data.extend_from_slice(input);
        data.extend_from_slice(&TAIL);
        out.resize(4096.max(input.len() * 4), 0);
        let (mut read, mut written) = (0, 0);
        loop {
            let (i0, o0) = (self.d.total_in(), self.d.total_out());
            self.d
                .decompress(
                    &data[read..],
                    &mut out[written..],
                    zlib_rs::InflateFlush::SyncFlush,
                )
                .unwrap();
            read += (self.d.total_in() - i0) as usize;
            written += (self.d.total_out() - o0) as usize;
            if read == data.len() && written < out.len() {
                break;
            }
            out.resize(out.len() * 2, 0);
        }
        out.truncate(written);
    }
}

// ----- miniz_oxide directly (what flate2's rust_backend wraps) -----

struct Miniz {
    c: Box<miniz_oxide::deflate::core::CompressorOxide>,
    d: Box<miniz_oxide::inflate::stream::InflateState>,
}

impl Miniz {
    fn new(level: u8) -> Self {
        let mut c = Box::<miniz_oxide::deflate::core::CompressorOxide>::default();
        // Negative window bits: raw deflate. Its window is always 32 KiB.
        c.set_format_and_level(miniz_oxide::DataFormat::Raw, level);
        Self {
            c,
            d: miniz_oxide::inflate::stream::InflateState::new_boxed(miniz_oxide::DataFormat::Raw),
        }
    }
}

impl Codec for Miniz {
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.resize(input.len() + 64, 0);
        let (mut read, mut written) = (0, 0);
        loop {
            let r = miniz_oxide::deflate::stream::deflate(
                &mut self.c,
                &input[read..],
                &mut out[written..],
                miniz_oxide::MZFlush::Sync,
            );
            r.status.unwrap();
            read += r.bytes_consumed;
            written += r.bytes_written;
            if read == input.len() && written < out.len() {
                break;
            }
            out.resize(out.len() * 2, 0);
        }
        out.truncate(written);
        strip_tail(out);
    }
    fn decompress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        let mut data = Vec::with_capacity(input.len() + 4);
        data.extend_from_slice(input);
        data.extend_from_slice(&TAIL);
        out.resize(4096.max(input.len() * 4), 0);
        let (mut read, mut written) = (0, 0);
        loop {
            let r = miniz_oxide::inflate::stream::inflate(
                &mut self.d,
                &data[read..],
                &mut out[written..],
                miniz_oxide::MZFlush::Sync,
            );
            r.status.unwrap();
            read += r.bytes_consumed;
            written += r.bytes_written;
            if read == data.len() && written < out.len() {
                break;
            }
            out.resize(out.len() * 2, 0);
        }
        out.truncate(written);
    }
}

// ----- corpora (deterministic) -----

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.next() as usize % items.len()]
    }
}

const NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];
const WORDS: &[&str] = &[
    "the", "deploy", "is", "done", "can", "you", "check", "latency", "on", "staging", "looks",
    "good", "to", "me", "ship", "it", "after", "lunch", "retry", "timeout", "error", "fixed",
];

fn sentence(r: &mut Lcg, words: usize) -> String {
    (0..words)
        .map(|_| r.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

/// ~1 KiB chat events, 200 of them (one conversation, context takeover).
fn chat(r: &mut Lcg) -> Vec<Vec<u8>> {
    (0..200)
        .map(|i| {
            let mut s = format!(
                "{{\"type\":\"message\",\"id\":\"msg-{:08x}\",\"channel\":\"#ops\",\"ts\":{},\"user\":{{\"name\":\"{}\",\"avatar\":\"https://cdn.example.com/a/{}.png\",\"status\":\"online\"}},\"text\":\"{}\",\"reactions\":[",
                r.next(),
                1_700_000_000 + i * 7,
                r.pick(NAMES),
                r.next() % 1000,
                sentence(r, 30)
            );
            for k in 0..6 {
                s.push_str(&format!(
                    "{}{{\"emoji\":\"{}\",\"count\":{}}}",
                    if k == 0 { "" } else { "," },
                    r.pick(&["thumbsup", "eyes", "rocket", "tada"]),
                    r.next() % 9
                ));
            }
            s.push_str(&format!("],\"thread\":{{\"replies\":{},\"last\":\"{}\"}},\"meta\":\"{}\"}}", r.next() % 40, r.pick(NAMES), sentence(r, 40)));
            s.into_bytes()
        })
        .collect()
}

/// 64 KiB JSON documents (an API listing), 8 of them.
fn json64(r: &mut Lcg) -> Vec<Vec<u8>> {
    (0..8)
        .map(|_| {
            let mut s = String::from("{\"items\":[");
            let mut first = true;
            while s.len() < 64 * 1024 - 300 {
                if !first {
                    s.push(',');
                }
                first = false;
                s.push_str(&format!(
                    "{{\"id\":{},\"sku\":\"SKU-{:06}\",\"name\":\"{}\",\"price\":{}.{:02},\"tags\":[\"{}\",\"{}\"],\"in_stock\":{}}}",
                    r.next() % 1_000_000,
                    r.next() % 1_000_000,
                    sentence(r, 4),
                    r.next() % 500,
                    r.next() % 100,
                    r.pick(WORDS),
                    r.pick(WORDS),
                    r.next().is_multiple_of(2)
                ));
            }
            s.push_str("]}");
            s.into_bytes()
        })
        .collect()
}

/// 16 KiB batches of log lines, 32 of them.
fn logs(r: &mut Lcg) -> Vec<Vec<u8>> {
    (0..32)
        .map(|b| {
            let mut s = String::new();
            let mut t = 1_700_000_000_000u64 + b * 60_000;
            while s.len() < 16 * 1024 - 200 {
                t += r.next() % 300;
                s.push_str(&format!(
                    "{t} {} [{}] req={:016x} path=/api/v1/{} status={} dur_ms={} {}\n",
                    r.pick(&["INFO", "INFO", "INFO", "WARN", "DEBUG", "ERROR"]),
                    r.pick(&["http", "db", "cache", "auth"]),
                    r.next() << 20 | r.next(),
                    r.pick(&["users", "orders", "items", "health"]),
                    r.pick(&["200", "200", "200", "304", "404", "500"]),
                    r.next() % 2000,
                    sentence(r, 6)
                ));
            }
            s.into_bytes()
        })
        .collect()
}

// ----- measurement -----

/// Builds a fresh codec (both directions) of one configuration.
type MakeCodec = Box<dyn Fn() -> Box<dyn Codec>>;

struct Row {
    compressed: usize,
    input: usize,
    c_mbps: f64,
    d_mbps: f64,
}

fn run(make: &dyn Fn() -> Box<dyn Codec>, corpus: &[Vec<u8>]) -> Row {
    let input: usize = corpus.iter().map(Vec::len).sum();
    let (mut best_c, mut best_d, mut compressed) = (f64::MAX, f64::MAX, 0);
    let mut out = Vec::new();
    let mut back = Vec::new();
    for _ in 0..5 {
        let mut codec = make();
        let t = Instant::now();
        let mut frames = Vec::with_capacity(corpus.len());
        for msg in corpus {
            codec.compress(msg, &mut out);
            frames.push(out.clone());
        }
        best_c = best_c.min(t.elapsed().as_secs_f64());
        compressed = frames.iter().map(Vec::len).sum();
        let t = Instant::now();
        for (msg, frame) in corpus.iter().zip(&frames) {
            codec.decompress(frame, &mut back);
            assert_eq!(&back, msg, "round trip");
        }
        best_d = best_d.min(t.elapsed().as_secs_f64());
        black_box(&frames);
    }
    Row {
        compressed,
        input,
        c_mbps: input as f64 / best_c / 1e6,
        d_mbps: input as f64 / best_d / 1e6,
    }
}

/// Live bytes held by a compressor and by a decompressor after one message
/// each (windows are allocated lazily by some backends).
fn memory(make: &dyn Fn() -> Box<dyn Codec>, msg: &[u8]) -> (isize, isize) {
    let mut out = Vec::with_capacity(msg.len() * 2 + 64);
    let mut back = Vec::with_capacity(msg.len() * 4 + 4096);
    let mut spare = make();
    spare.compress(msg, &mut out);
    let frame = out.clone();
    let region = Region::new(GLOBAL);
    let mut codec = make();
    codec.compress(msg, &mut out);
    let both = region.change();
    let region = Region::new(GLOBAL);
    codec.decompress(&frame, &mut back);
    let d = region.change();
    black_box(&codec);
    let live = |s: stats_alloc::Stats| {
        // stats_alloc counts a realloc in both totals already.
        s.bytes_allocated as isize - s.bytes_deallocated as isize
    };
    // `make` builds both directions; the decompressor's lazily allocated
    // window shows up after its first message.
    (live(both), live(d))
}

fn main() {
    let mut r = Lcg(7);
    let corpora = [
        ("chat 1 KiB JSON x200", chat(&mut r)),
        ("64 KiB JSON x8", json64(&mut r)),
        ("logs 16 KiB x32", logs(&mut r)),
    ];
    for (name, c) in &corpora {
        let avg = c.iter().map(Vec::len).sum::<usize>() / c.len();
        println!("corpus {name}: average message {avg} bytes");
    }
    #[cfg(feature = "flate2-zlib-rs")]
    let flate2_name = "flate2+zlib-rs";
    #[cfg(not(feature = "flate2-zlib-rs"))]
    let flate2_name = "flate2+miniz";
    let mut configs: Vec<(String, MakeCodec)> = Vec::new();
    for bits in [15u8, 12] {
        if cfg!(feature = "flate2-zlib-rs") || bits == 15 {
            configs.push((
                format!("{flate2_name} w{bits} l6"),
                Box::new(move || Box::new(Flate2::new(6, bits))),
            ));
        }
        for mem in [8, 5] {
            configs.push((
                format!("zlib-rs w{bits} m{mem} l6"),
                Box::new(move || Box::new(ZlibRs::new(6, bits, mem))),
            ));
        }
        configs.push((
            format!("zlib-rs w{bits} m5 l1"),
            Box::new(move || Box::new(ZlibRs::new(1, bits, 5))),
        ));
    }
    configs.push((
        "miniz_oxide w15 l6".into(),
        Box::new(|| Box::new(Miniz::new(6))),
    ));
    configs.push((
        "miniz_oxide w15 l1".into(),
        Box::new(|| Box::new(Miniz::new(1))),
    ));

    println!(
        "\n| backend | corpus | ratio | compress MB/s | decompress MB/s |\n|---|---|---|---|---|"
    );
    for (name, make) in &configs {
        for (cname, corpus) in &corpora {
            let row = run(make.as_ref(), corpus);
            println!(
                "| {name} | {cname} | {:.1}% | {:.0} | {:.0} |",
                100.0 * row.compressed as f64 / row.input as f64,
                row.c_mbps,
                row.d_mbps
            );
        }
    }
    println!(
        "\n| backend | compressor + decompressor after one message each (bytes) | allocated by the first decompression (bytes) |\n|---|---|---|"
    );
    for (name, make) in &configs {
        let (both, d) = memory(make.as_ref(), &corpora[0].1[0]);
        println!("| {name} | {both} | {d} |");
    }

    // Each context alone, after one message (lazy windows included).
    println!("\n| context | bytes held after one message |\n|---|---|");
    let msg = &corpora[0].1[0];
    let mut frame = Vec::new();
    ZlibRs::new(6, 15, 8).compress(msg, &mut frame);
    let held = |f: &mut dyn FnMut()| {
        let region = Region::new(GLOBAL);
        f();
        let s = region.change();
        s.bytes_allocated as isize - s.bytes_deallocated as isize
    };
    for bits in [15u8, 14, 13, 12, 11, 10, 9] {
        for mem in [8, 5, 1] {
            let mut keep = None;
            let n = held(&mut || {
                let mut c = ZlibRs::new(6, bits, mem);
                let mut out = Vec::new();
                c.compress(msg, &mut out);
                drop(out);
                keep = Some(c.c);
            });
            println!("| zlib-rs Deflate w{bits} m{mem} | {n} |");
        }
        let mut keep = None;
        let n = held(&mut || {
            let mut d = zlib_rs::Inflate::new(false, bits);
            let mut out = vec![0u8; 8192];
            let mut data = frame.clone();
            data.extend_from_slice(&TAIL);
            if bits == 15 {
                d.decompress(&data, &mut out, zlib_rs::InflateFlush::SyncFlush)
                    .unwrap();
            }
            drop((out, data));
            keep = Some(d);
        });
        println!(
            "| zlib-rs Inflate w{bits}{} | {n} |",
            if bits == 15 { " (used)" } else { " (fresh)" }
        );
    }
    let mut keep = None;
    let n = held(&mut || {
        let mut m = Miniz::new(6);
        let mut out = Vec::new();
        m.compress(msg, &mut out);
        drop(out);
        keep = Some(m.c);
    });
    println!("| miniz_oxide CompressorOxide | {n} |");
    let mut keep = None;
    let n = held(&mut || {
        keep = Some(miniz_oxide::inflate::stream::InflateState::new_boxed(
            miniz_oxide::DataFormat::Raw,
        ));
    });
    println!("| miniz_oxide InflateState | {n} |");
    black_box(&keep);

    // Ratio by window size (zlib-rs, level 6, memLevel 8): how much smaller
    // windows cost.
    println!("\n| window bits | chat ratio | 64 KiB JSON ratio | logs ratio |\n|---|---|---|---|");
    for bits in 9..=15u8 {
        let make = move || -> Box<dyn Codec> { Box::new(ZlibRs::new(6, bits, 8)) };
        let ratios: Vec<String> = corpora
            .iter()
            .map(|(_, c)| {
                let row = run(&make, c);
                format!("{:.1}%", 100.0 * row.compressed as f64 / row.input as f64)
            })
            .collect();
        println!("| {bits} | {} |", ratios.join(" | "));
    }

    // ws-proto's codec makes a context per message (primed with the kept
    // window when taking over); what that costs against one kept context.
    println!("\n| chat corpus, zlib-rs w12 m5 l6 | ns per message |\n|---|---|");
    {
        let msgs = &corpora[0].1;
        let config = zlib_rs::DeflateConfig {
            level: 6,
            method: zlib_rs::Method::Deflated,
            window_bits: -12,
            mem_level: 5,
            strategy: zlib_rs::Strategy::Default,
        };
        let mut out = vec![0u8; 4096];
        let per_msg = |f: &mut dyn FnMut()| {
            let t = Instant::now();
            for _ in 0..5 {
                f();
            }
            t.elapsed().as_nanos() / (5 * msgs.len() as u128)
        };
        let mut kept = zlib_rs::Deflate::new_with_config(config);
        let keep = per_msg(&mut || {
            for m in msgs {
                kept.compress(m, &mut out, zlib_rs::DeflateFlush::SyncFlush)
                    .unwrap();
            }
        });
        let fresh = per_msg(&mut || {
            for m in msgs {
                let mut c = zlib_rs::Deflate::new_with_config(config);
                c.compress(m, &mut out, zlib_rs::DeflateFlush::SyncFlush)
                    .unwrap();
            }
        });
        let mut window: Vec<u8> = Vec::new();
        let primed = per_msg(&mut || {
            for m in msgs {
                let mut c = zlib_rs::Deflate::new_with_config(config);
                if !window.is_empty() {
                    c.set_dictionary(&window).unwrap();
                }
                c.compress(m, &mut out, zlib_rs::DeflateFlush::SyncFlush)
                    .unwrap();
                window.extend_from_slice(m);
                let cut = window.len().saturating_sub(4096);
                window.drain(..cut);
            }
        });
        let setup = per_msg(&mut || {
            for _ in msgs {
                black_box(zlib_rs::Deflate::new_with_config(config));
            }
        });
        println!("| one context kept (takeover, 165 KB held) | {keep} |");
        println!("| fresh context per message (no takeover) | {fresh} |");
        println!("| fresh context primed with a 4 KiB window (takeover) | {primed} |");
        println!("| context set-up alone | {setup} |");
    }

    // Small messages: where compression stops paying off. ws-proto's codec
    // makes a fresh compressor per message, primed (with takeover) with the
    // last 2^bits bytes sent: the same here, with 4 KiB of earlier chat.
    println!(
        "\n| message bytes | compressed, fresh context | compressed, primed with 4 KiB | set-up + compress, ns (fresh / primed) |\n|---|---|---|---|"
    );
    let history: Vec<u8> = corpora[0].1.iter().take(8).flatten().copied().collect();
    let history = &history[history.len() - 4096..];
    let sample = &corpora[0].1[20];
    for len in [8usize, 16, 32, 48, 64, 96, 128, 256, 512] {
        let one = |primed: bool| {
            let config = zlib_rs::DeflateConfig {
                level: 6,
                method: zlib_rs::Method::Deflated,
                window_bits: -12,
                mem_level: 5,
                strategy: zlib_rs::Strategy::Default,
            };
            let mut c = zlib_rs::Deflate::new_with_config(config);
            if primed {
                c.set_dictionary(history).unwrap();
            }
            let mut out = vec![0u8; len + 64];
            c.compress(&sample[..len], &mut out, zlib_rs::DeflateFlush::SyncFlush)
                .unwrap();
            c.total_out() as usize - 4
        };
        let time = |primed: bool| {
            let t = Instant::now();
            for _ in 0..2000 {
                black_box(one(primed));
            }
            t.elapsed().as_nanos() / 2000
        };
        println!(
            "| {len} | {} | {} | {} / {} |",
            one(false),
            one(true),
            time(false),
            time(true)
        );
    }
}
