//! Streamed messages over real sockets, every scenario on every runtime of
//! the including adapter (ws-tokio, ws-futures; see `runtime.rs`):
//! `recv_stream` / `MessageStream`, `send_stream` / `MessageWriter`, on
//! whole sockets and split halves, and how they end (dropped half way,
//! invalid UTF-8, a whole-message `recv` that meets a streamed message). The
//! round trips of large messages, with their memory bound, are in
//! `streaming_memory.rs`.

use core::{task::Poll, time::Duration};

use futures_util::StreamExt;

use crate::common::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Rt, masked, on_runtimes,
    pair, shutdown, tcp, ws,
};
use ws::{
    Bytes, CloseCode, Config, Error, HandshakeConfig, Message, Options, ProtocolError, Role,
    SendError, Streaming, WebSocket,
};

/// Options with `streaming`; permessage-deflate negotiated or not.
fn options(streaming: Streaming, deflate: bool) -> Options {
    let options = Options::default().with_config(Config::default().with_streaming(streaming));
    if deflate {
        options
    } else {
        options.with_handshake(HandshakeConfig::default())
    }
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
    shutdown(&mut writer).await.unwrap();
}

async fn recv_meets_a_streamed_message_and_recv_stream_still_gets_it_whole<R: Rt>() {
    let off = options(Streaming::Off, false);
    let (mut server, mut client) = pair::<R>(&options(Streaming::Above(4096), false), &off).await;
    let big = text(300_000);
    client.send(Message::text("small")).await.unwrap();
    let big_text = Message::text(String::from_utf8(big.clone()).unwrap());
    client.send(big_text).await.unwrap();
    client.send(Message::binary(vec![7; 5000])).await.unwrap();
    // Below the threshold: whole, as ever.
    assert_eq!(
        server.recv().await.unwrap().unwrap(),
        Message::text("small")
    );
    // Above it: `recv` refuses it, twice (once as a `Stream`, at once), and
    // loses nothing.
    assert!(matches!(server.recv().await, Some(Err(Error::Streamed))));
    assert!(matches!(
        futures_util::poll!(server.next()),
        Poll::Ready(Some(Err(Error::Streamed)))
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
    let mut client = sender.await;
    // The connection is fine both ways.
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
    // A receiver of whole messages never sees the part sent.
    let off = options(Streaming::Off, false);
    let (mut server, mut client) = pair::<R>(&off, &off).await;
    let mut writer = client.send_stream(false);
    writer.write_all(&[1; 10_000]).await.unwrap();
    writer.send(Message::binary(vec![2; 5000])).await.unwrap();
    drop(writer);
    // The next operation writes the Close.
    let receive = R::spawn(async move {
        let got = server.recv().await;
        (got, server.close_frame().map(|f| f.code))
    });
    assert!(client.recv().await.is_none());
    let (got, code) = receive.await;
    assert!(got.is_none(), "no message: {got:?}");
    assert_eq!(code, Some(CloseCode::INTERNAL_ERROR));
    assert!(matches!(
        client.send(Message::text("late")).await,
        Err(Error::Send(_))
    ));

    // A streaming receiver sees the pieces, then an error: never an end.
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
        (got, error, server.close_frame().map(|f| f.code))
    });
    R::sleep(Duration::from_millis(50)).await;
    drop(writer);
    client.flush().await.unwrap();
    let (got, error, code) = receive.await;
    assert_eq!(got, b"part of a message");
    assert!(matches!(&error, Error::CutShort), "{error:?}");
    let as_io = std::io::Error::from(error);
    assert_eq!(as_io.kind(), std::io::ErrorKind::UnexpectedEof);
    assert_eq!(code, Some(CloseCode::INTERNAL_ERROR));
    assert!(client.recv().await.is_none());
}

async fn invalid_utf8_inside_a_streamed_text_message_fails_with_1007<R: Rt>() {
    let (server, mut raw) = tcp::<R>();
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
    assert!(got.starts_with("café olé then".as_bytes()), "{got:?}");
    assert!("café olé then bad ".as_bytes().starts_with(&got), "{got:?}");
    assert!(stream.next_piece().await.is_none());
    drop(stream);
    assert!(ws.recv().await.is_none());
    // The Close frame: 1007.
    let mut close = [0; 4];
    raw.read_exact(&mut close).await.unwrap();
    assert_eq!(close[0], 0x88);
    assert_eq!(u16::from_be_bytes([close[2], close[3]]), 1007);
}

async fn split_halves_stream_both_ways<R: Rt>() {
    let streaming = options(Streaming::Always, false);
    let (server, client) = pair::<R>(&streaming, &streaming).await;
    // The server echoes each message piece by piece as it arrives.
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
    let data = text(3 << 20);
    let expected = data.clone();
    let sender = R::spawn(async move {
        for text in [true, false] {
            let mut writer = write.send_stream(text);
            for piece in data.chunks(100_000) {
                writer.write_all(piece).await.unwrap();
            }
            shutdown(&mut writer).await.unwrap();
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
    let (closed, end) = futures_util::future::join(closing, echo).await;
    closed.unwrap();
    assert!(end);
}

async fn a_finished_writer_refuses_more_and_bad_text_is_refused<R: Rt>() {
    let off = options(Streaming::Off, false);
    let (mut server, mut client) = pair::<R>(&off, &off).await;
    let mut writer = client.send_stream(true);
    writer.write_all(b"ok").await.unwrap();
    assert!(writer.write_all(b"\xff").await.is_err(), "not UTF-8");
    shutdown(&mut writer).await.unwrap();
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
        Err(Error::Send(SendError::FragmentInProgress))
    ));
    assert!(matches!(
        writer.finish().await,
        Err(Error::Send(SendError::InvalidUtf8))
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
}

async fn one_write_takes_a_bounded_part_of_a_long_slice<R: Rt>() {
    let config = Config::default().with_max_write_buffer(1 << 20);
    let client_options = options(Streaming::Off, false).with_config(config);
    let server_options = options(Streaming::Always, false);
    let (mut server, mut client) = pair::<R>(&server_options, &client_options).await;
    let data = text(3 << 20);
    let expected = data.clone();
    let receive = R::spawn(async move { collect(&mut server).await });
    let mut writer = client.send_stream(true);
    assert_eq!(writer.write(&data).await.unwrap(), 1 << 20);
    writer.write_all(&data[1 << 20..]).await.unwrap();
    shutdown(&mut writer).await.unwrap();
    assert!(receive.await == (true, expected));
}

on_runtimes!(60;
    recv_meets_a_streamed_message_and_recv_stream_still_gets_it_whole,
    a_dropped_half_read_stream_leaves_the_next_message_intact,
    a_dropped_unfinished_writer_closes_with_1011_and_no_message,
    invalid_utf8_inside_a_streamed_text_message_fails_with_1007,
    split_halves_stream_both_ways,
    streamed_round_trip_with_deflate,
    a_finished_writer_refuses_more_and_bad_text_is_refused,
    one_write_takes_a_bounded_part_of_a_long_slice,
);
