//! Streamed messages in bounded memory, 8 MiB and (ignored) 1 GiB each way,
//! on tokio's multi-thread runtime: the tests shared with ws-futures, in
//! `crates/ws-async/adapter-tests/streaming_memory.rs`. Run the 1 GiB ones
//! in release:
//!
//! ```text
//! cargo test --release -p ws-tokio --test streaming_memory -- --ignored --nocapture
//! ```

mod common;

#[path = "../../ws-async/adapter-tests/streaming_memory.rs"]
mod scenarios;
