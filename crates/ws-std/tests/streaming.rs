//! Streaming receive and send over real sockets: messages of any size in
//! bounded memory (`recv_stream` / `MessageReader`, `send_stream` /
//! `MessageWriter`), on whole sockets and split halves.

#![allow(missing_docs)]

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::mpsc,
    thread,
    time::Instant,
};

use common::{bounded, masked, raw_client, serve};
use ws_proto::{HandshakeConfig, Streaming};
use ws_std::{
    ClientRequest, CloseCode, Config, Error, MaybeTlsStream, Message, Options, Utf8Bytes, WebSocket,
};

/// Options with `streaming`; permessage-deflate offered or not.
fn options(streaming: Streaming, deflate: bool) -> Options {
    let options = Options::new().with_config(Config::default().with_streaming(streaming));
    match deflate {
        true => options,
        false => options.with_handshake(HandshakeConfig::default()),
    }
}

fn accept(stream: TcpStream, streaming: Streaming) -> WebSocket<TcpStream> {
    ws_std::accept_with(stream, &options(streaming, false)).unwrap()
}

fn connect(url: &str, options: &Options) -> WebSocket<MaybeTlsStream> {
    ws_std::connect_with(ClientRequest::new(url).unwrap(), options)
        .unwrap()
        .0
}

/// A running checksum of a byte stream, whatever the read sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sum {
    len: u64,
    a: u64,
    b: u64,
}

impl Sum {
    fn add(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        for &byte in bytes {
            self.a = self.a.wrapping_add(u64::from(byte));
            self.b = self.b.wrapping_add(self.a);
        }
    }
}

/// Writes `len` bytes of a pattern (each 64 KiB chunk tagged with its
/// number) with `io::Write`, then finishes: the sum of what was sent.
fn send_pattern<W: Write>(mut writer: W, len: u64, finish: impl FnOnce(W)) -> Sum {
    let (mut chunk, mut sum, mut left) = (vec![0u8; 64 << 10], Sum::default(), len);
    chunk
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i * 7 + i / 251) as u8);
    for n in 0u64.. {
        if left == 0 {
            break;
        }
        chunk[..8].copy_from_slice(&n.to_le_bytes());
        let part = &chunk[..chunk.len().min(left as usize)];
        writer.write_all(part).unwrap();
        sum.add(part);
        left -= part.len() as u64;
    }
    finish(writer);
    sum
}

/// Reads a message with `io::Read` into a fixed buffer: its sum.
fn read_sum(mut reader: impl Read) -> Sum {
    let (mut buf, mut sum) = (vec![0u8; 48 << 10], Sum::default());
    loop {
        match reader.read(&mut buf).unwrap() {
            0 => return sum,
            n => sum.add(&buf[..n]),
        }
    }
}

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `len` bytes client to server, then server to client, both streamed and
/// read into a fixed buffer; returns the growth of the process's peak RSS
/// (in KiB) over the transfers.
fn round_trip(len: u64) -> u64 {
    let (url, server) = serve(move |stream| {
        let mut ws = accept(stream, Streaming::Always);
        let sum = read_sum(ws.recv_stream().unwrap().unwrap());
        let sent = send_pattern(ws.send_stream(false), len, |w| w.finish().unwrap());
        assert!(ws.recv().is_none());
        (sum, sent)
    });
    let options = options(Streaming::Above(64 << 10), false);
    let mut ws = connect(&url, &options);
    // Reset the peak to the current RSS where permitted, else compare with
    // the peak so far.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let base = status_kib(if reset { "VmRSS:" } else { "VmHWM:" });
    let start = Instant::now();
    let sent = send_pattern(ws.send_stream(false), len, |w| w.finish().unwrap());
    let sum = read_sum(ws.recv_stream().unwrap().unwrap());
    let growth = status_kib("VmHWM:").saturating_sub(base);
    ws.close(CloseCode::NORMAL, "").unwrap();
    let (server_sum, server_sent) = server.join().unwrap();
    assert_eq!((server_sum, sum), (sent, server_sent));
    assert_eq!(sum.len, len);
    eprintln!(
        "{len} bytes each way in {:.2?}: peak RSS grew {growth} KiB (reset: {reset})",
        start.elapsed()
    );
    growth
}

#[test]
fn eight_mib_each_way_streamed() {
    bounded(60, || round_trip(8 << 20));
}

/// Run with `cargo test --release -p ws-std -- --ignored`.
#[test]
#[ignore = "1 GiB each way: run in release with --ignored"]
fn one_gib_each_way_in_bounded_memory() {
    let growth = bounded(600, || round_trip(1 << 30));
    assert!(growth < 64 << 10, "peak RSS grew {growth} KiB");
}

/// A reader dropped after its first piece: the rest of its message is
/// skipped and the next message arrives intact.
#[test]
fn a_reader_dropped_half_way_skips_to_the_next_message() {
    bounded(30, || {
        let (url, server) = serve(|stream| {
            let mut ws = accept(stream, Streaming::Above(1024));
            let mut reader = ws.recv_stream().unwrap().unwrap();
            let mut head = [0u8; 10];
            reader.read_exact(&mut head).unwrap();
            drop(reader);
            let next = ws.recv().unwrap().unwrap();
            assert!(ws.recv().is_none());
            (head, next)
        });
        let mut ws = connect(&url, &Options::default());
        ws.send(Message::binary(vec![5u8; 4 << 20])).unwrap();
        ws.send(Message::text("next")).unwrap();
        ws.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(server.join().unwrap(), ([5; 10], Message::text("next")));
    });
}

/// A writer dropped unfinished: the peer gets Close 1011, not the message.
#[test]
fn a_writer_dropped_unfinished_closes_with_1011() {
    bounded(30, || {
        let (url, server) = serve(|stream| {
            let mut ws = accept(stream, Streaming::Off);
            let got = ws.recv().map(|m| m.map_err(|e| e.to_string()));
            (got, ws.close_frame().map(|f| f.code))
        });
        let mut ws = connect(&url, &Options::default());
        let mut writer = ws.send_stream(true);
        writer.write_all("partial €".as_bytes()).unwrap();
        drop(writer);
        assert!(ws.recv().is_none());
        assert_eq!(ws.close_frame().unwrap().code, CloseCode::INTERNAL_ERROR);
        assert_eq!(server.join().unwrap(), (None, Some(CloseCode(1011))));
    });
}

/// Invalid UTF-8 inside a streamed text message: the pieces before it are
/// delivered, then the protocol error, and Close 1007 goes out.
#[test]
fn invalid_utf8_inside_a_streamed_text_message_fails_with_1007() {
    bounded(30, || {
        let (first_read, wait_first) = mpsc::channel();
        let (url, server) = serve(move |stream| {
            let mut ws = accept(stream, Streaming::Always);
            let mut reader = ws.recv_stream().unwrap().unwrap();
            assert!(reader.is_text());
            let mut got = reader.next_piece().unwrap().unwrap().to_vec();
            first_read.send(()).unwrap();
            let error = loop {
                match reader.next_piece().unwrap() {
                    Ok(piece) => got.extend_from_slice(&piece),
                    Err(error) => break error,
                }
            };
            assert!(matches!(error, Error::Protocol(_)), "{error:?}");
            drop(reader);
            assert!(ws.recv().is_none());
            got
        });
        let (mut stream, _) = raw_client(&url);
        stream.write_all(&masked(0x01, b"hello ")).unwrap();
        wait_first.recv().unwrap();
        stream.write_all(&masked(0x80, b"wor\xffld")).unwrap();
        // The server's Close (unmasked, short): opcode and code.
        let mut close = [0u8; 4];
        stream.read_exact(&mut close).unwrap();
        assert_eq!(close[0] & 0x0f, 0x8);
        assert_eq!(u16::from_be_bytes([close[2], close[3]]), 1007);
        let got = server.join().unwrap();
        assert!(got.starts_with(b"hello ") && b"hello wor".starts_with(&got));
    });
}

/// `recv` on a streamed message answers `Error::Streamed` and keeps it for
/// `recv_stream`.
#[test]
fn recv_on_a_streamed_message_leaves_it_to_recv_stream() {
    bounded(30, || {
        let big = Message::binary((0..300_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let (url, server) = serve(|stream| {
            let mut ws = accept(stream, Streaming::Above(1024));
            assert!(matches!(ws.recv(), Some(Err(Error::Streamed))));
            let mut whole = Vec::new();
            ws.recv_stream()
                .unwrap()
                .unwrap()
                .read_to_end(&mut whole)
                .unwrap();
            let small = ws.recv().unwrap().unwrap();
            assert!(ws.recv().is_none());
            (whole, small)
        });
        let mut ws = connect(&url, &Options::default());
        ws.send(big.clone()).unwrap();
        ws.send(Message::text("small")).unwrap();
        ws.close(CloseCode::NORMAL, "").unwrap();
        let (whole, small) = server.join().unwrap();
        assert_eq!(
            (Message::binary(whole), small),
            (big, Message::text("small"))
        );
    });
}

/// A server that echoes each message piece by piece as it arrives, over
/// split halves in one thread (zero-copy `MessageWriter::send`).
fn piece_echo(options: Options) -> (String, thread::JoinHandle<(usize, Option<u16>)>) {
    serve(move |stream| {
        let ws = ws_std::accept_with(stream, &options).unwrap();
        let (mut read, mut write) = ws.split();
        let mut messages = 0;
        while let Some(Ok(mut reader)) = read.recv_stream() {
            let text = reader.is_text();
            let mut writer = write.send_stream(text);
            while let Some(piece) = reader.next_piece() {
                let piece = piece.unwrap();
                let piece = match text {
                    true => Message::Text(Utf8Bytes::try_from_bytes(piece).unwrap()),
                    false => Message::Binary(piece),
                };
                writer.send(piece).unwrap();
            }
            writer.finish().unwrap();
            messages += 1;
        }
        (messages, read.close_frame().map(|f| f.code.0))
    })
}

/// The client's halves: the writer streams 8 MiB from one thread while the
/// reader reads the echo, piece by piece, from another.
#[test]
fn split_halves_stream_both_ways_at_once() {
    bounded(60, || {
        let (url, server) = piece_echo(options(Streaming::Always, false));
        let ws = connect(&url, &options(Streaming::Always, false));
        let (mut read, mut write) = ws.split();
        let writer = thread::spawn(move || {
            let sum = send_pattern(write.send_stream(false), 8 << 20, |w| w.finish().unwrap());
            (sum, write)
        });
        let got = read_sum(read.recv_stream().unwrap().unwrap());
        let (sent, write) = writer.join().unwrap();
        assert_eq!(got, sent);
        let mut ws = read.reunite(write).unwrap();
        ws.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(server.join().unwrap(), (1, Some(1000)));
    });
}

/// permessage-deflate negotiated both ends: text written in slices that cut
/// code points, compressed frame by frame, echoed piece by piece.
#[test]
fn a_streamed_round_trip_with_permessage_deflate() {
    bounded(60, || {
        let (url, server) = piece_echo(options(Streaming::Always, true));
        let mut ws = connect(&url, &options(Streaming::Above(4096), true));
        assert!(ws.connection().deflate().is_some(), "deflate agreed");
        let text = "{\"price\":\"12 €\",\"note\":\"naïve café\"} ".repeat(20_000);
        let mut writer = ws.send_stream(true);
        for part in text.as_bytes().chunks(1000) {
            writer.write_all(part).unwrap();
        }
        writer.send(Message::text("!")).unwrap();
        writer.finish().unwrap();
        let mut reader = ws.recv_stream().unwrap().unwrap();
        assert!(reader.is_text());
        let mut echo = String::new();
        reader.read_to_string(&mut echo).unwrap();
        drop(reader);
        assert!(echo.len() == text.len() + 1 && echo == text + "!");
        // A small message is still whole below the threshold.
        ws.send(Message::text("short")).unwrap();
        assert_eq!(ws.recv().unwrap().unwrap(), Message::text("short"));
        ws.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(server.join().unwrap(), (2, Some(1000)));
    });
}
