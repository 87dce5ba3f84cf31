//! The run-loop scenarios, once, against the [`Driver`] over a scripted
//! in-memory transport: partial reads and writes, end of stream and resets
//! at every stage, timers on a virtual clock, and written bytes held back
//! until flushed (as a TLS or buffered stream does). The adapters only add a short
//! smoke test over real sockets.

use std::{collections::VecDeque, time::Duration};

use bytes::{Buf, Bytes};
use ws_proto::internals::OpCode;
use ws_proto::{
    AcceptOptions, Action, ClientRequest, CloseCode, Config, Connection, Driver, Event,
    HandshakeError, Message, Op, Options, ProtocolError, Role, SendError, ServerRequest, State,
};

use crate::util::{close_payload, fixed, frame_to, parse_frames, text_of_len};

const SECOND: Duration = Duration::from_secs(1);
/// What an end's transport holds back until flushed, at most.
const HELD_MAX: usize = 8 * 1024;

/// One direction of an in-memory transport.
#[derive(Debug, Default)]
struct Pipe {
    bytes: VecDeque<u8>,
    /// The writer shut down: the reader sees end of stream once drained.
    shut: bool,
    /// The next read (or write) fails, as after a reset.
    reset: bool,
}

/// One end: what it reads from, what it writes to, and its limits.
#[derive(Debug)]
struct End {
    /// Most bytes one read returns.
    read_chunk: usize,
    /// Most bytes one write takes.
    write_chunk: usize,
    /// Writes block while the outgoing pipe holds this many bytes.
    write_window: usize,
    /// Bytes written and not yet flushed: the peer sees them only after a
    /// flush, as with a TLS or buffered stream.
    held: Vec<u8>,
    shut_down: bool,
}

impl Default for End {
    fn default() -> Self {
        Self {
            read_chunk: usize::MAX,
            write_chunk: usize::MAX,
            write_window: usize::MAX,
            held: Vec::new(),
            shut_down: false,
        }
    }
}

/// How an operation ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    Event(Event),
    Done(Result<(), ProtocolError>),
    Wait,
    /// An I/O error, and whether the driver said to report it.
    Io(bool),
}

/// The transport and the clock, with the reads and writes it performed.
#[derive(Debug, Default)]
struct Net {
    /// Client to server, server to client.
    up: Pipe,
    down: Pipe,
    client: End,
    server: End,
    now: Duration,
    reads: usize,
}

impl Net {
    fn pipes(&mut self, role: Role) -> (&mut Pipe, &mut Pipe, &mut End) {
        match role {
            Role::Client => (&mut self.down, &mut self.up, &mut self.client),
            Role::Server => (&mut self.up, &mut self.down, &mut self.server),
        }
    }

    /// Runs `op` on `driver` (playing `role`) until it delivers, ends or
    /// would wait. With `sleep`, a wait on the timer advances the clock.
    fn run(&mut self, role: Role, driver: &mut Driver, op: Op, sleep: bool) -> Outcome {
        let mut deadline = None;
        for _ in 0..100_000 {
            match driver.poll(op) {
                Action::Deliver => return Outcome::Event(driver.take_event().expect("delivered")),
                Action::Done => return Outcome::Done(driver.take_error().map_or(Ok(()), Err)),
                Action::Wait => match deadline.take() {
                    Some(at) if sleep => {
                        self.now = self.now.max(at);
                        driver.timer_fired(at);
                    }
                    _ => return Outcome::Wait,
                },
                Action::Write { .. } => {
                    let (_, output, end) = self.pipes(role);
                    if output.reset {
                        return Outcome::Io(driver.io_error());
                    }
                    // A buffering stream pushes its buffer out when full.
                    if end.held.len() >= HELD_MAX {
                        output.bytes.extend(end.held.drain(..));
                    }
                    let room = end.write_window.saturating_sub(output.bytes.len());
                    if room == 0 {
                        driver.write_blocked();
                        continue;
                    }
                    let out = driver.outgoing();
                    let n = out.chunk().len().min(room).min(end.write_chunk);
                    end.held.extend_from_slice(&out.chunk()[..n]);
                    out.advance(n);
                    driver.wrote(n);
                }
                Action::Flush => {
                    let (_, output, end) = self.pipes(role);
                    output.bytes.extend(end.held.drain(..));
                    driver.flushed();
                }
                Action::Read { .. } => {
                    self.reads += 1;
                    let (input, _, end) = self.pipes(role);
                    if input.reset {
                        return Outcome::Io(driver.io_error());
                    }
                    if input.bytes.is_empty() {
                        if input.shut {
                            driver.filled(0);
                        } else {
                            driver.read_blocked();
                        }
                        continue;
                    }
                    let chunk = end.read_chunk;
                    let slice = driver.read_slice();
                    let n = slice.len().min(input.bytes.len()).min(chunk);
                    for (dest, byte) in slice.iter_mut().zip(input.bytes.drain(..n)) {
                        *dest = byte;
                    }
                    driver.filled(n);
                }
                Action::Timer => {
                    if let Some(at) = driver.timer(self.now) {
                        deadline = Some(at);
                        driver.timer_blocked();
                    }
                }
                Action::Shutdown { discard } => {
                    let (_, output, end) = self.pipes(role);
                    // A shutdown flushes first, unless told to drop.
                    let held = end.held.drain(..);
                    if !discard {
                        output.bytes.extend(held);
                    }
                    output.shut = true;
                    end.shut_down = true;
                    driver.shut_down();
                }
            }
        }
        panic!("{role:?} did not settle");
    }

    /// Bytes written towards `role` and not read yet.
    fn pending_for(&mut self, role: Role) -> Vec<u8> {
        self.pipes(role).0.bytes.drain(..).collect()
    }

    /// Writes raw bytes towards `role`.
    fn inject(&mut self, role: Role, bytes: &[u8]) {
        self.pipes(role).0.bytes.extend(bytes);
    }
}

fn driver(role: Role, config: Config) -> Driver {
    Driver::new(Connection::with_entropy(role, config, fixed))
}

fn pair() -> (Driver, Driver, Net) {
    pair_with(Config::default())
}

fn pair_with(config: Config) -> (Driver, Driver, Net) {
    (
        driver(Role::Client, config.clone()),
        driver(Role::Server, config),
        Net::default(),
    )
}

fn message(outcome: Outcome) -> Message {
    match outcome {
        Outcome::Event(Event::Message(message)) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn close_code(driver: &Driver) -> Option<u16> {
    driver.close_frame().map(|frame| frame.code.0)
}

// ----- Data -----

#[test]
fn messages_survive_every_read_and_write_chunking() {
    for chunk in [1, 2, 3, 7, 64, 4096, usize::MAX] {
        let (mut client, mut server, mut net) = pair();
        net.client.write_chunk = chunk;
        net.server.read_chunk = chunk;
        let text = text_of_len(3000, chunk as u64);
        client.send(Message::text(text.clone())).unwrap();
        client.send(Message::binary(vec![9u8; 70_000])).unwrap();
        assert_eq!(
            net.run(Role::Client, &mut client, Op::WriteOut, false),
            Outcome::Done(Ok(()))
        );
        let first = message(net.run(Role::Server, &mut server, Op::RecvMessage, false));
        assert_eq!(first, Message::text(text), "chunk {chunk}");
        let second = message(net.run(Role::Server, &mut server, Op::RecvMessage, false));
        assert_eq!(second.len(), 70_000, "chunk {chunk}");
    }
}

/// The Driver runs a permessage-deflate connection unchanged: compressed
/// messages survive every read and write chunking both ways.
#[cfg(feature = "deflate")]
#[test]
fn deflate_messages_survive_every_read_and_write_chunking() {
    use ws_proto::{DeflateConfig, DeflateParams, Negotiated};
    let deflate = |role| {
        let params = DeflateParams::new(&DeflateConfig::default(), 12, 12, true, true);
        let negotiated =
            Negotiated::new(None, vec!["permessage-deflate".into()]).with_deflate(params);
        Driver::new(
            Connection::with_entropy(role, Config::default(), fixed).with_negotiated(negotiated),
        )
    };
    for chunk in [1, 3, 64, 4096, usize::MAX] {
        let (mut client, mut server, mut net) =
            (deflate(Role::Client), deflate(Role::Server), Net::default());
        net.client.write_chunk = chunk;
        net.server.read_chunk = chunk;
        net.server.write_chunk = chunk;
        net.client.read_chunk = chunk;
        let text = text_of_len(3000, chunk as u64);
        for _ in 0..3 {
            client.send(Message::text(text.clone())).unwrap();
        }
        client.send(Message::binary(vec![9u8; 70_000])).unwrap();
        assert_eq!(
            net.run(Role::Client, &mut client, Op::WriteOut, false),
            Outcome::Done(Ok(()))
        );
        for _ in 0..3 {
            let got = message(net.run(Role::Server, &mut server, Op::RecvMessage, false));
            assert_eq!(got, Message::text(text.clone()), "chunk {chunk}");
            server.send(got).unwrap();
        }
        let big = message(net.run(Role::Server, &mut server, Op::RecvMessage, false));
        assert_eq!(big, Message::binary(vec![9u8; 70_000]), "chunk {chunk}");
        assert_eq!(
            net.run(Role::Server, &mut server, Op::WriteOut, false),
            Outcome::Done(Ok(()))
        );
        for _ in 0..3 {
            let echo = message(net.run(Role::Client, &mut client, Op::RecvMessage, false));
            assert_eq!(echo, Message::text(text.clone()), "chunk {chunk}");
        }
    }
}

#[test]
fn an_echo_round_trip_both_ways() {
    let (mut client, mut server, mut net) = pair();
    client.send(Message::text("ping?")).unwrap();
    assert_eq!(
        net.run(Role::Client, &mut client, Op::Flush, false),
        Outcome::Done(Ok(()))
    );
    let got = message(net.run(Role::Server, &mut server, Op::RecvMessage, false));
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Reserve, false),
        Outcome::Done(Ok(()))
    );
    server.send(got).unwrap();
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Flush, false),
        Outcome::Done(Ok(()))
    );
    assert_eq!(
        message(net.run(Role::Client, &mut client, Op::RecvMessage, false)),
        Message::text("ping?")
    );
}

#[test]
fn a_large_frame_is_read_in_a_few_reads() {
    let config = Config::default();
    let (mut client, mut server, mut net) = pair_with(config);
    client.send(Message::binary(vec![1u8; 1 << 20])).unwrap();
    assert_eq!(
        net.run(Role::Client, &mut client, Op::WriteOut, false),
        Outcome::Done(Ok(()))
    );
    net.reads = 0;
    let got = message(net.run(Role::Server, &mut server, Op::RecvMessage, false));
    assert_eq!(got.len(), 1 << 20);
    assert!(net.reads <= 12, "read-ahead: {} reads", net.reads);
}

#[test]
fn an_idle_connection_holds_no_read_buffer() {
    let (mut client, mut server, mut net) = pair();
    client.send(Message::text("x")).unwrap();
    let _ = net.run(Role::Client, &mut client, Op::WriteOut, false);
    let _ = net.run(Role::Server, &mut server, Op::RecvMessage, false);
    assert_eq!(
        net.run(Role::Server, &mut server, Op::RecvMessage, false),
        Outcome::Wait
    );
    let (_, buf) = server.into_parts();
    assert_eq!(buf.capacity(), 0);
}

// ----- Control frames -----

#[test]
fn a_ping_is_answered_while_receiving_and_surfaced() {
    let (_, mut server, mut net) = pair();
    net.inject(Role::Server, &frame_to(Role::Server, true, 0x9, b"hi"));
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Recv, false),
        Outcome::Event(Event::Ping(Bytes::from_static(b"hi")))
    );
    let frames = parse_frames(&net.pending_for(Role::Client));
    assert_eq!(
        (frames[0].header.opcode, &frames[0].payload[..]),
        (OpCode::Pong, &b"hi"[..])
    );
}

#[test]
fn text_split_across_reads_is_checked_once_and_stays_checked() {
    // Through the driver, bytes already checked cannot be changed (it lends
    // only its spare room), so a text message read in many pieces is built
    // from what was checked as it arrived, and invalid text still fails.
    for (text, valid) in [
        ("héllo wörld ✓".repeat(500), true),
        ("x".repeat(7000), true),
    ] {
        let (mut client, mut server, mut net) = pair();
        net.server.read_chunk = 7;
        client.send(Message::text(text.clone())).unwrap();
        let _ = net.run(Role::Client, &mut client, Op::WriteOut, false);
        let got = message(net.run(Role::Server, &mut server, Op::RecvMessage, false));
        assert_eq!(got, Message::text(text), "{valid}");
    }
    let (_, mut server, mut net) = pair();
    net.server.read_chunk = 3;
    let mut payload = "é".repeat(50).into_bytes();
    payload[61] = 0xFF;
    net.inject(Role::Server, &frame_to(Role::Server, true, 0x1, &payload));
    match net.run(Role::Server, &mut server, Op::RecvMessage, false) {
        Outcome::Done(Err(error)) => assert_eq!(error.close_code().0, 1007),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_burst_of_pings_gets_every_pong_the_transport_takes() {
    let (_, mut server, mut net) = pair();
    for i in 0..10u8 {
        net.inject(Role::Server, &frame_to(Role::Server, true, 0x9, &[i]));
    }
    net.inject(Role::Server, &frame_to(Role::Server, true, 0x1, b"end"));
    assert_eq!(
        message(net.run(Role::Server, &mut server, Op::RecvMessage, false)),
        Message::text("end")
    );
    let frames = parse_frames(&net.pending_for(Role::Client));
    let pongs: Vec<u8> = frames.iter().map(|f| f.payload[0]).collect();
    assert_eq!(pongs, (0..10).collect::<Vec<u8>>());
}

#[test]
fn pings_are_answered_while_the_application_only_sends() {
    let (_, mut server, mut net) = pair();
    for _ in 0..3 {
        net.inject(Role::Server, &frame_to(Role::Server, true, 0x9, b"p"));
        server.send(Message::text("data")).unwrap();
        assert_eq!(
            net.run(Role::Server, &mut server, Op::Flush, false),
            Outcome::Done(Ok(()))
        );
    }
    let frames = parse_frames(&net.pending_for(Role::Client));
    let pongs = frames
        .iter()
        .filter(|f| f.header.opcode == OpCode::Pong)
        .count();
    assert_eq!(pongs, 3);
}

#[test]
fn a_ping_flood_while_only_sending_keeps_at_most_one_control_event() {
    let (_, mut server, mut net) = pair();
    for _ in 0..1000 {
        net.inject(Role::Server, &frame_to(Role::Server, true, 0x9, b"flood"));
    }
    for _ in 0..50 {
        server.send(Message::text("x")).unwrap();
        assert_eq!(
            net.run(Role::Server, &mut server, Op::Flush, false),
            Outcome::Done(Ok(()))
        );
    }
    // A receive gets one ping, then the rest of the flood as it is parsed.
    assert!(matches!(
        net.run(Role::Server, &mut server, Op::Recv, false),
        Outcome::Event(Event::Ping(_))
    ));
}

#[test]
fn a_close_is_echoed_while_the_application_only_sends() {
    let (_, mut server, mut net) = pair();
    net.inject(
        Role::Server,
        &frame_to(Role::Server, true, 0x8, &close_payload(1000, b"")),
    );
    server.send(Message::text("late")).unwrap();
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Flush, false),
        Outcome::Done(Ok(()))
    );
    let frames = parse_frames(&net.pending_for(Role::Client));
    assert_eq!(frames.last().and_then(|f| f.close_code()), Some(1000));
    // The next receive finishes: the server shuts the transport down.
    assert_eq!(
        net.run(Role::Server, &mut server, Op::RecvMessage, false),
        Outcome::Done(Ok(()))
    );
    assert!(net.server.shut_down);
    assert_eq!(close_code(&server), Some(1000));
}

#[test]
fn recv_delivers_the_close_then_ends() {
    let (_, mut server, mut net) = pair();
    net.inject(
        Role::Server,
        &frame_to(Role::Server, true, 0x8, &close_payload(4000, b"bye")),
    );
    match net.run(Role::Server, &mut server, Op::Recv, false) {
        Outcome::Event(Event::Close(frame)) => assert_eq!(frame.code, CloseCode(4000)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Recv, false),
        Outcome::Done(Ok(()))
    );
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Recv, false),
        Outcome::Done(Ok(()))
    );
}

// ----- The close handshake -----

#[test]
fn a_client_initiated_close_completes_on_both_sides() {
    let (mut client, mut server, mut net) = pair();
    client.close(CloseCode::NORMAL, "done").unwrap();
    assert_eq!(
        net.run(Role::Client, &mut client, Op::Close, false),
        Outcome::Wait
    );
    assert_eq!(
        net.run(Role::Server, &mut server, Op::RecvMessage, false),
        Outcome::Done(Ok(()))
    );
    assert!(
        net.server.shut_down,
        "the server closes the transport first"
    );
    assert_eq!(
        net.run(Role::Client, &mut client, Op::Close, false),
        Outcome::Done(Ok(()))
    );
    assert_eq!(
        (close_code(&client), close_code(&server)),
        (Some(1000), Some(1000))
    );
    assert!(client.is_done() && server.is_done());
}

#[test]
fn a_server_initiated_close_completes_on_both_sides() {
    let (mut client, mut server, mut net) = pair();
    server.close(CloseCode(4001), "").unwrap();
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Close, false),
        Outcome::Wait
    );
    // The client echoes and waits for the server to end the stream.
    assert_eq!(
        net.run(Role::Client, &mut client, Op::RecvMessage, false),
        Outcome::Wait
    );
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Close, false),
        Outcome::Done(Ok(()))
    );
    assert_eq!(
        net.run(Role::Client, &mut client, Op::RecvMessage, false),
        Outcome::Done(Ok(()))
    );
    assert_eq!(
        (close_code(&client), close_code(&server)),
        (Some(4001), Some(4001))
    );
}

#[test]
fn data_sent_before_the_peers_close_is_not_lost() {
    let (mut client, mut server, mut net) = pair();
    for i in 0..3 {
        server.send(Message::text(format!("m{i}"))).unwrap();
    }
    let _ = net.run(Role::Server, &mut server, Op::WriteOut, false);
    client.close(CloseCode::NORMAL, "").unwrap();
    let _ = net.run(Role::Client, &mut client, Op::Close, false);
    let _ = net.run(Role::Server, &mut server, Op::RecvMessage, false);
    assert_eq!(
        net.run(Role::Client, &mut client, Op::Close, false),
        Outcome::Done(Ok(()))
    );
    for i in 0..3 {
        assert_eq!(
            message(net.run(Role::Client, &mut client, Op::RecvMessage, false)),
            Message::text(format!("m{i}"))
        );
    }
    assert_eq!(
        net.run(Role::Client, &mut client, Op::RecvMessage, false),
        Outcome::Done(Ok(()))
    );
}

#[test]
fn closing_keeps_at_most_a_message_limit_of_data() {
    let config = Config::default().with_max_message_size(1000);
    let (mut client, mut server, mut net) = pair_with(config);
    for _ in 0..5 {
        server.send(Message::binary(vec![0u8; 600])).unwrap();
    }
    let _ = net.run(Role::Server, &mut server, Op::WriteOut, false);
    client.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(
        net.run(Role::Client, &mut client, Op::Close, false),
        Outcome::Done(Ok(()))
    );
    assert!(
        !client.is_done(),
        "ended early: the receive calls finish the handshake"
    );
    let mut received = 0;
    while let Outcome::Event(Event::Message(_)) =
        net.run(Role::Client, &mut client, Op::RecvMessage, false)
    {
        received += 1;
    }
    assert_eq!(received, 5);
}

#[test]
fn close_is_idempotent_and_refuses_nothing_after_the_end() {
    let (mut client, _, _) = pair();
    client.close(CloseCode::NORMAL, "").unwrap();
    client.close(CloseCode::GOING_AWAY, "again").unwrap();
    assert!(client.send(Message::text("no")).is_err());
}

#[test]
fn the_close_timeout_ends_a_close_the_peer_never_answers() {
    let config = Config::default().with_close_timeout(Some(3 * SECOND));
    let (mut client, _, mut net) = pair_with(config);
    client.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(
        net.run(Role::Client, &mut client, Op::Close, true),
        Outcome::Done(Ok(()))
    );
    assert_eq!(net.now, 3 * SECOND);
    assert_eq!(close_code(&client), Some(1006));
    assert!(net.client.shut_down);
}

#[test]
fn the_close_timeout_bounds_a_client_waiting_for_the_server_to_end_the_stream() {
    let config = Config::default().with_close_timeout(Some(2 * SECOND));
    let (mut client, _, mut net) = pair_with(config);
    net.inject(
        Role::Client,
        &frame_to(Role::Client, true, 0x8, &close_payload(1000, b"")),
    );
    assert_eq!(
        net.run(Role::Client, &mut client, Op::RecvMessage, true),
        Outcome::Done(Ok(()))
    );
    assert_eq!(net.now, 2 * SECOND);
    assert_eq!(
        close_code(&client),
        Some(1000),
        "the handshake itself completed"
    );
}

#[test]
fn no_close_timeout_and_a_huge_one_never_overflow_a_clock() {
    for timeout in [None, Some(Duration::MAX)] {
        let config = Config::default().with_close_timeout(timeout);
        let (mut client, _, mut net) = pair_with(config);
        client.close(CloseCode::NORMAL, "").unwrap();
        net.now = Duration::from_secs(1_000_000);
        loop {
            match client.poll(Op::Close) {
                Action::Timer => match client.timer(net.now) {
                    Some(at) => {
                        assert!(at - net.now <= Duration::from_secs(86_400), "{timeout:?}");
                        break;
                    }
                    None => continue,
                },
                Action::Write { .. } => {
                    let out = client.outgoing();
                    let n = out.remaining();
                    out.advance(n);
                    client.wrote(n);
                }
                Action::Flush => client.flushed(),
                Action::Read { .. } => client.read_blocked(),
                Action::Wait => {
                    assert!(timeout.is_none());
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

// ----- Failures -----

#[test]
fn protocol_errors_send_their_close_code_and_are_reported_once() {
    let cases: [(Vec<u8>, u16); 4] = [
        (vec![0x81, 0x01, b'a'], 1002), // unmasked from a client
        (frame_to(Role::Server, true, 0x1, &[0xFF]), 1007),
        (frame_to(Role::Server, true, 0x3, b""), 1002), // reserved opcode
        (frame_to(Role::Server, false, 0x9, b""), 1002), // fragmented ping
    ];
    for (input, code) in cases {
        let (_, mut server, mut net) = pair();
        net.inject(Role::Server, &input);
        match net.run(Role::Server, &mut server, Op::RecvMessage, false) {
            Outcome::Done(Err(error)) => assert_eq!(error.close_code().0, code),
            other => panic!("{input:?}: {other:?}"),
        }
        let frames = parse_frames(&net.pending_for(Role::Client));
        assert_eq!(frames.last().and_then(|f| f.close_code()), Some(code));
        assert!(net.server.shut_down);
        assert_eq!(
            net.run(Role::Server, &mut server, Op::RecvMessage, false),
            Outcome::Done(Ok(()))
        );
    }
}

#[test]
fn a_message_over_the_limit_is_1009() {
    let config = Config::default().with_max_message_size(100);
    let (_, mut server, mut net) = pair_with(config);
    net.inject(
        Role::Server,
        &frame_to(Role::Server, true, 0x2, &[0u8; 101]),
    );
    match net.run(Role::Server, &mut server, Op::Recv, false) {
        Outcome::Done(Err(error)) => assert_eq!(error.close_code().0, 1009),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_protocol_error_found_while_sending_is_reported_by_the_next_receive() {
    let (_, mut server, mut net) = pair();
    net.inject(Role::Server, &[0x81, 0x01, b'a']);
    server.send(Message::text("x")).unwrap();
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Flush, false),
        Outcome::Done(Ok(()))
    );
    assert!(matches!(
        net.run(Role::Server, &mut server, Op::Recv, false),
        Outcome::Done(Err(ProtocolError::UnmaskedFrameFromClient))
    ));
}

#[test]
fn end_of_stream_at_every_byte_is_1006_once() {
    let mut stream = frame_to(Role::Server, true, 0x1, b"hello");
    stream.extend(frame_to(Role::Server, false, 0x2, b"frag"));
    stream.extend(frame_to(Role::Server, true, 0x0, b"ment"));
    for cut in 0..=stream.len() {
        let (_, mut server, mut net) = pair();
        net.inject(Role::Server, &stream[..cut]);
        net.up.shut = true;
        let mut events = 0;
        loop {
            match net.run(Role::Server, &mut server, Op::Recv, false) {
                Outcome::Event(Event::Message(_)) => events += 1,
                Outcome::Event(Event::Close(frame)) => {
                    assert_eq!(frame.code, CloseCode::ABNORMAL, "cut {cut}");
                }
                Outcome::Done(Ok(())) => break,
                other => panic!("cut {cut}: {other:?}"),
            }
            assert!(events <= 2);
        }
        assert_eq!(close_code(&server), Some(1006), "cut {cut}");
        assert!(server.is_done());
    }
}

#[test]
fn a_reset_at_every_stage_is_reported_once_then_1006() {
    for stage in 0..4 {
        let (mut client, mut server, mut net) = pair();
        client.send(Message::text("a")).unwrap();
        let _ = net.run(Role::Client, &mut client, Op::WriteOut, false);
        if stage >= 1 {
            let _ = net.run(Role::Server, &mut server, Op::RecvMessage, false);
        }
        if stage >= 2 {
            server.close(CloseCode::NORMAL, "").unwrap();
        }
        net.up.reset = true;
        net.down.reset = stage == 3;
        let op = if stage >= 2 {
            Op::Close
        } else {
            Op::RecvMessage
        };
        assert_eq!(
            net.run(Role::Server, &mut server, op, false),
            Outcome::Io(true),
            "stage {stage}"
        );
        assert_eq!(close_code(&server), Some(1006));
        assert_eq!(
            net.run(Role::Server, &mut server, Op::Recv, false),
            Outcome::Done(Ok(()))
        );
        assert_eq!(
            net.run(Role::Server, &mut server, Op::Flush, false),
            Outcome::Done(Ok(()))
        );
        // Nothing sent after the failure is taken as if it could leave.
        assert!(matches!(
            server.send(Message::text("late")),
            Err(SendError::Closed)
        ));
        assert!(matches!(server.ping(Bytes::new()), Err(SendError::Closed)));
        assert_eq!(server.connection().state(), State::Closed, "stage {stage}");
    }
}

#[test]
fn a_reset_after_a_clean_close_is_not_an_error() {
    let (_, mut server, mut net) = pair();
    net.inject(
        Role::Server,
        &frame_to(Role::Server, true, 0x8, &close_payload(1000, b"")),
    );
    // Writing the echo fails: the Close arrived, so that is no error.
    net.down.reset = true;
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Recv, false),
        Outcome::Io(false)
    );
    assert!(matches!(
        net.run(Role::Server, &mut server, Op::Recv, false),
        Outcome::Event(Event::Close(frame)) if frame.code == CloseCode::NORMAL
    ));
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Recv, false),
        Outcome::Done(Ok(()))
    );
    assert_eq!(close_code(&server), Some(1000));
}

#[test]
fn a_peer_that_stops_reading_cannot_hold_a_failed_connection_open() {
    let config = Config::default().with_close_timeout(Some(SECOND));
    let (_, mut server, mut net) = pair_with(config);
    net.server.write_window = 0;
    net.inject(Role::Server, &[0x81, 0x01, b'a']);
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Recv, false),
        Outcome::Wait
    );
    assert!(matches!(
        net.run(Role::Server, &mut server, Op::Recv, true),
        Outcome::Done(Err(_))
    ));
    assert!(net.server.shut_down);
}

// ----- Backpressure -----

#[test]
fn reserve_waits_for_a_peer_that_does_not_read() {
    let config = Config::default().with_max_write_buffer(1024);
    let (_, mut server, mut net) = pair_with(config);
    net.server.write_window = 4096;
    let mut sent = 0;
    loop {
        match net.run(Role::Server, &mut server, Op::Reserve, false) {
            Outcome::Done(Ok(())) => {}
            Outcome::Wait => break,
            other => panic!("{other:?}"),
        }
        server.send(Message::binary(vec![0u8; 500])).unwrap();
        sent += 1;
        assert!(sent < 100, "backpressure never came");
    }
    let _ = net.pending_for(Role::Client);
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Reserve, false),
        Outcome::Done(Ok(()))
    );
}

#[test]
fn a_reader_keeps_delivering_while_writes_are_blocked() {
    let (_, mut server, mut net) = pair();
    net.server.write_window = 0;
    server.send(Message::binary(vec![0u8; 100_000])).unwrap();
    assert_eq!(
        net.run(Role::Server, &mut server, Op::WriteOut, false),
        Outcome::Wait
    );
    for i in 0..10 {
        net.inject(Role::Server, &frame_to(Role::Server, true, 0x9, b""));
        net.inject(
            Role::Server,
            &frame_to(Role::Server, true, 0x1, format!("{i}").as_bytes()),
        );
        assert_eq!(
            message(net.run(Role::Server, &mut server, Op::RecvMessage, false)),
            Message::text(format!("{i}"))
        );
    }
    // Once the peer reads, the data leaves first, then one pong.
    net.server.write_window = usize::MAX;
    assert_eq!(
        net.run(Role::Server, &mut server, Op::WriteOut, false),
        Outcome::Done(Ok(()))
    );
    let frames = parse_frames(&net.pending_for(Role::Client));
    assert_eq!(frames[0].header.opcode, OpCode::Binary);
    assert!(frames[1..].iter().all(|f| f.header.opcode == OpCode::Pong));
    assert!(frames.len() <= 3, "at most one pong queued and one waiting");
}

#[test]
fn a_split_reader_reads_without_holding_the_driver() {
    let (mut client, mut server, mut net) = pair();
    assert!(matches!(
        server.poll(Op::RecvMessage),
        Action::Read { wait: true }
    ));
    let mut buf = server.take_read_buf();
    // Meanwhile the writer queues and writes.
    server.send(Message::text("w")).unwrap();
    assert_eq!(
        net.run(Role::Server, &mut server, Op::WriteOut, false),
        Outcome::Done(Ok(()))
    );
    client.send(Message::text("r")).unwrap();
    let _ = net.run(Role::Client, &mut client, Op::WriteOut, false);
    let bytes = net.pending_for(Role::Server);
    bytes::BufMut::put_slice(&mut buf, &bytes);
    server.give_read_buf(buf, Some(bytes.len()));
    assert_eq!(
        message(net.run(Role::Server, &mut server, Op::RecvMessage, false)),
        Message::text("r")
    );
    assert_eq!(
        message(net.run(Role::Client, &mut client, Op::RecvMessage, false)),
        Message::text("w")
    );
}

// ----- Keepalive -----

#[test]
fn keepalive_pings_an_idle_peer_and_gives_up_on_a_silent_one() {
    let config = Config::default().with_keepalive(Some(5 * SECOND), Some(2 * SECOND));
    let (_, mut server, mut net) = pair_with(config);
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Recv, true),
        Outcome::Event(Event::Close(ws_proto::CloseFrame::new(
            CloseCode::ABNORMAL,
            ws_proto::Utf8Bytes::from_static("keepalive ping timeout: the peer stopped answering")
        )))
    );
    assert_eq!(net.now, 7 * SECOND);
    let frames = parse_frames(&net.pending_for(Role::Client));
    assert_eq!(frames[0].header.opcode, OpCode::Ping);
    assert_eq!(frames.last().and_then(|f| f.close_code()), Some(1011));
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Recv, false),
        Outcome::Done(Ok(()))
    );
}

#[test]
fn keepalive_keeps_a_live_peer() {
    let config = Config::default().with_keepalive(Some(5 * SECOND), Some(2 * SECOND));
    let (mut client, mut server, mut net) = pair_with(config);
    for round in 1..=5 {
        // The server's timer fires and it pings; the client answers.
        assert_eq!(
            net.run(Role::Server, &mut server, Op::Recv, false),
            Outcome::Wait
        );
        net.now += 5 * SECOND;
        let _ = net.run(Role::Server, &mut server, Op::Recv, false);
        assert!(
            matches!(
                net.run(Role::Client, &mut client, Op::Recv, false),
                Outcome::Event(Event::Ping(_))
            ),
            "round {round}"
        );
        assert!(
            matches!(
                net.run(Role::Server, &mut server, Op::Recv, false),
                Outcome::Event(Event::Pong(_))
            ),
            "round {round}"
        );
    }
    assert_eq!(close_code(&server), None);
}

// ----- The opening handshake (Op::Open) -----

fn options() -> Options {
    Options::default().with_handshake_timeout(Some(5 * SECOND))
}

/// Runs `Op::Open` on both sides until the client has its response.
fn open_pair(net: &mut Net, client: &mut Driver, server: &mut Driver, accept: &AcceptOptions) {
    assert_eq!(
        net.run(Role::Client, client, Op::Open, false),
        Outcome::Wait
    );
    assert_eq!(
        net.run(Role::Server, server, Op::Open, false),
        Outcome::Done(Ok(()))
    );
    assert!(server.request().is_some(), "the request");
    server.accept(accept).expect("accepted");
    assert!(server.request().is_none(), "answered");
    assert_eq!(
        net.run(Role::Server, server, Op::Open, false),
        Outcome::Done(Ok(()))
    );
    assert!(server.is_open());
    assert_eq!(
        net.run(Role::Client, client, Op::Open, false),
        Outcome::Done(Ok(()))
    );
    client.take_response().expect("the response");
    assert!(client.is_open());
}

#[test]
fn the_opening_handshake_hands_over_to_the_connection_at_every_chunking() {
    for chunk in [1, 3, 64, usize::MAX] {
        let mut net = Net::default();
        net.client.write_chunk = chunk;
        net.server.read_chunk = chunk;
        net.server.write_chunk = chunk;
        net.client.read_chunk = chunk;
        let request = ClientRequest::new("ws://example.com/chat")
            .unwrap()
            .protocol("chat.v2");
        let mut client = Driver::client(&request, &options()).unwrap();
        let mut server = Driver::server(&options());
        let accept = AcceptOptions::new().protocols(["chat.v2"]);
        open_pair(&mut net, &mut client, &mut server, &accept);
        assert_eq!(client.connection().protocol(), Some("chat.v2"), "{chunk}");
        assert_eq!(server.connection().protocol(), Some("chat.v2"), "{chunk}");
        client.send(Message::text("hello")).unwrap();
        let _ = net.run(Role::Client, &mut client, Op::Flush, false);
        let got = message(net.run(Role::Server, &mut server, Op::RecvMessage, false));
        assert_eq!(got, Message::text("hello"), "chunk {chunk}");
    }
}

/// The client sends its request and a frame right behind it ("early");
/// the server's `Op::Open` reads both.
fn request_then_early_frame(net: &mut Net, client: &mut Driver, server: &mut Driver) {
    assert_eq!(
        net.run(Role::Client, client, Op::Open, false),
        Outcome::Wait
    );
    net.inject(Role::Server, &frame_to(Role::Server, true, 0x1, b"early"));
    assert_eq!(
        net.run(Role::Server, server, Op::Open, false),
        Outcome::Done(Ok(()))
    );
}

#[test]
fn bytes_after_the_heads_reach_the_connections() {
    let mut net = Net::default();
    let request = ClientRequest::new("ws://example.com/").unwrap();
    let mut client = Driver::client(&request, &options()).unwrap();
    let mut server = Driver::server(&options());
    request_then_early_frame(&mut net, &mut client, &mut server);
    server.accept(&AcceptOptions::new()).unwrap();
    // The server's first message travels with its 101 response.
    server.send(Message::text("first")).unwrap();
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Open, false),
        Outcome::Done(Ok(()))
    );
    let _ = net.run(Role::Server, &mut server, Op::Flush, false);
    assert_eq!(
        net.run(Role::Client, &mut client, Op::Open, false),
        Outcome::Done(Ok(()))
    );
    client.take_response().unwrap();
    let got = message(net.run(Role::Client, &mut client, Op::RecvMessage, false));
    assert_eq!(got, Message::text("first"));
    let got = message(net.run(Role::Server, &mut server, Op::RecvMessage, false));
    assert_eq!(got, Message::text("early"));
}

#[test]
fn an_accepting_server_opens_in_one_run_at_every_chunking() {
    // `Driver::accepting`: what every adapter's `accept` does (any valid
    // request, no subprotocol) in one `Op::Open`, bytes behind the request
    // kept; a malformed request still gets its error response.
    for chunk in [1, 7, usize::MAX] {
        let mut net = Net::default();
        net.server.read_chunk = chunk;
        net.server.write_chunk = chunk;
        let request = ClientRequest::new("ws://example.com/")
            .unwrap()
            .protocol("chat.v2");
        let mut client = Driver::client(&request, &options()).unwrap();
        let mut server = Driver::accepting(&options());
        request_then_early_frame(&mut net, &mut client, &mut server);
        assert!(server.is_open(), "chunk {chunk}");
        assert!(server.request().is_none(), "nothing to decide");
        assert_eq!(server.connection().protocol(), None, "none chosen");
        assert_eq!(
            net.run(Role::Client, &mut client, Op::Open, false),
            Outcome::Done(Ok(()))
        );
        assert_eq!(client.take_response().unwrap().protocol, None);
        let got = message(net.run(Role::Server, &mut server, Op::RecvMessage, false));
        assert_eq!(got, Message::text("early"), "chunk {chunk}");
    }
    let mut net = Net::default();
    let mut server = Driver::accepting(&options());
    net.inject(Role::Server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(matches!(
        net.run(Role::Server, &mut server, Op::Open, false),
        Outcome::Done(Ok(()))
    ));
    assert!(server.handshake_result().is_err(), "not an upgrade");
    assert!(!server.is_open());
}

#[test]
fn a_malformed_request_is_answered_then_the_transport_is_shut() {
    let mut net = Net::default();
    let mut server = Driver::server(&options());
    net.inject(Role::Server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Open, false),
        Outcome::Done(Ok(()))
    );
    assert!(net.server.shut_down);
    let answer = String::from_utf8(net.pending_for(Role::Client)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(matches!(
        server.handshake_result(),
        Err(HandshakeError::MissingUpgrade(_))
    ));
    assert!(server.is_done());
    assert!(server.request().is_none(), "no request, no panic");
    server.reject(400, &[], b"");
    assert!(server.accept(&AcceptOptions::new()).is_err());
}

#[test]
fn a_silent_peer_runs_into_the_handshake_timeout() {
    for role in [Role::Client, Role::Server] {
        let mut net = Net::default();
        let mut driver = match role {
            Role::Client => {
                let request = ClientRequest::new("ws://example.com/").unwrap();
                Driver::client(&request, &options()).unwrap()
            }
            Role::Server => Driver::server(&options()),
        };
        assert_eq!(
            net.run(role, &mut driver, Op::Open, true),
            Outcome::Done(Ok(()))
        );
        assert_eq!(net.now, 5 * SECOND, "{role:?}");
        assert_eq!(driver.handshake_result(), Err(HandshakeError::TimedOut));
        assert!(driver.is_done());
    }
}

#[test]
fn the_end_of_the_stream_mid_head_fails_the_handshake() {
    let mut net = Net::default();
    let mut server = Driver::server(&options());
    net.inject(Role::Server, b"GET / HTTP/1.1\r\nHost: x\r\n");
    net.up.shut = true;
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Open, false),
        Outcome::Done(Ok(()))
    );
    assert_eq!(
        server.handshake_result(),
        Err(HandshakeError::UnexpectedEof)
    );

    // A refusal cut short by the end of the stream is still a refusal.
    let mut net = Net::default();
    let request = ClientRequest::new("ws://example.com/").unwrap();
    let mut client = Driver::client(&request, &options()).unwrap();
    net.inject(
        Role::Client,
        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 100\r\n\r\nno",
    );
    net.down.shut = true;
    assert_eq!(
        net.run(Role::Client, &mut client, Op::Open, false),
        Outcome::Done(Ok(()))
    );
    match client.take_response() {
        Err(HandshakeError::Rejected(response)) => assert_eq!(response.status, 401),
        other => panic!("expected a 401, got {other:?}"),
    }
}

#[test]
fn a_rejected_request_gets_the_refusal_and_the_client_sees_it() {
    let mut net = Net::default();
    let request = ClientRequest::new("ws://example.com/").unwrap();
    let mut client = Driver::client(&request, &options()).unwrap();
    let mut server = Driver::server(&options());
    assert_eq!(
        net.run(Role::Client, &mut client, Op::Open, false),
        Outcome::Wait
    );
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Open, false),
        Outcome::Done(Ok(()))
    );
    assert_eq!(server.request().map(ServerRequest::path), Some("/"));
    server.reject(403, &[], b"go away");
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Open, false),
        Outcome::Done(Ok(()))
    );
    assert_eq!(server.handshake_result(), Ok(()));
    assert!(net.server.shut_down && server.is_done());
    assert_eq!(
        net.run(Role::Client, &mut client, Op::Open, false),
        Outcome::Done(Ok(()))
    );
    match client.take_response() {
        Err(HandshakeError::Rejected(response)) => {
            assert_eq!(response.status, 403);
            assert_eq!(response.body, b"go away");
        }
        other => panic!("expected a 403, got {other:?}"),
    }
}

#[test]
fn an_unoffered_subprotocol_is_refused_before_anything_is_written() {
    let mut net = Net::default();
    let mut server = Driver::server(&options());
    let request = ClientRequest::new("ws://example.com/").unwrap();
    let mut client = Driver::client(&request, &options()).unwrap();
    let _ = net.run(Role::Client, &mut client, Op::Open, false);
    let _ = net.run(Role::Server, &mut server, Op::Open, false);
    let exact = AcceptOptions::new().protocol("nope");
    assert!(server.accept(&exact).is_err());
    assert!(!server.connection().wants_write());
    assert!(server.request().is_some(), "still to answer");
    server.accept(&AcceptOptions::new()).unwrap();
    assert_eq!(
        net.run(Role::Server, &mut server, Op::Open, false),
        Outcome::Done(Ok(()))
    );
}

#[test]
fn an_open_driver_has_no_handshake_to_run() {
    let mut driver = driver(Role::Server, Config::default());
    assert!(driver.is_open());
    assert_eq!(driver.poll(Op::Open), Action::Done);
    assert!(driver.request().is_none());
    assert!(driver.take_response().is_err());
    assert!(driver.accept(&AcceptOptions::new()).is_err());
    driver.reject(403, &[], b"");
    assert!(!driver.connection().wants_write(), "nothing to refuse");
}
