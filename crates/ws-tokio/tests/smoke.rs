//! Smoke tests over real sockets: this adapter on both sides, or a raw TCP
//! peer where the test needs to misbehave or not read. The protocol itself
//! is tested in ws-proto; these check the I/O plumbing. Every test binds
//! 127.0.0.1:0 and is bounded by a timeout.

mod common;

use core::{future::Future, time::Duration};

use common::masked;
use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
};
use ws_tokio::{
    AcceptOptions, Bytes, ClientRequest, CloseCode, Config, Error, Event, HandshakeError,
    MaybeTlsStream, Message, Options, ProtocolError, Role, WebSocket,
};

async fn timed<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("the test timed out")
}

fn big() -> Options {
    let config = Config::default()
        .with_max_frame_size(64 << 20)
        .with_max_message_size(64 << 20);
    Options::default().with_config(config)
}

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/test", listener.local_addr().unwrap());
    (listener, url)
}

/// A connected client and server.
async fn pair(options: &Options) -> (WebSocket<MaybeTlsStream>, WebSocket<MaybeTlsStream>) {
    let (listener, url) = listener().await;
    let request = ClientRequest::new(&url).unwrap();
    let (client, server) = tokio::join!(ws_tokio::connect_with(request, options), async {
        let stream = MaybeTlsStream::Plain(listener.accept().await.unwrap().0);
        ws_tokio::accept_with(stream, options).await
    });
    (client.unwrap().0, server.unwrap())
}

/// Echoes data messages until the connection ends, with a ping after every
/// tenth; returns the socket.
fn spawn_echo(
    mut ws: WebSocket<MaybeTlsStream>,
) -> tokio::task::JoinHandle<WebSocket<MaybeTlsStream>> {
    tokio::spawn(async move {
        let mut count = 0u32;
        while let Some(Ok(message)) = ws.recv().await {
            count += 1;
            if ws.send(message).await.is_err() {
                break;
            }
            if count.is_multiple_of(10) && ws.ping(Bytes::from(count.to_string())).await.is_err() {
                break;
            }
        }
        ws
    })
}

/// A raw TCP client with a small receive buffer, after the handshake with
/// the server it returns.
async fn raw_pair(options: &Options) -> (TcpStream, WebSocket<TcpStream>) {
    let (listener, _) = listener().await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let (raw, server) = tokio::join!(
        async {
            let mut raw = socket
                .connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            raw.write_all(
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .await
            .unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(raw.read_u8().await.unwrap());
            }
            assert!(head.starts_with(b"HTTP/1.1 101"));
            raw
        },
        async {
            ws_tokio::accept_with(listener.accept().await.unwrap().0, options)
                .await
                .unwrap()
        }
    );
    (raw, server)
}

/// Reads one (unmasked) server frame: first byte and payload.
async fn read_frame(raw: &mut TcpStream) -> (u8, Vec<u8>) {
    let (first, len) = (raw.read_u8().await.unwrap(), raw.read_u8().await.unwrap());
    let len = match len {
        126 => usize::from(raw.read_u16().await.unwrap()),
        127 => raw.read_u64().await.unwrap() as usize,
        len => usize::from(len),
    };
    let mut payload = vec![0; len];
    raw.read_exact(&mut payload).await.unwrap();
    (first, payload)
}

#[tokio::test]
async fn echo_text_and_binary() {
    timed(async {
        let (mut client, server) = pair(&big()).await;
        let echo = spawn_echo(server);
        let large: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31) as u8).collect();
        for message in [Message::text("héllo"), Message::Binary(Bytes::from(large))] {
            client.send(message.clone()).await.unwrap();
            assert_eq!(client.recv().await.unwrap().unwrap(), message);
        }
        // Sink and Stream too.
        client
            .send_all(&mut futures_util::stream::iter([Ok(Message::text("s"))]))
            .await
            .unwrap();
        assert_eq!(client.next().await.unwrap().unwrap(), Message::text("s"));
        client.close(CloseCode::NORMAL, "").await.unwrap();
        echo.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn ping_pong() {
    timed(async {
        let (mut client, server) = pair(&Options::default()).await;
        let _echo = spawn_echo(server);
        client.ping(Bytes::from_static(b"hi")).await.unwrap();
        let pong = client.recv_event().await.unwrap().unwrap();
        assert_eq!(pong, Event::Pong(Bytes::from_static(b"hi")));
    })
    .await;
}

#[tokio::test]
async fn close_handshake_both_ways() {
    timed(async {
        for client_closes in [true, false] {
            let (mut client, mut server) = pair(&Options::default()).await;
            let (closer, other) = if client_closes {
                (&mut client, &mut server)
            } else {
                (&mut server, &mut client)
            };
            let (closed, received) =
                tokio::join!(closer.close(CloseCode(4000), "bye"), other.recv());
            closed.unwrap();
            assert!(received.is_none());
            assert!(other.recv().await.is_none());
            let frame = other.close_frame().unwrap();
            assert_eq!(
                (frame.code, frame.reason.as_str()),
                (CloseCode(4000), "bye")
            );
            assert_eq!(
                closer.close_frame().unwrap().code,
                CloseCode(4000),
                "the echo"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn close_keeps_data_that_arrives_meanwhile() {
    timed(async {
        let (mut client, mut server) = pair(&Options::default()).await;
        server.send(Message::text("late")).await.unwrap();
        let (closed, _) = tokio::join!(client.close(CloseCode::NORMAL, ""), server.recv());
        closed.unwrap();
        assert_eq!(client.recv().await.unwrap().unwrap(), Message::text("late"));
        assert!(client.recv().await.is_none());
    })
    .await;
}

#[tokio::test]
async fn protocol_error_sends_close_1002() {
    timed(async {
        let (mut raw, mut server) = raw_pair(&Options::default()).await;
        raw.write_all(&[0x81, 2, b'h', b'i']).await.unwrap(); // unmasked from a client
        match server.recv().await {
            Some(Err(Error::Protocol(ProtocolError::UnmaskedFrameFromClient))) => {}
            other => panic!("expected a protocol error, got {other:?}"),
        }
        assert!(server.recv().await.is_none());
        let (first, payload) = read_frame(&mut raw).await;
        assert_eq!(
            (first, &payload[..2]),
            (0x88, &[0x03, 0xEA][..]),
            "Close 1002"
        );
    })
    .await;
}

#[tokio::test]
async fn end_of_stream_is_1006() {
    timed(async {
        let (raw, mut server) = raw_pair(&Options::default()).await;
        drop(raw);
        assert!(matches!(
            server.recv().await,
            None | Some(Err(Error::Io(_)))
        ));
        assert_eq!(server.close_frame().unwrap().code, CloseCode::ABNORMAL);
    })
    .await;
}

#[tokio::test]
async fn read_request_reject_and_subprotocol() {
    timed(async {
        let (listener, url) = listener().await;
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (stream, _) = listener.accept().await.unwrap();
                let incoming = ws_tokio::read_request_with(stream, &Options::default())
                    .await
                    .unwrap();
                if incoming.request().protocols().is_empty() {
                    incoming.reject(403, &[], b"no").await.unwrap();
                } else {
                    let mut ws = incoming
                        .accept(&AcceptOptions::new().protocol("chat"))
                        .await
                        .unwrap();
                    ws.send(Message::text("welcome")).await.unwrap();
                }
            }
        });
        match ws_tokio::connect(&url).await {
            Err(Error::Handshake(HandshakeError::Rejected(response))) => {
                assert_eq!(response.status, 403)
            }
            other => panic!("expected a rejection, got {:?}", other.map(|_| ())),
        }
        let request = ClientRequest::new(&url).unwrap().protocol("chat");
        let (mut ws, response) = ws_tokio::connect_with(request, &Options::default())
            .await
            .unwrap();
        assert_eq!(response.protocol.as_deref(), Some("chat"));
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("welcome"));
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn from_raw_over_a_duplex() {
    timed(async {
        let (a, b) = tokio::io::duplex(1024);
        let mut client = WebSocket::from_raw(a, Role::Client, Config::default());
        let mut server = WebSocket::from_raw(b, Role::Server, Config::default());
        client.send(Message::text("raw")).await.unwrap();
        assert_eq!(server.recv().await.unwrap().unwrap(), Message::text("raw"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_echo_and_reunite() {
    timed(async {
        let (client, server) = pair(&Options::default()).await;
        let _echo = spawn_echo(server);
        let (mut read, mut write) = client.split();
        let reader = tokio::spawn(async move {
            for i in 0..1000 {
                assert_eq!(
                    read.recv().await.unwrap().unwrap(),
                    Message::text(format!("{i}"))
                );
            }
            read
        });
        for i in 0..1000 {
            write.send(Message::text(format!("{i}"))).await.unwrap();
        }
        let read = reader.await.unwrap();
        let mut client = read.reunite(write).unwrap();
        client.send(Message::text("whole")).await.unwrap();
        assert_eq!(
            client.recv().await.unwrap().unwrap(),
            Message::text("whole")
        );
        // Halves of different sockets do not reunite.
        let (a, b) = pair(&Options::default()).await;
        let ((read, _), (_, write)) = (a.split(), b.split());
        assert!(WebSocket::reunite(read, write).is_err());
        // The write half closes; the read half finishes the handshake.
        let (mut read, mut write) = client.split();
        write.close(CloseCode(4001), "split").await.unwrap();
        assert!(read.recv().await.is_none());
        assert_eq!(read.close_frame().unwrap().code, CloseCode(4001));
    })
    .await;
}

/// The read half keeps delivering while the write half is blocked on a peer
/// that does not read; its pongs go out in order once the peer reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_reader_runs_while_the_writer_is_blocked() {
    timed(async {
        const LARGE: usize = 24;
        let (mut raw, server) = raw_pair(&big()).await;
        let (mut read, mut write) = server.split();
        let writer = tokio::spawn(async move {
            let large = Bytes::from(vec![7u8; 1 << 20]);
            for _ in 0..LARGE {
                write.send(Message::Binary(large.clone())).await.unwrap();
            }
            write
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!writer.is_finished(), "the writer should be blocked");
        for i in 0..20u8 {
            raw.write_all(&masked(0x81, format!("m{i}").as_bytes()))
                .await
                .unwrap();
            if i % 4 == 0 {
                raw.write_all(&masked(0x89, &[b'p', b'0' + i / 4]))
                    .await
                    .unwrap();
            }
        }
        let delivered = tokio::time::timeout(Duration::from_secs(5), async {
            let (mut messages, mut pings) = (0, 0);
            while messages < 20 || pings < 5 {
                match read.recv_event().await.unwrap().unwrap() {
                    Event::Message(m) => {
                        assert_eq!(m, Message::text(format!("m{messages}")));
                        messages += 1;
                    }
                    Event::Ping(_) => pings += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
        });
        delivered
            .await
            .expect("the read half stalled behind the blocked writer");
        assert!(!writer.is_finished(), "the writer should still be blocked");
        let (mut binaries, mut pongs) = (0, Vec::new());
        while binaries < LARGE || pongs.last() != Some(&b"p4".to_vec()) {
            match read_frame(&mut raw).await {
                (0x82, payload) => binaries += usize::from(payload.len() == 1 << 20),
                (0x8A, payload) => pongs.push(payload),
                (first, _) => panic!("unexpected frame {first:#x}"),
            }
        }
        assert!(
            pongs.windows(2).all(|w| w[0] < w[1]),
            "pongs in order: {pongs:?}"
        );
        writer.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn duration_max_timers_do_not_panic() {
    timed(async {
        let config = Config::default()
            .with_close_timeout(Some(Duration::MAX))
            .with_keepalive(Some(Duration::MAX), Some(Duration::MAX));
        let (mut client, server) = pair(&Options::default().with_config(config)).await;
        let echo = spawn_echo(server);
        client.send(Message::text("forever")).await.unwrap();
        assert_eq!(
            client.recv().await.unwrap().unwrap(),
            Message::text("forever")
        );
        client.close(CloseCode::NORMAL, "").await.unwrap();
        echo.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    timed(async {
        const N: usize = 200;
        let (mut client, mut server) = pair(&big()).await;
        let sender = tokio::spawn(async move {
            for i in 0..N {
                server.send(Message::Binary(vec![i as u8; (i * 7919) % (100 << 10)].into())).await.unwrap();
                if i % 5 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            server.close(CloseCode::NORMAL, "").await.unwrap();
        });
        let (mut received, mut cancelled) = (0, 0);
        while received < N {
            tokio::select! {
                message = client.recv() => {
                    let expected = vec![received as u8; (received * 7919) % (100 << 10)];
                    assert_eq!(message.unwrap().unwrap().as_bytes(), expected, "message {received}");
                    received += 1;
                }
                () = tokio::time::sleep(Duration::from_micros(300)) => cancelled += 1,
            }
        }
        assert!(client.recv().await.is_none());
        assert!(cancelled > 0, "recv was never cancelled");
        sender.await.unwrap();
    })
    .await;
}

/// permessage-deflate is negotiated by default; a busy connection keeps its
/// compression contexts, and the run loop's timer frees them once the
/// connection has been idle for `release_contexts_after` (1 s by default).
#[tokio::test]
async fn idle_deflate_connections_free_their_compression_contexts() {
    timed(async {
        let (mut client, server) = pair(&Options::default()).await;
        assert!(client.connection().deflate().is_some(), "deflate agreed");
        let echo = tokio::spawn(async move {
            let mut server = server;
            let message = server.recv().await.unwrap().unwrap();
            server.send(message).await.unwrap();
            let busy = server.connection().deflate_heap_size();
            // Waiting for the next message, the timer fires meanwhile.
            let waited = tokio::time::timeout(Duration::from_millis(2500), server.recv()).await;
            assert!(waited.is_err(), "nothing was sent");
            (busy, server.connection().deflate_heap_size())
        });
        let text = "{\"user\":\"ann\",\"text\":\"the deploy is done\"} ".repeat(20);
        client.send(Message::text(text.as_str())).await.unwrap();
        let echoed = client.recv().await.unwrap().unwrap();
        assert_eq!(echoed, Message::text(text));
        let (busy, idle) = echo.await.unwrap();
        assert!(busy > 100 << 10, "contexts live while busy: {busy} B");
        assert!(idle <= 8 << 10, "only the windows once idle: {idle} B");
    })
    .await;
}

/// Over a transport that holds written bytes until flushed (`BufStream`),
/// the handshake's response, a pong written inside `recv`, an echo, a split
/// writer's message and the Close echoed by a split reader all reach the
/// peer: each was flushed before the socket waited or returned.
#[tokio::test]
async fn a_buffering_transport_is_flushed_before_every_wait() {
    timed(async {
        let (listener, url) = listener().await;
        let server = tokio::spawn(async move {
            let tcp = listener.accept().await.unwrap().0;
            let mut ws = ws_tokio::accept(tokio::io::BufStream::new(tcp))
                .await
                .unwrap();
            // The ping is answered inside, while waiting for the message.
            let message = ws.recv().await.unwrap().unwrap();
            ws.send(message).await.unwrap();
            let (mut read, mut write) = ws.split();
            write.send(Message::text("from the writer")).await.unwrap();
            assert!(read.recv().await.is_none(), "the client closed");
        });
        let (mut client, _) = ws_tokio::connect(&url).await.unwrap();
        client.ping(Bytes::from_static(b"p")).await.unwrap();
        let pong = client.recv_event().await.unwrap().unwrap();
        assert_eq!(pong, Event::Pong(Bytes::from_static(b"p")));
        client.send(Message::text("hello")).await.unwrap();
        let echo = client.recv().await.unwrap().unwrap();
        assert_eq!(echo, Message::text("hello"));
        let pushed = client.recv().await.unwrap().unwrap();
        assert_eq!(pushed, Message::text("from the writer"));
        client.close(CloseCode::NORMAL, "").await.unwrap();
        assert_eq!(
            client.close_frame().map(|f| f.code),
            Some(CloseCode::NORMAL)
        );
        server.await.unwrap();
    })
    .await;
}
