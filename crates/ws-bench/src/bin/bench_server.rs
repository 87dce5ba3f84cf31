//! The echo server: `bench_server <library> <port>`, with `<library>` one of
//! `ws-tokio`, `tokio-tungstenite`, `fastwebsockets`, `tokio-websockets`.
//! Prints `READY` once it listens on `127.0.0.1:<port>`.

use std::process::ExitCode;

use ws_bench::server::{self, Library};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(library), Some(port)) = (
        args.get(1).and_then(|a| Library::parse(a)),
        args.get(2).and_then(|a| a.parse().ok()),
    ) else {
        eprintln!(
            "usage: bench_server <ws-tokio|tokio-tungstenite|fastwebsockets|tokio-websockets> <port>"
        );
        return ExitCode::from(2);
    };
    if let Err(e) = server::run(library, port, None) {
        eprintln!("bench_server: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
