//! Sending without waiting (`try_send`, `try_close`, `broadcast`) on
//! every runtime of this adapter: the scenarios shared with the other async
//! adapter, in `crates/ws-async/adapter-tests/broadcast.rs`.

mod common;

#[path = "../../ws-async/adapter-tests/broadcast.rs"]
mod scenarios;
