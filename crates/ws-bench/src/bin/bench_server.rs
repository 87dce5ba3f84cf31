//! The echo server: `bench_server <library> <port> [--exit-after-echoes N]`,
//! with `<library>` one of `ws-tokio`, `ws-compio` (on compio's runtime:
//! io_uring), `tokio-tungstenite`, `fastwebsockets`, `tokio-websockets`, or
//! a permessage-deflate server:
//! `ws-tokio-deflate`, `ws-tokio-deflate-yawclike`, `ws-tokio-deflate-nct`,
//! `yawc` (run the load generator with `--deflate` against those). Prints `READY` once it listens on
//! `127.0.0.1:<port>`. With `--exit-after-echoes N` (N > 0), the process
//! exits with status 0 right after the N-th echo (counted over all
//! connections) has been sent; otherwise it runs until killed.

use std::{process::ExitCode, sync::atomic::Ordering};

use ws_bench::server::{self, EXIT_AFTER, Library};

const USAGE: &str = "usage: bench_server <ws-tokio|ws-compio|tokio-tungstenite|fastwebsockets|tokio-websockets\
                     |ws-tokio-deflate|ws-tokio-deflate-yawclike|ws-tokio-deflate-nct|yawc> \
                     <port> [--exit-after-echoes N]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(library), Some(port)) = (
        args.get(1).and_then(|a| Library::parse(a)),
        args.get(2).and_then(|a| a.parse().ok()),
    ) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match args.get(3..).unwrap_or_default() {
        [] => {}
        [flag, n] if flag == "--exit-after-echoes" => match n.parse::<u64>() {
            Ok(n) if n > 0 => EXIT_AFTER.store(n, Ordering::Relaxed),
            _ => {
                eprintln!("bench_server: bad --exit-after-echoes {n}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    if let Err(e) = server::run(library, port, None) {
        eprintln!("bench_server: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
