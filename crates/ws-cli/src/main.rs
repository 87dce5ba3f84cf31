//! `wsx`: a WebSocket command-line tool on ws-tokio.
//!
//! - `wsx serve [ADDR]`: a chat page at `/`, a broadcast chat at
//!   `/chat?room=NAME&nick=NAME`, an echo endpoint at `/echo`.
//! - `wsx connect URL`: stdin lines out as messages, messages in printed.
//! - `wsx bench URL`: a load generator against an echo endpoint.

#![forbid(unsafe_code)]

mod bench;
mod connect;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A WebSocket tool: serve a chat, connect, benchmark.
#[derive(Debug, Parser)]
#[command(name = "wsx", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the chat page (`/`), a broadcast chat (`/chat`) and an echo endpoint (`/echo`).
    Serve(serve::Args),
    /// Connect to a WebSocket URL: stdin lines go out, messages received are printed.
    Connect(connect::Args),
    /// Load an echo endpoint and report throughput and latency.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wsx: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Connect(args) => connect::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wsx: {e:#}");
            ExitCode::FAILURE
        }
    }
}
