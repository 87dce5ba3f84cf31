//! Loopback tests: this adapter on both sides (or against a raw TCP peer),
//! every scenario under smol and under async-std.

extern crate alloc;

use alloc::sync::Arc;
use core::net::SocketAddr;
use core::{
    fmt::Debug,
    future::Future,
    pin::{Pin, pin},
    sync::atomic::{AtomicUsize, Ordering},
    task::{Context, Poll},
    time::Duration,
};
use std::{io, time::Instant};

use async_io::Timer;
use futures_io::{AsyncRead, AsyncWrite};
use futures_util::{
    SinkExt, StreamExt,
    future::{Either, join, select},
};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use ws_futures::{
    ClientRequest, CloseCode, Config, Error, Event, HandshakeError, Message, Options, WebSocket,
    ws_proto::{ClientHandshake, bytes::BytesMut},
};

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a scenario needs from a runtime.
trait Rt: 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + Debug + 'static;
    type Listener: Send + Sync + 'static;
    fn block_on<T>(future: impl Future<Output = T>) -> T;
    fn listen() -> BoxFut<'static, (Self::Listener, SocketAddr)>;
    fn accept(listener: &Self::Listener) -> BoxFut<'_, Self::Stream>;
    fn connect(addr: SocketAddr) -> BoxFut<'static, Self::Stream>;
    fn set_nodelay(stream: &Self::Stream);
    fn spawn<T: Send + 'static>(
        future: impl Future<Output = T> + Send + 'static,
    ) -> BoxFut<'static, T>;
}

struct Smol;

impl Rt for Smol {
    type Stream = smol::net::TcpStream;
    type Listener = smol::net::TcpListener;
    fn block_on<T>(future: impl Future<Output = T>) -> T {
        smol::block_on(future)
    }
    fn listen() -> BoxFut<'static, (Self::Listener, SocketAddr)> {
        Box::pin(async {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            (listener, addr)
        })
    }
    fn accept(listener: &Self::Listener) -> BoxFut<'_, Self::Stream> {
        Box::pin(async { listener.accept().await.unwrap().0 })
    }
    fn connect(addr: SocketAddr) -> BoxFut<'static, Self::Stream> {
        Box::pin(async move { smol::net::TcpStream::connect(addr).await.unwrap() })
    }
    fn set_nodelay(stream: &Self::Stream) {
        stream.set_nodelay(true).unwrap();
    }
    fn spawn<T: Send + 'static>(
        future: impl Future<Output = T> + Send + 'static,
    ) -> BoxFut<'static, T> {
        Box::pin(smol::spawn(future))
    }
}

struct AsyncStd;

impl Rt for AsyncStd {
    type Stream = async_std::net::TcpStream;
    type Listener = async_std::net::TcpListener;
    fn block_on<T>(future: impl Future<Output = T>) -> T {
        async_std::task::block_on(future)
    }
    fn listen() -> BoxFut<'static, (Self::Listener, SocketAddr)> {
        Box::pin(async {
            let listener = async_std::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap();
            let addr = listener.local_addr().unwrap();
            (listener, addr)
        })
    }
    fn accept(listener: &Self::Listener) -> BoxFut<'_, Self::Stream> {
        Box::pin(async { listener.accept().await.unwrap().0 })
    }
    fn connect(addr: SocketAddr) -> BoxFut<'static, Self::Stream> {
        Box::pin(async move { async_std::net::TcpStream::connect(addr).await.unwrap() })
    }
    fn set_nodelay(stream: &Self::Stream) {
        stream.set_nodelay(true).unwrap();
    }
    fn spawn<T: Send + 'static>(
        future: impl Future<Output = T> + Send + 'static,
    ) -> BoxFut<'static, T> {
        Box::pin(async_std::task::spawn(future))
    }
}

/// Runs a scenario with a 30 s bound.
fn run<R: Rt>(scenario: impl Future<Output = ()>) {
    R::block_on(async {
        let limit = Timer::after(Duration::from_secs(30));
        if let Either::Right(_) = select(pin!(scenario), limit).await {
            panic!("the scenario did not finish within 30 s");
        }
    });
}

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/test")
}

/// A connected (server, client) pair.
async fn pair_with<R: Rt>(
    server: &Options,
    client: &Options,
) -> (WebSocket<R::Stream>, WebSocket<R::Stream>) {
    let (listener, addr) = R::listen().await;
    let accept = async {
        ws_futures::accept_with(R::accept(&listener).await, server)
            .await
            .unwrap()
    };
    let connect = async {
        let request = ClientRequest::new(&url(addr)).unwrap();
        let stream = R::connect(addr).await;
        ws_futures::client(stream, request, client).await.unwrap().0
    };
    join(accept, connect).await
}

async fn pair<R: Rt>() -> (WebSocket<R::Stream>, WebSocket<R::Stream>) {
    pair_with::<R>(&Options::default(), &Options::default()).await
}

/// Echoes every data message until the connection ends; returns the close code seen.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<S>) -> Option<CloseCode> {
    while let Some(message) = ws.recv().await {
        match message {
            Ok(message) => ws.send(message).await.unwrap(),
            Err(e) => panic!("server error: {e}"),
        }
    }
    ws.close_frame().map(|frame| frame.code)
}

/// A raw client: the opening handshake by hand, then nothing but bytes.
async fn raw_client<R: Rt>(addr: SocketAddr) -> (R::Stream, BytesMut) {
    let mut stream = R::connect(addr).await;
    let request = ClientRequest::new(&url(addr)).unwrap();
    let mut handshake = ClientHandshake::new(&request).unwrap();
    stream.write_all(handshake.request()).await.unwrap();
    let mut buf = BytesMut::new();
    loop {
        if handshake.receive(&mut buf).unwrap().is_some() {
            return (stream, buf);
        }
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "server closed during the handshake");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A masked (all-zero key) client frame with a short payload.
fn raw_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut frame = vec![
        u8::from(fin) << 7 | opcode,
        0x80 | payload.len() as u8,
        0,
        0,
        0,
        0,
    ];
    frame.extend_from_slice(payload);
    frame
}

fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i + seed) % 251) as u8).collect()
}

// ----- Scenarios -----

async fn echo_sizes<R: Rt>() {
    let (server, mut client) = pair::<R>().await;
    let client_side = async {
        for (i, size) in [0, 125, 126, 65535, 65536, 1 << 20, 16 << 20]
            .into_iter()
            .enumerate()
        {
            let binary = Message::binary(pattern(size, i));
            client.send(binary.clone()).await.unwrap();
            assert_eq!(client.recv().await.unwrap().unwrap(), binary, "{size} B");
            let text = Message::text("é".repeat(size / 2));
            client.send(text.clone()).await.unwrap();
            assert_eq!(client.recv().await.unwrap().unwrap(), text, "{size} B text");
        }
        client.close(CloseCode::NORMAL, "done").await.unwrap();
        assert_eq!(client.close_frame().unwrap().code, CloseCode::NORMAL);
    };
    let (code, ()) = join(echo(server), client_side).await;
    assert_eq!(code, Some(CloseCode::NORMAL));
}

async fn fragmented<R: Rt>() {
    let (mut server, mut client) = pair::<R>().await;
    let conn = client.connection_mut();
    conn.send_fragment(Message::text("Hel"), false).unwrap();
    conn.send_fragment(Message::text("lo "), false).unwrap();
    conn.send_fragment(Message::text("world"), true).unwrap();
    client.flush().await.unwrap();
    let message = server.recv().await.unwrap().unwrap();
    assert_eq!(message, Message::text("Hello world"));
}

/// Hand-built fragments with a ping in between, from a raw client: the
/// adapter answers the ping by itself and reassembles the message.
async fn fragmented_raw<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let accept = async {
        ws_futures::accept(R::accept(&listener).await)
            .await
            .unwrap()
    };
    let (mut server, (mut raw, _)) = join(accept, raw_client::<R>(addr)).await;
    let mut bytes = raw_frame(false, 0x1, b"Hel");
    bytes.extend(raw_frame(true, 0x9, b"p"));
    bytes.extend(raw_frame(true, 0x0, b"lo"));
    raw.write_all(&bytes).await.unwrap();
    assert_eq!(
        server.recv_event().await.unwrap().unwrap(),
        Event::Ping("p".into())
    );
    let message = server.recv().await.unwrap().unwrap();
    assert_eq!(message, Message::text("Hello"));
    server.send(message).await.unwrap();
    let mut reply = [0u8; 10];
    raw.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"\x8a\x01p\x81\x05Hello");
}

async fn ping_pong<R: Rt>() {
    let (mut server, mut client) = pair::<R>().await;
    // `move`: dropping the server closes the socket (async-std's poll_close only flushes).
    let server_side = async move {
        let mut pings = Vec::new();
        while let Some(event) = server.recv_event().await {
            if let Event::Ping(payload) = event.unwrap() {
                pings.push(payload);
            }
        }
        pings
    };
    let client_side = async {
        client.ping("hi".into()).await.unwrap();
        let event = client.recv_event().await.unwrap().unwrap();
        assert_eq!(event, Event::Pong("hi".into()));
        client.close(CloseCode::NORMAL, "").await.unwrap();
    };
    let (pings, ()) = join(server_side, client_side).await;
    assert_eq!(pings, ["hi"]);
}

async fn close_from_client<R: Rt>() {
    let (mut server, mut client) = pair::<R>().await;
    let server_side = async move {
        assert!(server.recv().await.is_none());
        let frame = server.close_frame().unwrap();
        assert_eq!(
            (frame.code, frame.reason.as_str()),
            (CloseCode(4000), "bye")
        );
    };
    let client_side = async {
        client.close(CloseCode(4000), "bye").await.unwrap();
        assert_eq!(client.close_frame().unwrap().code, CloseCode(4000));
        assert!(client.recv().await.is_none());
    };
    join(server_side, client_side).await;
}

async fn close_from_server<R: Rt>() {
    let (mut server, mut client) = pair::<R>().await;
    let server_side = async move {
        server
            .close(CloseCode::GOING_AWAY, "server bye")
            .await
            .unwrap();
        assert_eq!(server.close_frame().unwrap().code, CloseCode::GOING_AWAY);
        // Dropping the server closes the socket (async-std does not shut down on poll_close).
    };
    let client_side = async {
        let start = Instant::now();
        assert!(client.recv().await.is_none());
        let frame = client.close_frame().unwrap();
        assert_eq!(
            (frame.code, frame.reason.as_str()),
            (CloseCode::GOING_AWAY, "server bye")
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    };
    join(server_side, client_side).await;
}

async fn reject_403<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let server_side = async {
        let stream = R::accept(&listener).await;
        let incoming = ws_futures::read_request(stream, &Options::default())
            .await
            .unwrap();
        assert_eq!(incoming.request().path(), "/test");
        incoming
            .reject(403, &[("X-Reason", "nope")], b"forbidden")
            .await
            .unwrap();
    };
    let client_side = async {
        let request = ClientRequest::new(&url(addr)).unwrap();
        let stream = R::connect(addr).await;
        ws_futures::client(stream, request, &Options::default())
            .await
            .map(|_| ())
    };
    let ((), result) = join(server_side, client_side).await;
    match result {
        Err(Error::Handshake(HandshakeError::Rejected(response))) => {
            assert_eq!(response.status, 403);
            assert_eq!(response.body, b"forbidden");
            assert_eq!(response.header("x-reason"), Some("nope"));
        }
        other => panic!("expected a 403 rejection, got {other:?}"),
    }
}

/// A malformed request gets a 400 answer before the error.
async fn bad_request<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let server_side = async {
        let result = ws_futures::accept(R::accept(&listener).await).await;
        assert!(matches!(result, Err(Error::Handshake(_))), "{result:?}");
    };
    let client_side = async {
        let mut raw = R::connect(addr).await;
        raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        raw.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 400"), "{answer:?}");
    };
    join(server_side, client_side).await;
}

async fn reset_mid_frame<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let accept = async {
        ws_futures::accept(R::accept(&listener).await)
            .await
            .unwrap()
    };
    let (mut server, (mut raw, _)) = join(accept, raw_client::<R>(addr)).await;
    // A binary frame announcing 100 bytes, 10 of them sent, then gone.
    let mut half = vec![0x82, 0x80 | 100, 0, 0, 0, 0];
    half.extend_from_slice(&[7; 10]);
    raw.write_all(&half).await.unwrap();
    drop(raw);
    match server.recv_event().await {
        Some(Err(Error::Io(_))) => {}
        Some(Ok(Event::Close(frame))) => assert_eq!(frame.code, CloseCode::ABNORMAL),
        other => panic!("expected an error or a 1006 close, got {other:?}"),
    }
    assert!(server.recv_event().await.is_none());
    assert_eq!(server.close_frame().unwrap().code, CloseCode::ABNORMAL);
}

/// The same with a real reset: the peer closes with unread data (RST).
async fn reset_rst<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let accept = async {
        ws_futures::accept(R::accept(&listener).await)
            .await
            .unwrap()
    };
    let (mut server, (mut raw, _)) = join(accept, raw_client::<R>(addr)).await;
    server.send(Message::text("never read")).await.unwrap();
    Timer::after(Duration::from_millis(20)).await;
    raw.write_all(&[0x82, 0x80 | 100, 0, 0, 0, 0, 1, 2, 3])
        .await
        .unwrap();
    drop(raw);
    match server.recv_event().await {
        Some(Err(Error::Io(_))) => {}
        Some(Ok(Event::Close(frame))) => assert_eq!(frame.code, CloseCode::ABNORMAL),
        other => panic!("expected an error or a 1006 close, got {other:?}"),
    }
    assert!(server.recv_event().await.is_none());
    assert_eq!(server.close_frame().unwrap().code, CloseCode::ABNORMAL);
}

async fn split_concurrent<R: Rt>() {
    const COUNT: usize = 1000;
    let (server, client) = pair::<R>().await;
    let server_task = R::spawn(echo(server));
    let (mut read, mut write) = client.split();
    let writer = R::spawn(async move {
        for i in 0..COUNT {
            write.send(Message::text(i.to_string())).await.unwrap();
        }
        write
    });
    for i in 0..COUNT {
        let message = read.recv().await.unwrap().unwrap();
        assert_eq!(message, Message::text(i.to_string()));
    }
    let mut write = writer.await;
    write.close(CloseCode::NORMAL, "done").await.unwrap();
    assert!(read.recv().await.is_none());
    assert_eq!(read.close_frame().unwrap().code, CloseCode::NORMAL);
    assert_eq!(server_task.await, Some(CloseCode::NORMAL));
    let ws = WebSocket::reunite(read, write).unwrap();
    assert!(ws.connection().close_received());
}

async fn reunite_mismatch<R: Rt>() {
    let (server, client) = pair::<R>().await;
    let (client_read, _client_write) = client.split();
    let (_server_read, server_write) = server.split();
    assert!(WebSocket::reunite(client_read, server_write).is_err());
}

async fn keepalive<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let config = Config::default().with_keepalive(
        Some(Duration::from_millis(100)),
        Some(Duration::from_millis(200)),
    );
    let options = Options::default().with_config(config);
    let accept = async {
        ws_futures::accept_with(R::accept(&listener).await, &options)
            .await
            .unwrap()
    };
    // The raw peer completes the handshake, then never answers.
    let (mut server, (_raw, _)) = join(accept, raw_client::<R>(addr)).await;
    let start = Instant::now();
    let mut close = None;
    while let Some(event) = server.recv_event().await {
        if let Event::Close(frame) = event.unwrap() {
            close = Some(frame.code);
        }
    }
    assert_eq!(close, Some(CloseCode::ABNORMAL));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

async fn handshake_timeout<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let options = Options::default().with_handshake_timeout(Some(Duration::from_millis(200)));
    let server_side = async {
        let start = Instant::now();
        let result = ws_futures::accept_with(R::accept(&listener).await, &options).await;
        match result {
            Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(1));
    };
    let client_side = async {
        // Connects and sends nothing; the server hangs up.
        let mut raw = R::connect(addr).await;
        let mut byte = [0u8; 1];
        assert!(matches!(raw.read(&mut byte).await, Ok(0) | Err(_)));
    };
    join(server_side, client_side).await;
}

/// `recv` cancelled over and over by a short timer loses nothing.
async fn cancellation<R: Rt>() {
    const COUNT: usize = 200;
    let (mut server, mut client) = pair::<R>().await;
    let server_side = async move {
        for i in 0..COUNT {
            server
                .send(Message::binary(pattern(1000 + i * 97, i)))
                .await
                .unwrap();
            if i % 10 == 0 {
                Timer::after(Duration::from_millis(2)).await;
            }
        }
        server.close(CloseCode::NORMAL, "").await.unwrap();
    };
    let client_side = async {
        let (mut received, mut cancelled) = (0, 0);
        while received < COUNT {
            let recv = pin!(client.recv());
            match select(recv, Timer::after(Duration::from_micros(200))).await {
                Either::Left((message, _)) => {
                    let message = message.unwrap().unwrap();
                    assert_eq!(message.as_bytes(), pattern(1000 + received * 97, received));
                    received += 1;
                }
                Either::Right(_) => cancelled += 1,
            }
        }
        assert!(cancelled > 0, "the timer never cancelled recv");
        assert!(client.recv().await.is_none());
    };
    join(server_side, client_side).await;
}

/// An unmasked frame from a client: the error is returned once, after the
/// Close 1002 went out and the transport was shut down.
async fn protocol_error<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let accept = async {
        ws_futures::accept(R::accept(&listener).await)
            .await
            .unwrap()
    };
    let (mut server, (mut raw, _)) = join(accept, raw_client::<R>(addr)).await;
    raw.write_all(b"\x81\x02hi").await.unwrap();
    let server_side = async move {
        match server.recv().await {
            Some(Err(Error::Protocol(e))) => assert_eq!(e.close_code(), CloseCode::PROTOCOL_ERROR),
            other => panic!("expected a protocol error, got {other:?}"),
        }
        assert!(server.recv().await.is_none());
    };
    let raw_side = async {
        let mut head = [0u8; 4];
        raw.read_exact(&mut head).await.unwrap();
        assert_eq!(
            &head[..2],
            [0x88, 2 + b"unmasked frame from client".len() as u8]
        );
        assert_eq!(u16::from_be_bytes([head[2], head[3]]), 1002);
    };
    join(server_side, raw_side).await;
}

/// The TCP helper: `connect` resolves, connects and shakes hands; `wss://` is refused.
async fn connect_helper<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let server_side = async {
        echo(
            ws_futures::accept(R::accept(&listener).await)
                .await
                .unwrap(),
        )
        .await
    };
    let client_side = async {
        let (mut ws, _) = ws_futures::connect(&format!("ws://localhost:{}/", addr.port()))
            .await
            .unwrap();
        ws.send(Message::text("via connect")).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::text("via connect")
        );
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    };
    let (code, ()) = join(server_side, client_side).await;
    assert_eq!(code, Some(CloseCode::NORMAL));
    match ws_futures::connect("wss://localhost/").await {
        Err(Error::Handshake(HandshakeError::InvalidRequest(_))) => {}
        other => panic!("expected wss:// to be refused, got {:?}", other.map(|_| ())),
    }
}

/// A frame sent in the same write as the request is not lost.
async fn early_data<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let mut raw = R::connect(addr).await;
    let request = ClientRequest::new(&url(addr)).unwrap();
    let mut handshake = ClientHandshake::new(&request).unwrap();
    let mut bytes = handshake.request().to_vec();
    bytes.extend(raw_frame(true, 0x1, b"early"));
    raw.write_all(&bytes).await.unwrap();
    let mut server = ws_futures::accept(R::accept(&listener).await)
        .await
        .unwrap();
    assert_eq!(
        server.recv().await.unwrap().unwrap(),
        Message::text("early")
    );
    let mut buf = BytesMut::new();
    while handshake.receive(&mut buf).unwrap().is_none() {
        let mut chunk = [0u8; 512];
        let n = raw.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The two-step accept: the application awaits something, then accepts
/// with a subprotocol.
async fn two_step_accept<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let server_side = async {
        let stream = R::accept(&listener).await;
        let incoming = ws_futures::read_request(stream, &Options::default())
            .await
            .unwrap();
        assert_eq!(incoming.request().protocols(), ["chat", "superchat"]);
        Timer::after(Duration::from_millis(20)).await; // e.g. an auth lookup
        let options = ws_futures::AcceptOptions::new().protocol("superchat");
        echo(incoming.accept(&options).await.unwrap()).await
    };
    let client_side = async {
        let request = ClientRequest::new(&url(addr))
            .unwrap()
            .protocol("chat")
            .protocol("superchat");
        let stream = R::connect(addr).await;
        let (mut ws, response) = ws_futures::client(stream, request, &Options::default())
            .await
            .unwrap();
        assert_eq!(response.protocol.as_deref(), Some("superchat"));
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    };
    let (code, ()) = join(server_side, client_side).await;
    assert_eq!(code, Some(CloseCode::NORMAL));
}

/// A stream that counts completed writes.
#[derive(Debug)]
struct Counting<S> {
    inner: S,
    writes: Arc<AtomicUsize>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if result.is_ready() {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if result.is_ready() {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// Stream + Sink: 100 fed messages and one flush go out in a few vectored writes.
async fn sink_stream<R: Rt>() {
    let (listener, addr) = R::listen().await;
    let writes = Arc::new(AtomicUsize::new(0));
    let accept = async {
        ws_futures::accept(R::accept(&listener).await)
            .await
            .unwrap()
    };
    let connect = async {
        let inner = R::connect(addr).await;
        let stream = Counting {
            inner,
            writes: Arc::clone(&writes),
        };
        let request = ClientRequest::new(&url(addr)).unwrap();
        ws_futures::client(stream, request, &Options::default())
            .await
            .unwrap()
            .0
    };
    let (mut server, mut client) = join(accept, connect).await;
    let before = writes.load(Ordering::Relaxed);
    for i in 0..100 {
        SinkExt::feed(&mut client, Message::text(format!("m{i}")))
            .await
            .unwrap();
    }
    SinkExt::flush(&mut client).await.unwrap();
    let used = writes.load(Ordering::Relaxed) - before;
    assert!(used <= 4, "{used} writes for 100 small messages");
    for i in 0..100 {
        let message = server.next().await.unwrap().unwrap();
        assert_eq!(message, Message::text(format!("m{i}")));
    }
    let server_side = async move {
        assert!(server.next().await.is_none());
        assert_eq!(server.close_frame().unwrap().code, CloseCode::NORMAL);
    };
    let client_side = async { SinkExt::close(&mut client).await.unwrap() };
    join(server_side, client_side).await;
}

/// A client that only sends still answers pings: its flushes read what
/// arrived and write the pongs.
async fn pings_are_answered_while_the_application_only_sends<R: Rt>() {
    let (server, mut client) = pair::<R>().await;
    // No bunching (several waiting pings get one pong, for the last): no
    // Nagle delays, and the client sends once the last message's ping is out.
    R::set_nodelay(server.get_ref());
    R::set_nodelay(client.get_ref());
    let pinged = Arc::new(AtomicUsize::new(0));
    let server_pinged = Arc::clone(&pinged);
    let mut server_task = R::spawn(async move {
        // Split, so that the server's own pings do not read: a whole socket's
        // flush keeps only the first of the Pong events it meets.
        let (mut read, mut write) = server.split();
        let mut pongs = Vec::new();
        let mut messages = 0;
        while pongs.len() < 20 {
            match read.recv_event().await.unwrap().unwrap() {
                Event::Message(_) => {
                    write.ping(format!("p{messages}").into()).await.unwrap();
                    messages += 1;
                    server_pinged.store(messages, Ordering::Release);
                }
                Event::Pong(payload) => pongs.push(payload),
                other => panic!("unexpected {other:?}"),
            }
        }
        pongs
    });
    // The client never calls recv: its sends carry the pongs.
    for i in 0..20 {
        client.send(Message::text(format!("m{i}"))).await.unwrap();
        while pinged.load(Ordering::Acquire) <= i {
            Timer::after(Duration::from_millis(1)).await;
        }
    }
    // A flush alone answers the last ping (again, should it come late).
    let pongs = loop {
        client.flush().await.unwrap();
        match select(server_task, Timer::after(Duration::from_millis(50))).await {
            Either::Left((pongs, _)) => break pongs,
            Either::Right((_, task)) => server_task = task,
        }
    };
    let expected: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
    assert_eq!(pongs, expected, "every ping answered, in order");
    // The first Ping event read during the sends is kept for the application.
    assert_eq!(
        client.recv_event().await.unwrap().unwrap(),
        Event::Ping("p0".into())
    );
}

macro_rules! scenarios {
    ($rt:ty: $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                super::run::<$rt>(super::$name::<$rt>());
            }
        )*
    };
}

mod smol_runtime {
    scenarios!(super::Smol:
        echo_sizes, fragmented, fragmented_raw, ping_pong, close_from_client, close_from_server,
        reject_403, bad_request, reset_mid_frame, reset_rst, split_concurrent, reunite_mismatch, keepalive,
        handshake_timeout, cancellation, sink_stream, protocol_error, connect_helper, early_data,
        two_step_accept, pings_are_answered_while_the_application_only_sends,
    );
}

mod async_std_runtime {
    scenarios!(super::AsyncStd:
        echo_sizes, fragmented, fragmented_raw, ping_pong, close_from_client, close_from_server,
        reject_403, bad_request, reset_mid_frame, reset_rst, split_concurrent, reunite_mismatch, keepalive,
        handshake_timeout, cancellation, sink_stream, protocol_error, connect_helper, early_data,
        two_step_accept, pings_are_answered_while_the_application_only_sends,
    );
}
