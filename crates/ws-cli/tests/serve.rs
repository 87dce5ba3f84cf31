//! `wsx serve` as a real process: the page, the chat rooms, the echo, slow
//! members, shutdown on SIGINT, TLS, and the Redis scale-out.
//!
//! Every wait is bounded; every child process is killed by its own handle
//! when its guard drops. The Redis test needs `redis-server` on `PATH` and
//! fails (it does not skip) without it.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use ws_tokio::rustls::{self, ClientConfig, RootCertStore};
use ws_tokio::{
    ClientRequest, CloseCode, DeflateConfig, MaybeTlsStream, Message, Options, WebSocket,
};

/// Bounds each single wait (a message, a log line, a process exit).
const WAIT: Duration = Duration::from_secs(15);

type Ws = WebSocket<MaybeTlsStream>;

/// A `wsx serve` child process, killed on drop.
struct Server {
    child: Child,
    /// The bound address, from the `listening on` line.
    addr: SocketAddr,
    /// Everything the process logged to stderr so far.
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsx"))
            .arg("serve")
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start wsx");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            lines.for_each(drop);
        });
        let mut server = Self {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
        };
        let first = rx.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!(
                "wsx serve printed no `listening on` line; its log:\n{}",
                server.log()
            )
        });
        let addr = first
            .strip_prefix("listening on http://")
            .or_else(|| first.strip_prefix("listening on https://"))
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        server.addr = addr.parse().unwrap();
        server
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `needle` occurs `times` times in the log.
    fn wait_log(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + WAIT;
        while self.log().matches(needle).count() < times {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not logged {times} time(s) by {}; log:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A plain HTTP/1.1 GET over `stream`; the status line and the whole answer.
async fn get<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("HTTP answer timed out")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    (status, answer)
}

async fn connect(url: &str) -> (Ws, ws_tokio::ClientResponse) {
    tokio::time::timeout(WAIT, ws_tokio::connect(url))
        .await
        .expect("connect timed out")
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

/// The next text message.
async fn recv_text(ws: &mut Ws) -> String {
    match tokio::time::timeout(WAIT, ws.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => text.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Receives until `line` arrives (other lines are skipped).
async fn expect_line(ws: &mut Ws, line: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.recv()).await {
            Ok(Some(Ok(Message::Text(text)))) if text.as_str() == line => return,
            Ok(Some(Ok(_))) => {}
            other => panic!("waiting for {line:?}, got {other:?}"),
        }
    }
}

/// Receives until the connection ends; the close code and reason.
async fn recv_close(ws: &mut Ws) -> Option<(CloseCode, String)> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.recv()).await {
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => break,
            Err(_) => panic!("the connection did not end"),
        }
    }
    ws.close_frame().map(|c| (c.code, c.reason.to_string()))
}

#[tokio::test]
async fn serves_the_page_and_404s() {
    let server = Server::start(&["127.0.0.1:0"]);
    let (status, page) = get(TcpStream::connect(server.addr).await.unwrap(), "/").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.to_ascii_lowercase()
            .contains("content-type: text/html")
    );
    for id in [
        "id=\"log\"",
        "id=\"status\"",
        "id=\"compose\"",
        "id=\"join\"",
    ] {
        assert!(page.contains(id), "the page lacks {id}");
    }
    let (status, _) = get(TcpStream::connect(server.addr).await.unwrap(), "/nope").await;
    assert_eq!(status, 404);
    let (status, _) = get(
        TcpStream::connect(server.addr).await.unwrap(),
        "/favicon.ico",
    )
    .await;
    assert!(status == 204 || status == 404);

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 405"));
}

#[tokio::test]
async fn chat_rooms_and_echo() {
    let server = Server::start(&["127.0.0.1:0"]);
    let (mut ada, response) = connect(&server.url("/chat?room=a&nick=ada")).await;
    assert!(
        response.deflate.is_some(),
        "permessage-deflate not negotiated"
    );
    assert_eq!(recv_text(&mut ada).await, "* ada joined");
    let (mut bob, _) = connect(&server.url("/chat?room=a&nick=b%C3%B6b")).await;
    assert_eq!(recv_text(&mut bob).await, "* böb joined");
    assert_eq!(recv_text(&mut ada).await, "* böb joined");
    let (mut cyd, _) = connect(&server.url("/chat?room=b&nick=cyd")).await;
    assert_eq!(recv_text(&mut cyd).await, "* cyd joined");

    ada.send(Message::text("hello, room a")).await.unwrap();
    assert_eq!(recv_text(&mut ada).await, "ada: hello, room a");
    assert_eq!(recv_text(&mut bob).await, "ada: hello, room a");
    // cyd, in room b, sees only room b.
    cyd.send(Message::text("anyone?")).await.unwrap();
    assert_eq!(recv_text(&mut cyd).await, "cyd: anyone?");
    bob.close(CloseCode::NORMAL, "bye").await.unwrap();
    assert_eq!(recv_text(&mut ada).await, "* böb left");

    // Bad names are refused with 400 and a reason.
    for query in ["nick=%20", "room=", &format!("nick={}", "x".repeat(33))] {
        let refused = ws_tokio::connect(&server.url(&format!("/chat?{query}"))).await;
        let error = refused.expect_err("accepted a bad name").to_string();
        assert!(error.contains("400"), "{query}: {error}");
    }
    // A guest nick when none is given.
    let (mut guest, _) = connect(&server.url("/chat?room=g")).await;
    let joined = recv_text(&mut guest).await;
    assert!(
        joined.starts_with("* guest-") && joined.ends_with(" joined"),
        "{joined}"
    );

    let (mut echo, response) = connect(&server.url("/echo")).await;
    assert!(response.deflate.is_some());
    echo.send(Message::text("text stays text")).await.unwrap();
    assert_eq!(recv_text(&mut echo).await, "text stays text");
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    echo.send(Message::binary(blob.clone())).await.unwrap();
    match tokio::time::timeout(WAIT, echo.recv()).await {
        Ok(Some(Ok(Message::Binary(data)))) => assert_eq!(data, blob),
        other => panic!("expected the binary echo, got {other:?}"),
    }
    echo.close(CloseCode::NORMAL, "").await.unwrap();
    let (status, _) = get(TcpStream::connect(server.addr).await.unwrap(), "/chat").await;
    assert_eq!(status, 404, "/chat without an upgrade is no page");
    server.wait_log("chat: connected", 4);
}

/// Text no compressor shrinks much: a slow member's queue fills for real.
fn noise(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 94) as u8)
        })
        .collect()
}

/// Receives `expected` lines (other lines are skipped), counting them in
/// `progress` and waking `moved` after each.
async fn hear_all(
    mut ws: ws_tokio::ReadHalf<MaybeTlsStream>,
    who: &'static str,
    expected: Arc<Vec<String>>,
    progress: Arc<AtomicUsize>,
    moved: Arc<Notify>,
) -> ws_tokio::ReadHalf<MaybeTlsStream> {
    let mut next = 0;
    while next < expected.len() {
        match tokio::time::timeout(WAIT, ws.recv()).await {
            Ok(Some(Ok(Message::Text(text)))) if text.starts_with("flood: ") => {
                assert_eq!(text.as_str(), expected[next], "{who}: line {next}");
                next += 1;
                progress.store(next, SeqCst);
                moved.notify_waiters();
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("{who}, after {next} lines: {other:?}"),
        }
    }
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_member_is_closed_and_does_not_stall_the_room() {
    const LINES: usize = 2000;
    /// Lines the flooder sends ahead of the slower of the two readers: 32 KiB,
    /// so that a member that keeps up never has 64 KiB queued.
    const WINDOW: usize = 8;
    let server = Server::start(&["127.0.0.1:0", "--outbox", "65536"]);
    let url = server.url("/chat?room=busy&nick=");

    // The slow member: a tiny receive buffer, no compression, never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.addr).await.unwrap();
    let mut plain = Options::default();
    plain.handshake.deflate = DeflateConfig::OFF;
    let request = ClientRequest::new(&format!("{url}slow")).unwrap();
    let (mut slow, _) = ws_tokio::client(MaybeTlsStream::Plain(tcp), request, &plain)
        .await
        .unwrap();

    let (mut normal, _) = connect(&format!("{url}normal")).await;
    expect_line(&mut normal, "* normal joined").await;
    let (flooder, _) = connect(&format!("{url}flood")).await;
    let (flood_rx, mut flood_tx) = flooder.split();
    let (normal_rx, _normal_tx) = normal.split();
    let lines: Vec<String> = (0..LINES)
        .map(|i| format!("{i} {}", noise(i as u64, 4096)))
        .collect();

    // The flooder and the normal member receive every line, in order.
    let expected = Arc::new(
        lines
            .iter()
            .map(|l| format!("flood: {l}"))
            .collect::<Vec<_>>(),
    );
    let moved = Arc::new(Notify::new());
    let counts = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let flooder_hears = tokio::spawn(hear_all(
        flood_rx,
        "flooder",
        Arc::clone(&expected),
        Arc::clone(&counts[0]),
        Arc::clone(&moved),
    ));
    let normal_hears = tokio::spawn(hear_all(
        normal_rx,
        "normal member",
        expected,
        Arc::clone(&counts[1]),
        Arc::clone(&moved),
    ));
    for (sent, line) in lines.into_iter().enumerate() {
        // Paced by the readers (in this process, debug builds), not by the
        // slow member: the room goes on without it.
        loop {
            let notified = moved.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let slowest = counts.iter().map(|c| c.load(SeqCst)).min().unwrap();
            if sent - slowest.min(sent) < WINDOW {
                break;
            }
            if tokio::time::timeout(WAIT, notified).await.is_err() {
                panic!("the readers stopped at {slowest}; log:\n{}", server.log());
            }
        }
        let sent = tokio::time::timeout(WAIT, flood_tx.send(Message::text(line))).await;
        if !matches!(sent, Ok(Ok(()))) {
            panic!(
                "the flooder could not send: {sent:?}; log:\n{}",
                server.log()
            );
        }
    }
    let heard = async { Ok((flooder_hears.await?, normal_hears.await?)) };
    let _readers = heard
        .await
        .unwrap_or_else(|e: tokio::task::JoinError| panic!("{e}; log:\n{}", server.log()));
    server.wait_log("too slow: outbox full", 1);
    assert_eq!(server.log().matches("too slow: outbox full").count(), 1);

    // The slow member finally reads: what fitted, then the 1013 Close (or,
    // had the close timeout passed, the end of the connection).
    match recv_close(&mut slow).await {
        Some((code, reason)) if code == CloseCode::TRY_AGAIN_LATER => {
            assert_eq!(reason, "too slow: outbox full");
        }
        Some((code, _)) => assert_eq!(code, CloseCode::ABNORMAL, "unexpected close"),
        None => {}
    }
}

#[tokio::test]
async fn sigint_closes_clients_with_1001_and_exits_0() {
    let mut server = Server::start(&["127.0.0.1:0"]);
    let (mut chat, _) = connect(&server.url("/chat?room=z&nick=zed")).await;
    assert_eq!(recv_text(&mut chat).await, "* zed joined");
    let (mut echo, _) = connect(&server.url("/echo")).await;
    echo.send(Message::text("up?")).await.unwrap();
    assert_eq!(recv_text(&mut echo).await, "up?");

    let killed = Command::new("kill")
        .args(["-INT", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for ws in [&mut chat, &mut echo] {
        let close = recv_close(ws).await;
        assert_eq!(
            close,
            Some((CloseCode::GOING_AWAY, "server shutting down".to_owned()))
        );
    }
    let status = server.wait_exit();
    assert!(status.success(), "wsx exited with {status}");
}

#[test]
fn clear_errors_for_a_busy_port_and_a_bad_certificate() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, stderr) = run_to_end(&["serve", &addr]);
    assert!(!status.success());
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert_eq!(
        stderr.trim().lines().last().map(|l| l.starts_with("wsx:")),
        Some(true)
    );

    let missing = "/nonexistent/wsx-cert.pem";
    let (status, stderr) = run_to_end(&[
        "serve",
        "127.0.0.1:0",
        "--tls-cert",
        missing,
        "--tls-key",
        missing,
    ]);
    assert!(!status.success());
    assert!(stderr.contains("cannot read TLS certificate"), "{stderr}");
}

/// Runs `wsx` to completion (bounded); its status and stderr.
fn run_to_end(args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsx"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr)
}

/// A self-signed certificate for `localhost` in a fresh directory: the
/// client configuration trusting it, and the PEM files.
fn self_signed(dir: &Path) -> (Arc<ClientConfig>, PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let (cert_pem, key_pem) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (Arc::new(config), cert_pem, key_pem)
}

#[tokio::test]
async fn tls_serves_https_and_wss() {
    let dir = std::env::temp_dir().join(format!("wsx-serve-tls-{}", std::process::id()));
    let (config, cert, key) = self_signed(&dir);
    let server = Server::start(&[
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let port = server.addr.port();

    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = ws_tokio::tokio_rustls::TlsConnector::from(Arc::clone(&config))
        .connect(name, tcp)
        .await
        .unwrap();
    let (status, page) = get(tls, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"log\""));

    let request = ClientRequest::new(&format!("wss://localhost:{port}/echo")).unwrap();
    let options = Options::default();
    let connecting = ws_tokio::connect_with_tls(request, &options, config);
    let (mut ws, response) = tokio::time::timeout(WAIT, connecting)
        .await
        .unwrap()
        .unwrap();
    assert!(response.deflate.is_some());
    ws.send(Message::text("over TLS")).await.unwrap();
    assert_eq!(recv_text(&mut ws).await, "over TLS");
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// A `redis-server` child on a fixed port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("this test needs `redis-server` on PATH (apt-get install redis-server): {e}")
            });
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `text` from `from` until `to` receives `line` (the subscription
/// may still be settling).
async fn send_until_heard(from: &mut Ws, to: &mut Ws, text: &str, line: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        from.send(Message::text(text)).await.unwrap();
        let heard = tokio::time::timeout(Duration::from_millis(300), async {
            loop {
                match to.recv().await {
                    Some(Ok(Message::Text(t))) if t.as_str() == line => return,
                    Some(Ok(_)) => {}
                    other => panic!("waiting for {line:?}: {other:?}"),
                }
            }
        })
        .await;
        if heard.is_ok() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{line:?} never crossed over"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_shares_rooms_between_nodes_and_survives_a_restart() {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let redis = Redis::start(port);
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let one = Server::start(&["127.0.0.1:0", "--redis", &url]);
    let two = Server::start(&["127.0.0.1:0", "--redis", &url]);
    one.wait_log("redis: connected", 1);
    two.wait_log("redis: connected", 1);

    let (mut ada, _) = connect(&one.url("/chat?room=r&nick=ada")).await;
    let (mut bob, _) = connect(&two.url("/chat?room=r&nick=bob")).await;
    send_until_heard(&mut ada, &mut bob, "hi bob", "ada: hi bob").await;
    send_until_heard(&mut bob, &mut ada, "hi ada", "bob: hi ada").await;

    // Redis goes away: each node keeps serving its own rooms.
    drop(redis);
    one.wait_log("redis: connection lost", 1);
    two.wait_log("redis: connection lost", 1);
    let (mut cyd, _) = connect(&one.url("/chat?room=r&nick=cyd")).await;
    expect_line(&mut ada, "* cyd joined").await;
    ada.send(Message::text("still here")).await.unwrap();
    expect_line(&mut cyd, "ada: still here").await;
    bob.send(Message::text("me too")).await.unwrap();
    expect_line(&mut bob, "bob: me too").await;

    // Redis is back: the nodes reconnect and the room spans both again.
    let _redis = Redis::start(port);
    one.wait_log("redis: connected", 2);
    two.wait_log("redis: connected", 2);
    send_until_heard(&mut ada, &mut bob, "again", "ada: again").await;
    send_until_heard(&mut bob, &mut cyd, "welcome back", "bob: welcome back").await;
}
