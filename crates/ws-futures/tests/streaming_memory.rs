//! Streamed messages in bounded memory, 8 MiB and (ignored) 1 GiB each way,
//! on smol: the tests shared with ws-tokio, in
//! `crates/ws-async/adapter-tests/streaming_memory.rs`. Run the 1 GiB ones
//! in release:
//!
//! ```text
//! cargo test --release -p ws-futures --test streaming_memory -- --ignored --nocapture
//! ```

mod common;

#[path = "../../ws-async/adapter-tests/streaming_memory.rs"]
mod scenarios;
