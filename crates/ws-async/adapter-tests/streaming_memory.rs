//! Streamed messages in bounded memory over loopback: a large message
//! client to server (written with `send_stream`, read with `recv_stream`,
//! checked by length and a running checksum, never stored), then server to
//! client, while the process's peak RSS is measured (VmHWM, reset through
//! /proc/self/clear_refs where permitted). On the including adapter's `Main`
//! runtime (see `runtime.rs`).
//!
//! The 1 GiB runs are ignored in a plain `cargo test`; run them in release:
//!
//! ```text
//! cargo test --release -p ws-tokio -p ws-futures --test streaming_memory -- --ignored --nocapture
//! ```
//!
//! The tests of a binary take one lock, so that each measures itself.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::common::ws::{
    Bytes, CloseCode, Config, HandshakeConfig, Message, Options, Streaming, WebSocket,
};
use crate::common::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Main, Rt, pair, shutdown};

/// Growth of the peak RSS allowed during a run.
const BOUND: u64 = 64 << 20;
/// The size of the writes and pieces sent.
const CHUNK: usize = 1 << 20;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A field of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The peak RSS from now on: resets VmHWM where permitted, else measures
/// against the peak so far. `None` without /proc.
struct Peak {
    base: u64,
    /// VmHWM was reset (else `base` is the peak so far).
    reset: bool,
}

impl Peak {
    fn start() -> Option<Self> {
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let base = if reset {
            status_bytes("VmRSS:")?
        } else {
            status_bytes("VmHWM:")?
        };
        Some(Self { base, reset })
    }

    /// Growth of the peak RSS since `start`.
    fn growth(&self) -> u64 {
        status_bytes("VmHWM:").map_or(0, |peak| peak.saturating_sub(self.base))
    }
}

/// The bytes of the test message, from `offset`: ASCII letters (valid text),
/// varied enough that permessage-deflate has work to do.
fn fill(offset: u64, buf: &mut [u8]) {
    for (i, byte) in (offset..).zip(buf.iter_mut()) {
        let x = i ^ (i >> 7) ^ (i >> 13) ^ (i >> 21);
        *byte = b'a' + (x % 26) as u8;
    }
}

/// Length and a running checksum (FNV-1a) of a message's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sum {
    len: u64,
    hash: u64,
}

impl Sum {
    const fn new() -> Self {
        Self {
            len: 0,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        for &b in bytes {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Sends `total` bytes as one message through `AsyncWrite` in 1 MiB writes
/// (one buffer, reused).
async fn send_written<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocket<S>,
    text: bool,
    total: u64,
) -> Sum {
    let (mut sum, mut buf, mut sent) = (Sum::new(), vec![0; CHUNK], 0);
    let mut writer = ws.send_stream(text);
    while sent < total {
        let n = CHUNK.min((total - sent) as usize);
        fill(sent, &mut buf[..n]);
        sum.update(&buf[..n]);
        writer.write_all(&buf[..n]).await.unwrap();
        sent += n as u64;
    }
    shutdown(&mut writer).await.unwrap();
    sum
}

/// Sends `total` bytes as one message in owned 1 MiB pieces
/// (`MessageWriter::send`, no copy), each freed once written.
async fn send_pieces<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocket<S>,
    text: bool,
    total: u64,
) -> Sum {
    let (mut sum, mut sent) = (Sum::new(), 0);
    let mut writer = ws.send_stream(text);
    while sent < total {
        let n = CHUNK.min((total - sent) as usize);
        let mut buf = vec![0; n];
        fill(sent, &mut buf);
        sum.update(&buf);
        let piece = Bytes::from(buf);
        let piece = if text {
            Message::Text(piece.try_into().unwrap())
        } else {
            Message::Binary(piece)
        };
        writer.send(piece).await.unwrap();
        sent += n as u64;
    }
    writer.finish().await.unwrap();
    sum
}

/// Receives one message with `next_piece`.
async fn recv_pieces<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>, text: bool) -> Sum {
    let mut stream = ws.recv_stream().await.unwrap().unwrap();
    assert_eq!(stream.is_text(), text);
    let mut sum = Sum::new();
    while let Some(piece) = stream.next_piece().await {
        sum.update(&piece.unwrap());
    }
    sum
}

/// Receives one message through `AsyncRead` into a 64 KiB buffer.
async fn recv_read<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>, text: bool) -> Sum {
    let mut stream = ws.recv_stream().await.unwrap().unwrap();
    assert_eq!(stream.is_text(), text);
    let (mut sum, mut buf) = (Sum::new(), vec![0; 64 << 10]);
    loop {
        match stream.read(&mut buf).await.unwrap() {
            0 => break sum,
            n => sum.update(&buf[..n]),
        }
    }
}

/// `total` bytes client to server, then server to client, on `R`, both
/// ends streaming every message, permessage-deflate negotiated or not;
/// asserts the peak RSS grew by less than [`BOUND`] and prints it.
fn round_trip<R: Rt>(total: u64, deflate: bool, text: bool, secs: u64) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    R::block_on(async {
        let config = Config::default().with_streaming(Streaming::Always);
        let mut options = Options::default().with_config(config);
        if !deflate {
            options = options.with_handshake(HandshakeConfig::default());
        }
        let (mut server, mut client) = pair::<R>(&options, &options).await;
        assert_eq!(client.connection().deflate().is_some(), deflate);
        let peak = Peak::start();
        let start = Instant::now();
        R::within(secs, async {
            let server = R::spawn(async move {
                let got = recv_pieces(&mut server, text).await;
                let sent = send_pieces(&mut server, text, total).await;
                assert!(server.recv().await.is_none());
                (got, sent)
            });
            let sent = send_written(&mut client, text, total).await;
            let got = recv_read(&mut client, text).await;
            client.close(CloseCode::NORMAL, "").await.unwrap();
            let (server_got, server_sent) = server.await;
            assert_eq!(server_got, sent, "client to server");
            assert_eq!(got, server_sent, "server to client");
            assert_eq!(got.len, total);
        })
        .await;
        report(total, deflate, text, start, peak);
    });
}

/// Prints the run's figures; asserts the peak RSS grew by less than
/// [`BOUND`].
fn report(total: u64, deflate: bool, text: bool, start: Instant, peak: Option<Peak>) {
    let elapsed = start.elapsed();
    let Some(peak) = peak else {
        eprintln!("no /proc/self/status: peak RSS not measured");
        return;
    };
    let growth = peak.growth();
    eprintln!(
        "{} MiB each way (deflate: {deflate}, text: {text}) in {:.2} s: peak RSS grew {:.1} MiB ({})",
        total >> 20,
        elapsed.as_secs_f64(),
        growth as f64 / f64::from(1 << 20),
        if peak.reset {
            "VmHWM reset at the start"
        } else {
            "over the peak before the start"
        },
    );
    assert!(
        growth < BOUND,
        "peak RSS grew {growth} bytes (bound {BOUND})"
    );
}

#[test]
fn streaming_8_mib_both_ways_in_bounded_memory() {
    round_trip::<Main>(8 << 20, false, false, 120);
}

#[test]
fn streaming_8_mib_both_ways_with_deflate() {
    round_trip::<Main>(8 << 20, true, true, 120);
}

#[test]
#[ignore = "1 GiB each way: run in release with --ignored"]
fn one_gib_both_ways_in_bounded_memory() {
    round_trip::<Main>(1 << 30, false, false, 600);
}

#[test]
#[ignore = "1 GiB each way: run in release with --ignored"]
fn one_gib_both_ways_with_deflate_in_bounded_memory() {
    round_trip::<Main>(1 << 30, true, true, 600);
}
