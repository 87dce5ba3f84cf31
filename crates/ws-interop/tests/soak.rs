//! Load / soak: N concurrent ws-tokio connections held open at once.
//!
//! ```text
//! cargo test -p ws-interop --release --test soak -- --ignored --nocapture
//! SOAK_CONNS=500 cargo test -p ws-interop --test soak -- --ignored --nocapture
//! ```
//!
//! `soak_10k_connections` runs the server in this process (a ws-tokio echo
//! server on a multi-thread runtime) and the clients in a child process (this
//! same test binary, running `soak_clients_child`), so each process needs
//! only N file descriptors. The child opens `SOAK_CONNS` connections (default
//! 10000), exchanges a few messages on each, reports when all are open, waits
//! for the word from the parent, then closes them all cleanly. The parent
//! measures its RSS before the connections, with all of them open and idle,
//! and its peak (`VmHWM`), and prints the memory per connection.

use core::time::Duration;
use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::Instant,
};

use tokio::sync::{Semaphore, watch};
use ws_tokio::{CloseCode, Message};

/// The child's address variable: set, the child test runs the clients.
const CHILD_ADDR: &str = "SOAK_CHILD_ADDR";
/// Messages echoed on each connection.
const ROUNDS: usize = 3;
/// Connections in their handshake at once (the listen backlog is 1024).
const CONNECTING: usize = 256;
/// Bound for the whole run.
const DEADLINE: Duration = Duration::from_secs(110);

fn conns() -> usize {
    std::env::var("SOAK_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// `VmRSS` and `VmHWM` of this process in KiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[derive(Debug, Default)]
struct Counters {
    /// Handshakes done.
    accepted: AtomicUsize,
    /// Connections currently open.
    open: AtomicUsize,
    /// Connections that ended with the client's Close 1000.
    clean: AtomicUsize,
    /// Connections that ended otherwise.
    failed: AtomicUsize,
}

async fn serve(stream: tokio::net::TcpStream, counters: Arc<Counters>) {
    let Ok(mut ws) = ws_tokio::accept(stream).await else {
        counters.failed.fetch_add(1, Ordering::SeqCst);
        return;
    };
    counters.accepted.fetch_add(1, Ordering::SeqCst);
    counters.open.fetch_add(1, Ordering::SeqCst);
    let mut ok = true;
    while let Some(message) = ws.recv().await {
        match message {
            Ok(message) => {
                if ws.send(message).await.is_err() {
                    ok = false;
                    break;
                }
            }
            Err(_) => {
                ok = false;
                break;
            }
        }
    }
    let clean = ok
        && ws
            .close_frame()
            .is_some_and(|f| f.code == CloseCode::NORMAL);
    drop(ws);
    let counter = if clean {
        &counters.clean
    } else {
        &counters.failed
    };
    counter.fetch_add(1, Ordering::SeqCst);
    counters.open.fetch_sub(1, Ordering::SeqCst);
}

/// Kills the child (which we started) if the test fails.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits until `done()` or the deadline.
fn wait_until(what: &str, deadline: Instant, done: impl Fn() -> bool) {
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
#[ignore = "load test: cargo test -p ws-interop --release --test soak -- --ignored --nocapture"]
fn soak_10k_connections() {
    if std::env::var_os(CHILD_ADDR).is_some() {
        return; // The child runs `soak_clients_child` only.
    }
    let n = conns();
    let start = Instant::now();
    let deadline = start + DEADLINE;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let counters = Arc::new(Counters::default());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server_counters = Arc::clone(&counters);
    runtime.spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream, Arc::clone(&server_counters)));
                }
                Err(e) => {
                    eprintln!("soak: accept failed: {e}");
                    break;
                }
            }
        }
    });
    thread::sleep(Duration::from_millis(50));
    let (rss_before, _) = memory();

    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "soak_clients_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ADDR, addr.to_string())
        .env("SOAK_CONNS", n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the client process");
    let mut child = Guard(child);
    let mut to_child = child.0.stdin.take().expect("stdin");
    let stdout = child.0.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest's "test soak_clients_child ... " may precede ours.
            if let Some(at) = line.find("SOAK ") {
                let _ = lines_tx.send(line[at + 5..].to_owned());
            }
        }
    });
    let expect_line = |word: &str| {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with(word) => line,
            Ok(line) => panic!("the client process said {line:?}, expected {word}"),
            Err(e) => panic!("no {word:?} from the client process: {e}"),
        }
    };

    let line = expect_line("ready");
    let opened = start.elapsed();
    wait_until("all connections open", deadline, || {
        counters.open.load(Ordering::SeqCst) == n
    });
    thread::sleep(Duration::from_millis(200)); // idle
    let (rss_open, hwm_open) = memory();

    to_child.write_all(b"close\n").expect("tell the child");
    to_child.flush().expect("flush");
    let closed_line = expect_line("closed");
    wait_until("all connections closed", deadline, || {
        counters.open.load(Ordering::SeqCst) == 0
            && counters.clean.load(Ordering::SeqCst) + counters.failed.load(Ordering::SeqCst) >= n
    });
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("child") {
            break status;
        }
        assert!(Instant::now() < deadline, "the client process did not exit");
        thread::sleep(Duration::from_millis(10));
    };
    let (rss_end, hwm) = memory();
    // The kernel updates VmHWM lazily: the peak is at least what we saw.
    let hwm = hwm.max(hwm_open).max(rss_open);
    let total = start.elapsed();

    let per_conn = (rss_open.saturating_sub(rss_before) as f64) * 1024.0 / n as f64;
    println!("soak: {n} connections, {ROUNDS} echoes each, all open at once");
    println!("soak: client process: {line}; {closed_line}");
    println!("soak: all open after {opened:?}, total {total:?}");
    println!(
        "soak: server RSS before {rss_before} KiB, all open (idle) {rss_open} KiB, \
         after close {rss_end} KiB, peak (VmHWM) {hwm} KiB"
    );
    println!("soak: memory per connection {per_conn:.0} bytes");
    assert!(status.success(), "the client process failed: {status}");
    assert_eq!(counters.accepted.load(Ordering::SeqCst), n);
    assert_eq!(
        counters.clean.load(Ordering::SeqCst),
        n,
        "clean closes ({} failed)",
        counters.failed.load(Ordering::SeqCst)
    );
}

/// The client side of [`soak_10k_connections`], run in a child process.
#[test]
#[ignore = "run by soak_10k_connections in a child process"]
fn soak_clients_child() {
    let Ok(addr) = std::env::var(CHILD_ADDR) else {
        return;
    };
    let n = conns();
    let url = format!("ws://{addr}/soak");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(async move {
        let (go_tx, go) = watch::channel(false);
        let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(CONNECTING));
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let (url, permits, ready_tx, mut go) = (
                url.clone(),
                Arc::clone(&permits),
                ready_tx.clone(),
                go.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let permit = permits.acquire_owned().await.expect("semaphore");
                let (mut ws, _) = ws_tokio::connect(&url)
                    .await
                    .map_err(|e| format!("connect {i}: {e}"))?;
                for round in 0..ROUNDS {
                    let text = format!("hello {i} {round}");
                    ws.send(Message::text(text.clone()))
                        .await
                        .map_err(|e| format!("send {i}: {e}"))?;
                    match ws.recv().await {
                        Some(Ok(echo)) if echo.is_text() && echo.as_bytes() == text.as_bytes() => {}
                        other => return Err(format!("echo {i}: {other:?}")),
                    }
                }
                drop(permit);
                let _ = ready_tx.send(());
                go.wait_for(|go| *go).await.map_err(|e| e.to_string())?;
                ws.close(CloseCode::NORMAL, "")
                    .await
                    .map_err(|e| format!("close {i}: {e}"))?;
                Ok::<_, String>(())
            }));
        }
        drop(ready_tx);
        let mut count = 0;
        while count < n && ready.recv().await.is_some() {
            count += 1;
        }
        if count < n {
            // A task failed before it was ready: report the first error.
            for task in tasks {
                if let Ok(Err(e)) = task.await {
                    return Err(e);
                }
            }
            return Err(format!("only {count} of {n} ready"));
        }
        println!("SOAK ready {n} connections");
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if line.trim() != "close" {
            return Err(format!("unexpected {line:?} from the parent"));
        }
        let _ = go_tx.send(true);
        let mut closed = 0;
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
            closed += 1;
        }
        Ok(closed)
    });
    match result {
        Ok(closed) => println!("SOAK closed {closed} cleanly"),
        Err(e) => {
            println!("SOAK error {e}");
            panic!("{e}");
        }
    }
}
