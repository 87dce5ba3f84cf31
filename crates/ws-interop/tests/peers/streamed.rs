//! Streamed messages against Python `websockets` (`interop/python/streamed.py`):
//! one very large fragmented message each way, never held whole on our side,
//! checked by length and SHA-256 on both sides.
//!
//! The exchange, with the peer as client or as server:
//! 1. the peer sends a message of `size` bytes in 1 MiB fragments, hashing
//!    as it goes; we receive it with `recv_event` as pieces
//!    ([`Event::Fragment`]), checking their order and flags and feeding them
//!    to a hasher, and answer with a text message `"<length> <sha256 hex>"`,
//!    which the peer checks;
//! 2. we send a message of the other type of `size` bytes piece by piece
//!    ([`PieceSender`], writes of uneven sizes that cut text inside code
//!    points), hashing as we go; the peer receives it with `recv_streaming`
//!    and answers with its length and hash, which we check;
//! 3. we close with 1000 when they match, with 4010 and the mismatch otherwise;
//!    the peer checks the code.
//!
//! Our servers receive with [`Streaming::Always`], our clients with
//! [`Streaming::Above`] (64 KiB: the peer's answer arrives whole, its big
//! message in pieces), both with no `max_streamed_message_size`. With
//! permessage-deflate (the peer's `compression="deflate"`) every piece of
//! the peer's compressed message must be at most 64 KiB (the first under
//! `Above(n)`: n + 1, what was buffered to decide).
//!
//! The `streamed_4_mib_*` tests run with every `cargo test`; the
//! `streamed_256_mib_*` ones are `#[ignore]`d (debug builds are slow): run
//! them with
//! `cargo test --release -p ws-interop --test peers -- --ignored streamed_256_mib`.

use core::time::Duration;
use std::{
    io::Write as _,
    process::{Command, Stdio},
    time::Instant,
};

use sha2::{Digest, Sha256};
use ws_proto::{CloseCode, Config, Event, Message, Options, PieceSender, SendError, Streaming};

use super::{ChildGuard, Peer, interop_dir, python, start_peer_server_with, wait_bounded};

/// The size of the `streamed_4_mib_*` tests' messages.
pub(crate) const SMALL: u64 = 4 << 20;
/// The size of the `streamed_256_mib_*` tests' messages.
pub(crate) const BIG: u64 = 256 << 20;
/// The largest piece of a compressed message (ws-proto's inflate step),
/// except the first under `Streaming::Above(n)`, which holds the bytes
/// buffered while the size was unknown: up to n + 1.
const MAX_COMPRESSED_PIECE: usize = 64 << 10;
/// Our client's `Streaming::Above` threshold.
const CLIENT_THRESHOLD: usize = 64 << 10;
/// The sizes our writes cycle through: uneven, so that text is cut inside
/// code points and frames have all three length encodings.
const WRITES: [usize; 5] = [(1 << 20) + 3, 7, 65_537, 1 << 19, 1];
/// 1- to 4-byte code points, as the peer's text (33 bytes).
const TEXT_PATTERN: &str = "streamed \u{e9}\u{e8} \u{2713}\u{2192} \u{1f389}\u{1f680} \u{436}!";

/// One streamed exchange.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Bytes of each side's message (text: rounded down to whole patterns).
    pub(crate) size: u64,
    /// The peer sends text (and we binary), or the other way round.
    pub(crate) peer_text: bool,
    /// The peer offers (client) or accepts (server) permessage-deflate.
    pub(crate) deflate: bool,
}

impl Plan {
    /// Every wait of the exchange is bounded by this: generous for a debug
    /// build (about 1 s per MiB), so that only a stuck exchange hits it.
    fn limit(self) -> Duration {
        Duration::from_secs(60 + self.size / (1 << 20))
    }

    /// `interop/python/streamed.py` set up for this plan, without its
    /// role arguments.
    fn peer_command(self) -> Command {
        let dir = interop_dir().join("python");
        let mut command = Command::new(python());
        command
            .arg(dir.join("streamed.py"))
            .current_dir(dir)
            .env("STREAM_SIZE", self.size.to_string())
            .env(
                "STREAM_KIND",
                if self.peer_text { "text" } else { "binary" },
            )
            .env("STREAM_TIMEOUT", self.limit().as_secs().to_string())
            .env_remove("PEER_DEFLATE");
        if self.deflate {
            command.env("PEER_DEFLATE", "default");
        }
        command
    }

    /// Our options: deflate offered and accepted (the defaults); streaming.
    fn options(self, server: bool) -> Options {
        let mut options = Options::default();
        let streaming = match server {
            true => Streaming::Always,
            false => Streaming::Above(CLIENT_THRESHOLD),
        };
        options.config = Config::default()
            .with_streaming(streaming)
            .with_max_streamed_message_size(None)
            .with_close_timeout(Some(Duration::from_secs(10)));
        options
    }
}

/// What our side measured.
#[derive(Debug)]
pub(crate) struct Figures {
    received: u64,
    pieces: u64,
    largest_piece: usize,
    receive_time: Duration,
    sent: u64,
    send_time: Duration,
}

/// `"<length> <sha256 hex>"`, the answer both sides give.
fn answer(length: u64, digest: &[u8]) -> String {
    let mut out = format!("{length} ");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Our message's bytes, made on the fly: slices of one buffer holding the
/// pattern a little longer than the largest write.
struct Pattern {
    base: Vec<u8>,
    period: usize,
    size: u64,
    made: u64,
    write: usize,
}

impl Pattern {
    fn new(text: bool, size: u64) -> Self {
        let unit: Vec<u8> = match text {
            true => TEXT_PATTERN.as_bytes().to_vec(),
            false => (0..=250u8).map(|i| i ^ 0xa5).collect(),
        };
        let period = unit.len();
        let longest = WRITES.iter().copied().max().unwrap_or(1);
        let base = unit
            .iter()
            .copied()
            .cycle()
            .take(longest + period)
            .collect();
        // Text ends on a code point: whole repetitions only.
        let size = if text {
            size - size % period as u64
        } else {
            size
        };
        Self {
            base,
            period,
            size,
            made: 0,
            write: 0,
        }
    }

    /// The next write's bytes, or `None` at the end.
    fn next(&mut self) -> Option<&[u8]> {
        let left = self.size - self.made;
        if left == 0 {
            return None;
        }
        let n = WRITES[self.write % WRITES.len()].min(usize::try_from(left).unwrap_or(usize::MAX));
        self.write += 1;
        let start = (self.made % self.period as u64) as usize;
        self.made += n as u64;
        Some(&self.base[start..start + n])
    }
}

/// Checks the pieces of one streamed message as they come, and hashes them.
struct Pieces {
    text: bool,
    compressed: bool,
    /// Our `Streaming::Above` threshold (0 for `Always`).
    threshold: usize,
    hasher: Sha256,
    length: u64,
    pieces: u64,
    largest: usize,
}

impl Pieces {
    fn new(text: bool, compressed: bool, threshold: usize) -> Self {
        Self {
            text,
            compressed,
            threshold,
            hasher: Sha256::new(),
            length: 0,
            pieces: 0,
            largest: 0,
        }
    }

    /// One piece; `Ok(true)` after the last.
    fn take(&mut self, piece: &Message, first: bool, last: bool) -> Result<bool, String> {
        let at = self.pieces;
        if first != (at == 0) {
            return Err(format!("piece {at}: first = {first}"));
        }
        if piece.is_text() != self.text {
            return Err(format!("piece {at}: text = {}", piece.is_text()));
        }
        if piece.is_empty() && !last {
            return Err(format!("piece {at}: empty but not the last"));
        }
        let max = match first {
            true => MAX_COMPRESSED_PIECE.max(self.threshold + 1),
            false => MAX_COMPRESSED_PIECE,
        };
        if self.compressed && piece.len() > max {
            return Err(format!(
                "piece {at} of a compressed message: {} bytes",
                piece.len()
            ));
        }
        self.hasher.update(piece.as_bytes());
        self.length += piece.len() as u64;
        self.pieces += 1;
        self.largest = self.largest.max(piece.len());
        Ok(last)
    }

    fn answer(self) -> String {
        answer(self.length, &self.hasher.finalize())
    }
}

/// An event, for error messages (never a payload).
fn describe(event: Option<Result<Event, String>>) -> String {
    match event {
        None => "the end of the connection".to_owned(),
        Some(Err(e)) => format!("error: {e}"),
        Some(Ok(Event::Message(m))) => super::common::describe_message(&m),
        Some(Ok(Event::Fragment { piece, first, last })) => format!(
            "a piece of {} bytes (first {first}, last {last})",
            piece.len()
        ),
        Some(Ok(event)) => format!("{event:?}"),
    }
}

/// The exchange (see the module doc), written once for the async adapters
/// (`exchange!(async await)`, which also get `accepted` and `connected`:
/// our server and client around it) and the blocking one (`exchange!()`).
/// The including module provides `adapter` (the crate) and `Stream`.
macro_rules! exchange {
    ($($async:tt $aw:tt)?) => {
        type Ws = adapter::WebSocket<Stream>;

        /// The peer's message, piece by piece; returns our answer.
        $($async)? fn receive(ws: &mut Ws, plan: Plan, figures: &mut Figures) -> Result<String, String> {
            let started = Instant::now();
            let threshold = match ws.connection().config().streaming {
                Streaming::Above(n) => n,
                _ => 0,
            };
            let mut pieces = Pieces::new(plan.peer_text, plan.deflate, threshold);
            loop {
                match ws.recv_event()$(.$aw)? {
                    Some(Ok(Event::Fragment { piece, first, last })) => {
                        if pieces.take(&piece, first, last)? {
                            break;
                        }
                    }
                    Some(Ok(Event::Ping(_) | Event::Pong(_))) => {}
                    other => {
                        return Err(format!(
                            "the peer's message after {} bytes: got {}",
                            pieces.length,
                            describe(other.map(|r| r.map_err(|e| e.to_string())))
                        ));
                    }
                }
            }
            figures.receive_time = started.elapsed();
            figures.received = pieces.length;
            figures.pieces = pieces.pieces;
            figures.largest_piece = pieces.largest;
            Ok(pieces.answer())
        }

        /// A short text message (the peer's answer), whole or in pieces.
        $($async)? fn receive_text(ws: &mut Ws) -> Result<String, String> {
            let mut text = Vec::new();
            loop {
                match ws.recv_event()$(.$aw)? {
                    Some(Ok(Event::Message(Message::Text(t)))) => return Ok(t.to_string()),
                    Some(Ok(Event::Fragment { piece: Message::Text(t), first, last }))
                        if first == text.is_empty() && text.len() < 1024 =>
                    {
                        text.extend_from_slice(t.as_bytes());
                        if last {
                            return String::from_utf8(text).map_err(|e| e.to_string());
                        }
                    }
                    Some(Ok(Event::Ping(_) | Event::Pong(_))) => {}
                    other => {
                        return Err(format!(
                            "waiting for the peer's answer, got {}",
                            describe(other.map(|r| r.map_err(|e| e.to_string())))
                        ));
                    }
                }
            }
        }

        /// Sends our message piece by piece; returns its answer.
        $($async)? fn send(ws: &mut Ws, plan: Plan, figures: &mut Figures) -> Result<String, String> {
            let started = Instant::now();
            let text = !plan.peer_text;
            let mut sender = PieceSender::new(text);
            let mut pattern = Pattern::new(text, plan.size);
            let mut hasher = Sha256::new();
            let mut length = 0u64;
            loop {
                let piece = pattern.next();
                if let Some(piece) = piece {
                    hasher.update(piece);
                    length += piece.len() as u64;
                }
                let mut rest = piece;
                loop {
                    // A write takes a bounded part of a long piece: go on
                    // with the rest.
                    let queued = match rest {
                        Some(bytes) => sender
                            .write(ws.connection_mut(), bytes)
                            .map(|n| rest = Some(&bytes[n..]).filter(|r| !r.is_empty())),
                        None => sender.finish(ws.connection_mut()),
                    };
                    match queued {
                        Ok(()) if rest.is_some() => {}
                        Ok(()) => break,
                        // The outgoing queue is full: write it out, then retry.
                        Err(SendError::Full(_)) => ws.flush()$(.$aw)?
                            .map_err(|e| format!("flush after {length} bytes: {e}"))?,
                        Err(e) => return Err(format!("send after {length} bytes: {e}")),
                    }
                }
                if piece.is_none() {
                    break;
                }
            }
            ws.flush()$(.$aw)?.map_err(|e| format!("flush: {e}"))?;
            figures.send_time = started.elapsed();
            figures.sent = length;
            Ok(answer(length, &hasher.finalize()))
        }

        /// Steps 1-3 of the module doc.
        pub(crate) $($async)? fn exchange(ws: &mut Ws, plan: Plan) -> Result<Figures, String> {
            let deflate = ws.connection().deflate().is_some();
            if deflate != plan.deflate {
                return Err(format!("permessage-deflate negotiated: {deflate}, expected {}", plan.deflate));
            }
            let mut figures = Figures {
                received: 0,
                pieces: 0,
                largest_piece: 0,
                receive_time: Duration::ZERO,
                sent: 0,
                send_time: Duration::ZERO,
            };
            let ours = receive(ws, plan, &mut figures)$(.$aw)??;
            ws.send(Message::text(ours))$(.$aw)?.map_err(|e| format!("send our answer: {e}"))?;
            let expected = send(ws, plan, &mut figures)$(.$aw)??;
            let theirs = receive_text(ws)$(.$aw)??;
            let verdict = if theirs == expected {
                Ok(())
            } else {
                Err(format!("the peer received {theirs:?}, we sent {expected:?}"))
            };
            let (code, reason) = match &verdict {
                Ok(()) => (CloseCode::NORMAL, String::new()),
                Err(e) => (CloseCode(4010), e.chars().take(120).collect()),
            };
            ws.close(code, &reason)$(.$aw)?.map_err(|e| format!("close: {e}"))?;
            verdict?;
            let echo = ws.close_frame().map(|f| f.code);
            if echo != Some(CloseCode::NORMAL) {
                return Err(format!("the peer's close echo: {echo:?}"));
            }
            Ok(figures)
        }

        $(
            /// Our server on an accepted connection: the handshake, then
            /// the exchange.
            $async fn accepted(stream: Stream, plan: Plan) -> Result<Figures, String> {
                let mut ws = adapter::accept_with(stream, &plan.options(true))
                    .$aw
                    .map_err(|e| format!("accept: {e}"))?;
                exchange(&mut ws, plan).$aw
            }

            /// Our client: connects to `url`, then the exchange.
            $async fn connected(url: &str, plan: Plan) -> Result<Figures, String> {
                let request = ws_proto::ClientRequest::new(url).map_err(|e| e.to_string())?;
                let (mut ws, _) = adapter::connect_with(request, &plan.options(false))
                    .$aw
                    .map_err(|e| format!("connect: {e}"))?;
                exchange(&mut ws, plan).$aw
            }
        )?
    };
}

mod tokio_side {
    use ws_tokio as adapter;

    use super::*;
    use crate::common::tokio_rt::runtime;

    type Stream = adapter::MaybeTlsStream;

    exchange!(async await);

    pub(crate) fn serve(listener: std::net::TcpListener, plan: Plan) -> Result<Figures, String> {
        runtime()?.block_on(async {
            let run = async {
                listener.set_nonblocking(true).map_err(|e| e.to_string())?;
                let listener =
                    tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
                let (tcp, _) = listener
                    .accept()
                    .await
                    .map_err(|e| format!("accept: {e}"))?;
                accepted(Stream::Plain(tcp), plan).await
            };
            tokio::time::timeout(plan.limit(), run)
                .await
                .map_err(|_| "the tokio server timed out".to_owned())?
        })
    }

    pub(crate) fn connect(url: &str, plan: Plan) -> Result<Figures, String> {
        runtime()?.block_on(async {
            tokio::time::timeout(plan.limit(), connected(url, plan))
                .await
                .map_err(|_| "the tokio client timed out".to_owned())?
        })
    }
}

mod smol_side {
    use ws_futures as adapter;

    use super::*;

    type Stream = adapter::MaybeTlsStream;

    exchange!(async await);

    fn bounded<T>(
        plan: Plan,
        what: &str,
        future: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        smol::block_on(smol::future::or(future, async {
            smol::Timer::after(plan.limit()).await;
            Err(format!("the smol {what} timed out"))
        }))
    }

    pub(crate) fn serve(listener: std::net::TcpListener, plan: Plan) -> Result<Figures, String> {
        bounded(plan, "server", async {
            let listener = smol::net::TcpListener::try_from(listener).map_err(|e| e.to_string())?;
            let (tcp, _) = listener
                .accept()
                .await
                .map_err(|e| format!("accept: {e}"))?;
            accepted(Stream::Plain(tcp), plan).await
        })
    }

    pub(crate) fn connect(url: &str, plan: Plan) -> Result<Figures, String> {
        bounded(plan, "client", connected(url, plan))
    }
}

mod std_side {
    use std::{net::TcpListener, thread};

    use ws_std as adapter;

    use super::*;

    type Stream = adapter::MaybeTlsStream;

    exchange!();

    /// Bounds every blocking read and write of the connection.
    fn prepare(ws: &mut Ws, plan: Plan) -> Result<(), String> {
        ws.set_read_timeout(Some(plan.limit()))
            .and_then(|()| ws.get_ref().get_ref().set_write_timeout(Some(plan.limit())))
            .map_err(|e| e.to_string())
    }

    pub(crate) fn serve(listener: TcpListener, plan: Plan) -> Result<Figures, String> {
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + plan.limit();
        let tcp = loop {
            match listener.accept() {
                Ok((tcp, _)) => break tcp,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err("the std server timed out".to_owned());
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        tcp.set_nonblocking(false).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(plan.limit()))
            .and_then(|()| tcp.set_write_timeout(Some(plan.limit())))
            .map_err(|e| e.to_string())?;
        let stream = adapter::MaybeTlsStream::Plain(tcp);
        let mut ws = adapter::accept_with(stream, &plan.options(true))
            .map_err(|e| format!("accept: {e}"))?;
        prepare(&mut ws, plan)?;
        exchange(&mut ws, plan)
    }

    pub(crate) fn connect(url: &str, plan: Plan) -> Result<Figures, String> {
        let request = ws_proto::ClientRequest::new(url).map_err(|e| e.to_string())?;
        let (mut ws, _) = adapter::connect_with(request, &plan.options(false))
            .map_err(|e| format!("connect: {e}"))?;
        prepare(&mut ws, plan)?;
        exchange(&mut ws, plan)
    }
}

/// The adapters of the streamed tests.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Side {
    /// ws-tokio.
    Tokio,
    /// ws-futures on smol.
    Smol,
    /// ws-std.
    Std,
}

impl Side {
    fn serve(self, listener: std::net::TcpListener, plan: Plan) -> Result<Figures, String> {
        match self {
            Self::Tokio => tokio_side::serve(listener, plan),
            Self::Smol => smol_side::serve(listener, plan),
            Self::Std => std_side::serve(listener, plan),
        }
    }

    fn connect(self, url: &str, plan: Plan) -> Result<Figures, String> {
        match self {
            Self::Tokio => tokio_side::connect(url, plan),
            Self::Smol => smol_side::connect(url, plan),
            Self::Std => std_side::connect(url, plan),
        }
    }
}

/// Runs `f` on its own thread, waiting at most `limit` plus a margin.
fn on_thread<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit + Duration::from_secs(10))
        .unwrap_or_else(|e| Err(format!("our side did not finish: {e}")))
}

fn report(what: &str, plan: Plan, figures: &Figures, peer: &str) {
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    // Straight to stderr: shown with --nocapture.
    let _ = writeln!(
        std::io::stderr(),
        "{what} (deflate {}): we received {:.1} MiB in {} pieces (largest {}) in {:.2?} \
         and sent {:.1} MiB in {:.2?}; peer: {peer}",
        plan.deflate,
        mib(figures.received),
        figures.pieces,
        figures.largest_piece,
        figures.receive_time,
        mib(figures.sent),
        figures.send_time,
    );
}

/// The Python client against our server on `side`, once without and once
/// with permessage-deflate.
pub(crate) fn python_client_against(side: Side, size: u64, deflate: bool) {
    if !Peer::Python.require() {
        return;
    }
    // The peer sends binary without deflate and text with it (a compressed
    // text message: inflated pieces cut at code points).
    let plan = Plan {
        size,
        peer_text: deflate,
        deflate,
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/streamed", listener.local_addr().expect("address"));
    let server = std::thread::spawn(move || side.serve(listener, plan));
    let child = plan
        .peer_command()
        .args(["client", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start the Python streamed client: {e}"));
    let peer = wait_bounded(ChildGuard(child), plan.limit() + Duration::from_secs(10));
    let ours = on_thread(plan.limit(), move || {
        server
            .join()
            .unwrap_or_else(|_| Err("our server panicked".to_owned()))
    });
    let peer = match peer {
        Ok((true, stdout, _)) if stdout.starts_with("OK") => stdout.trim().to_owned(),
        Ok((_, stdout, stderr)) => {
            panic!(
                "the Python client against our {side:?} server failed:\n{stdout}{stderr}\nour side: {ours:?}"
            )
        }
        Err(e) => panic!("the Python client against our {side:?} server: {e}; our side: {ours:?}"),
    };
    match ours {
        Ok(figures) => report(
            &format!("Python client -> {side:?} server"),
            plan,
            &figures,
            &peer,
        ),
        Err(e) => panic!("our {side:?} server: {e} (the peer said {peer})"),
    }
}

/// Our client on `side` against the Python server.
pub(crate) fn client_against_python(side: Side, size: u64, deflate: bool) {
    if !Peer::Python.require() {
        return;
    }
    // The peer sends text without deflate and binary with it: together with
    // the other direction, both types each way.
    let plan = Plan {
        size,
        peer_text: !deflate,
        deflate,
    };
    // `start_peer_server_with` adds `server 0` and waits for `PORT n`.
    let (_guard, port) = start_peer_server_with(Peer::Python, plan.peer_command());
    let url = format!("ws://127.0.0.1:{port}/streamed");
    match on_thread(plan.limit(), move || side.connect(&url, plan)) {
        Ok(figures) => report(
            &format!("{side:?} client -> Python server"),
            plan,
            &figures,
            "OK",
        ),
        Err(e) => panic!("our {side:?} client against the Python streamed server: {e}"),
    }
}
