//! The run loop ([`Driver`]) over a transport whose every move the fuzzer
//! picks: reads of its bytes in any sizes, writes and flushes that take
//! part, wait or fail, end of stream, timers that fire or not, and the
//! application's operations and commands in between.
#![no_main]

use core::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use ws_proto::{
    Action, CloseCode, Config, Connection, Driver, Message, Op, Role, Streaming,
    bytes::{Buf, Bytes},
};

/// Steps one operation may take before it must deliver, end or wait: every
/// step but a write or read that moves bytes consumes fuzzer input, and the
/// input runs out long before this.
const SETTLE: usize = 100_000;

/// What the application does next.
#[derive(Arbitrary, Debug)]
enum Step {
    Run(Operation),
    Send {
        text: bool,
        len: u16,
    },
    Ping(u8),
    Close(u16),
    /// Drops the rest of a streamed message being received.
    Discard,
    Abort,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Operation {
    Recv,
    RecvMessage,
    Flush,
    WriteOut,
    Reserve,
    Close,
}

/// What the transport does with the I/O the driver asks for.
#[derive(Arbitrary, Debug)]
enum Move {
    /// Moves up to this many bytes (reads take them from the input).
    Bytes(u16),
    Blocked,
    Eof,
    Fail,
}

/// The transport's state, for the invariants.
#[derive(Default)]
struct Transport {
    now: Duration,
    /// Bytes written since the last flush.
    unflushed: usize,
    /// The last write or flush was reported blocked.
    write_blocked: bool,
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let role = if bool::arbitrary(&mut u).unwrap_or(false) {
        Role::Client
    } else {
        Role::Server
    };
    let keepalive = bool::arbitrary(&mut u).unwrap_or(false);
    let streaming = match bool::arbitrary(&mut u).unwrap_or(false) {
        true => Streaming::Above(1024),
        false => Streaming::Off,
    };
    let config = Config::default()
        .with_streaming(streaming)
        .with_max_frame_size(4096)
        .with_max_message_size(16 * 1024)
        .with_max_write_buffer(4096)
        .with_close_timeout(Some(Duration::from_secs(1)))
        .with_keepalive(
            keepalive.then_some(Duration::from_secs(2)),
            keepalive.then_some(Duration::from_secs(1)),
        );
    let conn = Connection::with_entropy(role, config, |d: &mut [u8]| d.fill(0x5A));
    let mut driver = Driver::new(conn);
    let mut transport = Transport::default();
    for _ in 0..256 {
        let Ok(step) = Step::arbitrary(&mut u) else {
            break;
        };
        match step {
            Step::Run(operation) => run(&mut driver, &mut transport, &mut u, operation),
            Step::Send { text, len } => {
                let len = usize::from(len) % 8192;
                let message = if text {
                    Message::text("x".repeat(len))
                } else {
                    Message::binary(vec![0xA5; len])
                };
                let ended = driver.is_done();
                let sent = driver.send(message);
                // Bytes taken after the end would never leave: say so.
                assert!(!(ended && sent.is_ok()), "a send after the end was taken");
            }
            Step::Ping(len) => {
                let ended = driver.is_done();
                let sent = driver.ping(Bytes::from(vec![1; usize::from(len)]));
                assert!(!(ended && sent.is_ok()), "a ping after the end was taken");
            }
            Step::Close(code) => {
                let _ = driver.close(CloseCode(code), "bye");
            }
            Step::Discard => driver.discard_message(),
            Step::Abort => driver.abort(),
        }
    }
});

fn run(driver: &mut Driver, t: &mut Transport, u: &mut Unstructured<'_>, operation: Operation) {
    let op = match operation {
        Operation::Recv => Op::Recv,
        Operation::RecvMessage => Op::RecvMessage,
        Operation::Flush => Op::Flush,
        Operation::WriteOut => Op::WriteOut,
        Operation::Reserve => Op::Reserve,
        Operation::Close => Op::Close,
    };
    t.write_blocked = false;
    for _ in 0..SETTLE {
        let action = driver.poll(op);
        if driver.is_done() {
            assert!(
                matches!(action, Action::Deliver | Action::Done | Action::Wait),
                "{action:?} after the transport was finished with"
            );
        }
        // Nothing written waits in a buffer while the driver waits or the
        // operation returns, unless the transport held it up (or the
        // operation only made room: the flush after the send flushes).
        let settles = matches!(
            action,
            Action::Deliver | Action::Done | Action::Wait | Action::Read { wait: true }
        );
        if settles && !t.write_blocked && !driver.is_done() && op != Op::Reserve {
            assert_eq!(t.unflushed, 0, "{action:?} before a flush");
        }
        match action {
            Action::Deliver => {
                assert!(driver.take_event().is_some(), "a delivery without an event");
                return;
            }
            Action::Done => {
                let _ = driver.take_error();
                return;
            }
            Action::Wait => return,
            Action::Write { .. } => match Move::arbitrary(u) {
                Ok(Move::Bytes(n)) => {
                    let out = driver.outgoing();
                    let n = usize::from(n).clamp(1, out.chunk().len());
                    out.advance(n);
                    t.unflushed += n;
                    t.write_blocked = false;
                    driver.wrote(n);
                }
                Ok(Move::Fail) => {
                    let _ = driver.io_error();
                }
                Ok(Move::Blocked | Move::Eof) | Err(_) => {
                    t.write_blocked = true;
                    driver.write_blocked();
                }
            },
            Action::Flush => match Move::arbitrary(u) {
                Ok(Move::Fail) => {
                    let _ = driver.io_error();
                }
                Ok(Move::Blocked) | Err(_) => {
                    t.write_blocked = true;
                    driver.write_blocked();
                }
                Ok(Move::Bytes(_) | Move::Eof) => {
                    (t.unflushed, t.write_blocked) = (0, false);
                    driver.flushed();
                }
            },
            Action::Read { .. } => match Move::arbitrary(u) {
                Ok(Move::Bytes(n)) => {
                    let room = driver.read_slice();
                    let n = usize::from(n).min(room.len()).min(u.len());
                    if n == 0 {
                        driver.read_blocked();
                    } else {
                        let bytes = u.bytes(n).unwrap_or_default();
                        room[..bytes.len()].copy_from_slice(bytes);
                        driver.filled(bytes.len());
                    }
                }
                Ok(Move::Eof) => driver.filled(0),
                Ok(Move::Fail) => {
                    let _ = driver.io_error();
                }
                Ok(Move::Blocked) | Err(_) => driver.read_blocked(),
            },
            Action::Timer => match driver.timer(t.now) {
                Some(at) if bool::arbitrary(u).unwrap_or(false) => {
                    t.now = t.now.max(at);
                    driver.timer_fired(at);
                }
                Some(_) => driver.timer_blocked(),
                None => {}
            },
            Action::Shutdown { .. } => {
                t.unflushed = 0; // flushed, or dropped, with the transport
                driver.shut_down();
            }
        }
    }
    panic!("{op:?} did not deliver, end or wait in {SETTLE} steps");
}
