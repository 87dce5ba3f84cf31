//! Hostile peers against every adapter.
//!
//! Each scenario runs against the server of each runtime (tokio, smol,
//! async-std, blocking std, compio) with a raw TCP socket as the malicious client;
//! the client scenarios run each runtime's client against a raw malicious
//! server. Every test is bounded by [`TEST_TIMEOUT`], and the connection
//! timers are short so the whole file runs in seconds.
//!
//! Test names are `<scenario>_<runtime>`, e.g. `slowloris_handshake_tokio`.

mod common;

use core::time::Duration;
use std::{
    io::{self, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::Instant,
};

use bytes::{Buf, BytesMut};
use common::Adapter;
use ws_proto::{
    AcceptOptions, ClientHandshake, ClientRequest, ClientResponse, CloseCode, Config, Event,
    HandshakeConfig, Message, ServerHandshake, deflate::DeflateConfig,
};

/// Bound for a whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound for waiting on one side's outcome.
const WAIT: Duration = Duration::from_secs(15);
/// The handshake timeout and close timeout of the hostile scenarios.
const SHORT: Duration = Duration::from_millis(500);
/// How late a timer may fire on a loaded 2-core machine in a debug build.
const SLACK: Duration = Duration::from_millis(1000);

/// A valid opening request (the RFC 6455 sample key).
const REQUEST: &[u8] = b"GET /hostile HTTP/1.1\r\n\
Host: 127.0.0.1\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";
/// The accept key answering [`REQUEST`]'s key.
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// The masking key of every raw client frame.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

// ----- The harness: our side of each runtime -----

/// Settings of our side.
#[derive(Clone, Debug)]
struct Opts {
    config: Config,
    handshake_timeout: Duration,
    /// `SO_SNDBUF` of the server's socket (inherited from the listener).
    send_buffer: Option<u32>,
}

fn opts() -> Opts {
    Opts {
        config: Config::default().with_close_timeout(Some(SHORT)),
        handshake_timeout: SHORT,
        send_buffer: None,
    }
}

/// A bound listener on 127.0.0.1 (non-blocking), with `SO_SNDBUF` set when
/// asked: accepted sockets inherit it.
fn listener(send_buffer: Option<u32>) -> TcpListener {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let listener = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        if let Some(size) = send_buffer {
            socket.set_send_buffer_size(size)?;
        }
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        socket.listen(128)?.into_std()
    });
    listener.expect("listener")
}

/// What our side does once the handshake is done.
#[derive(Clone, Debug)]
enum Mode {
    /// Receive every event until the end; report each message on the
    /// sender too (to prove progress while the peer misbehaves).
    Recv(Option<mpsc::Sender<Message>>),
    /// Send this many numbered text messages, then close(1000).
    SendClose(usize),
}

const fn recv() -> Mode {
    Mode::Recv(None)
}

/// An adapter error, reduced to what the scenarios check.
#[derive(Clone, Debug)]
struct ErrorInfo {
    #[expect(dead_code, reason = "shown by Debug in assertion messages")]
    text: String,
    /// The close code of an `Error::Protocol`.
    protocol: Option<u16>,
    /// A deadline passed (`Error::is_timeout`): a read timeout, or the
    /// handshake timeout.
    timed_out: bool,
}

/// What our side saw.
#[derive(Debug, Default)]
struct Outcome {
    /// The handshake succeeded.
    accepted: bool,
    /// The handshake failed.
    handshake: Option<ErrorInfo>,
    messages: Vec<Message>,
    pings: usize,
    /// The code of an `Event::Close`.
    close_event: Option<u16>,
    /// `close_frame()` at the end.
    close: Option<u16>,
    /// The first error after the handshake.
    error: Option<ErrorInfo>,
    /// From the TCP accept (or the connect call) to the end.
    elapsed: Duration,
}

impl Outcome {
    /// The connection ended with code 1006 (event or `close_frame`).
    fn abnormal(&self) -> bool {
        self.close_event == Some(1006) || self.close == Some(1006)
    }

    fn texts(&self) -> Vec<String> {
        self.messages
            .iter()
            .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
            .collect()
    }
}

/// One of our servers, serving one connection.
struct Server {
    addr: SocketAddr,
    outcome: mpsc::Receiver<Outcome>,
}

impl Server {
    fn url(&self) -> String {
        format!("ws://{}/hostile", self.addr)
    }

    /// Waits (bounded) for the server to finish its connection.
    fn outcome(self) -> Outcome {
        match self.outcome.recv_timeout(WAIT) {
            Ok(outcome) => outcome,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the server did not finish its connection within {WAIT:?} (hang)")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the server panicked"),
        }
    }
}

fn spawn_server(run: impl FnOnce(mpsc::Sender<SocketAddr>) -> Outcome + Send + 'static) -> Server {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (tx, outcome) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(run(addr_tx));
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the server did not start");
    Server { addr, outcome }
}

impl Adapter {
    /// Starts our server of this runtime for one connection.
    fn serve(self, opts: Opts, mode: Mode) -> Server {
        match self {
            Self::Tokio => tokio_rt::serve(opts, mode),
            Self::Smol => smol_rt::serve(opts, mode),
            Self::AsyncStd => async_std_rt::serve(opts, mode),
            Self::Std => std_rt::serve(opts, mode),
            Self::Compio => compio_rt::serve(opts, mode),
        }
    }

    /// Runs our client of this runtime against `url`.
    fn client(self, url: &str, opts: Opts, mode: Mode) -> Outcome {
        match self {
            Self::Tokio => tokio_rt::client(url, opts, mode),
            Self::Smol => smol_rt::client(url, opts, mode),
            Self::AsyncStd => async_std_rt::client(url, opts, mode),
            Self::Std => std_rt::client(url, opts, mode),
            Self::Compio => compio_rt::client(url, opts, mode),
        }
    }
}

/// Our side, written once for async and blocking adapters. The including
/// module provides `adapter`, `Stream` and `connect(request, &options)`.
macro_rules! our_side {
    ($($async:tt $aw:tt)?) => {
        fn options(opts: &Opts) -> adapter::Options {
            let mut options = adapter::Options::default();
            options.config = opts.config.clone();
            options.handshake_timeout = Some(opts.handshake_timeout);
            options
        }

        fn info(error: &adapter::Error) -> ErrorInfo {
            let mut info = ErrorInfo {
                text: error.to_string(),
                protocol: None,
                timed_out: false,
            };
            if let adapter::Error::Protocol(e) = error {
                info.protocol = Some(e.close_code().0);
            }
            info.timed_out = error.is_timeout();
            info
        }

        $($async)? fn drive(ws: &mut adapter::WebSocket<Stream>, mode: &Mode, out: &mut Outcome) {
            if let Mode::SendClose(count) = mode {
                for i in 0..*count {
                    if let Err(e) = ws.send(Message::text(i.to_string()))$(.$aw)? {
                        out.error = Some(info(&e));
                        return;
                    }
                }
                if let Err(e) = ws.close(CloseCode::NORMAL, "")$(.$aw)? {
                    out.error = Some(info(&e));
                }
            }
            let notify = match mode {
                Mode::Recv(notify) => notify.clone(),
                Mode::SendClose(_) => None,
            };
            loop {
                match ws.recv_event()$(.$aw)? {
                    None => break,
                    Some(Ok(Event::Message(message))) => {
                        if let Some(tx) = &notify {
                            let _ = tx.send(message.clone());
                        }
                        out.messages.push(message);
                    }
                    Some(Ok(Event::Ping(_))) => out.pings += 1,
                    Some(Ok(Event::Close(frame))) => out.close_event = Some(frame.code.0),
                    Some(Ok(_pong)) => {}
                    Some(Err(e)) => {
                        out.error.get_or_insert(info(&e));
                        break;
                    }
                }
            }
        }

        $($async)? fn serve_stream(stream: Stream, opts: &Opts, mode: &Mode) -> Outcome {
            let start = Instant::now();
            let mut out = Outcome::default();
            match adapter::accept_with(stream, &options(opts))$(.$aw)? {
                Ok(mut ws) => {
                    out.accepted = true;
                    drive(&mut ws, mode, &mut out)$(.$aw)?;
                    out.close = ws.close_frame().map(|f| f.code.0);
                }
                Err(e) => out.handshake = Some(info(&e)),
            }
            out.elapsed = start.elapsed();
            out
        }

        $($async)? fn client_main(url: &str, opts: &Opts, mode: &Mode) -> Outcome {
            let start = Instant::now();
            let mut out = Outcome::default();
            let request = ClientRequest::new(url).expect("request");
            match connect(request, &options(opts))$(.$aw)? {
                Ok((mut ws, _response)) => {
                    out.accepted = true;
                    drive(&mut ws, mode, &mut out)$(.$aw)?;
                    out.close = ws.close_frame().map(|f| f.code.0);
                }
                Err(e) => out.handshake = Some(info(&e)),
            }
            out.elapsed = start.elapsed();
            out
        }
    };
}

mod tokio_rt {
    use ws_tokio as adapter;

    use super::*;

    type Stream = adapter::MaybeTlsStream;

    async fn connect(
        request: ClientRequest,
        options: &adapter::Options,
    ) -> adapter::Result<(adapter::WebSocket<Stream>, ClientResponse)> {
        adapter::connect_with(request, options).await
    }

    our_side!(async await);

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    pub(super) fn serve(opts: Opts, mode: Mode) -> Server {
        spawn_server(move |addr_tx| {
            let listener = listener(opts.send_buffer);
            runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = addr_tx.send(listener.local_addr().expect("addr"));
                let (stream, _) = listener.accept().await.expect("accept");
                serve_stream(adapter::MaybeTlsStream::Plain(stream), &opts, &mode).await
            })
        })
    }

    pub(super) fn client(url: &str, opts: Opts, mode: Mode) -> Outcome {
        runtime().block_on(client_main(url, &opts, &mode))
    }
}

mod smol_rt {
    use ws_futures as adapter;

    use super::*;

    type Stream = adapter::MaybeTlsStream;

    async fn connect(
        request: ClientRequest,
        options: &adapter::Options,
    ) -> adapter::Result<(adapter::WebSocket<Stream>, ClientResponse)> {
        adapter::connect_with(request, options).await
    }

    our_side!(async await);

    pub(super) fn serve(opts: Opts, mode: Mode) -> Server {
        spawn_server(move |addr_tx| {
            smol::block_on(async move {
                let listener = listener(opts.send_buffer);
                let listener = smol::net::TcpListener::try_from(listener).expect("listener");
                let _ = addr_tx.send(listener.local_addr().expect("addr"));
                let (stream, _) = listener.accept().await.expect("accept");
                serve_stream(adapter::MaybeTlsStream::Plain(stream), &opts, &mode).await
            })
        })
    }

    pub(super) fn client(url: &str, opts: Opts, mode: Mode) -> Outcome {
        smol::block_on(client_main(url, &opts, &mode))
    }
}

mod async_std_rt {
    use ws_futures as adapter;

    use super::*;

    type Stream = async_std::net::TcpStream;

    /// TCP through async-std, then the handshake through `ws_futures::client`.
    async fn connect(
        request: ClientRequest,
        options: &adapter::Options,
    ) -> adapter::Result<(adapter::WebSocket<Stream>, ClientResponse)> {
        let stream = Stream::connect((request.host(), request.port())).await?;
        adapter::client(stream, request, options).await
    }

    our_side!(async await);

    pub(super) fn serve(opts: Opts, mode: Mode) -> Server {
        spawn_server(move |addr_tx| {
            async_std::task::block_on(async move {
                let listener = async_std::net::TcpListener::from(listener(opts.send_buffer));
                let _ = addr_tx.send(listener.local_addr().expect("addr"));
                let (stream, _) = listener.accept().await.expect("accept");
                serve_stream(stream, &opts, &mode).await
            })
        })
    }

    pub(super) fn client(url: &str, opts: Opts, mode: Mode) -> Outcome {
        async_std::task::block_on(client_main(url, &opts, &mode))
    }
}

mod std_rt {
    use ws_std as adapter;

    use super::*;

    type Stream = adapter::MaybeTlsStream;

    fn connect(
        request: ClientRequest,
        options: &adapter::Options,
    ) -> adapter::Result<(adapter::WebSocket<Stream>, ClientResponse)> {
        let (ws, response) = adapter::connect_with(request, options)?;
        // Bounds a write to a peer that never reads (the read side is
        // bounded by the adapter's own timers).
        ws.get_ref().get_ref().set_write_timeout(Some(WAIT))?;
        Ok((ws, response))
    }

    our_side!();

    pub(super) fn serve(opts: Opts, mode: Mode) -> Server {
        spawn_server(move |addr_tx| {
            let listener = listener(opts.send_buffer);
            listener.set_nonblocking(false).expect("blocking");
            let _ = addr_tx.send(listener.local_addr().expect("addr"));
            let (stream, _) = listener.accept().expect("accept");
            stream.set_write_timeout(Some(WAIT)).expect("write timeout");
            serve_stream(adapter::MaybeTlsStream::Plain(stream), &opts, &mode)
        })
    }

    pub(super) fn client(url: &str, opts: Opts, mode: Mode) -> Outcome {
        client_main(url, &opts, &mode)
    }
}

mod compio_rt {
    use ws_compio as adapter;

    use super::*;

    type Stream = compio::net::TcpStream;

    async fn connect(
        request: ClientRequest,
        options: &adapter::Options,
    ) -> adapter::Result<(adapter::WebSocket<Stream>, ClientResponse)> {
        adapter::connect_with(request, options).await
    }

    our_side!(async await);

    /// compio's runtime runs on the calling thread (its futures are not
    /// `Send`).
    fn runtime() -> compio::runtime::Runtime {
        compio::runtime::Runtime::new().expect("runtime")
    }

    pub(super) fn serve(opts: Opts, mode: Mode) -> Server {
        spawn_server(move |addr_tx| {
            let listener = listener(opts.send_buffer);
            listener.set_nonblocking(false).expect("blocking");
            runtime().block_on(async move {
                let listener = compio::net::TcpListener::from_std(listener).expect("listener");
                let _ = addr_tx.send(listener.local_addr().expect("addr"));
                let (stream, _) = listener.accept().await.expect("accept");
                serve_stream(stream, &opts, &mode).await
            })
        })
    }

    pub(super) fn client(url: &str, opts: Opts, mode: Mode) -> Outcome {
        runtime().block_on(client_main(url, &opts, &mode))
    }
}

/// Runs a test body on its own thread, bounded by [`TEST_TIMEOUT`];
/// re-raises its panic.
fn bounded(body: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        body();
        let _ = tx.send(());
    });
    match rx.recv_timeout(TEST_TIMEOUT) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test timed out after {TEST_TIMEOUT:?}"),
    }
}

/// One test per runtime for each scenario: `name_tokio`, `name_smol`,
/// `name_async_std`, `name_std`, `name_compio`, each calling
/// `scenario(Adapter::..)`.
macro_rules! per_runtime {
    ($scenario:expr => $tokio:ident, $smol:ident, $async_std:ident, $std:ident,
        $compio:ident) => {
        #[test]
        fn $tokio() {
            bounded(|| $scenario(Adapter::Tokio));
        }
        #[test]
        fn $smol() {
            bounded(|| $scenario(Adapter::Smol));
        }
        #[test]
        fn $async_std() {
            bounded(|| $scenario(Adapter::AsyncStd));
        }
        #[test]
        fn $std() {
            bounded(|| $scenario(Adapter::Std));
        }
        #[test]
        fn $compio() {
            bounded(|| $scenario(Adapter::Compio));
        }
    };
}

// ----- The raw peer -----

/// Connects a raw socket, optionally with a small receive buffer (so the
/// kernel holds little of what we do not read) and `SO_LINGER` 0 (dropping
/// it sends a RST).
fn raw_socket(addr: SocketAddr, recv_buffer: Option<u32>, reset_on_drop: bool) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        let stream = socket.connect(addr).await?;
        if reset_on_drop {
            stream.set_zero_linger()?;
        }
        stream.into_std()
    });
    let stream = stream.expect("raw connect");
    stream.set_nonblocking(false).expect("blocking");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream.set_write_timeout(Some(WAIT)).expect("write timeout");
    stream
}

/// Reads an HTTP head byte by byte (so no frame byte is consumed).
fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
        assert!(head.len() < 8192, "endless head");
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// A raw client after a valid handshake.
fn raw_client(addr: SocketAddr, recv_buffer: Option<u32>, reset_on_drop: bool) -> TcpStream {
    let mut stream = raw_socket(addr, recv_buffer, reset_on_drop);
    stream.write_all(REQUEST).expect("write request");
    let head = read_head(&mut stream).expect("read response");
    assert!(head.starts_with("HTTP/1.1 101"), "response: {head}");
    assert!(head.contains(ACCEPT), "response: {head}");
    stream
}

/// A frame with `opcode` (FIN set when `fin`), masked when `mask` is given.
fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => out.push(mask_bit | len as u8),
        len @ 126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A masked client frame.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(true, opcode, payload, Some(MASK))
}

fn close_payload(code: u16) -> Vec<u8> {
    code.to_be_bytes().to_vec()
}

/// How the raw peer's reading ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Orderly end of stream.
    Eof,
    /// An error such as a reset.
    Error(io::ErrorKind),
    /// Nothing for [`WAIT`]: the other side hangs.
    Timeout,
}

impl End {
    fn is_gone(&self) -> bool {
        matches!(self, Self::Eof | Self::Error(_))
    }
}

/// What the raw peer read until the end of the stream.
#[derive(Debug)]
struct Transcript {
    /// Opcodes in order.
    opcodes: Vec<u8>,
    pings: usize,
    pongs: usize,
    /// The first Close frame's code.
    close: Option<u16>,
    /// When the Close frame arrived.
    close_at: Option<Duration>,
    end: End,
    /// When the stream ended.
    end_at: Duration,
}

/// Reads one frame (unmasking it if needed); `None` at the end of stream.
fn read_frame(stream: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 2];
    if stream.read(&mut head[..1])? == 0 {
        return Ok(None);
    }
    stream.read_exact(&mut head[1..])?;
    let mut len = u64::from(head[1] & 0x7f);
    if len == 126 {
        let mut ext = [0u8; 2];
        stream.read_exact(&mut ext)?;
        len = u64::from(u16::from_be_bytes(ext));
    } else if len == 127 {
        let mut ext = [0u8; 8];
        stream.read_exact(&mut ext)?;
        len = u64::from_be_bytes(ext);
    }
    let mask = if head[1] & 0x80 != 0 {
        let mut key = [0u8; 4];
        stream.read_exact(&mut key)?;
        Some(key)
    } else {
        None
    };
    let len = usize::try_from(len).map_err(|_| io::Error::other("huge frame"))?;
    if len > 64 << 20 {
        return Err(io::Error::other("frame over 64 MiB"));
    }
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload)?;
    if let Some(key) = mask {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    Ok(Some((head[0] & 0x0f, payload)))
}

/// Reads frames until the stream ends (or [`WAIT`] passes in silence).
fn transcript(stream: &mut TcpStream, start: Instant) -> Transcript {
    let mut t = Transcript {
        opcodes: Vec::new(),
        pings: 0,
        pongs: 0,
        close: None,
        close_at: None,
        end: End::Timeout,
        end_at: Duration::ZERO,
    };
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut reader = io::BufReader::with_capacity(64 << 10, stream);
    loop {
        match read_frame(&mut reader) {
            Ok(Some((opcode, payload))) => {
                t.opcodes.push(opcode);
                match opcode {
                    0x9 => t.pings += 1,
                    0xa => t.pongs += 1,
                    0x8 if t.close.is_none() => {
                        t.close = Some(match payload[..] {
                            [a, b, ..] => u16::from_be_bytes([a, b]),
                            _ => 1005,
                        });
                        t.close_at = Some(start.elapsed());
                    }
                    _ => {}
                }
            }
            Ok(None) => {
                t.end = End::Eof;
                break;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                t.end = End::Timeout;
                break;
            }
            Err(e) => {
                t.end = End::Error(e.kind());
                break;
            }
        }
    }
    t.end_at = start.elapsed();
    t
}

/// Reads and discards until the stream ends; returns how and when.
fn drain(stream: &mut TcpStream, start: Instant) -> (End, Duration) {
    let mut buf = [0u8; 4096];
    let end = loop {
        match stream.read(&mut buf) {
            Ok(0) => break End::Eof,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break End::Timeout;
            }
            Err(e) => break End::Error(e.kind()),
        }
    };
    (end, start.elapsed())
}

// ----- 1. Slowloris handshake -----

/// The request one byte every 100 ms: the server gives up at its handshake
/// timeout (500 ms) and drops the connection.
fn slowloris_handshake(adapter: Adapter) {
    let server = adapter.serve(opts(), recv());
    let mut stream = raw_socket(server.addr, None, false);
    let mut writer = stream.try_clone().expect("clone");
    let stop = Arc::new(AtomicBool::new(false));
    let stop_writer = Arc::clone(&stop);
    let start = Instant::now();
    let dribble = thread::spawn(move || {
        let mut sent = 0;
        for byte in REQUEST {
            if stop_writer.load(Ordering::Relaxed) || writer.write_all(&[*byte]).is_err() {
                break;
            }
            sent += 1;
            thread::sleep(Duration::from_millis(100));
        }
        sent
    });
    let (end, at) = drain(&mut stream, start);
    stop.store(true, Ordering::Relaxed);
    let sent = dribble.join().expect("dribbler");
    eprintln!("{adapter:?}: dropped after {at:?} ({end:?}), {sent} bytes sent");
    assert!(
        end.is_gone(),
        "the server kept the slow client: {end:?} after {at:?}"
    );
    assert!(
        sent < REQUEST.len(),
        "the whole request went out ({sent} bytes)"
    );
    assert!(
        at >= SHORT - Duration::from_millis(100) && at <= SHORT + SLACK,
        "dropped after {at:?}, handshake timeout {SHORT:?}"
    );
    let out = server.outcome();
    assert!(!out.accepted, "{out:?}");
    let error = out.handshake.as_ref().expect("a handshake error");
    assert!(error.timed_out, "not a timeout: {out:?}");
}

per_runtime!(slowloris_handshake => slowloris_handshake_tokio, slowloris_handshake_smol,
    slowloris_handshake_async_std, slowloris_handshake_std, slowloris_handshake_compio);

// ----- 2. Stall mid-frame with keepalive -----

/// Half a frame, then silence: the server pings, gets no pong, sends Close
/// 1011 and ends the connection (reporting 1006 locally).
fn stall_mid_frame(adapter: Adapter) {
    let mut opts = opts();
    opts.config = opts.config.with_keepalive(
        Some(Duration::from_millis(200)),
        Some(Duration::from_millis(300)),
    );
    let server = adapter.serve(opts, recv());
    let mut stream = raw_client(server.addr, None, false);
    let start = Instant::now();
    let whole = client_frame(0x2, &[7; 10]);
    stream.write_all(&whole[..whole.len() - 5]).expect("half");
    let t = transcript(&mut stream, start);
    eprintln!("{adapter:?}: raw peer read {t:?}");
    assert!(t.pings >= 1, "no keepalive ping: {t:?}");
    assert!(t.end.is_gone(), "the connection stayed open: {t:?}");
    assert!(t.close.is_none_or(|code| code == 1011), "close code: {t:?}");
    // ping after 200 ms, gives up 300 ms later.
    assert!(
        t.end_at <= Duration::from_millis(500) + SLACK,
        "ended after {:?}: {t:?}",
        t.end_at
    );
    let out = server.outcome();
    assert!(out.accepted, "{out:?}");
    assert!(out.abnormal(), "expected a 1006 close: {out:?}");
    assert!(out.messages.is_empty(), "{out:?}");
}

per_runtime!(stall_mid_frame => stall_mid_frame_tokio, stall_mid_frame_smol,
    stall_mid_frame_async_std, stall_mid_frame_std, stall_mid_frame_compio);

// ----- 3. Ping flood -----

const FLOOD: usize = 5000;

/// 5,000 pings of 125 bytes from a client that does not read (with a small
/// receive buffer): the server keeps receiving (it sees a text message sent
/// after the flood while the client still reads nothing), and the client
/// later reads far fewer pongs than it sent pings.
fn ping_flood(adapter: Adapter) {
    let (notify, seen) = mpsc::channel();
    let mut opts = opts();
    // Small kernel buffers on both sides, so the pongs cannot all hide there.
    opts.send_buffer = Some(4096);
    let server = adapter.serve(opts, Mode::Recv(Some(notify)));
    let mut stream = raw_client(server.addr, Some(4096), false);
    let ping = client_frame(0x9, &[0xa5; 125]);
    let batch: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 100)
        .collect();
    for i in 0..FLOOD / 100 {
        if let Err(e) = stream.write_all(&batch) {
            panic!(
                "the raw client could not write ping batch {i} ({e}): the server stopped reading"
            );
        }
    }
    stream
        .write_all(&client_frame(0x1, b"after-flood"))
        .expect("write text");
    match seen.recv_timeout(Duration::from_secs(10)) {
        Ok(message) => assert_eq!(message.as_bytes(), b"after-flood"),
        Err(e) => panic!("the server did not receive the message after the flood: {e}"),
    }
    stream
        .write_all(&client_frame(0x8, &close_payload(1000)))
        .expect("write close");
    let t = transcript(&mut stream, Instant::now());
    let out = server.outcome();
    eprintln!(
        "{adapter:?}: {FLOOD} pings sent, {} pongs read, server saw {} pings",
        t.pongs, out.pings
    );
    assert_eq!(t.close, Some(1000), "close echo: {t:?}");
    assert!(t.end.is_gone(), "{t:?}");
    assert!(t.pongs < FLOOD, "{} pongs for {FLOOD} pings", t.pongs);
    assert_eq!(out.pings, FLOOD, "{out:?}");
    assert_eq!(out.texts(), ["after-flood"], "{out:?}");
    assert!(out.error.is_none(), "{out:?}");
    assert_eq!(out.close, Some(1000), "{out:?}");
}

per_runtime!(ping_flood => ping_flood_tokio, ping_flood_smol, ping_flood_async_std, ping_flood_std,
    ping_flood_compio);

/// What the raw peer reads after sending too much: Close 1009 within
/// [`SLACK`], then the end of the stream; and the server's protocol error.
fn expect_1009_at_once(adapter: Adapter, stream: &mut TcpStream, start: Instant, server: Server) {
    let t = transcript(stream, start);
    eprintln!("{adapter:?}: raw peer read {t:?}");
    assert_eq!(t.close, Some(1009), "{t:?}");
    assert!(t.close_at.is_some_and(|at| at < SLACK), "{t:?}");
    assert!(t.end.is_gone(), "{t:?}");
    let out = server.outcome();
    let error = out.error.as_ref().expect("a protocol error");
    assert_eq!(error.protocol, Some(1009), "{out:?}");
}

// ----- 4. A 2^63-1 length -----

/// A header announcing 2^63-1 payload bytes: Close 1009 at once, and
/// `Error::Protocol` on the server.
fn huge_length(adapter: Adapter) {
    let server = adapter.serve(opts(), recv());
    let mut stream = raw_client(server.addr, None, false);
    let mut header = vec![0x82, 0xff];
    header.extend_from_slice(&0x7fff_ffff_ffff_ffff_u64.to_be_bytes());
    header.extend_from_slice(&MASK);
    let start = Instant::now();
    stream.write_all(&header).expect("header");
    expect_1009_at_once(adapter, &mut stream, start, server);
}

per_runtime!(huge_length => huge_length_tokio, huge_length_smol, huge_length_async_std,
    huge_length_std, huge_length_compio);

// ----- 4b. A deflate bomb -----

/// 16 MiB of zeros as one permessage-deflate message (about 16 KiB on the
/// wire, written by our own sans-IO client) against a 64 KiB message limit:
/// Close 1009 as soon as the inflated bytes pass the limit, and
/// `Error::Protocol` on the server. The core's tests check that no more
/// than the limit is ever inflated.
fn deflate_bomb(adapter: Adapter) {
    let mut opts = opts();
    opts.config = opts.config.with_max_message_size(64 << 10);
    let server = adapter.serve(opts, recv());
    let mut stream = raw_socket(server.addr, None, false);
    let request = ClientRequest::new(&format!("ws://{}/bomb", server.addr)).expect("request");
    // Level 9: the densest bomb (the default level 1 sends ~10x the bytes).
    let config = HandshakeConfig::default().with_deflate(DeflateConfig::default().with_level(9));
    let mut handshake = ClientHandshake::new(&request)
        .expect("handshake")
        .with_config(config);
    stream
        .write_all(handshake.request())
        .expect("write request");
    let head = read_head(&mut stream).expect("read response");
    let response = handshake
        .receive(&mut BytesMut::from(head.as_bytes()))
        .expect("valid response")
        .expect("complete response");
    let mut conn = response.connection(Config::default());
    assert!(conn.deflate().is_some(), "deflate not negotiated: {head}");
    conn.send(Message::binary(vec![0u8; 16 << 20]))
        .expect("queue");
    let out = conn.outgoing();
    let wire = out.copy_to_bytes(out.remaining());
    assert!(wire.len() < 64 << 10, "{} bytes on the wire", wire.len());
    let start = Instant::now();
    stream.write_all(&wire).expect("bomb");
    expect_1009_at_once(adapter, &mut stream, start, server);
}

per_runtime!(deflate_bomb => deflate_bomb_tokio, deflate_bomb_smol, deflate_bomb_async_std,
    deflate_bomb_std, deflate_bomb_compio);

// ----- 5. A million 1-byte fragments -----

const FRAGMENTS: usize = 1_000_000;

/// A text message in [`FRAGMENTS`] masked 1-byte frames, written in large
/// batches by a thread while the caller reads.
fn send_fragments(mut stream: TcpStream, then_close: bool) -> thread::JoinHandle<io::Result<()>> {
    thread::spawn(move || {
        const BATCH: usize = 16 * 1024;
        let mut buf = Vec::with_capacity(BATCH * 7);
        for i in 0..FRAGMENTS {
            let opcode = if i == 0 { 0x1 } else { 0x0 };
            let fin = i == FRAGMENTS - 1;
            buf.extend_from_slice(&[
                (u8::from(fin) << 7) | opcode,
                0x81,
                MASK[0],
                MASK[1],
                MASK[2],
                MASK[3],
                b'a' ^ MASK[0],
            ]);
            if buf.len() >= BATCH * 7 || fin {
                stream.write_all(&buf)?;
                buf.clear();
            }
        }
        if then_close {
            stream.write_all(&client_frame(0x8, &close_payload(1000)))?;
        }
        Ok(())
    })
}

/// Over `max_message_size` (64 KiB): Close 1009 and `Error::Protocol`.
fn fragments_over_limit(adapter: Adapter) {
    let mut opts = opts();
    opts.config = opts.config.with_max_message_size(64 << 10);
    let server = adapter.serve(opts, recv());
    let mut stream = raw_client(server.addr, None, false);
    let writer = send_fragments(stream.try_clone().expect("clone"), false);
    let t = transcript(&mut stream, Instant::now());
    // The writer fails once the server is gone; either way it ends.
    let _ = writer.join().expect("writer");
    assert_eq!(t.close, Some(1009), "{t:?}");
    assert!(t.end.is_gone(), "{t:?}");
    let out = server.outcome();
    let error = out.error.as_ref().expect("a protocol error");
    assert_eq!(error.protocol, Some(1009), "{out:?}");
    assert!(out.messages.is_empty(), "{out:?}");
}

per_runtime!(fragments_over_limit => fragments_over_limit_tokio, fragments_over_limit_smol,
    fragments_over_limit_async_std, fragments_over_limit_std, fragments_over_limit_compio);

/// Under `max_message_size` (2 MiB): the whole message arrives intact.
fn fragments_within_limit(adapter: Adapter) {
    let mut opts = opts();
    opts.config = opts.config.with_max_message_size(2 << 20);
    let server = adapter.serve(opts, recv());
    let mut stream = raw_client(server.addr, None, false);
    let writer = send_fragments(stream.try_clone().expect("clone"), true);
    let t = transcript(&mut stream, Instant::now());
    writer.join().expect("writer").expect("write fragments");
    assert_eq!(t.close, Some(1000), "{t:?}");
    let out = server.outcome();
    assert!(out.error.is_none(), "{out:?}");
    assert_eq!(out.messages.len(), 1, "messages: {}", out.messages.len());
    let message = &out.messages[0];
    assert!(message.is_text());
    assert_eq!(message.len(), FRAGMENTS);
    assert!(
        message.as_bytes().iter().all(|&b| b == b'a'),
        "corrupt message"
    );
    assert_eq!(out.close, Some(1000), "{out:?}");
}

per_runtime!(fragments_within_limit => fragments_within_limit_tokio, fragments_within_limit_smol,
    fragments_within_limit_async_std, fragments_within_limit_std, fragments_within_limit_compio);

// ----- 6. Abrupt ends -----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// Half the request, then gone.
    Handshake,
    /// One byte of a frame header.
    Header,
    /// Half of a 100-byte payload.
    Payload,
    /// A Close frame, without waiting for the echo.
    AfterClose,
}

/// The raw client goes away at `cut` (with a RST when `reset`): the server
/// ends with an error or a 1006 close (a clean one after a Close), promptly,
/// without panicking.
fn abrupt(adapter: Adapter, cut: Cut, reset: bool) {
    let server = adapter.serve(opts(), recv());
    if cut == Cut::Handshake {
        let mut stream = raw_socket(server.addr, None, reset);
        stream.write_all(&REQUEST[..40]).expect("half request");
        thread::sleep(Duration::from_millis(20));
        drop(stream);
    } else {
        let mut stream = raw_client(server.addr, None, reset);
        let bytes = match cut {
            Cut::Header => vec![0x82],
            Cut::Payload => {
                let whole = client_frame(0x2, &[9; 100]);
                whole[..whole.len() - 50].to_vec()
            }
            _ => client_frame(0x8, &close_payload(1000)),
        };
        stream.write_all(&bytes).expect("write");
        thread::sleep(Duration::from_millis(20));
        drop(stream);
    }
    let out = server.outcome();
    eprintln!("{adapter:?} {cut:?} reset={reset}: {out:?}");
    // The server noticed at once, well before any timer of 500 ms.
    assert!(
        out.elapsed < SHORT + SLACK,
        "took {:?}: {out:?}",
        out.elapsed
    );
    if cut == Cut::Handshake {
        assert!(!out.accepted, "{out:?}");
        let error = out.handshake.as_ref().expect("a handshake error");
        assert!(!error.timed_out, "waited for the timeout: {out:?}");
        return;
    }
    assert!(out.accepted, "{out:?}");
    assert!(out.messages.is_empty(), "{out:?}");
    if cut == Cut::AfterClose {
        assert!(
            out.close == Some(1000) || out.abnormal() || out.error.is_some(),
            "{out:?}"
        );
    } else {
        assert!(out.error.is_some() || out.abnormal(), "{out:?}");
        assert_ne!(out.close, Some(1000), "{out:?}");
    }
}

per_runtime!(|a| abrupt(a, Cut::Handshake, false) => abrupt_mid_handshake_tokio,
    abrupt_mid_handshake_smol, abrupt_mid_handshake_async_std, abrupt_mid_handshake_std,
    abrupt_mid_handshake_compio);
per_runtime!(|a| abrupt(a, Cut::Header, false) => abrupt_mid_header_tokio, abrupt_mid_header_smol,
    abrupt_mid_header_async_std, abrupt_mid_header_std, abrupt_mid_header_compio);
per_runtime!(|a| abrupt(a, Cut::Payload, false) => abrupt_mid_payload_tokio,
    abrupt_mid_payload_smol, abrupt_mid_payload_async_std, abrupt_mid_payload_std,
    abrupt_mid_payload_compio);
per_runtime!(|a| abrupt(a, Cut::AfterClose, false) => abrupt_after_close_tokio,
    abrupt_after_close_smol, abrupt_after_close_async_std, abrupt_after_close_std,
    abrupt_after_close_compio);
per_runtime!(|a| abrupt(a, Cut::Handshake, true) => reset_mid_handshake_tokio,
    reset_mid_handshake_smol, reset_mid_handshake_async_std, reset_mid_handshake_std,
    reset_mid_handshake_compio);
per_runtime!(|a| abrupt(a, Cut::Header, true) => reset_mid_header_tokio, reset_mid_header_smol,
    reset_mid_header_async_std, reset_mid_header_std, reset_mid_header_compio);
per_runtime!(|a| abrupt(a, Cut::Payload, true) => reset_mid_payload_tokio, reset_mid_payload_smol,
    reset_mid_payload_async_std, reset_mid_payload_std, reset_mid_payload_compio);
per_runtime!(|a| abrupt(a, Cut::AfterClose, true) => reset_after_close_tokio,
    reset_after_close_smol, reset_after_close_async_std, reset_after_close_std,
    reset_after_close_compio);

// ----- 7. No data loss on a graceful close -----

const MESSAGES: usize = 1000;

/// One side sends [`MESSAGES`] messages then closes at once; the other
/// receives all of them in order, then the Close.
fn graceful_close(adapter: Adapter, server_closes: bool) {
    graceful_close_pair(adapter, adapter, server_closes);
}

/// [`graceful_close`] with `server` serving and `client` connecting.
fn graceful_close_pair(server: Adapter, client: Adapter, server_closes: bool) {
    let mut opts = opts();
    // A loaded machine must not turn a slow reader into a close timeout.
    opts.config = opts.config.with_close_timeout(Some(Duration::from_secs(5)));
    let (server_mode, client_mode) = if server_closes {
        (Mode::SendClose(MESSAGES), recv())
    } else {
        (recv(), Mode::SendClose(MESSAGES))
    };
    let server = server.serve(opts.clone(), server_mode);
    let client = client.client(&server.url(), opts, client_mode);
    let server = server.outcome();
    let (sender, receiver) = if server_closes {
        (&server, &client)
    } else {
        (&client, &server)
    };
    let expected: Vec<String> = (0..MESSAGES).map(|i| i.to_string()).collect();
    assert!(receiver.error.is_none(), "receiver: {receiver:?}");
    assert_eq!(receiver.messages.len(), MESSAGES, "receiver lost messages");
    assert_eq!(receiver.texts(), expected, "order");
    assert_eq!(receiver.close_event, Some(1000), "receiver: {receiver:?}");
    assert_eq!(receiver.close, Some(1000), "receiver: {receiver:?}");
    assert!(sender.error.is_none(), "sender: {sender:?}");
    assert_eq!(sender.close, Some(1000), "sender: {sender:?}");
}

per_runtime!(|a| graceful_close(a, false) => graceful_close_by_client_tokio,
    graceful_close_by_client_smol, graceful_close_by_client_async_std, graceful_close_by_client_std,
    graceful_close_by_client_compio);
per_runtime!(|a| graceful_close(a, true) => graceful_close_by_server_tokio,
    graceful_close_by_server_smol, graceful_close_by_server_async_std, graceful_close_by_server_std,
    graceful_close_by_server_compio);

/// [`graceful_close`] between this runtime's server and each other
/// runtime's client, in both directions.
fn graceful_close_cross(server: Adapter) {
    let all = [
        Adapter::Tokio,
        Adapter::Smol,
        Adapter::AsyncStd,
        Adapter::Std,
        Adapter::Compio,
    ];
    for client in all.into_iter().filter(|&c| c != server) {
        for server_closes in [false, true] {
            eprintln!("{server:?} server, {client:?} client, server closes: {server_closes}");
            graceful_close_pair(server, client, server_closes);
        }
    }
}

per_runtime!(graceful_close_cross => graceful_close_cross_server_tokio,
    graceful_close_cross_server_smol, graceful_close_cross_server_async_std,
    graceful_close_cross_server_std, graceful_close_cross_server_compio);

// ----- 8. Hostile servers against each client -----

/// A raw server for one connection: reads the request, then runs `act`.
fn raw_server<T: Send + 'static>(
    act: impl FnOnce(TcpStream, Vec<u8>) -> T + Send + 'static,
) -> (String, thread::JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/hostile", listener.local_addr().expect("addr"));
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        stream.set_write_timeout(Some(WAIT)).expect("write timeout");
        let mut handshake = ServerHandshake::new();
        let mut buf = BytesMut::new();
        let request = loop {
            if let Some(request) = handshake.receive(&mut buf).expect("a valid request") {
                break request;
            }
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).expect("read request");
            assert!(n > 0, "the client left during its request");
            buf.extend_from_slice(&chunk[..n]);
        };
        let response = request.accept(&AcceptOptions::new()).expect("response");
        act(stream, response.into_response())
    });
    (url, handle)
}

/// The server sends a masked frame: the client fails with
/// `Error::Protocol` and sends Close 1002.
fn client_rejects_masked_frame(adapter: Adapter) {
    let (url, raw) = raw_server(|mut stream, response| {
        stream.write_all(&response).expect("101");
        stream
            .write_all(&client_frame(0x1, b"masked!"))
            .expect("frame");
        transcript(&mut stream, Instant::now())
    });
    let out = adapter.client(&url, opts(), recv());
    let t = raw.join().expect("raw server");
    assert!(out.accepted, "{out:?}");
    let error = out.error.as_ref().expect("a protocol error");
    assert_eq!(error.protocol, Some(1002), "{out:?}");
    assert!(out.messages.is_empty(), "{out:?}");
    assert_eq!(t.close, Some(1002), "{t:?}");
    assert!(t.end.is_gone(), "{t:?}");
}

per_runtime!(client_rejects_masked_frame => client_rejects_masked_frame_tokio,
    client_rejects_masked_frame_smol, client_rejects_masked_frame_async_std,
    client_rejects_masked_frame_std, client_rejects_masked_frame_compio);

/// The server sends half of its 101 response and stalls: the client's
/// handshake times out.
fn client_half_response(adapter: Adapter) {
    let (url, raw) = raw_server(|mut stream, response| {
        stream
            .write_all(&response[..response.len() / 2])
            .expect("half 101");
        drain(&mut stream, Instant::now())
    });
    let out = adapter.client(&url, opts(), recv());
    let (end, _) = raw.join().expect("raw server");
    assert!(!out.accepted, "{out:?}");
    let error = out.handshake.as_ref().expect("a handshake error");
    assert!(error.timed_out, "not a timeout: {out:?}");
    assert!(
        out.elapsed >= SHORT - Duration::from_millis(100) && out.elapsed <= SHORT + SLACK,
        "gave up after {:?}",
        out.elapsed
    );
    assert!(end.is_gone(), "the client kept the connection: {end:?}");
}

per_runtime!(client_half_response => client_half_response_tokio, client_half_response_smol,
    client_half_response_async_std, client_half_response_std, client_half_response_compio);
