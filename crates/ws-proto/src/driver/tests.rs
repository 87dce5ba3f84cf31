//! The driver over a scripted transport: what it asks for, in which order.

use alloc::{collections::VecDeque, vec::Vec};

use bytes::Buf;

use super::*;
use crate::{config::Config, connection::Role};

/// What the scripted transport does on the next read.
#[derive(Debug)]
enum In {
    Bytes(Vec<u8>),
    Blocked,
    Eof,
    Fail,
}

/// A transport that plays `reads` in order, takes up to `write_limit`
/// bytes per write, and keeps what was written.
struct Script {
    reads: VecDeque<In>,
    written: Vec<u8>,
    /// Writes block once this many bytes were written.
    write_limit: usize,
    /// Bytes written since the last flush.
    unflushed: usize,
    /// Flushes block while this is set.
    flush_blocked: bool,
    /// Flushes performed.
    flushes: usize,
    now: Duration,
    shut: bool,
}

/// How an operation ended.
#[derive(Debug, PartialEq)]
enum End {
    Event(Event),
    Done(Result<(), ProtocolError>),
    Wait,
    IoError(bool),
}

impl Script {
    fn new(reads: impl IntoIterator<Item = In>) -> Self {
        Self {
            reads: reads.into_iter().collect(),
            written: Vec::new(),
            write_limit: usize::MAX,
            unflushed: 0,
            flush_blocked: false,
            flushes: 0,
            now: Duration::ZERO,
            shut: false,
        }
    }

    /// Runs `op` until it delivers, ends or waits (a timer wait advances the
    /// clock to the deadline when `sleep` is set). Checks that what was
    /// written is flushed before the driver waits for the peer or the
    /// operation ends, unless the transport blocks it (a reserve only makes
    /// room: the flush after the send flushes).
    fn run(&mut self, driver: &mut Driver, op: Op, sleep: bool) -> End {
        let mut deadline = None;
        for _ in 0..1000 {
            let action = driver.poll(op);
            if matches!(
                action,
                Action::Deliver | Action::Done | Action::Wait | Action::Read { wait: true }
            ) && !(self.flush_blocked
                || self.written.len() >= self.write_limit
                || driver.done
                || op == Op::Reserve)
            {
                assert_eq!(self.unflushed, 0, "{action:?} before a flush");
            }
            match action {
                Action::Deliver => return End::Event(driver.take_event().expect("delivered")),
                Action::Done => return End::Done(driver.take_error().map_or(Ok(()), Err)),
                Action::Wait => match deadline.take() {
                    Some(at) if sleep => {
                        self.now = at;
                        driver.timer_fired(at);
                    }
                    _ => return End::Wait,
                },
                Action::Write { .. } => {
                    let room = self.write_limit.saturating_sub(self.written.len());
                    if room == 0 {
                        driver.write_blocked();
                        continue;
                    }
                    let out = driver.outgoing();
                    let n = out.chunk().len().min(room);
                    self.written.extend_from_slice(&out.chunk()[..n]);
                    out.advance(n);
                    self.unflushed += n;
                    driver.wrote(n);
                }
                Action::Flush if self.flush_blocked => driver.write_blocked(),
                Action::Flush => {
                    self.unflushed = 0;
                    self.flushes += 1;
                    driver.flushed();
                }
                Action::Read { .. } => match self.reads.pop_front() {
                    Some(In::Bytes(bytes)) => {
                        let slice = driver.read_slice();
                        let n = bytes.len().min(slice.len());
                        slice[..n].copy_from_slice(&bytes[..n]);
                        if n < bytes.len() {
                            self.reads.push_front(In::Bytes(bytes[n..].to_vec()));
                        }
                        driver.filled(n);
                    }
                    Some(In::Eof) => driver.filled(0),
                    Some(In::Fail) => return End::IoError(driver.io_error()),
                    Some(In::Blocked) | None => driver.read_blocked(),
                },
                Action::Timer => {
                    if let Some(at) = driver.timer(self.now) {
                        deadline = Some(at);
                        driver.timer_blocked();
                    }
                }
                Action::Shutdown { .. } => {
                    self.unflushed = 0; // dropped with the transport
                    self.shut = true;
                    driver.shut_down();
                }
            }
        }
        panic!("the driver did not settle in 1000 steps");
    }

    fn take_written(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.written)
    }
}

fn server(config: Config) -> Driver {
    Driver::new(Connection::with_entropy(
        Role::Server,
        config,
        |d: &mut [u8]| d.fill(0),
    ))
}

fn client(config: Config) -> Driver {
    Driver::new(Connection::with_entropy(
        Role::Client,
        config,
        |d: &mut [u8]| d.fill(0),
    ))
}

/// A client frame masked with a zero key.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut frame = vec![first, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

#[test]
fn a_message_is_delivered_and_the_buffer_released_while_waiting() {
    let mut driver = server(Config::default());
    let mut t = Script::new([In::Bytes(masked(0x81, b"hello"))]);
    assert_eq!(
        t.run(&mut driver, Op::RecvMessage, false),
        End::Event(Event::Message(Message::text("hello")))
    );
    assert_eq!(t.run(&mut driver, Op::RecvMessage, false), End::Wait);
    assert_eq!(
        driver.read.buf.capacity(),
        0,
        "an idle connection holds no buffer"
    );
}

#[test]
fn a_ping_is_answered_before_it_is_delivered() {
    let mut driver = server(Config::default());
    let mut t = Script::new([In::Bytes(masked(0x89, b"p"))]);
    assert_eq!(
        t.run(&mut driver, Op::Recv, false),
        End::Event(Event::Ping(bytes::Bytes::from_static(b"p")))
    );
    assert_eq!(t.take_written(), [0x8A, 0x01, b'p']);
}

#[test]
fn recv_message_skips_control_events_and_ends_after_the_close() {
    let mut driver = server(Config::default());
    let mut input = masked(0x89, b"");
    input.extend(masked(0x88, &[0x03, 0xE8]));
    let mut t = Script::new([In::Bytes(input)]);
    assert_eq!(
        t.run(&mut driver, Op::RecvMessage, false),
        End::Done(Ok(()))
    );
    assert_eq!(
        driver.close_frame().map(|f| f.code),
        Some(CloseCode::NORMAL)
    );
    assert!(t.shut, "the server shuts down after the close handshake");
    assert_eq!(t.take_written(), [0x8A, 0x00, 0x88, 0x02, 0x03, 0xE8]);
    assert_eq!(
        t.run(&mut driver, Op::RecvMessage, false),
        End::Done(Ok(()))
    );
}

#[test]
fn a_protocol_error_is_reported_once_after_the_close_is_flushed() {
    let mut driver = server(Config::default());
    // Unmasked from a client.
    let mut t = Script::new([In::Bytes(vec![0x81, 0x01, b'a'])]);
    assert_eq!(
        t.run(&mut driver, Op::Recv, false),
        End::Done(Err(ProtocolError::UnmaskedFrameFromClient))
    );
    let written = t.take_written();
    assert_eq!(
        (written[0], &written[2..4]),
        (0x88, &[0x03, 0xEA][..]),
        "Close 1002"
    );
    assert!(t.shut);
    assert_eq!(t.run(&mut driver, Op::Recv, false), End::Done(Ok(())));
}

#[test]
fn end_of_stream_without_a_close_is_1006() {
    let mut driver = server(Config::default());
    let mut t = Script::new([In::Eof]);
    assert!(matches!(
        t.run(&mut driver, Op::Recv, false),
        End::Event(Event::Close(frame)) if frame.code == CloseCode::ABNORMAL
    ));
    assert_eq!(t.run(&mut driver, Op::Recv, false), End::Done(Ok(())));
}

#[test]
fn a_transport_failure_is_reported_once_and_closes_with_1006() {
    let mut driver = server(Config::default());
    let mut t = Script::new([In::Fail]);
    assert_eq!(t.run(&mut driver, Op::Recv, false), End::IoError(true));
    assert_eq!(
        driver.close_frame().map(|f| f.code),
        Some(CloseCode::ABNORMAL)
    );
    assert_eq!(t.run(&mut driver, Op::Recv, false), End::Done(Ok(())));
}

#[test]
fn flush_answers_pings_and_keeps_the_message_that_follows() {
    let mut driver = server(Config::default());
    let mut input = masked(0x89, b"");
    input.extend(masked(0x82, b"data"));
    input.extend(masked(0x82, b"more"));
    let mut t = Script::new([In::Bytes(input)]);
    driver.send(Message::text("out")).unwrap();
    assert_eq!(t.run(&mut driver, Op::Flush, false), End::Done(Ok(())));
    assert_eq!(t.take_written(), [0x81, 0x03, b'o', b'u', b't', 0x8A, 0x00]);
    // Reading stopped behind the first message; the rest is parsed by the
    // receive calls.
    assert_eq!(
        t.run(&mut driver, Op::Recv, false),
        End::Event(Event::Ping(bytes::Bytes::new()))
    );
    assert_eq!(
        t.run(&mut driver, Op::Recv, false),
        End::Event(Event::Message(Message::binary(&b"data"[..])))
    );
    assert_eq!(
        t.run(&mut driver, Op::Recv, false),
        End::Event(Event::Message(Message::binary(&b"more"[..])))
    );
}

#[test]
fn a_read_that_would_block_ends_a_flush_without_waiting() {
    let mut driver = server(Config::default());
    let mut t = Script::new([In::Blocked, In::Bytes(masked(0x81, b"late"))]);
    driver.send(Message::text("x")).unwrap();
    assert_eq!(t.run(&mut driver, Op::Flush, false), End::Done(Ok(())));
    assert_eq!(
        t.run(&mut driver, Op::RecvMessage, false),
        End::Event(Event::Message(Message::text("late")))
    );
}

#[test]
fn a_flush_after_a_receive_does_not_read() {
    let mut driver = server(Config::default());
    let mut t = Script::new([In::Bytes(masked(0x81, b"a")), In::Bytes(masked(0x81, b"b"))]);
    assert!(matches!(
        t.run(&mut driver, Op::RecvMessage, false),
        End::Event(_)
    ));
    driver.send(Message::text("a")).unwrap();
    assert_eq!(t.run(&mut driver, Op::Flush, false), End::Done(Ok(())));
    assert_eq!(t.reads.len(), 1, "the echo loop's next receive reads");
}

#[test]
fn close_keeps_data_that_arrives_before_the_peers_close() {
    let mut driver = client(Config::default());
    let mut input = vec![0x81, 0x02, b'h', b'i'];
    input.extend([0x88, 0x02, 0x03, 0xE8]);
    let mut t = Script::new([In::Bytes(input), In::Eof]);
    driver.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(t.run(&mut driver, Op::Close, false), End::Done(Ok(())));
    assert_eq!(
        driver.close_frame().map(|f| f.code),
        Some(CloseCode::NORMAL)
    );
    assert!(t.shut);
    assert_eq!(
        t.run(&mut driver, Op::RecvMessage, false),
        End::Event(Event::Message(Message::text("hi")))
    );
    assert_eq!(
        t.run(&mut driver, Op::RecvMessage, false),
        End::Done(Ok(()))
    );
}

#[test]
fn the_close_timeout_gives_up_on_a_silent_peer() {
    let mut driver = client(Config::default().with_close_timeout(Some(Duration::from_secs(2))));
    let mut t = Script::new([]);
    driver.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(t.run(&mut driver, Op::Close, true), End::Done(Ok(())));
    assert_eq!(t.now, Duration::from_secs(2));
    assert_eq!(
        driver.close_frame().map(|f| f.code),
        Some(CloseCode::ABNORMAL)
    );
    assert!(t.shut);
}

#[test]
fn a_peer_that_stops_reading_cannot_hold_a_failed_connection_open() {
    let mut driver = server(Config::default().with_close_timeout(Some(Duration::from_secs(1))));
    let mut t = Script::new([In::Bytes(vec![0x81, 0x01, b'a'])]);
    t.write_limit = 0;
    assert_eq!(
        t.run(&mut driver, Op::Recv, false),
        End::Wait,
        "flushing the Close"
    );
    assert_eq!(
        t.run(&mut driver, Op::Recv, true),
        End::Done(Err(ProtocolError::UnmaskedFrameFromClient))
    );
    assert_eq!(t.now, Duration::from_secs(1));
}

#[test]
fn reserve_writes_until_one_more_message_fits() {
    let mut driver = server(Config::default().with_max_write_buffer(4));
    let mut t = Script::new([]);
    driver.send(Message::text("12345")).unwrap();
    assert!(driver.connection().is_write_buffer_full());
    t.write_limit = 3;
    assert_eq!(t.run(&mut driver, Op::Reserve, false), End::Wait);
    t.write_limit = usize::MAX;
    assert_eq!(t.run(&mut driver, Op::Reserve, false), End::Done(Ok(())));
    driver.send(Message::text("x")).unwrap();
}

#[test]
fn a_huge_keepalive_interval_asks_for_a_bounded_wait() {
    let config = Config::default().with_keepalive(Some(Duration::MAX), None);
    let mut driver = server(config);
    assert!(matches!(driver.poll(Op::Recv), Action::Timer));
    assert_eq!(
        driver.timer(Duration::from_secs(5)),
        Some(Duration::from_secs(5) + MAX_WAIT)
    );
}

#[test]
fn a_split_reader_reads_outside_the_driver() {
    let mut driver = server(Config::default());
    assert!(matches!(driver.poll(Op::Recv), Action::Read { wait: true }));
    let mut buf = driver.take_read_buf();
    assert!(buf.room >= READ_SIZE / 4);
    // The writer goes on meanwhile.
    driver.send(Message::text("w")).unwrap();
    assert!(matches!(driver.poll(Op::WriteOut), Action::Write { .. }));
    let frame = masked(0x81, b"r");
    buf.room_mut()[..frame.len()].copy_from_slice(&frame);
    let n = frame.len();
    driver.give_read_buf(buf, Some(n));
    // A data message queues no reply: it is delivered at once, and the
    // writer's message goes out with the writer's next write.
    assert_eq!(driver.poll(Op::RecvMessage), Action::Deliver);
    assert_eq!(
        driver.take_event(),
        Some(Event::Message(Message::text("r")))
    );
    assert!(matches!(driver.poll(Op::WriteOut), Action::Write { .. }));
}

#[test]
fn popped_bytes_count_as_unwritten_until_reported() {
    let mut driver = server(Config::default().with_close_timeout(Some(Duration::from_secs(3))));
    driver.send(Message::binary(vec![1u8; 10_000])).unwrap();
    // A split writer takes the chunk and is stuck writing it.
    let chunk = driver.pop_chunk().expect("a chunk");
    assert!(!chunk.is_empty());
    // The peer closes, then stops reading.
    let mut t = Script::new([In::Bytes(masked(0x88, &[0x03, 0xE8]))]);
    t.write_limit = 0;
    assert_eq!(
        t.run(&mut driver, Op::RecvMessage, false),
        End::Wait,
        "no shutdown while popped bytes are unwritten"
    );
    assert!(!t.shut);
    // The close timeout gives up on the peer.
    assert_eq!(t.run(&mut driver, Op::RecvMessage, true), End::Done(Ok(())));
    assert!(t.shut);
    assert_eq!(t.now, Duration::from_secs(3));
}

#[test]
fn a_read_room_lent_out_rejoins_the_buffer_without_a_copy() {
    let mut driver = server(Config::default());
    let frames = [masked(0x81, b"one"), masked(0x81, b"two")].concat();
    // The first read brings a frame and a half.
    assert!(matches!(driver.poll(Op::RecvMessage), Action::Read { .. }));
    let (mut room, len) = driver.take_read_room();
    assert!(len >= frames.len() && room.is_empty() && room.capacity() >= len);
    let start = room.as_ptr();
    room.extend_from_slice(&frames[..12]);
    driver.give_read_room(room, Some(12));
    assert_eq!(driver.poll(Op::RecvMessage), Action::Deliver);
    assert_eq!(
        driver.take_event(),
        Some(Event::Message(Message::text("one")))
    );
    // The rest lands right after the half frame kept, in the same
    // allocation: the room came from it.
    assert!(matches!(driver.poll(Op::RecvMessage), Action::Read { .. }));
    let (mut room, _) = driver.take_read_room();
    assert_eq!(room.as_ptr(), start.wrapping_add(12));
    room.extend_from_slice(&frames[12..]);
    driver.give_read_room(room, Some(frames.len() - 12));
    assert_eq!(driver.poll(Op::RecvMessage), Action::Deliver);
    assert_eq!(
        driver.take_event(),
        Some(Event::Message(Message::text("two")))
    );
}

#[test]
fn bytes_read_elsewhere_are_parsed_and_the_buffer_counts_what_is_left() {
    let mut driver = server(Config::default());
    let frames = [masked(0x81, b"one"), masked(0x81, b"two")].concat();
    assert!(matches!(driver.poll(Op::RecvMessage), Action::Read { .. }));
    assert_eq!(driver.buffered(), 0, "nothing read yet");
    // A frame and a half, from a buffer the adapter owns.
    driver.filled_from(&frames[..12]);
    assert_eq!(driver.poll(Op::RecvMessage), Action::Deliver);
    assert_eq!(
        driver.take_event(),
        Some(Event::Message(Message::text("one")))
    );
    assert!(matches!(driver.poll(Op::RecvMessage), Action::Read { .. }));
    assert_eq!(driver.buffered(), 3, "the half frame is kept");
    driver.filled_from(&frames[12..]);
    assert_eq!(driver.poll(Op::RecvMessage), Action::Deliver);
    assert_eq!(
        driver.take_event(),
        Some(Event::Message(Message::text("two")))
    );
    assert!(matches!(driver.poll(Op::RecvMessage), Action::Read { .. }));
    assert_eq!(driver.buffered(), 0);
    // Nothing: the end of the stream, a 1006 for the application.
    driver.filled_from(&[]);
    assert!(matches!(
        driver.poll(Op::RecvMessage),
        Action::Shutdown { .. } | Action::Done
    ));
}

#[test]
fn a_blocked_flush_holds_up_a_flush_but_not_a_delivery() {
    let mut driver = server(Config::default());
    let mut t = Script::new([In::Bytes(masked(0x89, b"p"))]);
    t.flush_blocked = true;
    assert_eq!(
        t.run(&mut driver, Op::Recv, false),
        End::Event(Event::Ping(bytes::Bytes::from_static(b"p"))),
        "the pong is written; its flush is the next operation's"
    );
    assert_eq!(t.unflushed, 3);
    assert_eq!(t.run(&mut driver, Op::WriteOut, false), End::Wait);
    t.flush_blocked = false;
    assert_eq!(t.run(&mut driver, Op::WriteOut, false), End::Done(Ok(())));
    assert_eq!((t.unflushed, t.flushes), (0, 1));
    assert_eq!(t.run(&mut driver, Op::WriteOut, false), End::Done(Ok(())));
    assert_eq!(t.flushes, 1, "nothing written: nothing to flush");
}

#[test]
fn pongs_written_inside_a_receive_are_flushed_before_its_message() {
    let mut driver = server(Config::default());
    let mut bytes = masked(0x89, b"p");
    bytes.extend(masked(0x81, b"hi"));
    let mut t = Script::new([In::Bytes(bytes)]);
    assert_eq!(
        t.run(&mut driver, Op::RecvMessage, false),
        End::Event(Event::Message(Message::text("hi")))
    );
    assert_eq!((t.take_written(), t.flushes), (vec![0x8A, 0x01, b'p'], 1));
}
