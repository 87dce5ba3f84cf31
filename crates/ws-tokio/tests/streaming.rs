//! Streamed messages over real sockets, every scenario on tokio's
//! current-thread and multi-thread runtimes: the scenarios shared with
//! ws-futures, in `crates/ws-async/adapter-tests/streaming.rs`.

mod common;

#[path = "../../ws-async/adapter-tests/streaming.rs"]
mod scenarios;
