//! Real peers: Python `websockets` and Node.js `ws` (see `interop/`) as
//! clients of each of our servers and as servers for each of our clients.
//!
//! The peers are child processes on 127.0.0.1, killed by their own PID when
//! a test ends. Install them with `bash interop/setup.sh`. When a peer is
//! missing the tests print a skip message and pass, unless `CI=true`, where
//! they fail.

mod common;
// Not `tests/streamed.rs`: Cargo would take that for a test binary of its own.
#[path = "peers/streamed.rs"]
mod streamed;

use core::time::Duration;
use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::Instant,
};

use common::{Adapter, ClientKind, Plan, TIMEOUT, check_reports};

/// A peer implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    /// `interop/python/peer.py` (websockets).
    Python,
    /// `interop/node/peer.js` (ws).
    Node,
}

#[path = "../shared/peers_location.rs"]
mod peers_location;

use peers_location::{interop_dir, python};

impl Peer {
    /// The interpreter and the peer script, with the working directory set.
    fn command(self) -> Command {
        let dir = interop_dir();
        match self {
            Self::Python => {
                let mut command = Command::new(python());
                command
                    .arg(dir.join("python/peer.py"))
                    .current_dir(dir.join("python"));
                command
            }
            Self::Node => {
                let mut command = Command::new("node");
                command
                    .arg(dir.join("node/peer.js"))
                    .current_dir(dir.join("node"));
                command
            }
        }
    }

    /// Whether the interpreter and its WebSocket module are there.
    fn check_installed(self) -> Result<(), String> {
        let dir = interop_dir();
        let mut command = match self {
            Self::Python => {
                let mut command = Command::new(python());
                command.args(["-c", "import websockets"]);
                command
            }
            Self::Node => {
                let mut command = Command::new("node");
                command
                    .args(["-e", "require('ws')"])
                    .current_dir(dir.join("node"));
                command
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
        let (status, _, stderr) = wait_bounded(ChildGuard(child), TIMEOUT)?;
        if status {
            Ok(())
        } else {
            let mut lines = stderr.lines().map(str::trim).filter(|l| !l.is_empty());
            let why = lines
                .clone()
                .find(|l| l.contains("Error"))
                .or_else(|| lines.next_back());
            Err(why.unwrap_or("no output").to_owned())
        }
    }

    /// `true` if the peer can run. If not: fails under `CI=true`, otherwise
    /// prints why the test is skipped and returns `false`.
    fn require(self) -> bool {
        let peer = format!("the {self:?} interop peer");
        peers_location::require(&peer, self.check_installed())
    }
}

/// Kills the child by its PID when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

/// Waits at most `limit` for the child, then kills it. Returns whether it
/// exited successfully, and its stdout and stderr (when piped).
fn wait_bounded(mut guard: ChildGuard, limit: Duration) -> Result<(bool, String, String), String> {
    let stdout = guard.0.stdout.take().map(collect);
    let stderr = guard.0.stderr.take().map(collect);
    let deadline = Instant::now() + limit;
    let status = loop {
        match guard.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => return Err(format!("still running after {limit:?}: killed")),
            Err(e) => return Err(format!("wait: {e}")),
        }
    };
    let read = |rx: Option<mpsc::Receiver<String>>| {
        rx.and_then(|rx| rx.recv_timeout(Duration::from_secs(5)).ok())
            .unwrap_or_default()
    };
    Ok((status.success(), read(stdout), read(stderr)))
}

/// Starts the peer's echo server on an ephemeral port and returns it with the port.
fn start_peer_server(peer: Peer, deflate: Option<&str>) -> (ChildGuard, u16) {
    let mut command = peer.command();
    if let Some(spec) = deflate {
        command.env("PEER_DEFLATE", spec);
    }
    start_peer_server_with(peer, command)
}

/// Starts the peer's echo server from `command` (the peer, environment set).
fn start_peer_server_with(peer: Peer, mut command: Command) -> (ChildGuard, u16) {
    command
        .args(["server", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut guard = ChildGuard(
        command
            .spawn()
            .unwrap_or_else(|e| panic!("start {peer:?} server: {e}")),
    );
    let stdout = guard.0.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut tx = Some(tx);
        // Keep draining until the peer exits, so it never blocks on a full pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(port) = line
                .strip_prefix("PORT ")
                .and_then(|p| p.trim().parse::<u16>().ok())
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(port);
            }
        }
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(port) => (guard, port),
        Err(_) => {
            let status = guard.0.try_wait();
            panic!("the {peer:?} server printed no `PORT n` within {TIMEOUT:?} (exit: {status:?})");
        }
    }
}

/// The permessage-deflate settings the deflate tests give the peers
/// (`PEER_DEFLATE`, see `interop/`): the peer's defaults, no context
/// takeover either way, and the smallest and largest windows each way.
const DEFLATE_SPECS: [&str; 4] = ["default", "no-takeover", "bits-9-15", "bits-15-9"];

/// A peer's client scenario against one of our servers; with `deflate`,
/// the peer offers permessage-deflate so (`PEER_DEFLATE`) and checks that
/// it was negotiated (our servers accept it by default).
fn peer_client_against(peer: Peer, server: Adapter, deflate: Option<&str>) {
    if !peer.require() {
        return;
    }
    let running = server.start_server(2);
    let mut command = peer.command();
    if let Some(spec) = deflate {
        command.env("PEER_DEFLATE", spec);
    }
    run_peer_client(peer, command, running);
}

/// Runs the peer's client scenario (`command`: the peer, environment set)
/// against `running`, one of our servers, and checks both sides.
fn run_peer_client(peer: Peer, mut command: Command, running: common::Server) {
    let server = running.url.clone();
    command
        .args(["client", &running.url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("start {peer:?} client: {e}"));
    match wait_bounded(ChildGuard(child), 2 * TIMEOUT) {
        Ok((true, stdout, _)) if stdout.lines().any(|l| l == "OK") => {}
        Ok((_, stdout, stderr)) => {
            panic!("{peer:?} client against our server at {server} failed:\n{stdout}{stderr}")
        }
        Err(e) => panic!("{peer:?} client against our server at {server}: {e}"),
    }
    check_reports(&running.reports(), ClientKind::Peer);
}

/// Our client scenario against a peer's server; with `deflate`, the peer
/// accepts permessage-deflate so (`PEER_DEFLATE`) and closes a connection
/// that did not negotiate it (our clients offer it by default).
fn our_client_against(client: Adapter, peer: Peer, deflate: Option<&str>) {
    if !peer.require() {
        return;
    }
    let (_guard, port) = start_peer_server(peer, deflate);
    let plan = Plan {
        big: false,
        peer_server: true,
    };
    if let Err(e) = client.run_client(&format!("ws://127.0.0.1:{port}/interop"), plan) {
        panic!("our {client:?} client against the {peer:?} server (deflate {deflate:?}): {e}");
    }
}

macro_rules! peer_clients {
    ($($name:ident: $peer:ident -> $server:ident;)*) => {
        $(
            #[test]
            fn $name() {
                peer_client_against(Peer::$peer, Adapter::$server, None);
            }
        )*
    };
}

macro_rules! peer_servers {
    ($($name:ident: $client:ident -> $peer:ident;)*) => {
        $(
            #[test]
            fn $name() {
                our_client_against(Adapter::$client, Peer::$peer, None);
            }
        )*
    };
}

peer_clients! {
    python_client_tokio_server: Python -> Tokio;
    python_client_smol_server: Python -> Smol;
    python_client_async_std_server: Python -> AsyncStd;
    python_client_std_server: Python -> Std;
    node_client_tokio_server: Node -> Tokio;
    node_client_smol_server: Node -> Smol;
    node_client_async_std_server: Node -> AsyncStd;
    node_client_std_server: Node -> Std;
    python_client_compio_server: Python -> Compio;
    node_client_compio_server: Node -> Compio;
}

peer_servers! {
    tokio_client_python_server: Tokio -> Python;
    smol_client_python_server: Smol -> Python;
    async_std_client_python_server: AsyncStd -> Python;
    std_client_python_server: Std -> Python;
    tokio_client_node_server: Tokio -> Node;
    smol_client_node_server: Smol -> Node;
    async_std_client_node_server: AsyncStd -> Node;
    std_client_node_server: Std -> Node;
    compio_client_python_server: Compio -> Python;
    compio_client_node_server: Compio -> Node;
}

/// Each pair with permessage-deflate negotiated, once per [`DEFLATE_SPECS`]
/// setting: messages up to 1 MiB (text compresses, random binary does not),
/// fragmented ones, both directions.
macro_rules! deflate_pairs {
    ($($client:ident: $peer:ident -> $server:ident; $ours:ident: $our_client:ident -> $their_server:ident;)*) => {
        $(
            #[test]
            fn $client() {
                for spec in DEFLATE_SPECS {
                    peer_client_against(Peer::$peer, Adapter::$server, Some(spec));
                }
            }

            #[test]
            fn $ours() {
                for spec in DEFLATE_SPECS {
                    our_client_against(Adapter::$our_client, Peer::$their_server, Some(spec));
                }
            }
        )*
    };
}

deflate_pairs! {
    deflate_python_client_tokio_server: Python -> Tokio;
        deflate_tokio_client_python_server: Tokio -> Python;
    deflate_python_client_smol_server: Python -> Smol;
        deflate_smol_client_python_server: Smol -> Python;
    deflate_python_client_async_std_server: Python -> AsyncStd;
        deflate_async_std_client_python_server: AsyncStd -> Python;
    deflate_python_client_std_server: Python -> Std;
        deflate_std_client_python_server: Std -> Python;
    deflate_node_client_tokio_server: Node -> Tokio;
        deflate_tokio_client_node_server: Tokio -> Node;
    deflate_node_client_smol_server: Node -> Smol;
        deflate_smol_client_node_server: Smol -> Node;
    deflate_node_client_async_std_server: Node -> AsyncStd;
        deflate_async_std_client_node_server: AsyncStd -> Node;
    deflate_node_client_std_server: Node -> Std;
        deflate_std_client_node_server: Std -> Node;
    deflate_python_client_compio_server: Python -> Compio;
        deflate_compio_client_python_server: Compio -> Python;
    deflate_node_client_compio_server: Node -> Compio;
        deflate_compio_client_node_server: Compio -> Node;
}

/// Python `websockets` over TLS (its `ssl` support) against the adapters'
/// `rustls` features: the peer's client scenario against our `wss://`
/// server, and our client scenario against the peer's `wss://` server, with
/// the test CA ([`common::tls`]).
fn tls_python_client_against(server: Adapter) {
    if !Peer::Python.require() {
        return;
    }
    let mut command = Peer::Python.command();
    command.env("PEER_TLS_CA", &common::tls::pki().ca_pem);
    run_peer_client(Peer::Python, command, server.start_tls_server(2));
}

fn tls_client_against_python(client: Adapter) {
    if !Peer::Python.require() {
        return;
    }
    let pki = common::tls::pki();
    let mut command = Peer::Python.command();
    command
        .env("PEER_TLS_CERT", &pki.cert_pem)
        .env("PEER_TLS_KEY", &pki.key_pem);
    let (_guard, port) = start_peer_server_with(Peer::Python, command);
    let plan = Plan {
        big: false,
        peer_server: true,
    };
    let url = format!("wss://localhost:{port}/interop");
    if let Err(e) = client.run_client(&url, plan) {
        panic!("our {client:?} client against the Python wss:// server: {e}");
    }
}

#[test]
fn tls_python_client_std_server() {
    tls_python_client_against(Adapter::Std);
}

#[test]
fn tls_std_client_python_server() {
    tls_client_against_python(Adapter::Std);
}

#[test]
fn tls_python_client_tokio_server() {
    tls_python_client_against(Adapter::Tokio);
}

#[test]
fn tls_tokio_client_python_server() {
    tls_client_against_python(Adapter::Tokio);
}

#[test]
fn tls_python_client_smol_server() {
    tls_python_client_against(Adapter::Smol);
}

#[test]
fn tls_smol_client_python_server() {
    tls_client_against_python(Adapter::Smol);
}

/// Streamed messages with Python `websockets` (see [`streamed`]): one
/// fragmented message each way, received and sent in pieces on our side and
/// checked by length and SHA-256 on both, with our server and our client of
/// each adapter, without and with permessage-deflate. The 4 MiB tests run
/// always (both compressions in one test); the 256 MiB ones are ignored in
/// debug builds: `cargo test --release -p ws-interop --test peers --
/// --ignored streamed_256_mib`.
macro_rules! streamed_tests {
    ($($side:ident:
        $small_python_client:ident, $small_ours:ident,
        $big_python_client:ident, $big_python_client_deflate:ident,
        $big_ours:ident, $big_ours_deflate:ident;)*) => {
        $(
            #[test]
            fn $small_python_client() {
                for deflate in [false, true] {
                    streamed::python_client_against(streamed::Side::$side, streamed::SMALL, deflate);
                }
            }

            #[test]
            fn $small_ours() {
                for deflate in [false, true] {
                    streamed::client_against_python(streamed::Side::$side, streamed::SMALL, deflate);
                }
            }

            #[test]
            #[ignore = "256 MiB each way: run in release"]
            fn $big_python_client() {
                streamed::python_client_against(streamed::Side::$side, streamed::BIG, false);
            }

            #[test]
            #[ignore = "256 MiB each way: run in release"]
            fn $big_python_client_deflate() {
                streamed::python_client_against(streamed::Side::$side, streamed::BIG, true);
            }

            #[test]
            #[ignore = "256 MiB each way: run in release"]
            fn $big_ours() {
                streamed::client_against_python(streamed::Side::$side, streamed::BIG, false);
            }

            #[test]
            #[ignore = "256 MiB each way: run in release"]
            fn $big_ours_deflate() {
                streamed::client_against_python(streamed::Side::$side, streamed::BIG, true);
            }
        )*
    };
}

streamed_tests! {
    Tokio:
        streamed_4_mib_python_client_tokio_server, streamed_4_mib_tokio_client_python_server,
        streamed_256_mib_python_client_tokio_server, streamed_256_mib_deflate_python_client_tokio_server,
        streamed_256_mib_tokio_client_python_server, streamed_256_mib_deflate_tokio_client_python_server;
    Smol:
        streamed_4_mib_python_client_smol_server, streamed_4_mib_smol_client_python_server,
        streamed_256_mib_python_client_smol_server, streamed_256_mib_deflate_python_client_smol_server,
        streamed_256_mib_smol_client_python_server, streamed_256_mib_deflate_smol_client_python_server;
    Std:
        streamed_4_mib_python_client_std_server, streamed_4_mib_std_client_python_server,
        streamed_256_mib_python_client_std_server, streamed_256_mib_deflate_python_client_std_server,
        streamed_256_mib_std_client_python_server, streamed_256_mib_deflate_std_client_python_server;
}
