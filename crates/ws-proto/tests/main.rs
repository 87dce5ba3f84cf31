//! Integration tests for `ws-proto`: RFC 6455 vectors byte for byte, an
//! in-memory client/server pair, property tests, and the opening handshake.
//!
//! One test binary; the modules live in `tests/suite/` so that cargo does not
//! compile each of them as a binary of its own.

#[path = "suite/util.rs"]
mod util;

#[path = "suite/vectors.rs"]
mod vectors;

#[path = "suite/pair.rs"]
mod pair;

#[path = "suite/props.rs"]
mod props;

#[path = "suite/handshake.rs"]
mod handshake;

#[path = "suite/driver.rs"]
mod driver;

#[cfg(feature = "deflate")]
#[path = "suite/deflate.rs"]
mod deflate;

#[path = "suite/streaming.rs"]
mod streaming;
