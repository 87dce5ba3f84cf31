//! Loopback tests: ws-std on both sides, or against a hand-driven raw peer.

#![allow(missing_docs)]

extern crate alloc;

use alloc::sync::Arc;
use core::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};
use std::{
    io::{self, IoSlice, Read, Write},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    thread,
    time::Instant,
};

use ws_proto::{ClientHandshake, ServerHandshake};
use ws_std::{
    Bytes, BytesMut, ClientRequest, CloseCode, Config, Error, Event, HandshakeError, Message,
    Options, ProtocolError, Transport,
};

/// Runs `f` on its own thread and fails the test if it takes longer than `secs`.
fn bounded<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker sends before it ends"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {secs} s"),
    }
}

/// A listener on an ephemeral port serving one connection with `serve`.
fn serve_one<T: Send + 'static>(
    serve: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (String, thread::JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || serve(listener.accept().unwrap().0));
    (format!("ws://{addr}/"), handle)
}

fn big_config() -> Config {
    Config::default()
        .with_max_frame_size(32 << 20)
        .with_max_message_size(32 << 20)
}

/// Echoes every message until the connection ends; returns the close frame.
fn echo(stream: TcpStream, options: &Options) -> Option<ws_std::CloseFrame> {
    let mut ws = ws_std::accept_with(stream, options).unwrap();
    while let Some(message) = ws.recv() {
        match message {
            Ok(message) => ws.send(message).unwrap(),
            Err(_) => break,
        }
    }
    ws.close_frame().cloned()
}

fn echo_server(options: Options) -> (String, thread::JoinHandle<Option<ws_std::CloseFrame>>) {
    serve_one(move |stream| echo(stream, &options))
}

/// A raw client: handshake by hand, then the stream and any bytes read past it.
fn raw_client(url: &str) -> (TcpStream, BytesMut) {
    let request = ClientRequest::new(url).unwrap();
    let mut stream = TcpStream::connect((request.host(), request.port())).unwrap();
    let mut handshake = ClientHandshake::new(&request).unwrap();
    stream.write_all(handshake.request()).unwrap();
    let mut buf = BytesMut::new();
    loop {
        if handshake.receive(&mut buf).unwrap().is_some() {
            return (stream, buf);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "server closed during the handshake");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A raw server: accepts the handshake by hand, then sits on the stream.
fn raw_server(mut stream: TcpStream) -> TcpStream {
    let mut handshake = ServerHandshake::new();
    let mut buf = BytesMut::new();
    let request = loop {
        if let Some(request) = handshake.receive(&mut buf).unwrap() {
            break request;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).unwrap();
        buf.extend_from_slice(&chunk[..n]);
    };
    let accepted = request.accept(&ws_proto::AcceptOptions::new()).unwrap();
    stream.write_all(accepted.response()).unwrap();
    stream
}

/// A masked (all-zero key) client frame.
fn client_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut frame = vec![first_byte, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

#[test]
fn message_sizes_round_trip() {
    bounded(60, || {
        let options = Options::default().with_config(big_config());
        let (url, server) = echo_server(options.clone());
        let (mut ws, _) =
            ws_std::connect_with(ClientRequest::new(&url).unwrap(), &options).unwrap();
        for size in [0, 125, 126, 65535, 65536, 1 << 20, 16 << 20] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            ws.send(Message::binary(data.clone())).unwrap();
            assert_eq!(
                ws.recv().unwrap().unwrap(),
                Message::binary(data),
                "{size} B"
            );
            let text = "é".repeat(size / 2);
            ws.send(Message::text(text.as_str())).unwrap();
            assert_eq!(
                ws.recv().unwrap().unwrap(),
                Message::text(text),
                "{size} B text"
            );
        }
        ws.close(CloseCode::NORMAL, "").unwrap();
        assert!(ws.recv().is_none());
        assert_eq!(server.join().unwrap().unwrap().code, CloseCode::NORMAL);
    });
}

#[test]
fn fragments_sent_through_the_connection() {
    bounded(10, || {
        let (url, server) = echo_server(Options::default());
        let (mut ws, _) = ws_std::connect(&url).unwrap();
        for (part, fin) in [("hel", false), ("lo ", false), ("world", true)] {
            ws.connection_mut()
                .send_fragment(Message::text(part), fin)
                .unwrap();
        }
        ws.flush().unwrap();
        assert_eq!(ws.recv().unwrap().unwrap(), Message::text("hello world"));
        ws.close(CloseCode::NORMAL, "").unwrap();
        server.join().unwrap();
    });
}

#[test]
fn hand_built_fragments_with_a_ping_between() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| {
            let mut ws = ws_std::accept(stream).unwrap();
            let mut events = Vec::new();
            while let Some(event) = ws.recv_event() {
                events.push(event.unwrap());
            }
            events
        });
        let (mut raw, _) = raw_client(&url);
        raw.write_all(&client_frame(0x01, b"Hel")).unwrap();
        raw.write_all(&client_frame(0x89, b"p")).unwrap();
        raw.write_all(&client_frame(0x80, b"lo")).unwrap();
        raw.write_all(&client_frame(0x88, &[0x03, 0xe8])).unwrap();
        let mut reply = Vec::new();
        raw.read_to_end(&mut reply).unwrap();
        // The pong, then the echoed Close, then the server closed the TCP stream.
        assert_eq!(reply, [0x8a, 0x01, b'p', 0x88, 0x02, 0x03, 0xe8]);
        let events = server.join().unwrap();
        assert_eq!(
            events,
            [
                Event::Ping(Bytes::from_static(b"p")),
                Event::Message(Message::text("Hello")),
                Event::Close(ws_std::CloseFrame::new(CloseCode::NORMAL, "")),
            ]
        );
    });
}

#[test]
fn ping_pong() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| {
            let mut ws = ws_std::accept(stream).unwrap();
            let mut pings = Vec::new();
            while let Some(event) = ws.recv_event() {
                if let Event::Ping(payload) = event.unwrap() {
                    pings.push(payload);
                }
            }
            pings
        });
        let (mut ws, _) = ws_std::connect(&url).unwrap();
        ws.ping(Bytes::from_static(b"are you there")).unwrap();
        match ws.recv_event().unwrap().unwrap() {
            Event::Pong(payload) => assert_eq!(payload, "are you there"),
            other => panic!("expected a pong, got {other:?}"),
        }
        ws.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(server.join().unwrap(), ["are you there"]);
    });
}

#[test]
fn client_closes_with_code_and_reason() {
    bounded(10, || {
        let (url, server) = echo_server(Options::default());
        let (mut ws, _) = ws_std::connect(&url).unwrap();
        ws.close(CloseCode(4000), "client done").unwrap();
        let seen = server.join().unwrap().unwrap();
        assert_eq!(
            (seen.code, seen.reason.as_str()),
            (CloseCode(4000), "client done")
        );
        // Our view: the server echoed the code.
        assert_eq!(ws.close_frame().unwrap().code, CloseCode(4000));
        assert!(ws.recv().is_none());
    });
}

#[test]
fn server_closes_with_code_and_reason() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| {
            let mut ws = ws_std::accept(stream).unwrap();
            ws.send(Message::text("last words")).unwrap();
            ws.close(CloseCode::GOING_AWAY, "server shutting down")
                .unwrap();
            ws.close_frame().cloned()
        });
        let (mut ws, _) = ws_std::connect(&url).unwrap();
        assert_eq!(ws.recv().unwrap().unwrap(), Message::text("last words"));
        assert!(ws.recv().is_none());
        let frame = ws.close_frame().unwrap();
        assert_eq!(
            (frame.code, frame.reason.as_str()),
            (CloseCode::GOING_AWAY, "server shutting down")
        );
        assert!(matches!(
            ws.send(Message::text("too late")),
            Err(Error::Send(ws_std::SendError::Closed))
        ));
        assert_eq!(server.join().unwrap().unwrap().code, CloseCode::GOING_AWAY);
    });
}

#[test]
fn server_rejects_with_403() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| {
            let incoming = ws_std::read_request(stream, &Options::default()).unwrap();
            assert_eq!(incoming.request().path(), "/secret");
            incoming
                .reject(403, &[("X-Reason", "no token")], b"forbidden")
                .unwrap();
        });
        let url = format!("{url}secret");
        match ws_std::connect(&url) {
            Err(Error::Handshake(HandshakeError::Rejected(response))) => {
                assert_eq!(response.status, 403);
                assert_eq!(response.body, b"forbidden");
                assert_eq!(response.header("x-reason"), Some("no token"));
            }
            other => panic!("expected a rejection, got {:?}", other.map(|_| ())),
        }
        server.join().unwrap();
    });
}

#[test]
fn bad_request_is_answered_before_the_error() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| ws_std::accept(stream).map(|_| ()));
        let addr = url.trim_start_matches("ws://").trim_end_matches('/');
        let mut raw = TcpStream::connect(addr).unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut reply = String::new();
        raw.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
        assert!(matches!(
            server.join().unwrap(),
            Err(Error::Handshake(HandshakeError::MissingUpgrade(_)))
        ));
    });
}

#[test]
fn protocol_error_sends_close_then_ends() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| {
            let mut ws = ws_std::accept(stream).unwrap();
            let first = ws.recv();
            let second = ws.recv();
            (format!("{first:?}"), second.is_none())
        });
        let (mut raw, _) = raw_client(&url);
        // Unmasked text frame from a client: a protocol error (1002).
        raw.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
        let mut reply = Vec::new();
        raw.read_to_end(&mut reply).unwrap();
        assert_eq!(&reply[..4], [0x88, reply[1], 0x03, 0xea]);
        let (first, second_is_none) = server.join().unwrap();
        let expected = format!(
            "{:?}",
            Some(Err::<Message, _>(Error::Protocol(
                ProtocolError::UnmaskedFrameFromClient
            )))
        );
        assert_eq!(first, expected);
        assert!(second_is_none);
    });
}

#[test]
fn peer_drops_mid_frame() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| {
            let mut ws = ws_std::accept(stream).unwrap();
            let mut results = Vec::new();
            while let Some(result) = ws.recv() {
                results.push(result.is_err());
            }
            (results, ws.close_frame().cloned())
        });
        let (mut raw, _) = raw_client(&url);
        // A 100-byte masked binary frame of which only 10 bytes arrive.
        raw.write_all(&[0x82, 0x80 | 100, 1, 2, 3, 4]).unwrap();
        raw.write_all(&[0u8; 10]).unwrap();
        drop(raw);
        let (results, close) = server.join().unwrap();
        assert!(results.iter().all(|is_err| *is_err), "no message expected");
        let close = close.expect("a close frame is recorded");
        assert_eq!(close.code, CloseCode::ABNORMAL);
    });
}

#[test]
fn split_halves_work_concurrently() {
    bounded(30, || {
        let (url, server) = echo_server(Options::default());
        let (ws, _) = ws_std::connect(&url).unwrap();
        let (mut read, mut write) = ws.split();
        let writer = thread::spawn(move || {
            for i in 0..1000 {
                write.send(Message::text(format!("message {i}"))).unwrap();
            }
            write
        });
        for i in 0..1000 {
            let message = read.recv().unwrap().unwrap();
            assert_eq!(message, Message::text(format!("message {i}")));
        }
        let mut write = writer.join().unwrap();
        let reader = thread::spawn(move || {
            let rest = read.recv();
            (rest.is_none(), read)
        });
        write.close(CloseCode::NORMAL, "all echoed").unwrap();
        let (ended, read) = reader.join().unwrap();
        assert!(ended);
        assert_eq!(read.close_frame().unwrap().code, CloseCode::NORMAL);
        let seen = server.join().unwrap().unwrap();
        assert_eq!(seen.reason.as_str(), "all echoed");
    });
}

#[test]
fn split_reader_answers_pings() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| {
            let mut ws = ws_std::accept(stream).unwrap();
            ws.ping(Bytes::from_static(b"ka")).unwrap();
            let pong = ws.recv_event().unwrap().unwrap();
            ws.close(CloseCode::NORMAL, "").unwrap();
            pong
        });
        let (ws, _) = ws_std::connect(&url).unwrap();
        let (mut read, _write) = ws.split();
        // The reader answers the ping itself, without any write call.
        assert!(matches!(
            read.recv_event().unwrap().unwrap(),
            Event::Ping(_)
        ));
        assert!(read.recv().is_none());
        assert_eq!(
            server.join().unwrap(),
            Event::Pong(Bytes::from_static(b"ka"))
        );
    });
}

#[test]
fn reunite_checks_the_halves() {
    bounded(10, || {
        let (url_a, server_a) = echo_server(Options::default());
        let (url_b, server_b) = echo_server(Options::default());
        let (a, _) = ws_std::connect(&url_a).unwrap();
        let (b, _) = ws_std::connect(&url_b).unwrap();
        let (read_a, write_a) = a.split();
        let mut a = ws_std::WebSocket::reunite(read_a, write_a).unwrap();
        a.send(Message::text("still works")).unwrap();
        assert_eq!(a.recv().unwrap().unwrap(), Message::text("still works"));
        let (read_a, write_a) = a.split();
        let (read_b, write_b) = b.split();
        assert!(read_a.reunite(write_b).is_err());
        drop((write_a, read_b));
        // Both sockets are dropped: the servers see the transport end.
        server_a.join().unwrap();
        server_b.join().unwrap();
    });
}

#[test]
fn keepalive_gives_up_on_a_silent_peer() {
    bounded(10, || {
        let config = Config::default().with_keepalive(
            Some(Duration::from_millis(100)),
            Some(Duration::from_millis(200)),
        );
        let (url, server) = serve_one(move |stream| {
            let mut ws =
                ws_std::accept_with(stream, &Options::default().with_config(config)).unwrap();
            let start = Instant::now();
            while let Some(message) = ws.recv() {
                message.unwrap();
            }
            (start.elapsed(), ws.close_frame().cloned())
        });
        // The raw peer completes the handshake, then never reads nor answers.
        let (raw, _) = raw_client(&url);
        let (elapsed, close) = server.join().unwrap();
        drop(raw);
        assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
        assert!(elapsed >= Duration::from_millis(250), "took {elapsed:?}");
        assert_eq!(close.unwrap().code, CloseCode::ABNORMAL);
    });
}

#[test]
fn keepalive_keeps_a_live_peer() {
    bounded(10, || {
        let config = Config::default().with_keepalive(
            Some(Duration::from_millis(50)),
            Some(Duration::from_millis(200)),
        );
        let options = Options::default().with_config(config);
        let (url, server) = echo_server(options.clone());
        let (mut ws, _) =
            ws_std::connect_with(ClientRequest::new(&url).unwrap(), &options).unwrap();
        // Idle for 600 ms: pings flow (from either end), nobody gives up.
        let mut keepalives = 0;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(600) {
            match ws.recv_event() {
                Some(Ok(Event::Ping(_) | Event::Pong(_))) => keepalives += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(keepalives >= 5, "{keepalives} pings and pongs");
        ws.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(server.join().unwrap().unwrap().code, CloseCode::NORMAL);
    });
}

#[test]
fn server_handshake_timeout_drops_a_silent_client() {
    bounded(10, || {
        // Silent from the start, and slowloris: a few bytes, then silence.
        for sent in [&b""[..], b"GET / HT"] {
            let (url, server) = serve_one(|stream| {
                let options =
                    Options::default().with_handshake_timeout(Some(Duration::from_millis(200)));
                let start = Instant::now();
                let result = ws_std::accept_with(stream, &options).map(|_| ());
                (start.elapsed(), result)
            });
            let addr = url.trim_start_matches("ws://").trim_end_matches('/');
            let mut raw = TcpStream::connect(addr).unwrap();
            raw.write_all(sent).unwrap();
            let (elapsed, result) = server.join().unwrap();
            assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
            match result {
                Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
                other => panic!("expected a timeout, got {other:?}"),
            }
            let mut rest = Vec::new();
            assert_eq!(
                raw.read_to_end(&mut rest).unwrap(),
                0,
                "dropped without an answer"
            );
        }
    });
}

#[test]
fn client_handshake_timeout() {
    bounded(10, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let options = Options::default().with_handshake_timeout(Some(Duration::from_millis(200)));
        let start = Instant::now();
        // The listener accepts (in the backlog) but never answers.
        let result = ws_std::connect_with(ClientRequest::new(&url).unwrap(), &options);
        assert!(start.elapsed() < Duration::from_secs(1));
        match result {
            Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
            other => panic!("expected a timeout, got {:?}", other.map(|_| ())),
        }
        drop(listener);
    });
}

#[test]
fn read_timeout_is_retryable_and_keeps_a_partial_frame() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| {
            stream
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut ws = ws_std::accept(stream).unwrap();
            let mut timeouts = 0;
            let message = loop {
                match ws.recv() {
                    Some(Ok(message)) => break message,
                    Some(Err(Error::Io(e)))
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        timeouts += 1;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            };
            (timeouts, message)
        });
        let (mut raw, _) = raw_client(&url);
        let frame = client_frame(0x81, b"split across a timeout");
        raw.write_all(&frame[..9]).unwrap();
        thread::sleep(Duration::from_millis(250));
        raw.write_all(&frame[9..]).unwrap();
        let (timeouts, message) = server.join().unwrap();
        assert!(timeouts >= 1);
        assert_eq!(message, Message::text("split across a timeout"));
    });
}

#[test]
fn close_timeout_when_the_peer_never_answers() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| {
            let mut raw = raw_server(stream);
            // Read until the client hangs up, never answering its Close.
            let mut sink = Vec::new();
            let _ = raw.read_to_end(&mut sink);
            sink
        });
        let config = Config::default().with_close_timeout(Some(Duration::from_millis(200)));
        let options = Options::default().with_config(config);
        let (mut ws, _) =
            ws_std::connect_with(ClientRequest::new(&url).unwrap(), &options).unwrap();
        let start = Instant::now();
        ws.close(CloseCode::NORMAL, "bye").unwrap();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(ws.close_frame().unwrap().code, CloseCode::ABNORMAL);
        let sink = server.join().unwrap();
        assert_eq!(sink[0], 0x88, "the Close frame was sent");
    });
}

#[test]
fn split_close_times_out_and_wakes_the_reader() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| {
            let mut raw = raw_server(stream);
            let mut sink = Vec::new();
            let _ = raw.read_to_end(&mut sink);
        });
        let config = Config::default().with_close_timeout(Some(Duration::from_millis(200)));
        let options = Options::default().with_config(config);
        let (ws, _) = ws_std::connect_with(ClientRequest::new(&url).unwrap(), &options).unwrap();
        let (mut read, mut write) = ws.split();
        let reader = thread::spawn(move || {
            while read.recv().is_some() {}
            read.close_frame().cloned()
        });
        thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        write.close(CloseCode::NORMAL, "").unwrap();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(reader.join().unwrap().unwrap().code, CloseCode::ABNORMAL);
        server.join().unwrap();
    });
}

#[test]
fn wss_is_refused_without_tls() {
    assert!(matches!(
        ws_std::connect("wss://127.0.0.1:1/"),
        Err(Error::Handshake(HandshakeError::InvalidRequest(_)))
    ));
}

/// A `TcpStream` that counts write calls.
struct Counting {
    inner: TcpStream,
    writes: Arc<AtomicUsize>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Counting {}

#[test]
fn feeding_then_flushing_uses_few_vectored_writes() {
    bounded(10, || {
        let (url, server) = echo_server(Options::default());
        let request = ClientRequest::new(&url).unwrap();
        let writes = Arc::new(AtomicUsize::new(0));
        let stream = Counting {
            inner: TcpStream::connect((request.host(), request.port())).unwrap(),
            writes: Arc::clone(&writes),
        };
        let (mut ws, _) = ws_std::client(stream, request, &Options::default()).unwrap();
        let before = writes.load(Ordering::Relaxed);
        for i in 0..100 {
            ws.feed(Message::text(format!("{i}"))).unwrap();
        }
        assert_eq!(
            writes.load(Ordering::Relaxed),
            before,
            "feed does not write"
        );
        ws.flush().unwrap();
        let used = writes.load(Ordering::Relaxed) - before;
        assert!(used <= 4, "{used} writes for 100 messages");
        for i in 0..100 {
            assert_eq!(ws.recv().unwrap().unwrap(), Message::text(format!("{i}")));
        }
        ws.close(CloseCode::NORMAL, "").unwrap();
        server.join().unwrap();
    });
}

#[test]
fn bytes_after_the_request_head_are_kept() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| {
            let mut ws = ws_std::accept(stream).unwrap();
            ws.recv().unwrap().unwrap()
        });
        let request = ClientRequest::new(&url).unwrap();
        let mut raw = TcpStream::connect((request.host(), request.port())).unwrap();
        let handshake = ClientHandshake::new(&request).unwrap();
        // The request and the first frame in one write.
        let mut bytes = handshake.request().to_vec();
        bytes.extend_from_slice(&client_frame(0x81, b"eager"));
        raw.write_all(&bytes).unwrap();
        assert_eq!(server.join().unwrap(), Message::text("eager"));
    });
}

#[test]
fn two_step_accept_with_a_subprotocol() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| {
            let incoming = ws_std::read_request(stream, &Options::default()).unwrap();
            assert_eq!(incoming.request().protocols(), ["chat", "superchat"]);
            let options = ws_std::AcceptOptions::new().protocol("superchat");
            let mut ws = incoming.accept(&options).unwrap();
            while let Some(Ok(message)) = ws.recv() {
                ws.send(message).unwrap();
            }
        });
        let request = ClientRequest::new(&url)
            .unwrap()
            .protocol("chat")
            .protocol("superchat");
        let (mut ws, response) = ws_std::connect_with(request, &Options::default()).unwrap();
        assert_eq!(response.protocol.as_deref(), Some("superchat"));
        ws.send(Message::text("hi")).unwrap();
        assert_eq!(ws.recv().unwrap().unwrap(), Message::text("hi"));
        ws.close(CloseCode::NORMAL, "").unwrap();
        server.join().unwrap();
    });
}

#[test]
fn generic_streams_through_plain() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| {
            let mut ws = ws_std::accept(ws_std::Plain(stream)).unwrap();
            while let Some(Ok(message)) = ws.recv() {
                ws.send(message).unwrap();
            }
            ws.close_frame().cloned()
        });
        let request = ClientRequest::new(&url).unwrap();
        let stream = TcpStream::connect((request.host(), request.port())).unwrap();
        let (mut ws, _) =
            ws_std::client(ws_std::Plain(stream), request, &Options::default()).unwrap();
        for i in 0..10 {
            ws.send(Message::binary(vec![i; 1000 * usize::from(i)]))
                .unwrap();
            assert_eq!(ws.recv().unwrap().unwrap().len(), 1000 * usize::from(i));
        }
        ws.close(CloseCode(4002), "plain").unwrap();
        assert_eq!(server.join().unwrap().unwrap().code, CloseCode(4002));
    });
}

#[test]
fn write_timeout_keeps_unwritten_bytes_for_the_next_flush() {
    bounded(30, || {
        let (start_tx, start_rx) = mpsc::channel::<()>();
        let options = Options::default().with_config(big_config());
        let (url, server) = serve_one(move |stream| {
            // A server upgraded "elsewhere": raw handshake, then from_raw.
            let stream = raw_server(stream);
            let mut ws = ws_std::WebSocket::from_raw(stream, ws_std::Role::Server, big_config());
            // Do not read until the client's flush has timed out.
            start_rx.recv().unwrap();
            ws.recv().unwrap().unwrap()
        });
        let (mut ws, _) =
            ws_std::connect_with(ClientRequest::new(&url).unwrap(), &options).unwrap();
        ws.get_ref()
            .set_write_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let data: Vec<u8> = (0..16 << 20).map(|i| (i % 253) as u8).collect();
        match ws.send(Message::binary(data.clone())) {
            Err(Error::Io(e)) => assert!(matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            )),
            other => panic!("expected a write timeout, got {other:?}"),
        }
        start_tx.send(()).unwrap();
        let mut retries = 0;
        loop {
            match ws.flush() {
                Ok(()) => break,
                Err(Error::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    retries += 1;
                    assert!(retries < 1000);
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(server.join().unwrap(), Message::binary(data));
    });
}

#[test]
fn pings_are_answered_while_the_application_only_sends() {
    bounded(20, || {
        let (pongs_tx, pongs_rx) = mpsc::channel();
        let (pinged_tx, pinged_rx) = mpsc::channel::<()>();
        let (url, server) = serve_one(move |stream| {
            // The server reads on one half and pings from another thread, so
            // that its own pings never read (and never swallow Pong events).
            let (mut rx, mut tx) = ws_std::accept(stream).unwrap().split();
            let (msg_tx, msg_rx) = mpsc::channel::<()>();
            let pinger = thread::spawn(move || {
                for i in 0..20 {
                    msg_rx.recv().unwrap();
                    tx.ping(Bytes::from(format!("p{i}"))).unwrap();
                    pinged_tx.send(()).unwrap();
                }
                tx
            });
            let mut pongs = Vec::new();
            while pongs.len() < 20 {
                match rx.recv_event().unwrap().unwrap() {
                    Event::Message(_) => msg_tx.send(()).unwrap(),
                    Event::Pong(payload) => pongs.push(payload),
                    other => panic!("unexpected {other:?}"),
                }
            }
            pongs_tx.send(pongs).unwrap();
            let tx = pinger.join().unwrap();
            // Until the client's Close.
            while let Some(event) = rx.recv_event() {
                event.unwrap();
            }
            let ws = ws_std::WebSocket::reunite(rx, tx).unwrap();
            ws.close_frame().cloned()
        });
        let (mut client, _) = ws_std::connect(&url).unwrap();
        // The client never calls recv: its sends carry the pongs. It waits
        // for each ping before the next send, so pings never pile up (the
        // core may answer only the latest of several waiting pings).
        for i in 0..20 {
            client.send(Message::text(format!("m{i}"))).unwrap();
            pinged_rx.recv().unwrap();
        }
        // A flush with nothing queued answers the pings still arriving.
        let pongs = loop {
            match pongs_rx.recv_timeout(Duration::from_millis(10)) {
                Ok(pongs) => break pongs,
                Err(mpsc::RecvTimeoutError::Timeout) => client.flush().unwrap(),
                Err(e) => panic!("{e}"),
            }
        };
        let expected: Vec<Bytes> = (0..20).map(|i| Bytes::from(format!("p{i}"))).collect();
        assert_eq!(pongs, expected, "every ping answered, in order");
        // The first Ping event read during the sends is kept for the application.
        assert_eq!(
            client.recv_event().unwrap().unwrap(),
            Event::Ping(Bytes::from_static(b"p0"))
        );
        client.close(CloseCode::NORMAL, "done").unwrap();
        assert_eq!(server.join().unwrap().unwrap().code, CloseCode::NORMAL);
    });
}

#[test]
fn a_partial_frame_read_while_sending_is_kept() {
    bounded(10, || {
        let (pong_tx, pong_rx) = mpsc::channel();
        let (url, server) = serve_one(move |stream| {
            let stream = raw_server(stream);
            let mut ws =
                ws_std::WebSocket::from_raw(stream, ws_std::Role::Server, Config::default());
            // A ping, then half of a text frame "hello".
            ws.get_ref()
                .write_all(&[0x89, 2, b'h', b'i', 0x81, 5, b'h', b'e'])
                .unwrap();
            let first = ws.recv_event().unwrap().unwrap();
            let pong = ws.recv_event().unwrap().unwrap();
            pong_tx.send(()).unwrap();
            ws.get_ref().write_all(b"llo").unwrap();
            while let Some(event) = ws.recv_event() {
                event.unwrap();
            }
            (first, pong)
        });
        let (mut client, _) = ws_std::connect(&url).unwrap();
        client.send(Message::text("m")).unwrap();
        // Only flushing (no recv) until the server got its pong.
        while pong_rx.try_recv().is_err() {
            thread::sleep(Duration::from_millis(5));
            client.flush().unwrap();
        }
        // The half frame stayed in the read buffer; the Ping event is skipped.
        assert_eq!(client.recv().unwrap().unwrap(), Message::text("hello"));
        client.close(CloseCode::NORMAL, "").unwrap();
        let (first, pong) = server.join().unwrap();
        assert_eq!(first, Event::Message(Message::text("m")));
        assert_eq!(pong, Event::Pong(Bytes::from_static(b"hi")));
    });
}

#[test]
fn a_close_is_echoed_while_the_application_only_sends() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| {
            let mut ws = ws_std::accept(stream).unwrap();
            // Returns once the client's echo arrived (data is discarded).
            ws.close(CloseCode(4001), "bye").unwrap();
        });
        let (mut client, _) = ws_std::connect(&url).unwrap();
        let mut sent = 0;
        loop {
            match client.send(Message::text("m")) {
                Ok(()) => sent += 1,
                Err(Error::Send(_)) => break,
                Err(e) => panic!("{e}"),
            }
            assert!(sent < 1000, "the Close never arrived");
            thread::sleep(Duration::from_millis(5));
        }
        server.join().unwrap();
        assert_eq!(client.close_frame().unwrap().code, CloseCode(4001));
        match client.recv_event().unwrap().unwrap() {
            Event::Close(frame) => assert_eq!(frame.reason, "bye"),
            other => panic!("expected the Close, got {other:?}"),
        }
        assert!(client.recv_event().is_none());
    });
}

#[test]
fn split_write_half_never_reads() {
    bounded(10, || {
        let (url, server) = serve_one(|stream| {
            let mut ws = ws_std::accept(stream).unwrap();
            ws.ping(Bytes::from_static(b"split")).unwrap();
            let mut events = Vec::new();
            while let Some(event) = ws.recv_event() {
                events.push(event.unwrap());
            }
            events
        });
        let (ws, _) = ws_std::connect(&url).unwrap();
        let (mut read, mut write) = ws.split();
        write.send(Message::text("first")).unwrap();
        thread::sleep(Duration::from_millis(50));
        write.send(Message::text("second")).unwrap();
        // The ping is still unread: the ReadHalf gets it and answers it.
        assert_eq!(
            read.recv_event().unwrap().unwrap(),
            Event::Ping(Bytes::from_static(b"split"))
        );
        let mut ws = read.reunite(write).unwrap();
        ws.close(CloseCode::NORMAL, "").unwrap();
        let events = server.join().unwrap();
        assert_eq!(events[0], Event::Message(Message::text("first")));
        assert_eq!(events[1], Event::Message(Message::text("second")));
        assert_eq!(events[2], Event::Pong(Bytes::from_static(b"split")));
    });
}

#[test]
fn tcp_read_nonblocking_restores_blocking_mode() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        Transport::read_nonblocking(&mut client, &mut buf).unwrap(),
        None
    );
    server.write_all(b"abc").unwrap();
    let start = Instant::now();
    let got = loop {
        if let Some(n) = Transport::read_nonblocking(&mut client, &mut buf).unwrap() {
            break n;
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(&buf[..got], b"abc");
    // Blocking again: a read waits for its timeout instead of failing at once.
    client
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let err = client.read(&mut buf).unwrap_err();
    assert!(matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ));
    assert!(start.elapsed() >= Duration::from_millis(50));
    drop(server);
    assert_eq!(
        Transport::read_nonblocking(&mut client, &mut buf).unwrap(),
        Some(0)
    );
}

/// Pings of 125 bytes from a raw client that never reads: enough pongs to
/// fill the client's receive buffer and the server's send buffer (neither
/// grows while nobody reads).
const FLOOD: usize = 60_000;

/// A ping flood from a raw client that never reads, then a text message:
/// the server (whole, or the `ReadHalf` of a split one) keeps receiving,
/// because it never blocks on writing its pongs.
fn ping_flood(split: bool) {
    bounded(60, move || {
        let (seen_tx, seen_rx) = mpsc::channel();
        let (url, server) = serve_one(move |stream| {
            let ws = ws_std::accept(stream).unwrap();
            let mut pings = 0;
            let mut texts = Vec::new();
            let mut on_event = |event: Event| match event {
                Event::Ping(_) => pings += 1,
                Event::Message(message) => {
                    texts.push(message.clone());
                    let _ = seen_tx.send(message);
                }
                _ => {}
            };
            let close = if split {
                let (mut read, write) = ws.split();
                while let Some(event) = read.recv_event() {
                    on_event(event.unwrap());
                }
                drop(write);
                read.close_frame().cloned()
            } else {
                let mut ws = ws;
                while let Some(event) = ws.recv_event() {
                    on_event(event.unwrap());
                }
                ws.close_frame().cloned()
            };
            (pings, texts, close)
        });
        let (mut raw, _) = raw_client(&url);
        raw.set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let ping = client_frame(0x89, &[0xa5; 125]);
        let batch: Vec<u8> = ping
            .iter()
            .copied()
            .cycle()
            .take(ping.len() * 1000)
            .collect();
        for i in 0..FLOOD / 1000 {
            if let Err(e) = raw.write_all(&batch) {
                panic!("ping batch {i}: {e} (the server stopped reading)");
            }
        }
        raw.write_all(&client_frame(0x81, b"after-flood")).unwrap();
        let seen = seen_rx.recv_timeout(Duration::from_secs(10));
        assert_eq!(
            seen.expect("the message after the flood"),
            Message::text("after-flood")
        );
        // Now read: the queued pongs (far fewer than the pings), then the
        // echo of our Close and the end of the stream.
        raw.write_all(&client_frame(0x88, &1000u16.to_be_bytes()))
            .unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut bytes = Vec::new();
        raw.read_to_end(&mut bytes).unwrap();
        let mut pongs = 0;
        let mut rest = &bytes[..];
        let close = loop {
            assert!(rest.len() >= 2, "the stream ended without a Close");
            let len = usize::from(rest[1]);
            assert!(len < 126);
            let (frame, tail) = rest.split_at(2 + len);
            rest = tail;
            match frame[0] {
                0x8a => pongs += 1,
                0x88 => break frame[2..].to_vec(),
                other => panic!("unexpected frame {other:#x}"),
            }
        };
        assert_eq!(close, 1000u16.to_be_bytes());
        assert!(rest.is_empty());
        assert!(pongs < FLOOD, "{pongs} pongs");
        let (pings, texts, close) = server.join().unwrap();
        assert_eq!(pings, FLOOD);
        assert_eq!(texts, [Message::text("after-flood")]);
        assert_eq!(close.unwrap().code, CloseCode::NORMAL);
    });
}

#[test]
fn ping_flood_from_a_peer_that_never_reads() {
    ping_flood(false);
}

#[test]
fn split_reader_survives_a_ping_flood_from_a_peer_that_never_reads() {
    ping_flood(true);
}

#[test]
fn keepalive_sends_its_close_before_giving_up() {
    bounded(10, || {
        let config = Config::default().with_keepalive(
            Some(Duration::from_millis(100)),
            Some(Duration::from_millis(200)),
        );
        let (url, server) = serve_one(move |stream| {
            let mut ws =
                ws_std::accept_with(stream, &Options::default().with_config(config)).unwrap();
            while let Some(message) = ws.recv() {
                message.unwrap();
            }
            ws.close_frame().cloned()
        });
        // The raw peer reads only once the server gave up.
        let (mut raw, _) = raw_client(&url);
        let close = server.join().unwrap().unwrap();
        assert_eq!(close.code, CloseCode::ABNORMAL);
        let mut bytes = Vec::new();
        raw.read_to_end(&mut bytes).unwrap();
        // The keepalive ping, then Close 1011 (best effort, but the socket
        // buffer had room), then the end of the stream.
        assert_eq!(&bytes[..2], [0x89, 0]);
        assert_eq!(bytes[2], 0x88);
        assert_eq!(&bytes[4..6], 1011u16.to_be_bytes());
        assert_eq!(bytes.len(), 4 + usize::from(bytes[3]));
    });
}

#[test]
fn an_io_error_is_returned_once_then_close_frame_reports_1006() {
    bounded(10, || {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (url, server) = serve_one(move |stream| {
            let mut ws = ws_std::accept(stream).unwrap();
            // Sent once the client read the whole handshake response, so
            // that these bytes stay unread in its socket.
            ready_rx.recv().unwrap();
            ws.send(Message::text("never read")).unwrap();
            let first = ws.recv();
            let second = ws.recv();
            (first, second.is_none(), ws.close_frame().cloned())
        });
        let (raw, rest) = raw_client(&url);
        assert!(rest.is_empty());
        ready_tx.send(()).unwrap();
        // Closing a socket with unread bytes resets the connection.
        let mut byte = [0u8];
        assert_eq!(raw.peek(&mut byte).unwrap(), 1);
        drop(raw);
        let (first, second_is_none, close) = server.join().unwrap();
        match first {
            Some(Err(Error::Io(e))) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
            other => panic!("expected the reset, got {other:?}"),
        }
        assert!(second_is_none);
        let close = close.expect("a close frame is recorded");
        assert_eq!(close.code, CloseCode::ABNORMAL);
        assert_eq!(close.reason, "connection reset");
    });
}

#[test]
fn tcp_write_nonblocking_never_waits_and_restores_blocking_mode() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    let chunk = [7u8; 64 * 1024];
    let mut written = 0;
    // Nobody reads: the socket buffers fill up, and then it takes nothing.
    while let Some(n) = Transport::write_nonblocking(&client, &[IoSlice::new(&chunk)]).unwrap() {
        written += n;
        assert!(written < 1 << 30, "the buffers never filled");
    }
    assert!(written > 0);
    // Blocking again: a write waits for its timeout instead of failing at once.
    client
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let err = (&client).write(&chunk).unwrap_err();
    assert!(matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ));
    assert!(start.elapsed() >= Duration::from_millis(50));
    // Everything written arrives.
    drop(client);
    let mut received = Vec::new();
    server.read_to_end(&mut received).unwrap();
    assert_eq!(received.len(), written);
}

#[test]
fn plain_streams_do_not_write_without_blocking() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = ws_std::Plain(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
    let err = Transport::write_nonblocking(&client, &[IoSlice::new(b"x")]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
}
