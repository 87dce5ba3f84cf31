//! Smoke test over real sockets, every scenario on smol and on async-std.
//! The protocol itself is tested by the core's scenario suite.

mod common;

use core::time::Duration;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use async_io::Timer;
use futures_util::future::{Either, join, select};
use futures_util::{SinkExt, StreamExt};

use common::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Rt, on_runtimes, pair, tcp};
use ws_futures::ws_proto::{Role, bytes::Bytes};
use ws_futures::{
    AcceptOptions, ClientRequest, CloseCode, Config, DeflateConfig, Error, Event, HandshakeError,
};
use ws_futures::{Message, Options, WebSocket};

/// Echoes data messages until the connection ends; returns the close code.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<S>) -> Option<CloseCode> {
    while let Some(Ok(message)) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
    ws.close_frame().map(|f| f.code)
}

async fn echo_and_close<R: Rt>() {
    let (server, mut client) = pair::<R>(&Options::default(), &Options::default()).await;
    let server = R::spawn(echo(server));
    let big = Message::binary(vec![7u8; 1 << 20]);
    for message in [Message::text("hello"), Message::binary(vec![1, 2, 3]), big] {
        client.send(message.clone()).await.unwrap();
        assert_eq!(client.recv().await.unwrap().unwrap(), message);
    }
    client.ping(Bytes::from_static(b"p")).await.unwrap();
    let pong = client.recv_event().await.unwrap().unwrap();
    assert_eq!(pong, Event::Pong(Bytes::from_static(b"p")));
    client.close(CloseCode::from(4000), "bye").await.unwrap();
    assert_eq!(server.await, Some(CloseCode::from(4000)));
    assert_eq!(client.close_frame().unwrap().code, CloseCode::from(4000));
    assert!(client.recv().await.is_none());
}

async fn server_closes<R: Rt>() {
    let (mut server, mut client) = pair::<R>(&Options::default(), &Options::default()).await;
    let client_side = R::spawn(async move { (client.recv().await.is_none(), client) });
    server.close(CloseCode::GOING_AWAY, "later").await.unwrap();
    drop(server); // async-std's `poll_close` only flushes: the drop closes.
    let (ended, client) = client_side.await;
    assert!(ended);
    assert_eq!(client.close_frame().unwrap().code, CloseCode::GOING_AWAY);
}

/// `from_raw` on one side, raw bytes on the other: an unmasked frame from a
/// client is a protocol error, answered with Close 1002; then EOF is 1006.
async fn protocol_error_and_eof<R: Rt>() {
    let (server, mut raw) = tcp::<R>();
    let mut ws = WebSocket::from_raw(server, Role::Server, Config::default());
    raw.write_all(&[0x81, 0x01, b'a']).await.unwrap();
    assert!(matches!(ws.recv().await, Some(Err(Error::Protocol(_)))));
    let mut close = [0; 4];
    raw.read_exact(&mut close).await.unwrap();
    assert_eq!(
        [close[0], close[2], close[3]],
        [0x88, 0x03, 0xEA],
        "Close 1002"
    );
    let (server, raw) = tcp::<R>();
    let mut ws = WebSocket::from_raw(server, Role::Server, Config::default());
    drop(raw);
    assert!(ws.recv().await.is_none());
    assert_eq!(ws.close_frame().unwrap().code, CloseCode::ABNORMAL);
}

async fn reject_and_subprotocol<R: Rt>() {
    let options = Options::default();
    for accept in [false, true] {
        let (server, client) = tcp::<R>();
        let request = ClientRequest::new("ws://127.0.0.1/chat").unwrap();
        let request = request.protocol("chat");
        let serve = async {
            let incoming = ws_futures::read_request_with(server, &options)
                .await
                .unwrap();
            assert_eq!(incoming.request().protocols(), ["chat"]);
            let chat = AcceptOptions::new().protocol("chat");
            if accept {
                drop(incoming.accept(&chat).await.unwrap());
            } else {
                incoming.reject(403, &[], b"no").await.unwrap();
            }
        };
        let (_, answer) = join(serve, ws_futures::client(client, request, &options)).await;
        match answer {
            Ok((_, response)) => assert!(accept && response.protocol.as_deref() == Some("chat")),
            Err(Error::Handshake(HandshakeError::Rejected(response))) => {
                assert!(!accept && response.status == 403 && response.body == b"no");
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Two tasks on a split client; then the halves are put back together.
async fn split_echo_and_reunite<R: Rt>() {
    let (server, client) = pair::<R>(&Options::default(), &Options::default()).await;
    let server = R::spawn(echo(server));
    let (mut read, mut write) = client.split();
    let writer = R::spawn(async move {
        for i in 0..100 {
            write.send(Message::text(i.to_string())).await.unwrap();
        }
        write
    });
    for i in 0..100 {
        let echoed = read.next().await.unwrap().unwrap();
        assert_eq!(echoed, Message::text(i.to_string()));
    }
    let mut ws = read.reunite(writer.await).unwrap();
    ws.send(Message::text("whole")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("whole"));
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    assert_eq!(server.await, Some(CloseCode::NORMAL));
}

/// The peer does not read, so the write half blocks; the read half still
/// delivers the peer's messages and pings, and the pongs go out, in order,
/// once the peer reads again.
async fn split_reader_runs_while_the_writer_is_blocked<R: Rt>() {
    // Without permessage-deflate (on by default): the messages below shrink
    // a thousandfold, so the socket buffers would take thousands of them;
    // the writer would not block, and reach the cap of 256 or not by timing.
    let options = Options::default().with_deflate(DeflateConfig::OFF);
    let (ws, peer) = pair::<R>(&options, &options).await;
    let ((mut read, mut write), (mut peer_read, mut peer_write)) = (ws.split(), peer.split());
    let (sent, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (sent2, stop2) = (Arc::clone(&sent), Arc::clone(&stop));
    let writer = R::spawn(async move {
        while !stop2.load(SeqCst) && sent2.load(SeqCst) < 256 {
            write.send(Message::binary(vec![1; 1 << 20])).await.unwrap();
            sent2.fetch_add(1, SeqCst);
        }
        write.close(CloseCode::NORMAL, "").await.unwrap();
    });
    R::within(5, async {
        for i in 0..20u8 {
            peer_write.ping(Bytes::from(vec![i])).await.unwrap();
            peer_write.send(Message::text(i.to_string())).await.unwrap();
            let ping = read.recv_event().await.unwrap().unwrap();
            assert_eq!(ping, Event::Ping(Bytes::from(vec![i])));
            let message = read.recv().await.unwrap().unwrap();
            assert_eq!(message, Message::text(i.to_string()));
        }
    })
    .await;
    let sent_now = sent.load(SeqCst);
    assert!(
        sent_now < 256,
        "the write half should be blocked, yet {sent_now} MiB went to a peer that does not read"
    );
    stop.store(true, SeqCst);
    let (mut pongs, mut messages) = (Vec::new(), 0);
    R::within(20, async {
        while let Some(event) = peer_read.recv_event().await {
            match event.unwrap() {
                Event::Pong(payload) => pongs.push(payload[0]),
                Event::Message(m) => messages += usize::from(m.len() == 1 << 20),
                Event::Close(_) => break,
                _ => {}
            }
        }
    })
    .await;
    let ordered = pongs.windows(2).all(|w| w[0] < w[1]);
    assert!(ordered && pongs.last() == Some(&19), "{pongs:?}");
    assert_eq!(messages, sent.load(SeqCst));
    peer_write.close(CloseCode::NORMAL, "").await.unwrap();
    R::within(5, async { while read.recv().await.is_some() {} }).await;
    writer.await;
}

/// `recv` dropped again and again by a select-style race loses nothing.
async fn recv_is_cancel_safe<R: Rt>() {
    let (server, mut client) = pair::<R>(&Options::default(), &Options::default()).await;
    let sender = R::spawn(async move {
        let mut server = server;
        for i in 0..50 {
            server
                .send(Message::binary(vec![i; 100_000]))
                .await
                .unwrap();
        }
        server.close(CloseCode::NORMAL, "").await.unwrap();
    });
    let (mut received, mut races) = (0u8, 0);
    while races < 100_000 {
        races += 1;
        let timer = Timer::after(Duration::from_micros(50));
        match select(Box::pin(client.recv()), timer).await {
            Either::Left((Some(message), _)) => {
                assert_eq!(message.unwrap(), Message::binary(vec![received; 100_000]));
                received += 1;
            }
            Either::Left((None, _)) => break,
            Either::Right(_) => {}
        }
    }
    assert_eq!(received, 50);
    sender.await;
}

/// Timers of `Duration::MAX` mean "never", without overflowing.
async fn huge_durations<R: Rt>() {
    let config = Config::default()
        .with_keepalive(Some(Duration::MAX), Some(Duration::MAX))
        .with_close_timeout(Some(Duration::MAX));
    let options = Options::default().with_config(config);
    let options = options.with_handshake_timeout(Some(Duration::MAX));
    let (server, mut client) = pair::<R>(&options, &options).await;
    let server = R::spawn(echo(server));
    let (mut sink, mut stream) = (&mut client).split();
    sink.send(Message::text("x")).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), Message::text("x"));
    let mut client = sink.reunite(stream).unwrap();
    SinkExt::close(&mut client).await.unwrap();
    assert_eq!(server.await, Some(CloseCode::NORMAL));
}

/// permessage-deflate is negotiated by default; a busy connection keeps its
/// compression contexts, and the run loop's timer frees them once the
/// connection has been idle for `release_contexts_after` (1 s by default).
async fn idle_deflate_connections_free_their_compression_contexts<R: Rt>() {
    let (mut server, mut client) = pair::<R>(&Options::default(), &Options::default()).await;
    assert!(client.connection().deflate().is_some(), "deflate agreed");
    let text = "{\"user\":\"ann\",\"text\":\"the deploy is done\"} ".repeat(20);
    client.send(Message::text(text.as_str())).await.unwrap();
    let message = server.recv().await.unwrap().unwrap();
    server.send(message).await.unwrap();
    assert_eq!(client.recv().await.unwrap().unwrap(), Message::text(text));
    let busy = server.connection().deflate_heap_size();
    assert!(busy > 100 << 10, "contexts live while busy: {busy} B");
    // Waiting for the next message, the timer fires meanwhile.
    {
        let recv = Box::pin(server.recv());
        let wait = select(recv, Timer::after(Duration::from_millis(2500))).await;
        assert!(matches!(wait, Either::Right(_)), "nothing was sent");
    }
    let idle = server.connection().deflate_heap_size();
    assert!(idle <= 8 << 10, "only the windows once idle: {idle} B");
}

on_runtimes!(30;
    echo_and_close,
    server_closes,
    protocol_error_and_eof,
    reject_and_subprotocol,
    split_echo_and_reunite,
    split_reader_runs_while_the_writer_is_blocked,
    recv_is_cancel_safe,
    huge_durations,
    idle_deflate_connections_free_their_compression_contexts
);
