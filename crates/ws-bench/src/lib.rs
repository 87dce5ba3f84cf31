//! # ws-bench: a side-by-side echo benchmark
//!
//! The same single-threaded echo server built on `ws-tokio`,
//! `tokio-tungstenite`, `fastwebsockets` and `tokio-websockets`, plus
//! permessage-deflate servers (ws-tokio variants and `yawc`) ([`server`]), a
//! cheap load generator that sends pre-built masked frames (for deflate,
//! pre-compressed ones: [`payload`]) and only parses the headers of the
//! echoes ([`frame`]), and a runner that pins both to their own core and
//! tabulates medians. See the README.
//!
//! No `unsafe`: socket options go through `socket2` ([`tune`]), CPU time and
//! memory are read from `/proc` ([`procfs`]), and the counting allocator of
//! `bench_server_counting` is `stats_alloc`'s.

pub mod frame;
pub mod payload;
pub mod procfs;
pub mod server;
pub mod tune;

/// An error from any of the libraries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
