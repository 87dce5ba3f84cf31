//! `wsx connect` and `wsx bench` as real processes on 127.0.0.1, against
//! the Python `websockets` echo server of `interop/python/peer.py` and
//! against `wsx serve`.
//!
//! Every child is killed by its own PID when its guard drops, and every wait
//! is bounded. Without the Python peer (`bash interop/setup.sh` installs it)
//! its tests print a skip message and pass, unless `CI=true`, where they fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The bound on any one wait: a child's start, its run, its output.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Kills the child by its PID when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How a `wsx` run ended.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// What to do with the child's stdin once `input` is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stdin {
    /// Close it: `wsx connect` sees the end of its input.
    Close,
    /// Keep it open until the child exits (the server ends the session).
    KeepOpen,
}

fn wsx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wsx"))
}

/// Reads a pipe to the end on its own thread.
fn collect(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        let _ = tx.send(String::from_utf8_lossy(&out).into_owned());
    });
    rx
}

/// Runs `wsx ARGS` with `input` on its stdin, at most [`TIMEOUT`].
fn run_wsx(args: &[&str], input: &str, stdin: Stdin) -> Outcome {
    let mut child = ChildGuard(
        wsx()
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wsx"),
    );
    let stdout = collect(child.0.stdout.take().expect("piped"));
    let stderr = collect(child.0.stderr.take().expect("piped"));
    let mut pipe: Option<ChildStdin> = child.0.stdin.take();
    if let Some(pipe) = pipe.as_mut() {
        // A child that exits early closes its end: a failed write is fine.
        let _ = pipe.write_all(input.as_bytes()).and_then(|()| pipe.flush());
    }
    if stdin == Stdin::Close {
        drop(pipe.take());
    }
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child.0.try_wait().expect("wait for wsx") {
            Some(status) => break status,
            None if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            None => {
                drop(child);
                panic!("wsx {args:?} still running after {TIMEOUT:?}: killed");
            }
        }
    };
    drop(pipe);
    let read = |rx: mpsc::Receiver<String>| rx.recv_timeout(TIMEOUT).expect("wsx output");
    Outcome {
        code: status.code(),
        stdout: read(stdout),
        stderr: read(stderr),
    }
}

/// A started server and the `ws://` base URL it listens on (no path).
struct Server {
    _child: ChildGuard,
    base: String,
}

/// Starts `command` and waits for the line `parse` finds the address in;
/// the rest of stdout is drained so the server never blocks on the pipe.
fn start_server(mut command: Command, parse: fn(&str) -> Option<String>) -> Server {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = ChildGuard(command.spawn().expect("start the server"));
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = parse(&line)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(addr);
            }
        }
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(addr) => Server {
            _child: child,
            base: format!("ws://{addr}"),
        },
        Err(_) => {
            let status = child.0.try_wait();
            panic!("{command:?} printed no address within {TIMEOUT:?} (exit: {status:?})");
        }
    }
}

#[path = "../../ws-interop/shared/peers_location.rs"]
mod peers_location;

use peers_location::{interop_dir, python};

/// Whether Python `websockets` is there. If not: fails under `CI=true`,
/// otherwise prints why the test is skipped.
fn python_ready() -> bool {
    let installed = Command::new(python())
        .args(["-c", "import websockets"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    let installed = if installed {
        Ok(())
    } else {
        Err("`import websockets` failed".to_owned())
    };
    peers_location::require("Python websockets", installed)
}

/// The Python echo server (`peer.py server 0`); with `deflate` it requires
/// permessage-deflate (`PEER_DEFLATE=default`). `None`: skipped.
fn python_echo(deflate: bool) -> Option<Server> {
    python_echo_with(deflate, None)
}

/// [`python_echo`], serving `wss://` with `tls` (certificate and key PEM).
fn python_echo_with(deflate: bool, tls: Option<(PathBuf, PathBuf)>) -> Option<Server> {
    if !python_ready() {
        return None;
    }
    let dir = interop_dir().join("python");
    let mut command = Command::new(python());
    command
        .arg(dir.join("peer.py"))
        .args(["server", "0"])
        .current_dir(dir);
    if deflate {
        command.env("PEER_DEFLATE", "default");
    }
    if let Some((cert, key)) = tls {
        command.env("PEER_TLS_CERT", cert).env("PEER_TLS_KEY", key);
    }
    Some(start_server(command, |line| {
        let port = line.strip_prefix("PORT ")?.trim();
        Some(format!("127.0.0.1:{port}"))
    }))
}

/// A self-signed certificate for `localhost` and its key, as PEM files in
/// a directory of this test process.
fn self_signed() -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let dir = std::env::temp_dir().join(format!("wsx-connect-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert_pem, key_pem) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_pem, cert.pem()).expect("write cert");
    std::fs::write(&key_pem, key.serialize_pem()).expect("write key");
    (cert_pem, key_pem)
}

/// `wsx serve 127.0.0.1:0`, once it printed `listening on http://ADDR`.
fn wsx_serve() -> Server {
    let mut command = wsx();
    command
        .args(["serve", "127.0.0.1:0"])
        .env("RUST_LOG", "warn");
    start_server(command, |line| {
        let addr = line.trim().strip_prefix("listening on http://")?;
        Some(addr.trim_end_matches('/').to_owned())
    })
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[track_caller]
fn assert_exit(outcome: &Outcome, code: i32) {
    assert_eq!(outcome.code, Some(code), "{outcome:#?}");
}

/// Runs `wsx bench URL EXTRA.. --json` and returns the parsed report after
/// the checks every report passes.
#[track_caller]
fn bench_json(url: &str, extra: &[&str]) -> Value {
    let mut args = vec!["bench", url];
    args.extend_from_slice(extra);
    args.push("--json");
    let outcome = run_wsx(&args, "", Stdin::Close);
    assert_exit(&outcome, 0);
    let report: Value = serde_json::from_str(outcome.stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {outcome:#?}"));
    assert!(report["messages"].as_u64().unwrap() > 0, "{report}");
    assert!(report["messages_per_s"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["mb_per_s"].as_f64().unwrap() > 0.0, "{report}");
    let latency = &report["latency_us"];
    let [p50, p99, p999, max] = ["p50", "p99", "p99_9", "max"].map(|p| {
        latency[p]
            .as_u64()
            .unwrap_or_else(|| panic!("{p}: {report}"))
    });
    assert!(
        p50 > 0 && p50 <= p99 && p99 <= p999 && p999 <= max,
        "{report}"
    );
    report
}

// --- against Python websockets -----------------------------------------

#[test]
fn connect_text_round_trip() {
    let Some(server) = python_echo(false) else {
        return;
    };
    let outcome = run_wsx(
        &["connect", &format!("{}/", server.base)],
        "hello\nworld\n",
        Stdin::Close,
    );
    assert_exit(&outcome, 0);
    assert_eq!(outcome.stdout, "hello\nworld\n", "{outcome:#?}");
    assert!(outcome.stderr.contains("closed: 1000"), "{outcome:#?}");
}

#[test]
fn connect_binary_round_trip() {
    let Some(server) = python_echo(false) else {
        return;
    };
    let url = format!("{}/", server.base);
    let outcome = run_wsx(&["connect", "--binary", &url], "00 ff 10\n\n", Stdin::Close);
    assert_exit(&outcome, 0);
    // The empty line is an empty binary message: an empty line back.
    assert_eq!(outcome.stdout, "00ff10\n\n", "{outcome:#?}");
}

#[test]
fn connect_offers_subprotocols_and_deflate() {
    let Some(server) = python_echo(true) else {
        return;
    };
    let url = format!("{}/", server.base);
    let args = [
        "connect",
        "--subprotocol",
        "other",
        "--subprotocol",
        "chat",
        "-H",
        "X-Test: 1",
        &url,
    ];
    let outcome = run_wsx(&args, "hi\n", Stdin::Close);
    assert_exit(&outcome, 0);
    assert_eq!(outcome.stdout, "hi\n", "{outcome:#?}");
    assert!(outcome.stderr.contains("subprotocol: chat"), "{outcome:#?}");
    assert!(
        outcome.stderr.contains("permessage-deflate"),
        "{outcome:#?}"
    );
}

#[test]
fn connect_without_deflate_against_a_server_that_requires_it() {
    let Some(server) = python_echo(true) else {
        return;
    };
    let url = format!("{}/", server.base);
    // The peer closes a connection without deflate with 4002 "no deflate".
    let outcome = run_wsx(&["connect", "--no-deflate", &url], "", Stdin::KeepOpen);
    assert_exit(&outcome, 2);
    assert!(
        outcome.stderr.contains("closed: 4002 no deflate"),
        "{outcome:#?}"
    );
}

#[test]
fn connect_exits_2_when_the_server_closes_with_another_code() {
    let Some(server) = python_echo(false) else {
        return;
    };
    let url = format!("{}/", server.base);
    // Stdin stays open: wsx must end on the server's Close alone.
    let outcome = run_wsx(&["connect", &url], "close-me\n", Stdin::KeepOpen);
    assert_exit(&outcome, 2);
    assert!(outcome.stderr.contains("closed: 4001 bye"), "{outcome:#?}");
    assert_eq!(outcome.stdout, "", "{outcome:#?}");
}

#[test]
fn connect_refused() {
    let port = closed_port();
    let outcome = run_wsx(
        &["connect", &format!("ws://127.0.0.1:{port}/")],
        "",
        Stdin::Close,
    );
    assert_exit(&outcome, 1);
    assert!(outcome.stderr.contains("refused"), "{outcome:#?}");
    assert!(
        outcome.stderr.contains(&format!("127.0.0.1:{port}")),
        "{outcome:#?}"
    );
    assert_eq!(outcome.stderr.lines().count(), 1, "{outcome:#?}");
}

#[test]
fn connect_bad_url() {
    for url in [
        "http://127.0.0.1/",
        "ws://",
        "ws://host:99999/",
        "127.0.0.1:80",
    ] {
        let outcome = run_wsx(&["connect", url], "", Stdin::Close);
        assert_exit(&outcome, 1);
        assert!(outcome.stderr.contains("invalid URL"), "{outcome:#?}");
    }
}

#[test]
fn connect_bad_input() {
    let port = closed_port();
    let url = format!("ws://127.0.0.1:{port}/");
    let outcome = run_wsx(&["connect", "-H", "no colon", &url], "", Stdin::Close);
    assert_exit(&outcome, 1);
    assert!(outcome.stderr.contains("invalid header"), "{outcome:#?}");
    let Some(server) = python_echo(false) else {
        return;
    };
    let url = format!("{}/", server.base);
    let outcome = run_wsx(&["connect", "--binary", &url], "0g\n", Stdin::Close);
    assert_exit(&outcome, 1);
    assert!(outcome.stderr.contains("invalid hex"), "{outcome:#?}");
}

#[test]
fn connect_tls_errors() {
    // An untrusted certificate: the rustls reason is given.
    let Some(server) = python_echo_with(false, Some(self_signed())) else {
        return;
    };
    let port = server.base.rsplit(':').next().unwrap();
    let outcome = run_wsx(
        &["connect", &format!("wss://localhost:{port}/")],
        "",
        Stdin::Close,
    );
    assert_exit(&outcome, 1);
    assert!(outcome.stderr.contains("TLS error"), "{outcome:#?}");
    assert!(outcome.stderr.contains("UnknownIssuer"), "{outcome:#?}");
    // A server that does not speak TLS.
    let Some(plain) = python_echo(false) else {
        return;
    };
    let url = plain.base.replacen("ws://", "wss://", 1);
    let outcome = run_wsx(&["connect", &url], "", Stdin::Close);
    assert_exit(&outcome, 1);
    assert!(outcome.stderr.contains("TLS error"), "{outcome:#?}");
}

#[test]
fn bench_against_python() {
    let Some(server) = python_echo(false) else {
        return;
    };
    let url = format!("{}/", server.base);
    let args = [
        "--connections",
        "4",
        "--size",
        "64",
        "--inflight",
        "4",
        "--duration",
        "1",
    ];
    let report = bench_json(&url, &args);
    assert_eq!(report["connections"], 4, "{report}");
    assert_eq!(report["size"], 64, "{report}");
    assert_eq!(report["inflight"], 4, "{report}");
    assert_eq!(report["deflate"], false, "{report}");
    // Binary, with the human-readable report.
    let outcome = run_wsx(
        &[
            "bench",
            &url,
            "--binary",
            "--size",
            "1000",
            "--duration",
            "0.5",
        ],
        "",
        Stdin::Close,
    );
    assert_exit(&outcome, 0);
    for field in [
        "messages/s",
        "MB/s (payload bytes sent + received)",
        "p99.9",
    ] {
        assert!(outcome.stdout.contains(field), "{outcome:#?}");
    }
}

#[test]
fn bench_with_deflate_against_python() {
    let Some(server) = python_echo(true) else {
        return;
    };
    let url = format!("{}/", server.base);
    let report = bench_json(
        &url,
        &["--connections", "2", "--size", "300", "--duration", "0.5"],
    );
    assert_eq!(report["deflate"], true, "{report}");
}

#[test]
fn bench_connect_failure() {
    let port = closed_port();
    let url = format!("ws://127.0.0.1:{port}/");
    let outcome = run_wsx(&["bench", &url, "--duration", "0.2"], "", Stdin::Close);
    assert_exit(&outcome, 1);
    assert!(outcome.stderr.contains("refused"), "{outcome:#?}");
}

// --- against wsx serve ---------------------------------------------------

/// `wsx serve 127.0.0.1:0` over TLS with `cert` and `key`.
fn wsx_serve_tls(cert: &Path, key: &Path) -> Server {
    let mut command = wsx();
    command
        .args(["serve", "127.0.0.1:0", "--tls-cert"])
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .env("RUST_LOG", "warn");
    start_server(command, |line| {
        let addr = line.trim().strip_prefix("listening on https://")?;
        Some(addr.trim_end_matches('/').to_owned())
    })
}

#[test]
fn connect_and_bench_over_wss_with_a_private_ca() {
    let (cert, key) = self_signed();
    let server = wsx_serve_tls(&cert, &key);
    let port = server.base.rsplit(':').next().unwrap();
    let url = format!("wss://localhost:{port}/echo");
    let cacert = cert.to_str().unwrap();
    let outcome = run_wsx(
        &["connect", "--cacert", cacert, &url],
        "hello\n",
        Stdin::Close,
    );
    assert_exit(&outcome, 0);
    assert_eq!(outcome.stdout, "hello\n", "{outcome:#?}");
    let report = bench_json(&url, &["--cacert", cacert, "--duration", "0.5"]);
    assert_eq!(report["deflate"], true, "{report}");
    // Without the CA, the certificate is refused.
    let outcome = run_wsx(&["connect", &url], "", Stdin::Close);
    assert_exit(&outcome, 1);
    assert!(outcome.stderr.contains("UnknownIssuer"), "{outcome:#?}");
}

#[test]
fn serve_echo_round_trip() {
    let server = wsx_serve();
    let url = format!("{}/echo", server.base);
    let outcome = run_wsx(&["connect", &url], "hello\nworld\n", Stdin::Close);
    assert_exit(&outcome, 0);
    assert_eq!(outcome.stdout, "hello\nworld\n", "{outcome:#?}");
    let outcome = run_wsx(&["connect", "--binary", &url], "00 ff 10\n", Stdin::Close);
    assert_exit(&outcome, 0);
    assert_eq!(outcome.stdout, "00ff10\n", "{outcome:#?}");
}

#[test]
fn serve_chat_prefixes_the_nick() {
    let server = wsx_serve();
    let url = format!("{}/chat?room=r1&nick=alice", server.base);
    let outcome = run_wsx(&["connect", &url], "hi there\n", Stdin::Close);
    assert_exit(&outcome, 0);
    assert!(
        outcome.stdout.lines().any(|line| line == "alice: hi there"),
        "{outcome:#?}"
    );
}

#[test]
fn serve_bench_with_and_without_deflate() {
    let server = wsx_serve();
    let url = format!("{}/echo", server.base);
    let args = [
        "--connections",
        "4",
        "--size",
        "256",
        "--inflight",
        "4",
        "--duration",
        "1",
    ];
    bench_json(&url, &args);
    let mut no_deflate = args.to_vec();
    no_deflate.push("--no-deflate");
    let report = bench_json(&url, &no_deflate);
    assert_eq!(report["deflate"], false, "{report}");
}

#[test]
fn serve_rejects_an_unknown_path() {
    let server = wsx_serve();
    let outcome = run_wsx(
        &["connect", &format!("{}/nope", server.base)],
        "",
        Stdin::Close,
    );
    assert_exit(&outcome, 1);
    assert!(outcome.stderr.contains("HTTP/1.1 404"), "{outcome:#?}");
}
