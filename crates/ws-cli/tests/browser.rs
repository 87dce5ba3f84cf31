//! `wsx serve`'s chat page in a real browser: runs
//! `interop/browser/chat_test.mjs` (playwright-core driving Debian's
//! Chromium) against this build's `wsx`. Three pages in two rooms connect with
//! permessage-deflate, chat, and see only their own room.
//!
//! Needs `/usr/bin/chromium` and `interop/browser/node_modules`, both
//! installed by `bash interop/setup.sh`; without them the test fails (it does
//! not skip).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The whole run; the script gives up by itself after 50 s.
const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn chat_page_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root");
    let browser = root.join("interop/browser");
    for needed in [
        PathBuf::from("/usr/bin/chromium"),
        browser.join("node_modules/playwright-core"),
    ] {
        assert!(
            needed.exists(),
            "{} is missing: run `bash interop/setup.sh` (it installs Debian's chromium and \
             interop/browser/node_modules)",
            needed.display()
        );
    }

    // stdout and stderr into one file, in the order they were written.
    let log_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-chat-test.log");
    let log = File::create(&log_path).expect("create the log file");
    let mut child = Command::new("node")
        .arg(browser.join("chat_test.mjs"))
        .arg(env!("CARGO_BIN_EXE_wsx"))
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log file"))
        .stderr(log)
        // Its own process group, so that a timeout ends node and the `wsx
        // serve` it started together.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node: {e} (run `bash interop/setup.sh`)"));

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            // The group's id is node's pid.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    match status {
        Some(status) if status.success() && output.contains("browser chat test OK") => {
            print!("{output}");
        }
        Some(status) => panic!("interop/browser/chat_test.mjs failed ({status}):\n{output}"),
        None => {
            panic!("interop/browser/chat_test.mjs took more than {TIMEOUT:?}; killed it:\n{output}")
        }
    }
}
