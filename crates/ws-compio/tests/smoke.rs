//! Loopback tests of the compio adapter: echo, a mebibyte, ping/pong, the
//! close handshake, a protocol error from a raw client, split halves, the
//! server against ws-tokio and ws-std clients (permessage-deflate on), and
//! compio's polling driver. Each test is bounded in time.

use core::future::Future;
use std::{
    io::{Read, Write},
    net, thread,
};

use compio::driver::{DriverType, ProactorBuilder};
use compio::net::{TcpListener, TcpStream};
use compio::runtime::{Runtime, RuntimeBuilder};
use ws_compio::{CloseCode, Error, Event, Message};

// What ws-std's tests share: a time limit, a client handshaken by hand, raw
// masked frames.
#[path = "../../ws-std/tests/common/mod.rs"]
mod common;

use common::{bounded, masked, raw_client};

/// A compio runtime: compio's choice of driver, or the polling one.
fn runtime(polling: bool) -> Runtime {
    let mut proactor = ProactorBuilder::new();
    if polling {
        proactor.driver_type(DriverType::Poll);
    }
    RuntimeBuilder::new()
        .with_proactor(proactor)
        .build()
        .unwrap()
}

/// Serves one connection on 127.0.0.1:0 with `serve`, on a compio runtime
/// of its own thread.
fn serve<T, F>(
    polling: bool,
    serve: impl FnOnce(TcpStream) -> F + Send + 'static,
) -> (String, thread::JoinHandle<T>)
where
    T: Send + 'static,
    F: Future<Output = T>,
{
    serve_all(
        move || runtime(polling),
        1,
        |mut streams| serve(streams.pop().unwrap()),
    )
}

/// Accepts `count` connections on 127.0.0.1:0 and serves them with
/// `serve`, on the runtime `make` builds in a thread of its own.
fn serve_all<T, F>(
    make: impl FnOnce() -> Runtime + Send + 'static,
    count: usize,
    serve: impl FnOnce(Vec<TcpStream>) -> F + Send + 'static,
) -> (String, thread::JoinHandle<T>)
where
    T: Send + 'static,
    F: Future<Output = T>,
{
    let listener = net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        make().block_on(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            let mut streams = Vec::new();
            for _ in 0..count {
                streams.push(listener.accept().await.unwrap().0);
            }
            serve(streams).await
        })
    });
    (format!("ws://{addr}/"), handle)
}

/// An echo server; returns the close code it saw.
fn echo_server(polling: bool) -> (String, thread::JoinHandle<Option<CloseCode>>) {
    serve(polling, |stream| async move {
        let mut ws = ws_compio::accept(stream).await.unwrap();
        while let Some(message) = ws.recv().await {
            ws.send(message.unwrap()).await.unwrap();
        }
        ws.close_frame().map(|frame| frame.code)
    })
}

/// A compio client's echo round trips, a ping, then the close handshake.
async fn client_round_trips(url: &str) {
    let (mut ws, response) = ws_compio::connect(url).await.unwrap();
    assert!(response.deflate.is_some(), "permessage-deflate agreed");
    let big: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    for message in [
        Message::text("hello"),
        Message::binary(vec![1, 2, 3]),
        Message::binary(big),
    ] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), message);
    }
    ws.ping(ws_compio::Bytes::from_static(b"p")).await.unwrap();
    match ws.recv_event().await.unwrap().unwrap() {
        Event::Pong(payload) => assert_eq!(&payload[..], b"p"),
        other => panic!("expected the pong, got {other:?}"),
    }
    ws.close(CloseCode::from(4001), "bye").await.unwrap();
    assert_eq!(
        ws.close_frame().map(|f| f.code),
        Some(CloseCode::from(4001))
    );
    assert!(ws.recv().await.is_none());
}

#[test]
fn echo_text_binary_and_a_mebibyte_then_ping_and_close() {
    bounded(60, || {
        let (url, server) = echo_server(false);
        runtime(false).block_on(client_round_trips(&url));
        assert_eq!(server.join().unwrap(), Some(CloseCode::from(4001)));
    });
}

#[test]
fn the_polling_driver_runs_the_same() {
    bounded(60, || {
        let (url, server) = echo_server(true);
        let rt = runtime(true);
        assert_eq!(rt.driver_type(), DriverType::Poll);
        rt.block_on(client_round_trips(&url));
        assert_eq!(server.join().unwrap(), Some(CloseCode::from(4001)));
    });
}

/// Reads one frame: opcode and (unmasked) payload.
fn read_frame(stream: &mut impl Read) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    assert!(head[1] < 126, "a short frame");
    let mut payload = vec![0; usize::from(head[1])];
    stream.read_exact(&mut payload).unwrap();
    (head[0] & 0x0f, payload)
}

#[test]
fn a_protocol_error_is_answered_with_1002() {
    bounded(20, || {
        let (url, server) = serve(false, |stream| async move {
            let mut ws = ws_compio::accept(stream).await.unwrap();
            let text = ws.recv().await.unwrap().unwrap();
            let failed = matches!(ws.recv().await, Some(Err(Error::Protocol(_))));
            (text, failed && ws.recv().await.is_none())
        });
        let (mut stream, _) = raw_client(&url);
        stream.write_all(&masked(0x81, b"raw")).unwrap();
        stream.write_all(&masked(0x83, b"reserved opcode")).unwrap();
        let (opcode, payload) = read_frame(&mut stream);
        assert_eq!((opcode, &payload[..2]), (0x8, &1002u16.to_be_bytes()[..]));
        assert_eq!(
            stream.read(&mut [0; 16]).unwrap(),
            0,
            "the server ends the stream"
        );
        assert_eq!(server.join().unwrap(), (Message::text("raw"), true));
    });
}

#[test]
fn split_halves_send_and_receive_from_two_tasks() {
    bounded(30, || {
        let (url, server) = echo_server(false);
        runtime(false).block_on(async move {
            let (ws, _) = ws_compio::connect(&url).await.unwrap();
            let (mut read, mut write) = ws.split();
            let writer = compio::runtime::spawn(async move {
                for i in 0..100 {
                    write.send(Message::text(i.to_string())).await.unwrap();
                }
                write.close(CloseCode::NORMAL, "done").await.unwrap();
                write
            });
            for i in 0..100 {
                assert_eq!(
                    read.recv().await.unwrap().unwrap(),
                    Message::text(i.to_string())
                );
            }
            assert!(read.recv().await.is_none(), "the close handshake ends");
            assert_eq!(read.close_frame().map(|f| f.code), Some(CloseCode::NORMAL));
            let write = writer.await.unwrap();
            read.reunite(write).unwrap();
        });
        assert_eq!(server.join().unwrap(), Some(CloseCode::NORMAL));
    });
}

#[test]
fn the_server_talks_to_a_ws_tokio_client() {
    bounded(60, || {
        let (url, server) = echo_server(false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut ws, response) = ws_tokio::connect(&url).await.unwrap();
            assert!(response.deflate.is_some(), "permessage-deflate agreed");
            let text = "compressible ".repeat(100_000);
            for message in [Message::text(text), Message::binary(vec![0; 300_000])] {
                ws.send(message.clone()).await.unwrap();
                assert_eq!(ws.recv().await.unwrap().unwrap(), message);
            }
            ws.close(CloseCode::NORMAL, "").await.unwrap();
        });
        assert_eq!(server.join().unwrap(), Some(CloseCode::NORMAL));
    });
}

#[test]
fn the_server_talks_to_a_ws_std_client() {
    bounded(60, || {
        let (url, server) = echo_server(false);
        let (mut ws, response) = ws_std::connect(&url).unwrap();
        assert!(response.deflate.is_some(), "permessage-deflate agreed");
        for message in [Message::text("std"), Message::binary(vec![7; 1 << 20])] {
            ws.send(message.clone()).unwrap();
            assert_eq!(ws.recv().unwrap().unwrap(), message);
        }
        ws.close(CloseCode::GOING_AWAY, "").unwrap();
        assert_eq!(server.join().unwrap(), Some(CloseCode::GOING_AWAY));
    });
}

#[test]
fn wss_is_refused_without_tls() {
    runtime(false).block_on(async {
        let refused = ws_compio::connect("wss://127.0.0.1:9/").await;
        assert!(matches!(refused, Err(Error::Handshake(_))));
    });
}

#[test]
fn a_burst_of_pings_gets_every_pong() {
    // Autobahn 2.10: ten pings in one read. A write in flight on a
    // completion runtime is not a blocked transport: each pong goes out
    // before the next ping is parsed, as with the readiness adapters.
    bounded(20, || {
        for polling in [false, true] {
            burst_of_pings(polling);
        }
    });
}

fn burst_of_pings(polling: bool) {
    {
        let (url, server) = echo_server(polling);
        let (mut stream, _) = raw_client(&url);
        let pings: Vec<u8> = (0..10u8).flat_map(|i| masked(0x89, &[i; 10])).collect();
        stream.write_all(&pings).unwrap();
        for i in 0..10u8 {
            assert_eq!(read_frame(&mut stream), (0xA, vec![i; 10]), "pong {i}");
        }
        stream
            .write_all(&masked(0x88, &1000u16.to_be_bytes()))
            .unwrap();
        assert_eq!(read_frame(&mut stream).0, 0x8);
        drop(server);
    }
}

#[test]
fn connections_share_a_pool_smaller_than_their_reads_in_flight() {
    // Between messages a read lands in a buffer of the runtime's pool
    // (io_uring's provided buffers). A pool of one buffer for 12 busy
    // connections runs dry all the time: the reads that find it empty
    // (ENOBUFS) lend their own room instead, and nothing is lost.
    const CONNECTIONS: usize = 12;
    bounded(60, || {
        let one_buffer = || {
            let mut proactor = ProactorBuilder::new();
            proactor.buffer_pool_size(core::num::NonZero::new(1).unwrap());
            let builder = RuntimeBuilder::new().with_proactor(proactor).build();
            builder.unwrap()
        };
        let (url, server) = serve_all(one_buffer, CONNECTIONS, |streams| async move {
            let tasks: Vec<_> = (streams.into_iter())
                .map(|stream| {
                    compio::runtime::spawn(async move {
                        let mut ws = ws_compio::accept(stream).await.unwrap();
                        while let Some(message) = ws.recv().await {
                            ws.send(message.unwrap()).await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                let url = url.clone();
                thread::spawn(move || {
                    let (mut ws, _) = ws_std::connect(&url).unwrap();
                    for i in 0..60usize {
                        // 1 byte to 24 KiB: within one pool buffer and across several.
                        let size = 1 + (c * 977 + i * 4099) % (24 << 10);
                        let message = Message::binary(vec![(c + i) as u8; size]);
                        ws.send(message.clone()).unwrap();
                        assert_eq!(
                            ws.recv().unwrap().unwrap(),
                            message,
                            "client {c}, message {i}"
                        );
                    }
                    ws.close(CloseCode::NORMAL, "").unwrap();
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
        server.join().unwrap();
    });
}

#[test]
fn stream_and_sink() {
    // The socket as a `Stream` of messages and a `Sink` of them: the server
    // forwards what it receives back into itself, the client sends through
    // `SinkExt` and reads through `StreamExt`; closing the sink closes with
    // 1000.
    use futures_util::{SinkExt, StreamExt};
    bounded(20, || {
        let (url, server) = serve(false, |stream| async move {
            let ws = ws_compio::accept(stream).await.unwrap();
            let (read, write) = ws.split();
            read.forward(write).await.unwrap();
        });
        runtime(false).block_on(async move {
            let (mut ws, _) = ws_compio::connect(&url).await.unwrap();
            for i in 0..20u8 {
                let message = Message::binary(vec![i; 1 + usize::from(i) * 1000]);
                SinkExt::send(&mut ws, message.clone()).await.unwrap();
                assert_eq!(StreamExt::next(&mut ws).await.unwrap().unwrap(), message);
            }
            SinkExt::close(&mut ws).await.unwrap();
            assert_eq!(ws.close_frame().unwrap().code, CloseCode::NORMAL);
            assert!(StreamExt::next(&mut ws).await.is_none());
        });
        server.join().unwrap();
    });
}

#[test]
fn a_broadcast_reaches_every_split_connection_then_try_close_ends_them() {
    use ws_compio::{WhenFull, broadcast};
    const CONNECTIONS: usize = 3;
    bounded(30, || {
        let (url, server) = serve_all(
            || runtime(false),
            CONNECTIONS,
            |streams| async move {
                let (mut writers, mut readers) = (Vec::new(), Vec::new());
                for stream in streams {
                    let (mut read, write) = ws_compio::accept(stream).await.unwrap().split();
                    // Each reader writes what the broadcast queued.
                    readers.push(compio::runtime::spawn(async move {
                        while read.recv().await.is_some() {}
                        read.close_frame().map(|frame| frame.code)
                    }));
                    writers.push(write);
                }
                for i in 0..100u32 {
                    let sent = broadcast(&writers, &Message::text(i.to_string()), WhenFull::Skip);
                    assert_eq!(sent.queued, CONNECTIONS, "message {i}");
                }
                for write in &writers {
                    write.try_close(CloseCode::GOING_AWAY, "done").unwrap();
                }
                let mut codes = Vec::new();
                for reader in readers {
                    codes.push(reader.await.unwrap());
                }
                codes
            },
        );
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let url = url.clone();
                thread::spawn(move || {
                    let (mut ws, _) = ws_std::connect(&url).unwrap();
                    for i in 0..100u32 {
                        assert_eq!(ws.recv().unwrap().unwrap(), Message::text(i.to_string()));
                    }
                    assert!(ws.recv().is_none(), "the Close ends the stream");
                    ws.close_frame().map(|frame| frame.code)
                })
            })
            .collect();
        for client in clients {
            assert_eq!(client.join().unwrap(), Some(CloseCode::GOING_AWAY));
        }
        assert_eq!(
            server.join().unwrap(),
            vec![Some(CloseCode::GOING_AWAY); CONNECTIONS]
        );
    });
}

#[test]
fn queued_messages_of_every_size_go_out_in_order() {
    // Several queued frames (headers, small frames encoded back to back,
    // large payloads as their own chunks) leave in vectored writes of up
    // to 16 chunks; a chunk too large to gather goes alone.
    bounded(30, || {
        let (url, server) = echo_server(false);
        runtime(false).block_on(async move {
            let (mut ws, _) = ws_compio::connect(&url).await.unwrap();
            let sizes = [10, 5_000, 70_000, 0, 300_000, 126, 65_536];
            let messages: Vec<Message> = (0..42)
                .map(|i| Message::binary(vec![i as u8; sizes[i % sizes.len()]]))
                .collect();
            for message in &messages {
                ws.feed(message.clone()).await.unwrap();
            }
            ws.flush().await.unwrap();
            for (i, message) in messages.iter().enumerate() {
                assert_eq!(&ws.recv().await.unwrap().unwrap(), message, "message {i}");
            }
            ws.close(CloseCode::NORMAL, "").await.unwrap();
        });
        assert_eq!(server.join().unwrap(), Some(CloseCode::NORMAL));
    });
}
