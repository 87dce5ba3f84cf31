//! Streamed messages over real sockets: `recv_stream` / `MessageStream`,
//! `send_stream` / `MessageWriter`, on whole sockets and split halves, and
//! how they end (dropped half way, invalid UTF-8, a whole-message `recv`
//! that meets a streamed message). The round trips of large messages, with
//! their memory bound, are in `streaming_memory.rs`. Every test binds
//! 127.0.0.1:0 and is bounded by a timeout.

use core::{future::Future, time::Duration};

use futures_util::StreamExt;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use ws_tokio::{
    Bytes, ClientRequest, CloseCode, Config, Error, HandshakeConfig, MaybeTlsStream, Message,
    Options, ProtocolError, Streaming, WebSocket,
};

async fn timed<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("the test timed out")
}

/// Options with `streaming`, permessage-deflate off.
fn options(streaming: Streaming) -> Options {
    let config = Config::default().with_streaming(streaming);
    Options::default()
        .with_config(config)
        .with_handshake(HandshakeConfig::default())
}

/// A connected client and server.
async fn pair(
    client: &Options,
    server: &Options,
) -> (WebSocket<MaybeTlsStream>, WebSocket<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/stream", listener.local_addr().unwrap());
    let request = ClientRequest::new(&url).unwrap();
    let (client, server) = tokio::join!(ws_tokio::connect_with(request, client), async {
        ws_tokio::accept_with(listener.accept().await.unwrap().0, server).await
    });
    (client.unwrap().0, server.unwrap())
}

/// `len` bytes of ASCII text, varied.
fn text(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + (i % 23 + i / 997 % 3) as u8)
        .collect()
}

/// Reads a whole streamed message, piece by piece.
async fn collect(
    ws: &mut WebSocket<impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>,
) -> (bool, Vec<u8>) {
    let mut stream = ws.recv_stream().await.unwrap().unwrap();
    let mut all = Vec::new();
    while let Some(piece) = stream.next_piece().await {
        all.extend_from_slice(&piece.unwrap());
    }
    (stream.is_text(), all)
}

/// Sends `data` as one message in writes of `chunk` bytes.
async fn send_in_writes(
    ws: &mut WebSocket<impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>,
    text: bool,
    data: &[u8],
    chunk: usize,
) {
    let mut writer = ws.send_stream(text);
    for piece in data.chunks(chunk) {
        writer.write_all(piece).await.unwrap();
    }
    writer.shutdown().await.unwrap();
}

#[tokio::test]
async fn recv_meets_a_streamed_message_and_recv_stream_still_gets_it_whole() {
    timed(async {
        let server_options = options(Streaming::Above(4096));
        let (mut client, mut server) = pair(&options(Streaming::Off), &server_options).await;
        let big = text(300_000);
        client.send(Message::text("small")).await.unwrap();
        client
            .send(Message::text(String::from_utf8(big.clone()).unwrap()))
            .await
            .unwrap();
        client.send(Message::binary(vec![7; 5000])).await.unwrap();
        // Below the threshold: whole, as ever.
        assert_eq!(
            server.recv().await.unwrap().unwrap(),
            Message::text("small")
        );
        // Above it: `recv` refuses it, twice, and loses nothing.
        assert!(matches!(server.recv().await, Some(Err(Error::Streamed))));
        assert!(matches!(
            futures_util::poll!(server.next()),
            core::task::Poll::Ready(Some(Err(Error::Streamed)))
        ));
        assert_eq!(collect(&mut server).await, (true, big));
        // Streamed too: read as an `AsyncRead`.
        assert!(matches!(server.recv().await, Some(Err(Error::Streamed))));
        let mut stream = server.recv_stream().await.unwrap().unwrap();
        assert!(!stream.is_text());
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await.unwrap();
        drop(stream);
        assert_eq!(all, vec![7; 5000]);
        // A whole message is a stream of one piece.
        client.send(Message::text("whole")).await.unwrap();
        assert_eq!(collect(&mut server).await, (true, b"whole".to_vec()));
    })
    .await;
}

#[tokio::test]
async fn a_dropped_half_read_stream_leaves_the_next_message_intact() {
    timed(async {
        let server_options = options(Streaming::Above(1024));
        let (mut client, mut server) = pair(&options(Streaming::Off), &server_options).await;
        let (first, third) = (text(1 << 20), text(700_000));
        let sender = tokio::spawn(async move {
            send_in_writes(&mut client, true, &first, 64 << 10).await;
            client.send(Message::text("second")).await.unwrap();
            send_in_writes(&mut client, false, &third, 100_000).await;
            client.send(Message::text("fourth")).await.unwrap();
            client
        });
        // One piece of the first, then dropped: the rest is discarded.
        let mut stream = server.recv_stream().await.unwrap().unwrap();
        let piece = stream.next_piece().await.unwrap().unwrap();
        assert!(!piece.is_empty() && piece.len() < 1 << 20);
        drop(stream);
        assert_eq!(
            server.recv().await.unwrap().unwrap(),
            Message::text("second")
        );
        // Dropped before its first piece was read, through `AsyncBufRead`.
        let mut stream = server.recv_stream().await.unwrap().unwrap();
        assert!(!stream.fill_buf().await.unwrap().is_empty());
        drop(stream);
        assert_eq!(collect(&mut server).await, (true, b"fourth".to_vec()));
        let mut client = sender.await.unwrap();
        // The connection is fine both ways.
        server.send(Message::text("bye")).await.unwrap();
        assert_eq!(client.recv().await.unwrap().unwrap(), Message::text("bye"));
        let (closed, end) = tokio::join!(client.close(CloseCode::NORMAL, ""), server.recv());
        closed.unwrap();
        assert!(end.is_none());
        assert_eq!(server.close_frame().unwrap().code, CloseCode::NORMAL);
    })
    .await;
}

#[tokio::test]
async fn a_dropped_unfinished_writer_closes_with_1011_and_no_message() {
    timed(async {
        // A receiver of whole messages never sees the part sent.
        let (mut client, mut server) =
            pair(&options(Streaming::Off), &options(Streaming::Off)).await;
        let mut writer = client.send_stream(false);
        writer.write_all(&[1; 10_000]).await.unwrap();
        writer.send(Message::binary(vec![2; 5000])).await.unwrap();
        drop(writer);
        // The next operation writes the Close.
        let (from_client, from_server) = tokio::join!(client.recv(), server.recv());
        assert!(from_server.is_none(), "no message: {from_server:?}");
        assert_eq!(
            server.close_frame().unwrap().code,
            CloseCode::INTERNAL_ERROR
        );
        assert!(from_client.is_none());
        assert!(matches!(
            client.send(Message::text("late")).await,
            Err(Error::Send(_))
        ));

        // A streaming receiver sees the pieces, then an error: never an end.
        let streaming = options(Streaming::Always);
        let (mut client, mut server) = pair(&streaming, &streaming).await;
        let mut writer = client.send_stream(true);
        writer
            .write_all("part of a message".as_bytes())
            .await
            .unwrap();
        writer.flush().await.unwrap();
        let receive = tokio::spawn(async move {
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
            (got, error, server)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(writer);
        client.flush().await.unwrap();
        let (got, error, server) = receive.await.unwrap();
        assert_eq!(got, b"part of a message");
        assert!(
            matches!(&error, Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "{error:?}"
        );
        assert_eq!(
            server.close_frame().unwrap().code,
            CloseCode::INTERNAL_ERROR
        );
        assert!(client.recv().await.is_none());
    })
    .await;
}

/// A raw TCP client after the handshake with the server it returns.
async fn raw_pair(options: &Options) -> (TcpStream, WebSocket<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (raw, server) = tokio::join!(
        async {
            let mut raw = TcpStream::connect(addr).await.unwrap();
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

/// A masked client frame (payload below 126 bytes).
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [9, 8, 7, 6];
    let mut frame = vec![first, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

#[tokio::test]
async fn invalid_utf8_inside_a_streamed_text_message_fails_with_1007() {
    timed(async {
        let (mut raw, mut server) = raw_pair(&options(Streaming::Always)).await;
        let mut frames = masked(0x01, b"caf\xc3\xa9 ");
        frames.extend(masked(0x00, b"ol\xc3"));
        frames.extend(masked(0x00, b"\xa9 then"));
        frames.extend(masked(0x80, b" bad \xff byte"));
        raw.write_all(&frames).await.unwrap();
        let mut stream = server.recv_stream().await.unwrap().unwrap();
        assert!(stream.is_text());
        let mut got = Vec::new();
        let error = loop {
            match stream.next_piece().await {
                Some(Ok(piece)) => {
                    // Every piece is whole code points.
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
        let valid = "café olé then bad ".as_bytes();
        assert!(got.starts_with("café olé then".as_bytes()), "{got:?}");
        assert!(valid.starts_with(&got), "{got:?}");
        assert!(stream.next_piece().await.is_none());
        drop(stream);
        assert!(server.recv().await.is_none());
        // The Close frame: 1007.
        let mut close = [0; 4];
        raw.read_exact(&mut close).await.unwrap();
        assert_eq!(close[0], 0x88);
        assert_eq!(u16::from_be_bytes([close[2], close[3]]), 1007);
    })
    .await;
}

#[tokio::test]
async fn split_halves_stream_both_ways() {
    timed(async {
        let streaming = options(Streaming::Always);
        let (client, server) = pair(&streaming, &streaming).await;
        // The server echoes each message piece by piece as it arrives.
        let echo = tokio::spawn(async move {
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
        let data = text(3 << 20);
        let expected = data.clone();
        let sender = tokio::spawn(async move {
            for text in [true, false] {
                let mut writer = write.send_stream(text);
                for piece in data.chunks(100_000) {
                    writer.write_all(piece).await.unwrap();
                }
                writer.shutdown().await.unwrap();
            }
            // Text cut inside a code point is held until it is whole.
            let mut writer = write.send_stream(true);
            for byte in "€uro".as_bytes() {
                writer.write_all(&[*byte]).await.unwrap();
            }
            writer.finish().await.unwrap();
            // An empty message.
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
        let mut write = sender.await.unwrap();
        write.close(CloseCode::NORMAL, "done").await.unwrap();
        assert!(read.recv_stream().await.is_none());
        assert_eq!(echo.await.unwrap(), 4);
    })
    .await;
}

#[tokio::test]
async fn a_finished_writer_refuses_more_and_bad_text_is_refused() {
    timed(async {
        let (mut client, mut server) =
            pair(&options(Streaming::Off), &options(Streaming::Off)).await;
        let mut writer = client.send_stream(true);
        writer.write_all(b"ok").await.unwrap();
        assert!(writer.write_all(b"\xff").await.is_err(), "not UTF-8");
        writer.shutdown().await.unwrap();
        assert!(writer.write_all(b"more").await.is_err(), "finished");
        assert!(writer.send(Message::text("more")).await.is_err());
        drop(writer);
        assert_eq!(server.recv().await.unwrap().unwrap(), Message::text("ok"));
        // Finishing inside a code point fails; nothing of that message was
        // queued (the open code point is held), so nothing is abandoned.
        let mut writer = client.send_stream(true);
        writer.write_all(&"é".as_bytes()[..1]).await.unwrap();
        writer.write_all(b"").await.unwrap();
        assert!(matches!(
            writer.send(Message::binary(Bytes::from_static(b"x"))).await,
            Err(Error::Send(ws_tokio::SendError::FragmentInProgress))
        ));
        assert!(matches!(
            writer.finish().await,
            Err(Error::Send(ws_tokio::SendError::InvalidUtf8))
        ));
        client.send(Message::text("after")).await.unwrap();
        assert_eq!(
            server.recv().await.unwrap().unwrap(),
            Message::text("after")
        );
        // Once a frame was queued, the same failure closes with 1011.
        let mut writer = client.send_stream(true);
        writer.write_all(b"abc\xc3").await.unwrap();
        writer.write_all(b"\xa9d\xc3").await.unwrap();
        assert!(writer.finish().await.is_err());
        client.flush().await.unwrap();
        assert!(server.recv().await.is_none());
        assert_eq!(
            server.close_frame().unwrap().code,
            CloseCode::INTERNAL_ERROR
        );
    })
    .await;
}

#[tokio::test]
async fn one_write_takes_a_bounded_part_of_a_long_slice() {
    timed(async {
        let config = Config::default().with_max_write_buffer(1 << 20);
        let client_options = options(Streaming::Off).with_config(config);
        let server_options = options(Streaming::Always);
        let (mut client, mut server) = pair(&client_options, &server_options).await;
        let data = text(3 << 20);
        let expected = data.clone();
        let receive = tokio::spawn(async move { collect(&mut server).await });
        let mut writer = client.send_stream(true);
        assert_eq!(writer.write(&data).await.unwrap(), 1 << 20);
        writer.write_all(&data[1 << 20..]).await.unwrap();
        writer.shutdown().await.unwrap();
        assert!(receive.await.unwrap() == (true, expected));
    })
    .await;
}
