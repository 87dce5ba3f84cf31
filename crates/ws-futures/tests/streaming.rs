//! Streamed messages over real sockets, every scenario on smol and on
//! async-std: the scenarios shared with ws-tokio, in
//! `crates/ws-async/adapter-tests/streaming.rs`.

mod common;

#[path = "../../ws-async/adapter-tests/streaming.rs"]
mod scenarios;
