//! Interop test suite for the `ws-tokio`, `ws-futures` and `ws-std` adapters.
//!
//! This crate has no library code: everything lives in `tests/`.
//!
//! - `tests/cross.rs`: every adapter's client against every adapter's server
//!   (tokio, smol, async-std, std: 16 pairs).
//! - `tests/peers.rs`: Python `websockets` and Node.js `ws` (from `interop/`)
//!   as clients of each of our servers and as servers for each of our clients;
//!   its `streamed_*` tests (`tests/peers/streamed.rs`) send a fragmented
//!   message each way with Python, received and sent in pieces on our side
//!   and checked by length and SHA-256: 4 MiB always, 256 MiB ignored (run
//!   `cargo test --release -p ws-interop --test peers -- --ignored streamed_256_mib`).
//! - `tests/hostile.rs`: hostile raw TCP peers (slowloris, stalls, ping
//!   floods, huge lengths, a million fragments, abrupt ends and resets,
//!   masked frames from a server, a half response) against each runtime's
//!   server and client, plus no data loss on a graceful close.
//! - `tests/soak.rs`: `soak_10k_connections` (ignored; run with
//!   `cargo test -p ws-interop --release --test soak -- --ignored --nocapture`,
//!   size with `SOAK_CONNS`, default 10000): N concurrent ws-tokio
//!   connections held open at once, clients in a child process; prints the
//!   server's RSS and memory per connection.
//!
//! The peers are installed by `interop/setup.sh`. When they are missing, the
//! peer tests print a skip message and pass, unless the environment variable
//! `CI` is `true`, where they fail.

// The README's code blocks compile as doctests here, where every adapter is a
// dependency, so the snippets cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
