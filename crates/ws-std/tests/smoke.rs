//! Smoke tests over real sockets: the adapter moves bytes, arms the timer and
//! maps types (the protocol scenarios live in the core's suite).

#![allow(missing_docs)]

mod common;

use core::time::Duration;
use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::Instant,
};

use common::{bounded, raw_client, serve};
use ws_proto::{AcceptOptions, ServerHandshake};
use ws_std::{
    Bytes, BytesMut, ClientRequest, CloseCode, Config, Connection, Driver, Error, Event,
    HandshakeError, Message, Options, Role, WebSocket,
};

/// An echo server with `config`; returns the close code it saw.
fn echo_server(config: Config) -> (String, thread::JoinHandle<Option<u16>>) {
    serve(move |stream| {
        let options = Options::default().with_config(config);
        let mut ws = ws_std::accept_with(stream, &options).unwrap();
        while let Some(Ok(message)) = ws.recv() {
            ws.send(message).unwrap();
        }
        ws.close_frame().map(|f| f.code.0)
    })
}

/// A hand-driven server: handshake by hand, then the raw stream.
fn raw_server(mut stream: TcpStream) -> TcpStream {
    let (mut handshake, mut buf) = (ServerHandshake::new(), BytesMut::new());
    let request = loop {
        if let Some(request) = handshake.receive(&mut buf).unwrap() {
            break request;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).unwrap();
        buf.extend_from_slice(&chunk[..n]);
    };
    stream
        .write_all(request.accept(&AcceptOptions::new()).unwrap().response())
        .unwrap();
    stream
}

/// An unmasked frame (server to client, or a protocol error from a client).
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![first, payload.len() as u8];
    frame.extend_from_slice(payload);
    frame
}

/// Reads one frame (a client's frames are masked): opcode and payload.
fn read_frame(stream: &mut impl Read) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    let mut len = u64::from(head[1] & 0x7f);
    if len >= 126 {
        let mut ext = [0u8; 8];
        let ext = &mut ext[..if len == 126 { 2 } else { 8 }];
        stream.read_exact(ext).unwrap();
        len = ext.iter().fold(0, |n, b| n << 8 | u64::from(*b));
    }
    let mut key = [0u8; 4];
    if head[1] & 0x80 != 0 {
        stream.read_exact(&mut key).unwrap();
    }
    let mut payload = vec![0; len as usize];
    stream.read_exact(&mut payload).unwrap();
    payload
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b ^= key[i % 4]);
    (head[0] & 0x0f, payload)
}

#[test]
fn echo_text_binary_and_a_mebibyte_then_ping_and_close() {
    bounded(30, || {
        let (url, server) = echo_server(Config::default());
        let (mut ws, _) = ws_std::connect(&url).unwrap();
        let big = Message::binary(vec![7u8; 1 << 20]);
        for message in [Message::text("hello"), Message::binary(vec![1, 2, 3]), big] {
            ws.send(message.clone()).unwrap();
            assert_eq!(ws.recv().unwrap().unwrap(), message);
        }
        ws.ping(Bytes::from_static(b"p")).unwrap();
        let pong = ws.recv_event().unwrap().unwrap();
        assert_eq!(pong, Event::Pong(Bytes::from_static(b"p")));
        ws.close(CloseCode(4000), "bye").unwrap();
        assert_eq!(ws.close_frame().unwrap().code, CloseCode(4000));
        assert!(ws.recv().is_none());
        assert_eq!(server.join().unwrap(), Some(4000));
    });
}

#[test]
fn server_closes_with_a_code_and_the_client_sees_it() {
    bounded(10, || {
        let (url, server) = serve(|stream| {
            let mut ws = ws_std::accept(stream).unwrap();
            ws.close(CloseCode(4001), "done").unwrap();
            ws.close_frame().map(|f| f.code.0)
        });
        let (mut ws, _) = ws_std::connect(&url).unwrap();
        let Some(Ok(Event::Close(frame))) = ws.recv_event() else {
            panic!("no close")
        };
        assert_eq!(
            (frame.code, frame.reason.as_str()),
            (CloseCode(4001), "done")
        );
        assert!(ws.recv_event().is_none());
        assert_eq!(server.join().unwrap(), Some(4001));
    });
}

#[test]
fn protocol_error_sends_1002_and_eof_reports_1006() {
    bounded(10, || {
        let (url, server) = serve(|stream| {
            let mut ws = ws_std::accept(stream).unwrap();
            matches!(ws.recv(), Some(Err(Error::Protocol(_)))) && ws.recv().is_none()
        });
        let (mut stream, _) = raw_client(&url);
        stream.write_all(&frame(0x81, b"unmasked")).unwrap();
        let (opcode, payload) = read_frame(&mut stream);
        assert_eq!((opcode, &payload[..2]), (0x8, &1002u16.to_be_bytes()[..]));
        assert_eq!(
            stream.read(&mut [0; 16]).unwrap(),
            0,
            "the server ends the stream"
        );
        assert!(server.join().unwrap());

        let (url, server) = serve(|stream| {
            let mut ws = ws_std::accept(stream).unwrap();
            assert!(ws.recv().is_none());
            ws.close_frame().map(|f| f.code)
        });
        drop(raw_client(&url));
        assert_eq!(server.join().unwrap(), Some(CloseCode::ABNORMAL));
    });
}

#[test]
fn read_request_reject_and_subprotocol() {
    bounded(10, || {
        let (url, server) = serve(|stream| {
            let incoming = ws_std::read_request(stream).unwrap();
            incoming
                .reject(403, &[("x-why", "no")], b"go away")
                .unwrap();
        });
        let Err(Error::Handshake(HandshakeError::Rejected(response))) = ws_std::connect(&url)
        else {
            panic!("not rejected")
        };
        assert_eq!(response.status, 403);
        server.join().unwrap();

        let (url, server) = serve(|stream| {
            let incoming = ws_std::read_request(stream).unwrap();
            assert_eq!(incoming.request().protocols(), ["chat"]);
            let mut ws = incoming
                .accept(&AcceptOptions::new().protocol("chat"))
                .unwrap();
            assert!(ws.recv().is_none());
        });
        let request = ClientRequest::new(&url).unwrap().protocol("chat");
        let (mut ws, response) = ws_std::connect_with(request, &Options::default()).unwrap();
        assert_eq!(response.protocol.as_deref(), Some("chat"));
        ws.close(CloseCode::NORMAL, "").unwrap();
        server.join().unwrap();
    });
}

#[test]
fn from_raw_and_duration_max_timers() {
    bounded(10, || {
        let max = Some(Duration::MAX);
        let config = Config::default()
            .with_close_timeout(max)
            .with_keepalive(max, max);
        let (url, server) = echo_server(config.clone());
        let (stream, buf) = raw_client(&url);
        let mut ws = WebSocket::from_driver(
            stream,
            Driver::with_buffer(Connection::new(Role::Client, config), buf),
        );
        ws.send(Message::text("raw")).unwrap();
        assert_eq!(ws.recv().unwrap().unwrap(), Message::text("raw"));
        ws.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(server.join().unwrap(), Some(1000));
    });
}

#[test]
fn a_receive_deadline_times_out_loses_nothing_and_does_not_bound_close() {
    bounded(10, || {
        // The peer echoes the Close after 200 ms; the receive deadline is 50 ms.
        let (url, server) = serve(|stream| {
            let mut stream = raw_server(stream);
            stream.write_all(&frame(0x81, b"late")).unwrap();
            assert_eq!(read_frame(&mut stream).0, 0x8);
            thread::sleep(Duration::from_millis(200));
            stream
                .write_all(&frame(0x88, &1000u16.to_be_bytes()))
                .unwrap();
        });
        let (mut ws, _) = ws_std::connect(&url).unwrap();
        ws.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        assert_eq!(ws.recv().unwrap().unwrap(), Message::text("late"));
        let start = Instant::now();
        let error = ws
            .recv_timeout(Duration::from_millis(30))
            .unwrap()
            .unwrap_err();
        assert!(error.is_timeout(), "{error:?}");
        assert!(start.elapsed() < Duration::from_secs(1));
        ws.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(ws.close_frame().unwrap().code, CloseCode::NORMAL);
        server.join().unwrap();
    });
}

#[test]
fn split_echo_from_two_threads_then_reunite() {
    bounded(20, || {
        let (url, server) = echo_server(Config::default());
        let (ws, _) = ws_std::connect(&url).unwrap();
        let (mut read, mut write) = ws.split();
        let writer = thread::spawn(move || {
            for i in 0..200 {
                write.send(Message::text(i.to_string())).unwrap();
            }
            write
        });
        for i in 0..200 {
            assert_eq!(read.recv().unwrap().unwrap(), Message::text(i.to_string()));
        }
        let write = writer.join().unwrap();
        let mut ws = read.reunite(write).unwrap();
        ws.send(Message::text("whole again")).unwrap();
        assert_eq!(ws.recv().unwrap().unwrap(), Message::text("whole again"));
        ws.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(server.join().unwrap(), Some(1000));

        let (a, _) = ws_std::connect(&echo_server(Config::default()).0).unwrap();
        let (b, _) = ws_std::connect(&echo_server(Config::default()).0).unwrap();
        let (a_read, _) = a.split();
        let (_, b_write) = b.split();
        assert!(
            a_read.reunite(b_write).is_err(),
            "halves of different sockets"
        );
    });
}

/// The write half blocks on a peer that does not read; the read half keeps
/// delivering the peer's messages and pings, and the pongs go out in order
/// once the peer reads again.
#[test]
fn split_reader_keeps_receiving_while_the_writer_is_blocked() {
    const BIG: usize = 40;
    bounded(60, || {
        let (peer_tx, peer_rx) = mpsc::channel::<()>();
        let (url, peer) = serve(move |stream| {
            let mut stream = raw_server(stream);
            for i in 0..10u8 {
                stream.write_all(&frame(0x81, &[b'm', b'0' + i])).unwrap();
                stream.write_all(&frame(0x89, &[b'p', b'0' + i])).unwrap();
            }
            peer_rx.recv().unwrap(); // Read only once the messages were delivered.
            let (mut bigs, mut pongs) = (0, Vec::new());
            loop {
                match read_frame(&mut stream) {
                    (0x2, _) => bigs += 1,
                    (0xa, payload) => pongs.push(payload[1] - b'0'),
                    (0x8, _) => break,
                    (opcode, _) => panic!("opcode {opcode}"),
                }
            }
            stream
                .write_all(&frame(0x88, &1000u16.to_be_bytes()))
                .unwrap();
            (bigs, pongs)
        });
        let (ws, _) = ws_std::connect(&url).unwrap();
        let (mut read, mut write) = ws.split();
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&sent);
        let writer = thread::spawn(move || {
            for _ in 0..BIG {
                write.send(Message::binary(vec![0u8; 1 << 20])).unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
            }
            write.close(CloseCode::NORMAL, "").unwrap();
        });
        let start = Instant::now();
        for i in 0..10u8 {
            let message = read.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
            assert_eq!(message, Message::text(format!("m{i}")));
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(
            sent.load(Ordering::SeqCst) < BIG,
            "the writer was never blocked"
        );
        peer_tx.send(()).unwrap();
        assert!(read.recv().is_none());
        assert_eq!(read.close_frame().unwrap().code, CloseCode::NORMAL);
        writer.join().unwrap();
        let (bigs, pongs) = peer.join().unwrap();
        assert_eq!(bigs, BIG);
        assert!(
            pongs.windows(2).all(|w| w[0] < w[1]),
            "pongs out of order: {pongs:?}"
        );
        assert_eq!(pongs.last(), Some(&9), "the latest ping's pong: {pongs:?}");
    });
}

/// permessage-deflate is negotiated by default; while the server waits for
/// the next message, the run loop's timer frees its compression contexts
/// once it has been idle for `release_contexts_after` (1 s by default).
#[test]
fn idle_deflate_connections_free_their_compression_contexts() {
    bounded(20, || {
        let (url, server) = serve(|stream| {
            let mut ws = ws_std::accept(stream).unwrap();
            let message = ws.recv().unwrap().unwrap();
            ws.send(message).unwrap();
            let busy = ws.connection().deflate_heap_size();
            let waited = ws.recv_timeout(Duration::from_millis(2500));
            assert!(waited.unwrap().unwrap_err().is_timeout());
            (busy, ws.connection().deflate_heap_size())
        });
        let (mut ws, _) = ws_std::connect(&url).unwrap();
        assert!(ws.connection().deflate().is_some(), "deflate agreed");
        let text = "{\"user\":\"ann\",\"text\":\"the deploy is done\"} ".repeat(20);
        ws.send(Message::text(text.as_str())).unwrap();
        assert_eq!(ws.recv().unwrap().unwrap(), Message::text(text));
        let (busy, idle) = server.join().unwrap();
        assert!(busy > 100 << 10, "contexts live while busy: {busy} B");
        assert!(idle <= 8 << 10, "only the windows once idle: {idle} B");
    });
}

/// A stream that holds written bytes until flushed.
struct Buffered {
    read: TcpStream,
    write: std::io::BufWriter<TcpStream>,
}

impl Read for Buffered {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read.read(buf)
    }
}

impl Write for Buffered {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.write.flush()
    }
}

/// Over a transport that holds written bytes until flushed, the
/// handshake's response, a pong written inside `recv`, an echo and the
/// Close echo all reach the peer: each was flushed before the socket waited
/// or returned.
#[test]
fn a_buffering_transport_is_flushed_before_every_wait() {
    bounded(30, || {
        let (url, server) = serve(|stream| {
            let write = std::io::BufWriter::new(stream.try_clone().unwrap());
            let buffered = ws_std::Plain(Buffered {
                read: stream,
                write,
            });
            let mut ws = ws_std::accept(buffered).unwrap();
            // The ping is answered inside, while waiting for the message.
            let message = ws.recv().unwrap().unwrap();
            ws.send(message).unwrap();
            assert!(ws.recv().is_none(), "the client closed");
        });
        let (mut client, _) = ws_std::connect(&url).unwrap();
        client.ping(Bytes::from_static(b"p")).unwrap();
        let pong = client.recv_event().unwrap().unwrap();
        assert_eq!(pong, Event::Pong(Bytes::from_static(b"p")));
        client.send(Message::text("hello")).unwrap();
        assert_eq!(client.recv().unwrap().unwrap(), Message::text("hello"));
        client.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(
            client.close_frame().map(|f| f.code),
            Some(CloseCode::NORMAL)
        );
        server.join().unwrap();
    });
}
