//! The echo server, once per library: a `current_thread` tokio runtime, one
//! task per connection, each text or binary message sent back as it came
//! (text as text, UTF-8 validated as each library does by default).
//! ws-compio runs the same echo on compio's own single-threaded runtime
//! (io_uring; compio's polling driver where the kernel refuses io_uring).
//!
//! Every library runs with its default configuration: all five accept
//! frames and messages of at least 16 MiB by default (ws-tokio and
//! ws-compio 16 MiB frames / 64 MiB messages, tungstenite 16 / 64 MiB,
//! fastwebsockets 64 MiB, tokio-websockets 64 MiB), so no limit is changed.
//!
//! The permessage-deflate servers (RFC 7692) accept a client's offer:
//! ws-tokio with a [`DeflateConfig`](ws_tokio::DeflateConfig) per
//! [`Library`] variant, yawc with its default `DeflateOptions` (level 6,
//! context takeover both ways, windows as negotiated; see the README). yawc
//! limits frames to 1 MiB by default, which the deflate scenarios stay under.

use std::{
    io::{self, Write},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::{BoxError, tune};

/// Buffers in compio's pool for reads between messages (io_uring's
/// provided buffers; compio's default is 8): enough that 100 connections
/// receiving at once rarely find it empty (which costs a second read).
const POOL_BUFFERS: u16 = 128;

/// Messages echoed by this process (all connections).
pub static ECHOES: AtomicU64 = AtomicU64::new(0);

/// With a value above 0, the process exits (status 0) right after its
/// `EXIT_AFTER`-th echo has been sent, counted over all connections: what
/// `bench_server --exit-after-echoes N` sets, so that a tool the server runs
/// under (valgrind) writes its totals after a known amount of work.
pub static EXIT_AFTER: AtomicU64 = AtomicU64::new(0);

fn echoed() {
    let n = ECHOES.fetch_add(1, Ordering::Relaxed) + 1;
    if n == EXIT_AFTER.load(Ordering::Relaxed) {
        let _ = io::stdout().flush();
        // Nothing is left to do: no destructor needs to run.
        std::process::exit(0);
    }
}

/// The library a server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Library {
    /// This workspace's `ws-tokio`.
    WsTokio,
    /// This workspace's `ws-compio`, on compio's runtime (io_uring).
    WsCompio,
    /// `tokio-tungstenite` 0.30.
    TokioTungstenite,
    /// `fastwebsockets` 0.10.
    Fastwebsockets,
    /// `tokio-websockets` 0.13.
    TokioWebsockets,
    /// ws-tokio accepting permessage-deflate with the default
    /// `DeflateConfig`: level 1, memLevel 5, window bits 12 / 12, context
    /// takeover both ways (contexts kept while messages flow, freed after
    /// 1 s idle), messages under 64 bytes sent uncompressed.
    WsTokioDeflate,
    /// ws-tokio configured like yawc's defaults: level 6, memLevel 8, the
    /// client's window 9 bits (what yawc answers to a bare
    /// `client_max_window_bits`), its own 15 bits, context takeover both
    /// ways, and the contexts kept for the connection's life, as yawc
    /// keeps its own.
    WsTokioDeflateYawcLike,
    /// ws-tokio with the default `DeflateConfig` but no context takeover
    /// either way (`server_no_context_takeover` and
    /// `client_no_context_takeover` in its answer).
    WsTokioDeflateNct,
    /// `yawc` 0.5 (feature `zlib`: flate2 on zlib-rs), permessage-deflate
    /// with its default `DeflateOptions`.
    Yawc,
}

impl Library {
    /// The libraries of the uncompressed scenarios, this workspace's first.
    pub const ALL: [Self; 5] = [
        Self::WsTokio,
        Self::WsCompio,
        Self::TokioTungstenite,
        Self::Fastwebsockets,
        Self::TokioWebsockets,
    ];

    /// The permessage-deflate servers: the ws-tokio variants, then yawc.
    pub const DEFLATE: [Self; 4] = [
        Self::WsTokioDeflate,
        Self::WsTokioDeflateYawcLike,
        Self::WsTokioDeflateNct,
        Self::Yawc,
    ];

    /// The command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::WsTokio => "ws-tokio",
            Self::WsCompio => "ws-compio",
            Self::TokioTungstenite => "tokio-tungstenite",
            Self::Fastwebsockets => "fastwebsockets",
            Self::TokioWebsockets => "tokio-websockets",
            Self::WsTokioDeflate => "ws-tokio-deflate",
            Self::WsTokioDeflateYawcLike => "ws-tokio-deflate-yawclike",
            Self::WsTokioDeflateNct => "ws-tokio-deflate-nct",
            Self::Yawc => "yawc",
        }
    }

    /// The library called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain(Self::DEFLATE)
            .find(|l| l.name() == name)
    }

    /// Whether this server negotiates permessage-deflate (the load
    /// generator must then be run with `--deflate`).
    pub const fn deflate(self) -> bool {
        matches!(
            self,
            Self::WsTokioDeflate
                | Self::WsTokioDeflateYawcLike
                | Self::WsTokioDeflateNct
                | Self::Yawc
        )
    }

    /// Whether this is one of ws-tokio's servers.
    pub const fn is_ws_tokio(self) -> bool {
        matches!(
            self,
            Self::WsTokio
                | Self::WsTokioDeflate
                | Self::WsTokioDeflateYawcLike
                | Self::WsTokioDeflateNct
        )
    }

    /// The deflate configuration of a ws-tokio deflate variant.
    fn deflate_config(self) -> Option<ws_tokio::DeflateConfig> {
        let mut default = ws_tokio::DeflateConfig::default();
        // For measuring other levels by hand (not used by the runner).
        if let Some(level) = std::env::var("WS_BENCH_DEFLATE_LEVEL")
            .ok()
            .and_then(|l| l.parse().ok())
        {
            default = default.with_level(level);
        }
        match self {
            Self::WsTokioDeflate => Some(default),
            Self::WsTokioDeflateYawcLike => Some(
                default
                    .with_level(6)
                    .with_mem_level(8)
                    .with_window_bits(9, 15)
                    .with_release_contexts_after(None),
            ),
            Self::WsTokioDeflateNct => Some(default.with_no_context_takeover(true, true)),
            _ => None,
        }
    }
}

/// Runs the echo server of `library` on `127.0.0.1:port` until killed,
/// printing `READY` once it listens. With `report`, it also answers every
/// connection to `port + 1` with `report()` (the allocation counters of
/// `bench_server_counting`).
pub fn run(library: Library, port: u16, report: Option<fn() -> String>) -> io::Result<()> {
    if library == Library::WsCompio {
        return run_compio(port, report);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        tune::set_congestion(&listener)?;
        if let Some(report) = report {
            let control = TcpListener::bind(("127.0.0.1", port + 1)).await?;
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = control.accept().await {
                    let _ = stream.write_all(report().as_bytes()).await;
                }
            });
        }
        let mut stdout = io::stdout();
        writeln!(stdout, "READY")?;
        stdout.flush()?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(async move {
                        // Load generators vanish at the end of each run.
                        let _ = serve(library, stream).await;
                    });
                }
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
}

/// [`run`] for ws-compio: the same server on compio's runtime (one thread,
/// one task per connection; io_uring, or compio's polling driver where
/// io_uring is unavailable).
fn run_compio(port: u16, report: Option<fn() -> String>) -> io::Result<()> {
    use compio::{io::AsyncWriteExt, net::TcpListener, runtime::spawn};

    let mut proactor = compio::driver::ProactorBuilder::new();
    proactor.buffer_pool_size(core::num::NonZero::new(POOL_BUFFERS).expect("nonzero"));
    let runtime = compio::runtime::RuntimeBuilder::new()
        .with_proactor(proactor)
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        tune::set_congestion(&listener)?;
        if let Some(report) = report {
            let control = TcpListener::bind(("127.0.0.1", port + 1)).await?;
            spawn(async move {
                while let Ok((mut stream, _)) = control.accept().await {
                    let _ = stream.write_all(report()).await;
                }
            })
            .detach();
        }
        let mut stdout = io::stdout();
        writeln!(stdout, "READY")?;
        stdout.flush()?;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    spawn(async move {
                        // Load generators vanish at the end of each run.
                        let _ = ws_compio_echo(stream).await;
                    })
                    .detach();
                }
                Err(e) => {
                    eprintln!("accept: {e}");
                    compio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
}

async fn ws_compio_echo(stream: compio::net::TcpStream) -> Result<(), BoxError> {
    tune::tune(&stream)?;
    let mut ws = ws_compio::accept(stream).await?;
    while let Some(message) = ws.recv().await {
        ws.send(message?).await?;
        echoed();
    }
    Ok(())
}

async fn serve(library: Library, stream: TcpStream) -> Result<(), BoxError> {
    tune::tune(&stream)?;
    // Boxed one by one: an unboxed match would make every connection's task
    // as large as the largest library's future, skewing memory per connection.
    match library {
        Library::WsTokio => Box::pin(ws_tokio_echo(stream)).await,
        Library::WsCompio => Err("ws-compio runs on compio's runtime (`run_compio`)".into()),
        Library::TokioTungstenite => Box::pin(tokio_tungstenite_echo(stream)).await,
        Library::Fastwebsockets => Box::pin(fastwebsockets_echo(stream)).await,
        Library::TokioWebsockets => Box::pin(tokio_websockets_echo(stream)).await,
        Library::WsTokioDeflate | Library::WsTokioDeflateYawcLike | Library::WsTokioDeflateNct => {
            let config = library.deflate_config().unwrap_or_default();
            Box::pin(ws_tokio_deflate_echo(stream, config)).await
        }
        Library::Yawc => Box::pin(yawc_echo(stream)).await,
    }
}

async fn ws_tokio_deflate_echo(
    stream: TcpStream,
    config: ws_tokio::DeflateConfig,
) -> Result<(), BoxError> {
    let options = ws_tokio::Options::default().with_deflate(config);
    let mut ws = ws_tokio::accept_with(stream, &options).await?;
    while let Some(message) = ws.recv().await {
        ws.send(message?).await?;
        echoed();
    }
    Ok(())
}

/// yawc's options: compression on with its defaults (`DeflateOptions::default()`:
/// level 6, context takeover both ways, no window preference, every message
/// compressed, no pool); everything else default too (no UTF-8 validation).
fn yawc_options() -> yawc::Options {
    yawc::Options {
        compression: Some(yawc::DeflateOptions::default()),
        ..yawc::Options::default()
    }
}

async fn yawc_echo(mut stream: TcpStream) -> Result<(), BoxError> {
    use yawc::{OpCode, Role, WebSocket};
    // yawc's server side is hyper's `upgrade`; as for fastwebsockets, hyper
    // stays out of the data path: the request head is read by hand, yawc's
    // own `upgrade_with_options` negotiates and builds the answer (its
    // upgrade future is dropped unused), and the stream goes to
    // `from_stream_with_extensions` with what was agreed.
    let options = yawc_options();
    let (key, extensions) = read_request_head(&mut stream).await?;
    let mut builder = yawc::HttpRequest::builder()
        .uri("/")
        .header("host", "127.0.0.1")
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", key);
    if let Some(offer) = &extensions {
        builder = builder.header("sec-websocket-extensions", offer.as_str());
    }
    let mut request = builder.body(())?;
    let (response, _unused) =
        yawc::HttpWebSocket::upgrade_with_options(&mut request, options.clone())?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let accept = header("sec-websocket-accept").ok_or("yawc gave no Sec-WebSocket-Accept")?;
    let agreed = header("sec-websocket-extensions");
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
    );
    if let Some(agreed) = &agreed {
        head += &format!("Sec-WebSocket-Extensions: {agreed}\r\n");
    }
    head += "\r\n";
    stream.write_all(head.as_bytes()).await?;
    let mut ws =
        WebSocket::from_stream_with_extensions(stream, Role::Server, agreed.as_deref(), options)?;
    loop {
        let frame = ws.next_frame().await?;
        match frame.opcode() {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => {
                ws.send(frame).await?;
                echoed();
            }
            _ => {}
        }
    }
}

async fn ws_tokio_echo(stream: TcpStream) -> Result<(), BoxError> {
    let mut ws = ws_tokio::accept(stream).await?;
    while let Some(message) = ws.recv().await {
        ws.send(message?).await?;
        echoed();
    }
    Ok(())
}

async fn tokio_tungstenite_echo(stream: TcpStream) -> Result<(), BoxError> {
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
            echoed();
        }
    }
    Ok(())
}

async fn fastwebsockets_echo(mut stream: TcpStream) -> Result<(), BoxError> {
    use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket};
    // fastwebsockets' documented entry point without hyper: the HTTP
    // handshake is the application's, then `after_handshake`.
    accept_by_hand(&mut stream).await?;
    let mut ws = FragmentCollector::new(WebSocket::after_handshake(stream, Role::Server));
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => {
                ws.write_frame(frame).await?;
                echoed();
            }
            _ => {}
        }
    }
}

async fn tokio_websockets_echo(stream: TcpStream) -> Result<(), BoxError> {
    let (_request, mut ws) = tokio_websockets::ServerBuilder::new()
        .accept(stream)
        .await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
            echoed();
        }
    }
    Ok(())
}

/// A minimal server handshake for fastwebsockets: reads the request head,
/// answers 101 with the `Sec-WebSocket-Accept` of its key. The load
/// generator sends nothing before the 101, so no byte is read past the head.
async fn accept_by_hand(stream: &mut TcpStream) -> Result<(), BoxError> {
    use base64::Engine as _;
    use sha1::{Digest, Sha1};

    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let (key, _) = read_request_head(stream).await?;
    let digest = Sha1::new().chain_update(&key).chain_update(GUID).finalize();
    let accept = base64::engine::general_purpose::STANDARD.encode(digest);
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await?;
    Ok(())
}

/// Reads a request head (nothing past it: the load generator waits for the
/// 101); returns its `Sec-WebSocket-Key` and `Sec-WebSocket-Extensions`.
async fn read_request_head(stream: &mut TcpStream) -> Result<(String, Option<String>), BoxError> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut chunk = [0; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("end of stream in the handshake".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        let httparse::Status::Complete(len) = request.parse(&buf)? else {
            continue;
        };
        if len != buf.len() {
            return Err("bytes after the request head".into());
        }
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let key = header("sec-websocket-key").ok_or("no Sec-WebSocket-Key")?;
        return Ok((key, header("sec-websocket-extensions")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        frame::{TEXT, masked},
        payload::{self, Text},
    };
    use zlib_rs::{Inflate, InflateFlush};

    const REQUEST_DEFLATE: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

    /// Reads one unmasked server frame: (first byte, payload).
    async fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
        let mut head = [0; 2];
        stream.read_exact(&mut head).await.unwrap();
        let len = match head[1] & 0x7f {
            126 => {
                let mut b = [0; 2];
                stream.read_exact(&mut b).await.unwrap();
                usize::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0; 8];
                stream.read_exact(&mut b).await.unwrap();
                usize::try_from(u64::from_be_bytes(b)).unwrap()
            }
            n => usize::from(n),
        };
        let mut payload = vec![0; len];
        stream.read_exact(&mut payload).await.unwrap();
        (head[0], payload)
    }

    /// Runs `library`'s server for one connection, offers permessage-deflate
    /// as the load generator does, sends independently compressed JSON and
    /// checks each echo inflates (with the context kept across messages,
    /// as takeover requires) to what was sent. Returns the agreed extension.
    fn echo_compressed(library: Library) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::spawn(async move {
                let (stream, _) = listener.accept().await.unwrap();
                let _ = serve(library, stream).await;
            });
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            stream.write_all(REQUEST_DEFLATE).await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0];
                stream.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            let head = String::from_utf8(head).unwrap();
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            let agreed = head
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
                .unwrap_or_else(|| panic!("no extension agreed: {head}"))
                .to_owned();
            let mut inflate = Inflate::new(false, 15);
            for text in payload::texts(Text::Json, 1024, 5) {
                let frame = masked(TEXT, true, &payload::compress(text.as_bytes()));
                stream.write_all(&frame).await.unwrap();
                let (b0, mut data) = read_frame(&mut stream).await;
                assert_eq!(b0 & 0x8f, 0x81, "a final text frame");
                assert_eq!(b0 & 0x40, 0x40, "compressed");
                data.extend_from_slice(&[0, 0, 0xff, 0xff]);
                let mut out = vec![0; 8192];
                let before = inflate.total_out();
                inflate
                    .decompress(&data, &mut out, InflateFlush::SyncFlush)
                    .unwrap();
                out.truncate((inflate.total_out() - before) as usize);
                assert_eq!(out, text.as_bytes());
            }
            agreed
        })
    }

    #[test]
    fn yawc_negotiates_its_defaults_and_echoes_compressed() {
        // yawc answers a bare client_max_window_bits with 9 and keeps
        // context takeover (no *_no_context_takeover in its answer).
        let agreed = echo_compressed(Library::Yawc);
        assert!(agreed.starts_with("permessage-deflate"), "{agreed}");
        assert!(agreed.contains("client_max_window_bits=9"), "{agreed}");
        assert!(!agreed.contains("no_context_takeover"), "{agreed}");
    }

    #[test]
    fn ws_tokio_deflate_variants_echo_compressed() {
        let agreed = echo_compressed(Library::WsTokioDeflate);
        assert!(agreed.contains("client_max_window_bits=12"), "{agreed}");
        let agreed = echo_compressed(Library::WsTokioDeflateYawcLike);
        assert!(agreed.contains("client_max_window_bits=9"), "{agreed}");
        let agreed = echo_compressed(Library::WsTokioDeflateNct);
        assert!(
            agreed.contains("server_no_context_takeover")
                && agreed.contains("client_no_context_takeover"),
            "{agreed}"
        );
    }
}
