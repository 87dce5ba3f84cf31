//! `bench_server` with a counting global allocator (`stats_alloc` around the
//! system allocator): `bench_server_counting <library> <port>`. Every
//! connection to `<port> + 1` receives one line, `<allocations>
//! <reallocations> <echoes>`, the process totals so far.

use std::{alloc::System, process::ExitCode, sync::atomic::Ordering};

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use ws_bench::server::{self, ECHOES, Library};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn report() -> String {
    let stats = GLOBAL.stats();
    format!(
        "{} {} {}\n",
        stats.allocations,
        stats.reallocations,
        ECHOES.load(Ordering::Relaxed)
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(library), Some(port)) = (
        args.get(1).and_then(|a| Library::parse(a)),
        args.get(2).and_then(|a| a.parse().ok()),
    ) else {
        eprintln!("usage: bench_server_counting <library> <port>");
        return ExitCode::from(2);
    };
    if let Err(e) = server::run(library, port, Some(report)) {
        eprintln!("bench_server_counting: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
