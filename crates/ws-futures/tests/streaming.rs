//! Streamed messages over real sockets, every scenario on smol and on
//! async-std: `recv_stream` / `MessageStream`, `send_stream` /
//! `MessageWriter`, on whole sockets and split halves, and how they end
//! (dropped half way, invalid UTF-8, a whole-message `recv` that meets a
//! streamed message). The large round trips, with their memory bound, are
//! in `streaming_memory.rs`.

use core::{future::Future, pin::Pin, time::Duration};

use async_io::Timer;
use async_std::{net as asn, task as ast};
use futures_io::{AsyncRead, AsyncWrite};
use futures_util::StreamExt;
use futures_util::future::{Either, join, select};
use futures_util::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use ws_futures::ws_proto::Role;
use ws_futures::{
    ClientRequest, CloseCode, Config, Error, HandshakeConfig, Message, Options, ProtocolError,
    Streaming, WebSocket,
};

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

trait Rt: 'static {
    type S: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn block_on<T>(f: impl Future<Output = T>) -> T;
    fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Boxed<T>;
    /// A connected pair of sockets on 127.0.0.1: (server side, client side).
    fn tcp() -> Boxed<(Self::S, Self::S)>;
}

macro_rules! runtime {
    ($rt:ident, $stream:ty, $listener:ty, $block_on:path, $spawn:path) => {
        struct $rt;
        impl Rt for $rt {
            type S = $stream;
            fn block_on<T>(f: impl Future<Output = T>) -> T {
                $block_on(f)
            }
            fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Boxed<T> {
                Box::pin($spawn(f))
            }
            fn tcp() -> Boxed<(Self::S, Self::S)> {
                Box::pin(async {
                    let listener = <$listener>::bind("127.0.0.1:0").await.unwrap();
                    let connect = <$stream>::connect(listener.local_addr().unwrap());
                    let (accepted, connected) = join(listener.accept(), connect).await;
                    (accepted.unwrap().0, connected.unwrap())
                })
            }
        }
    };
}

runtime! { Smol, smol::net::TcpStream, smol::net::TcpListener, smol::block_on, smol::spawn }
runtime! { AsyncStd, asn::TcpStream, asn::TcpListener, ast::block_on, ast::spawn }

/// `f`, or a panic after `secs` seconds.
async fn within<T>(secs: u64, f: impl Future<Output = T>) -> T {
    match select(Box::pin(f), Timer::after(Duration::from_secs(secs))).await {
        Either::Left((out, _)) => out,
        Either::Right(_) => panic!("not done within {secs} s"),
    }
}

/// Options with `streaming`; permessage-deflate negotiated or not.
fn options(streaming: Streaming, deflate: bool) -> Options {
    let options = Options::default().with_config(Config::default().with_streaming(streaming));
    if deflate {
        options
    } else {
        options.with_handshake(HandshakeConfig::default())
    }
}

/// A (server, client) pair, after the opening handshake.
async fn pair<R: Rt>(server: &Options, client: &Options) -> (WebSocket<R::S>, WebSocket<R::S>) {
    let (server_stream, client_stream) = R::tcp().await;
    let request = ClientRequest::new("ws://127.0.0.1/stream").unwrap();
    let (server, client) = join(
        ws_futures::accept_with(server_stream, server),
        ws_futures::client(client_stream, request, client),
    )
    .await;
    (server.unwrap(), client.unwrap().0)
}

/// `len` bytes of ASCII text, varied.
fn text(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + (i % 23 + i / 997 % 3) as u8)
        .collect()
}

/// Reads a whole streamed message, piece by piece.
async fn collect<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>) -> (bool, Vec<u8>) {
    let mut stream = ws.recv_stream().await.unwrap().unwrap();
    let mut all = Vec::new();
    while let Some(piece) = stream.next_piece().await {
        all.extend_from_slice(&piece.unwrap());
    }
    (stream.is_text(), all)
}

/// Sends `data` as one message in writes of `chunk` bytes.
async fn send_in_writes<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocket<S>,
    text: bool,
    data: &[u8],
    chunk: usize,
) {
    let mut writer = ws.send_stream(text);
    for piece in data.chunks(chunk) {
        writer.write_all(piece).await.unwrap();
    }
    writer.close().await.unwrap();
}

async fn recv_meets_a_streamed_message_and_recv_stream_still_gets_it_whole<R: Rt>() {
    let off = options(Streaming::Off, false);
    let (mut server, mut client) = pair::<R>(&options(Streaming::Above(4096), false), &off).await;
    let big = text(300_000);
    client.send(Message::text("small")).await.unwrap();
    let big_text = Message::text(String::from_utf8(big.clone()).unwrap());
    client.send(big_text).await.unwrap();
    client.send(Message::binary(vec![7; 5000])).await.unwrap();
    assert_eq!(
        server.recv().await.unwrap().unwrap(),
        Message::text("small")
    );
    assert!(matches!(server.recv().await, Some(Err(Error::Streamed))));
    assert!(matches!(server.next().await, Some(Err(Error::Streamed))));
    assert_eq!(collect(&mut server).await, (true, big));
    assert!(matches!(server.recv().await, Some(Err(Error::Streamed))));
    let mut stream = server.recv_stream().await.unwrap().unwrap();
    assert!(!stream.is_text());
    let mut all = Vec::new();
    stream.read_to_end(&mut all).await.unwrap();
    drop(stream);
    assert_eq!(all, vec![7; 5000]);
    client.send(Message::text("whole")).await.unwrap();
    assert_eq!(collect(&mut server).await, (true, b"whole".to_vec()));
}

async fn a_dropped_half_read_stream_leaves_the_next_message_intact<R: Rt>() {
    let off = options(Streaming::Off, false);
    let (mut server, mut client) = pair::<R>(&options(Streaming::Above(1024), false), &off).await;
    let (first, third) = (text(1 << 20), text(700_000));
    let sender = R::spawn(async move {
        send_in_writes(&mut client, true, &first, 64 << 10).await;
        client.send(Message::text("second")).await.unwrap();
        send_in_writes(&mut client, false, &third, 100_000).await;
        client.send(Message::text("fourth")).await.unwrap();
        client
    });
    let mut stream = server.recv_stream().await.unwrap().unwrap();
    let piece = stream.next_piece().await.unwrap().unwrap();
    assert!(!piece.is_empty() && piece.len() < 1 << 20);
    drop(stream);
    assert_eq!(
        server.recv().await.unwrap().unwrap(),
        Message::text("second")
    );
    let mut stream = server.recv_stream().await.unwrap().unwrap();
    assert!(!stream.fill_buf().await.unwrap().is_empty());
    drop(stream);
    assert_eq!(collect(&mut server).await, (true, b"fourth".to_vec()));
    let mut client = sender.await;
    server.send(Message::text("bye")).await.unwrap();
    assert_eq!(client.recv().await.unwrap().unwrap(), Message::text("bye"));
    let closing = R::spawn(async move {
        let end = server.recv().await.is_none();
        (end, server.close_frame().map(|f| f.code))
        // `server` dropped: async-std's stream closes with the drop.
    });
    client.close(CloseCode::NORMAL, "").await.unwrap();
    assert_eq!(closing.await, (true, Some(CloseCode::NORMAL)));
}

async fn a_dropped_unfinished_writer_closes_with_1011_and_no_message<R: Rt>() {
    let off = options(Streaming::Off, false);
    let (mut server, mut client) = pair::<R>(&off, &off).await;
    let mut writer = client.send_stream(false);
    writer.write_all(&[1; 10_000]).await.unwrap();
    writer.send(Message::binary(vec![2; 5000])).await.unwrap();
    drop(writer);
    let receive = R::spawn(async move {
        let got = server.recv().await;
        (got.is_none(), server.close_frame().map(|f| f.code))
    });
    assert!(client.recv().await.is_none());
    assert_eq!(receive.await, (true, Some(CloseCode::INTERNAL_ERROR)));

    let streaming = options(Streaming::Always, false);
    let (mut server, mut client) = pair::<R>(&streaming, &streaming).await;
    let mut writer = client.send_stream(true);
    writer.write_all(b"part of a message").await.unwrap();
    writer.flush().await.unwrap();
    let receive = R::spawn(async move {
        let mut stream = server.recv_stream().await.unwrap().unwrap();
        let mut got = Vec::new();
        let error = loop {
            match stream.next_piece().await {
                Some(Ok(piece)) => got.extend_from_slice(&piece),
                Some(Err(e)) => break e,
                None => panic!("the message looked complete"),
            }
        };
        assert!(stream.next_piece().await.is_none());
        drop(stream);
        let eof = matches!(&error, Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof);
        (got, eof, server.close_frame().map(|f| f.code))
    });
    Timer::after(Duration::from_millis(50)).await;
    drop(writer);
    client.flush().await.unwrap();
    let (got, eof, code) = receive.await;
    assert_eq!(got, b"part of a message");
    assert!(eof);
    assert_eq!(code, Some(CloseCode::INTERNAL_ERROR));
    assert!(client.recv().await.is_none());
}

/// A masked client frame (payload below 126 bytes).
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [9, 8, 7, 6];
    let mut frame = vec![first, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

async fn invalid_utf8_inside_a_streamed_text_message_fails_with_1007<R: Rt>() {
    let (server, mut raw) = R::tcp().await;
    let config = Config::default().with_streaming(Streaming::Always);
    let mut ws = WebSocket::from_raw(server, Role::Server, config);
    let mut frames = masked(0x01, "café ".as_bytes());
    frames.extend(masked(0x00, b"ol\xc3"));
    frames.extend(masked(0x00, b"\xa9 then"));
    frames.extend(masked(0x80, b" bad \xff byte"));
    raw.write_all(&frames).await.unwrap();
    let mut stream = ws.recv_stream().await.unwrap().unwrap();
    assert!(stream.is_text());
    let mut got = Vec::new();
    let error = loop {
        match stream.next_piece().await {
            Some(Ok(piece)) => {
                std::str::from_utf8(&piece).unwrap();
                got.extend_from_slice(&piece);
            }
            Some(Err(e)) => break e,
            None => panic!("the message looked complete"),
        }
    };
    assert!(
        matches!(error, Error::Protocol(ProtocolError::InvalidUtf8)),
        "{error:?}"
    );
    assert!(got.starts_with("café olé then".as_bytes()), "{got:?}");
    assert!("café olé then bad ".as_bytes().starts_with(&got), "{got:?}");
    assert!(stream.next_piece().await.is_none());
    drop(stream);
    assert!(ws.recv().await.is_none());
    let mut close = [0; 4];
    raw.read_exact(&mut close).await.unwrap();
    assert_eq!(close[0], 0x88);
    assert_eq!(u16::from_be_bytes([close[2], close[3]]), 1007);
}

async fn split_halves_stream_both_ways<R: Rt>() {
    let streaming = options(Streaming::Always, false);
    let (server, client) = pair::<R>(&streaming, &streaming).await;
    let echo = R::spawn(async move {
        let (mut read, mut write) = server.split();
        let mut echoed = 0;
        loop {
            let Some(message) = read.recv_stream().await else {
                break;
            };
            let mut message = message.unwrap();
            let mut writer = write.send_stream(message.is_text());
            while let Some(piece) = message.next_piece().await {
                let piece = piece.unwrap();
                let piece = if message.is_text() {
                    Message::Text(piece.try_into().unwrap())
                } else {
                    Message::Binary(piece)
                };
                writer.send(piece).await.unwrap();
            }
            writer.finish().await.unwrap();
            echoed += 1;
        }
        echoed
    });
    let (mut read, mut write) = client.split();
    let data = text(2 << 20);
    let expected = data.clone();
    let sender = R::spawn(async move {
        for text in [true, false] {
            let mut writer = write.send_stream(text);
            for piece in data.chunks(100_000) {
                writer.write_all(piece).await.unwrap();
            }
            writer.close().await.unwrap();
        }
        let mut writer = write.send_stream(true);
        for byte in "€uro".as_bytes() {
            writer.write_all(&[*byte]).await.unwrap();
        }
        writer.finish().await.unwrap();
        write.send_stream(false).finish().await.unwrap();
        write
    });
    for text in [true, false] {
        let mut stream = read.recv_stream().await.unwrap().unwrap();
        assert_eq!(stream.is_text(), text);
        let mut all = Vec::new();
        while let Some(piece) = stream.next().await {
            all.extend_from_slice(&piece.unwrap());
        }
        assert!(all == expected, "{} of {} bytes", all.len(), expected.len());
    }
    let mut stream = read.recv_stream().await.unwrap().unwrap();
    let mut euro = String::new();
    stream.read_to_string(&mut euro).await.unwrap();
    assert_eq!(euro, "€uro");
    drop(stream);
    let mut stream = read.recv_stream().await.unwrap().unwrap();
    assert!(!stream.is_text());
    assert!(stream.next_piece().await.is_none());
    drop(stream);
    let mut write = sender.await;
    write.close(CloseCode::NORMAL, "done").await.unwrap();
    assert_eq!(echo.await, 4);
    assert!(read.recv_stream().await.is_none());
}

/// With permessage-deflate negotiated, both ways, streamed at both ends.
async fn streamed_round_trip_with_deflate<R: Rt>() {
    let streaming = options(Streaming::Always, true);
    let (mut server, mut client) = pair::<R>(&streaming, &streaming).await;
    assert!(client.connection().deflate().is_some(), "deflate agreed");
    let data = text(3 << 20);
    let expected = data.clone();
    let echo = R::spawn(async move {
        let (text, got) = collect(&mut server).await;
        send_in_writes(&mut server, text, &got, 300_000).await;
        server.recv().await.is_none()
    });
    send_in_writes(&mut client, true, &data, 1 << 20).await;
    assert_eq!(collect(&mut client).await, (true, expected));
    let closing = client.close(CloseCode::NORMAL, "");
    let (closed, end) = join(closing, echo).await;
    closed.unwrap();
    assert!(end);
}

macro_rules! on_runtimes {
    ($($test:ident),*) => {
        mod smol_rt { $(#[test] fn $test() { super::run::<super::Smol>(super::$test::<super::Smol>()) })* }
        mod async_std_rt {
            $(#[test] fn $test() { super::run::<super::AsyncStd>(super::$test::<super::AsyncStd>()) })*
        }
    };
}

fn run<R: Rt>(test: impl Future<Output = ()>) {
    R::block_on(within(60, test));
}

on_runtimes!(
    recv_meets_a_streamed_message_and_recv_stream_still_gets_it_whole,
    a_dropped_half_read_stream_leaves_the_next_message_intact,
    a_dropped_unfinished_writer_closes_with_1011_and_no_message,
    invalid_utf8_inside_a_streamed_text_message_fails_with_1007,
    split_halves_stream_both_ways,
    streamed_round_trip_with_deflate
);
