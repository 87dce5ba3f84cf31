//! Where the interop peers live and what a test does when one is missing,
//! shared (by `#[path]`) by the tests that start them: ws-interop's
//! `peers.rs` and ws-cli's `connect_bench.rs`.

#![allow(dead_code)] // each including test uses a different part

use std::io::Write as _;
use std::path::PathBuf;

/// The repository's `interop/` directory (peers, `setup.sh`).
pub(crate) fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// `interop/.venv/bin/python` when `interop/setup.sh` made it, else `python3`.
pub(crate) fn python() -> PathBuf {
    let venv = interop_dir().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// `true` if `peer` is installed (`installed` is `Ok`). If not: fails under
/// `CI=true`, otherwise prints why the test is skipped and returns `false`.
pub(crate) fn require(peer: &str, installed: Result<(), String>) -> bool {
    let Err(why) = installed else {
        return true;
    };
    let msg = format!("{peer} is not installed ({why}); run `bash interop/setup.sh`");
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{msg}");
    }
    // Straight to stderr: libtest would capture `eprintln!` of a passing test.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {msg}");
    false
}
