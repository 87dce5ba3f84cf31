//! Loopback tests: this adapter on both sides, or a raw TCP peer where the
//! test needs to misbehave. Every test is bounded by a timeout.

extern crate alloc;

use alloc::sync::Arc;
use core::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicUsize, Ordering},
    task::{Context, Poll},
    time::Duration,
};
use std::{io, time::Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
};
use ws_tokio::{
    Bytes, ClientRequest, CloseCode, Config, Error, Event, HandshakeError, Message, Options,
    ProtocolError, WebSocket,
};

async fn timed<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("the test timed out")
}

fn big_options() -> Options {
    Options::default().with_config(
        Config::default()
            .with_max_frame_size(64 << 20)
            .with_max_message_size(64 << 20),
    )
}

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/test", listener.local_addr().unwrap());
    (listener, url)
}

/// A connected client and server.
async fn pair(options: &Options) -> (WebSocket<TcpStream>, WebSocket<TcpStream>) {
    let (listener, url) = listener().await;
    let request = ClientRequest::new(&url).unwrap();
    let (client, server) = tokio::join!(ws_tokio::connect_with(request, options), async {
        let (stream, _) = listener.accept().await.unwrap();
        ws_tokio::accept_with(stream, options).await
    });
    (client.unwrap().0, server.unwrap())
}

/// Echoes data messages until the connection ends; returns the socket.
fn spawn_echo(mut server: WebSocket<TcpStream>) -> tokio::task::JoinHandle<WebSocket<TcpStream>> {
    tokio::spawn(async move {
        while let Some(message) = server.recv().await {
            if server.send(message.unwrap()).await.is_err() {
                break;
            }
        }
        server
    })
}

const REQUEST: &str = "GET /raw HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// Reads an HTTP head (up to the blank line) byte by byte.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    String::from_utf8(head).unwrap()
}

/// A raw TCP client that completed the handshake with the server accepted
/// by `accept` (run concurrently); `extra` is sent with the request.
async fn raw_pair(options: &Options, extra: &[u8]) -> (TcpStream, WebSocket<TcpStream>) {
    let (listener, _) = listener().await;
    let addr = listener.local_addr().unwrap();
    let (raw, server) = tokio::join!(
        async {
            let mut raw = TcpStream::connect(addr).await.unwrap();
            let mut first = REQUEST.as_bytes().to_vec();
            first.extend_from_slice(extra);
            raw.write_all(&first).await.unwrap();
            let head = read_head(&mut raw).await;
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            raw
        },
        async {
            let (stream, _) = listener.accept().await.unwrap();
            ws_tokio::accept_with(stream, options).await.unwrap()
        }
    );
    (raw, server)
}

/// A client frame (masked), payload below 64 KiB.
fn masked_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![first_byte];
    if payload.len() < 126 {
        frame.push(0x80 | payload.len() as u8);
    } else {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) + seed) as u8)
        .collect()
}

#[tokio::test]
async fn message_sizes_round_trip() {
    timed(async {
        let (mut client, server) = pair(&big_options()).await;
        let echo = spawn_echo(server);
        for (i, len) in [0, 125, 126, 65535, 65536, 1 << 20, 16 << 20]
            .into_iter()
            .enumerate()
        {
            let data = Bytes::from(pattern(len, i));
            client.send(Message::Binary(data.clone())).await.unwrap();
            let echoed = client.recv().await.unwrap().unwrap();
            assert_eq!(echoed, Message::Binary(data), "binary of {len} bytes");
            let text = "é".repeat(len / 2);
            client.send(Message::text(text.as_str())).await.unwrap();
            let echoed = client.recv().await.unwrap().unwrap();
            assert_eq!(echoed, Message::text(text.as_str()), "text of {len} bytes");
        }
        client.close(CloseCode::NORMAL, "done").await.unwrap();
        let server = echo.await.unwrap();
        let frame = server.close_frame().unwrap();
        assert_eq!(
            (frame.code, frame.reason.as_str()),
            (CloseCode::NORMAL, "done")
        );
        assert!(client.recv().await.is_none());
    })
    .await;
}

#[tokio::test]
async fn fragmented_messages_are_reassembled() {
    timed(async {
        let (mut client, mut server) = pair(&Options::default()).await;
        let conn = client.connection_mut();
        conn.send_fragment(Message::text("hel"), false).unwrap();
        conn.send_fragment(Message::text("lo "), false).unwrap();
        conn.send_fragment(Message::text("wörld"), true).unwrap();
        for (part, fin) in [
            (&b"ab"[..], false),
            (b"", false),
            (b"cd", false),
            (b"e", true),
        ] {
            let conn = client.connection_mut();
            conn.send_fragment(Message::binary(part.to_vec()), fin)
                .unwrap();
        }
        client.flush().await.unwrap();
        assert_eq!(
            server.recv().await.unwrap().unwrap(),
            Message::text("hello wörld")
        );
        assert_eq!(
            server.recv().await.unwrap().unwrap(),
            Message::binary(b"abcde".to_vec())
        );

        // Hand-built fragments from a raw peer, with a ping in between.
        let (mut raw, mut server) = raw_pair(&Options::default(), &[]).await;
        let mut frames = masked_frame(0x02, b"12");
        frames.extend(masked_frame(0x89, b"p"));
        frames.extend(masked_frame(0x80, b"34"));
        raw.write_all(&frames).await.unwrap();
        assert_eq!(
            server.recv_event().await.unwrap().unwrap(),
            Event::Ping(Bytes::from_static(b"p"))
        );
        assert_eq!(
            server.recv().await.unwrap().unwrap(),
            Message::binary(b"1234".to_vec())
        );
        // The automatic pong reached the raw peer.
        let mut pong = [0u8; 3];
        raw.read_exact(&mut pong).await.unwrap();
        assert_eq!(pong, [0x8A, 1, b'p']);
    })
    .await;
}

#[tokio::test]
async fn ping_pong() {
    timed(async {
        let (mut client, mut server) = pair(&Options::default()).await;
        let server_task = tokio::spawn(async move {
            let event = server.recv_event().await.unwrap().unwrap();
            (server, event)
        });
        client
            .ping(Bytes::from_static(b"are you there"))
            .await
            .unwrap();
        let pong = client.recv_event().await.unwrap().unwrap();
        assert_eq!(pong, Event::Pong(Bytes::from_static(b"are you there")));
        let (_server, ping) = server_task.await.unwrap();
        assert_eq!(ping, Event::Ping(Bytes::from_static(b"are you there")));
    })
    .await;
}

#[tokio::test]
async fn close_from_client() {
    timed(async {
        let (mut client, server) = pair(&Options::default()).await;
        let echo = spawn_echo(server);
        client.close(CloseCode(4000), "bye").await.unwrap();
        let server = echo.await.unwrap();
        let seen = server.close_frame().unwrap();
        assert_eq!((seen.code, seen.reason.as_str()), (CloseCode(4000), "bye"));
        // The server echoed the code.
        assert_eq!(client.close_frame().unwrap().code, CloseCode(4000));
        assert!(client.recv().await.is_none());
        assert!(matches!(
            client.send(Message::text("late")).await,
            Err(Error::Send(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn close_from_server() {
    timed(async {
        let (mut client, mut server) = pair(&Options::default()).await;
        let client_task = tokio::spawn(async move {
            let mut received = Vec::new();
            while let Some(message) = client.recv().await {
                received.push(message.unwrap());
            }
            (client, received)
        });
        server.send(Message::text("last words")).await.unwrap();
        server
            .close(CloseCode::GOING_AWAY, "shutting down")
            .await
            .unwrap();
        let (client, received) = client_task.await.unwrap();
        assert_eq!(received, [Message::text("last words")]);
        let seen = client.close_frame().unwrap();
        assert_eq!(
            (seen.code, seen.reason.as_str()),
            (CloseCode::GOING_AWAY, "shutting down")
        );
        assert_eq!(server.close_frame().unwrap().code, CloseCode::GOING_AWAY);
    })
    .await;
}

#[tokio::test]
async fn server_rejects_with_403() {
    timed(async {
        let (listener, url) = listener().await;
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let incoming = ws_tokio::read_request(stream, &Options::default())
                .await
                .unwrap();
            assert_eq!(incoming.request().path(), "/test");
            // The application may await anything before deciding.
            tokio::task::yield_now().await;
            incoming
                .reject(403, &[("X-Why", "no entry")], b"forbidden")
                .await
                .unwrap();
        });
        match ws_tokio::connect(&url).await {
            Err(Error::Handshake(HandshakeError::Rejected(response))) => {
                assert_eq!(response.status, 403);
                assert_eq!(response.body, b"forbidden");
                assert_eq!(response.header("x-why"), Some("no entry"));
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn peer_reset_mid_frame() {
    timed(async {
        let (raw, mut server) = raw_pair(&Options::default(), &[]).await;
        let frame = masked_frame(0x82, &[7; 1000]);
        let mut raw = raw;
        raw.write_all(&frame[..500]).await.unwrap();
        // SO_LINGER 0: the drop sends a reset (it does not block).
        #[allow(deprecated)]
        raw.set_linger(Some(Duration::ZERO)).unwrap();
        drop(raw);
        match server.recv().await {
            Some(Err(Error::Io(_))) => {}
            None => assert_eq!(server.close_frame().unwrap().code, CloseCode::ABNORMAL),
            other => panic!("unexpected {other:?}"),
        }
        assert!(server.recv().await.is_none());

        // A clean half-frame EOF gives 1006.
        let (mut raw, mut server) = raw_pair(&Options::default(), &[]).await;
        raw.write_all(&frame[..500]).await.unwrap();
        raw.shutdown().await.unwrap();
        assert!(server.recv().await.is_none());
        assert_eq!(server.close_frame().unwrap().code, CloseCode::ABNORMAL);
    })
    .await;
}

#[tokio::test]
async fn split_halves_work_concurrently() {
    timed(async {
        let (client, server) = pair(&Options::default()).await;
        let echo = spawn_echo(server);
        let (mut read, mut write) = client.split();
        const N: usize = 1000;
        let writer = tokio::spawn(async move {
            for i in 0..N {
                write
                    .send(Message::text(format!("message {i}")))
                    .await
                    .unwrap();
            }
            write
        });
        let reader = tokio::spawn(async move {
            for i in 0..N {
                let message = read.recv().await.unwrap().unwrap();
                assert_eq!(message, Message::text(format!("message {i}")));
            }
            read
        });
        let (write, read) = (writer.await.unwrap(), reader.await.unwrap());
        let mut client = WebSocket::reunite(read, write).unwrap();
        client.close(CloseCode::NORMAL, "").await.unwrap();
        echo.await.unwrap();

        // Halves of different sockets do not reunite.
        let (a, b) = pair(&Options::default()).await;
        let (read_a, _write_a) = a.split();
        let (_read_b, write_b) = b.split();
        assert!(WebSocket::reunite(read_a, write_b).is_err());
    })
    .await;
}

#[tokio::test]
async fn split_write_half_close_is_finished_by_read_half() {
    timed(async {
        let (client, server) = pair(&Options::default()).await;
        let echo = spawn_echo(server);
        let (mut read, mut write) = client.split();
        let reader = tokio::spawn(async move {
            while let Some(message) = read.recv().await {
                message.unwrap();
            }
            read
        });
        write.send(Message::text("x")).await.unwrap();
        write.close(CloseCode(4001), "split").await.unwrap();
        let read = reader.await.unwrap();
        assert_eq!(read.close_frame().unwrap().code, CloseCode(4001));
        let server = echo.await.unwrap();
        assert_eq!(server.close_frame().unwrap().reason.as_str(), "split");
    })
    .await;
}

#[tokio::test]
async fn keepalive_detects_dead_peer() {
    timed(async {
        let config = Config::default().with_keepalive(
            Some(Duration::from_millis(100)),
            Some(Duration::from_millis(200)),
        );
        let (mut raw, mut server) = raw_pair(&Options::default().with_config(config), &[]).await;
        let start = Instant::now();
        while let Some(event) = server.recv_event().await {
            assert!(matches!(event, Ok(Event::Close(_))), "{event:?}");
        }
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
        assert!(elapsed >= Duration::from_millis(250), "took {elapsed:?}");
        assert_eq!(server.close_frame().unwrap().code, CloseCode::ABNORMAL);
        // The raw peer saw a ping, then Close 1011, then the end.
        let mut rest = Vec::new();
        raw.read_to_end(&mut rest).await.unwrap();
        assert_eq!(&rest[..2], [0x89, 0]);
        assert_eq!(
            [rest[2], rest[4], rest[5]],
            [0x88, 0x03, 0xF3],
            "Close 1011"
        );
    })
    .await;
}

#[tokio::test]
async fn handshake_timeout_drops_silent_client() {
    timed(async {
        let (listener, _) = listener().await;
        let mut raw = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let options = Options::default().with_handshake_timeout(Some(Duration::from_millis(200)));
        let start = Instant::now();
        match ws_tokio::accept_with(stream, &options).await {
            Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(2));
        // The stream was dropped: the client sees the end.
        let mut rest = Vec::new();
        raw.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    })
    .await;
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    timed(async {
        let (mut client, mut server) = pair(&big_options()).await;
        const N: usize = 200;
        let sender = tokio::spawn(async move {
            for i in 0..N {
                let len = (i * 7919) % (200 * 1024);
                server
                    .send(Message::Binary(pattern(len, i).into()))
                    .await
                    .unwrap();
                if i % 5 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            server.close(CloseCode::NORMAL, "").await.unwrap();
        });
        let (mut received, mut cancelled) = (0, 0);
        let mut rounds = 0;
        while received < N {
            rounds += 1;
            assert!(rounds < 1_000_000);
            tokio::select! {
                message = client.recv() => {
                    let message = message.unwrap().unwrap();
                    let len = (received * 7919) % (200 * 1024);
                    assert_eq!(message.as_bytes(), pattern(len, received), "message {received}");
                    received += 1;
                }
                () = tokio::time::sleep(Duration::from_micros(500)) => cancelled += 1,
            }
        }
        assert!(client.recv().await.is_none());
        assert!(cancelled > 0, "recv was never cancelled");
        sender.await.unwrap();
    })
    .await;
}

/// Counts write calls that reached the transport.
struct Counting {
    inner: TcpStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn sink_feed_then_flush_uses_few_writes() {
    timed(async {
        let (listener, url) = listener().await;
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut server = ws_tokio::accept(stream).await.unwrap();
            let mut received = Vec::new();
            while let Some(message) = server.next().await {
                received.push(message.unwrap());
            }
            received
        });
        let writes = Arc::new(AtomicUsize::new(0));
        let stream = Counting {
            inner: TcpStream::connect(url.trim_start_matches("ws://").trim_end_matches("/test"))
                .await
                .unwrap(),
            writes: Arc::clone(&writes),
        };
        let request = ClientRequest::new(&url).unwrap();
        let (mut client, _) = ws_tokio::client(stream, request, &Options::default())
            .await
            .unwrap();
        let before = writes.load(Ordering::Relaxed);
        for i in 0..100 {
            client.feed(Message::text(format!("m{i}"))).await.unwrap();
        }
        assert_eq!(writes.load(Ordering::Relaxed), before, "feed wrote");
        client.flush().await.unwrap();
        let used = writes.load(Ordering::Relaxed) - before;
        assert!(used <= 3, "{used} writes for 100 fed messages");
        // Through the Sink trait as well.
        let mut items =
            futures_util::stream::iter((0..50).map(|i| Ok(Message::text(format!("s{i}")))));
        client.send_all(&mut items).await.unwrap();
        SinkExt::close(&mut client).await.unwrap();
        let received = server.await.unwrap();
        assert_eq!(received.len(), 150);
        assert_eq!(received[0], Message::text("m0"));
        assert_eq!(received[149], Message::text("s49"));
    })
    .await;
}

#[tokio::test]
async fn wss_is_refused_without_tls() {
    match ws_tokio::connect("wss://127.0.0.1:1/").await {
        Err(Error::Handshake(HandshakeError::InvalidRequest(_))) => {}
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_request_gets_an_http_error() {
    timed(async {
        let (listener, _) = listener().await;
        let mut raw = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        match ws_tokio::accept(stream).await {
            Err(Error::Handshake(HandshakeError::MissingHost)) => {}
            other => panic!("expected MissingHost, got {other:?}"),
        }
        let mut response = String::new();
        raw.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    })
    .await;
}

#[tokio::test]
async fn bytes_after_the_request_head_are_kept() {
    timed(async {
        let frame = masked_frame(0x81, b"early bird");
        let (_raw, mut server) = raw_pair(&Options::default(), &frame).await;
        assert_eq!(
            server.recv().await.unwrap().unwrap(),
            Message::text("early bird")
        );
    })
    .await;
}

#[tokio::test]
async fn protocol_error_is_returned_once_after_the_close() {
    timed(async {
        let (mut raw, mut server) = raw_pair(&Options::default(), &[]).await;
        // An unmasked frame from a client.
        raw.write_all(&[0x81, 2, b'h', b'i']).await.unwrap();
        match server.recv().await {
            Some(Err(Error::Protocol(ProtocolError::UnmaskedFrameFromClient))) => {}
            other => panic!("expected a protocol error, got {other:?}"),
        }
        assert!(server.recv().await.is_none());
        let mut rest = Vec::new();
        raw.read_to_end(&mut rest).await.unwrap();
        assert_eq!(&rest[..4], [0x88, rest[1], 0x03, 0xEA], "Close 1002");
    })
    .await;
}

#[tokio::test]
async fn close_timeout_ends_close_with_silent_peer() {
    timed(async {
        let config = Config::default().with_close_timeout(Some(Duration::from_millis(200)));
        let (mut raw, mut server) = raw_pair(&Options::default().with_config(config), &[]).await;
        let start = Instant::now();
        server.close(CloseCode::NORMAL, "").await.unwrap();
        let elapsed = start.elapsed();
        assert!(
            (Duration::from_millis(150)..Duration::from_secs(2)).contains(&elapsed),
            "took {elapsed:?}"
        );
        assert_eq!(server.close_frame().unwrap().code, CloseCode::ABNORMAL);
        let mut rest = Vec::new();
        raw.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, [0x88, 2, 0x03, 0xE8], "Close 1000, then the end");
    })
    .await;
}

#[tokio::test]
async fn split_read_half_answers_pings_alone() {
    timed(async {
        let (mut raw, server) = raw_pair(&Options::default(), &[]).await;
        let (mut read, mut write) = server.split();
        let reader = tokio::spawn(async move {
            let mut events = Vec::new();
            while let Some(event) = read.recv_event().await {
                events.push(event.unwrap());
            }
            (read, events)
        });
        // Stream/Sink on the halves: the writer feeds two messages.
        write.feed(Message::text("one")).await.unwrap();
        SinkExt::send(&mut write, Message::text("two"))
            .await
            .unwrap();
        let mut head = [0u8; 10];
        raw.read_exact(&mut head).await.unwrap();
        assert_eq!(head, *b"\x81\x03one\x81\x03two");
        // A ping while the writer is idle: the reader writes the pong.
        raw.write_all(&masked_frame(0x89, b"hey")).await.unwrap();
        let mut pong = [0u8; 5];
        raw.read_exact(&mut pong).await.unwrap();
        assert_eq!(pong, *b"\x8A\x03hey");
        // The peer closes: the reader echoes and shuts the transport down.
        let mut close = vec![0x03, 0xE8];
        close.extend_from_slice(b"bye");
        raw.write_all(&masked_frame(0x88, &close)).await.unwrap();
        let mut rest = Vec::new();
        raw.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, [0x88, 2, 0x03, 0xE8]);
        let (read, events) = reader.await.unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(read.close_frame().unwrap().reason.as_str(), "bye");
        assert!(matches!(
            write.send(Message::text("late")).await,
            Err(Error::Send(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn pings_are_answered_while_the_application_only_sends() {
    timed(async {
        let (mut client, server) = pair(&Options::default()).await;
        // The server reads on one half and pings on the other, so that its
        // own sends never read (and never coalesce the client's pongs).
        let (mut server_rx, mut server_tx) = server.split();
        let (pinged_tx, mut pinged) = tokio::sync::mpsc::unbounded_channel::<()>();
        let (msg_tx, mut msg_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let pinger = tokio::spawn(async move {
            for i in 0..20 {
                msg_rx.recv().await.unwrap();
                server_tx.ping(Bytes::from(format!("p{i}"))).await.unwrap();
                pinged_tx.send(()).unwrap();
            }
            server_tx
        });
        let reader = tokio::spawn(async move {
            let mut pongs = Vec::new();
            while pongs.len() < 20 {
                match server_rx.recv_event().await.unwrap().unwrap() {
                    Event::Message(_) => msg_tx.send(()).unwrap(),
                    Event::Pong(payload) => pongs.push(payload),
                    other => panic!("unexpected {other:?}"),
                }
            }
            pongs
        });
        // The client never calls recv: its sends carry the pongs.
        for i in 0..20 {
            client.send(Message::text(format!("m{i}"))).await.unwrap();
            pinged.recv().await.unwrap();
        }
        // The last ping is answered by a flush once it has arrived.
        while !reader.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.flush().await.unwrap();
        }
        let pongs = reader.await.unwrap();
        pinger.await.unwrap();
        let expected: Vec<Bytes> = (0..20).map(|i| Bytes::from(format!("p{i}"))).collect();
        assert_eq!(pongs, expected, "every ping answered, in order");
        // The first Ping event read during the sends is kept for the application.
        assert_eq!(
            client.recv_event().await.unwrap().unwrap(),
            Event::Ping(Bytes::from_static(b"p0"))
        );
    })
    .await;
}
