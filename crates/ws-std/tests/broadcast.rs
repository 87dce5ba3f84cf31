//! Sending without waiting over real sockets: `WriteHalf::try_send`,
//! `try_close` and `broadcast`, with a peer that stops reading.

mod common;

use core::time::Duration;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;

use common::bounded;
use ws_std::{
    Broadcast, CloseCode, Config, Error, HandshakeConfig, Message, Options, SendError, WebSocket,
    WhenFull,
};

/// No permessage-deflate: the payloads below would compress to nothing.
fn options(config: Config) -> Options {
    Options::default()
        .with_config(config)
        .with_handshake(HandshakeConfig::default())
}

/// A connected (server, client) pair; the server's queue is bounded at
/// `max_write_buffer` bytes.
fn pair(max_write_buffer: usize) -> (WebSocket<TcpStream>, WebSocket<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let config = Config::default().with_max_write_buffer(max_write_buffer);
    let server = thread::spawn(move || {
        let stream = listener.accept().unwrap().0;
        ws_std::accept_with(stream, &options(config)).unwrap()
    });
    let request = ws_std::ClientRequest::new(&url).unwrap();
    let stream = TcpStream::connect(listener_addr(&url)).unwrap();
    let client = ws_std::client(stream, request, &options(Config::default()))
        .unwrap()
        .0;
    (server.join().unwrap(), client)
}

fn listener_addr(url: &str) -> &str {
    url.trim_start_matches("ws://").trim_end_matches('/')
}

/// Receives until the connection ends: the data messages (counted in
/// `count` as they come), and why it ended.
fn drain(mut ws: WebSocket<TcpStream>, count: &AtomicUsize) -> (usize, Option<CloseCode>) {
    let mut messages = 0;
    while let Some(Ok(_)) = ws.recv() {
        messages += 1;
        count.fetch_add(1, SeqCst);
    }
    (messages, ws.close_frame().map(|frame| frame.code))
}

#[test]
fn try_send_and_try_close_from_another_thread() {
    bounded(30, || {
        let (server, mut client) = pair(1 << 20);
        let (mut reader, writer) = server.split();
        let writer = Arc::new(writer);
        let reading = thread::spawn(move || {
            while let Some(Ok(_)) = reader.recv() {}
            reader.close_frame().map(|frame| frame.code)
        });
        let other = Arc::clone(&writer);
        thread::spawn(move || {
            other.try_send(Message::text("one")).unwrap();
            other.try_close(CloseCode::GOING_AWAY, "bye").unwrap();
        })
        .join()
        .unwrap();
        assert_eq!(client.recv().unwrap().unwrap(), Message::text("one"));
        assert!(client.recv().is_none());
        assert_eq!(client.close_frame().unwrap().code, CloseCode::GOING_AWAY);
        assert_eq!(reading.join().unwrap(), Some(CloseCode::GOING_AWAY));
        let refused = writer.try_send(Message::text("late")).unwrap_err();
        assert!(
            matches!(refused, Error::Send(SendError::Closed)),
            "{refused:?}"
        );
    });
}

#[test]
fn broadcast_closes_a_stalled_peer_and_the_others_get_everything() {
    const MESSAGES: usize = 800;
    bounded(60, || {
        let mut writers = Vec::new();
        let mut fast = Vec::new();
        let mut counts = Vec::new();
        let mut stalled = None;
        for i in 0..3 {
            let (server, client) = pair(64 << 10);
            let (mut reader, writer) = server.split();
            writers.push(writer);
            thread::spawn(move || while let Some(Ok(_)) = reader.recv() {});
            if i == 0 {
                stalled = Some(client);
            } else {
                let count = Arc::new(AtomicUsize::new(0));
                counts.push(Arc::clone(&count));
                fast.push(thread::spawn(move || drain(client, &count)));
            }
        }
        let payload = Message::binary(vec![1u8; 16 << 10]);
        let slow = WhenFull::Close(CloseCode::TRY_AGAIN_LATER, "too slow");
        let mut total = Broadcast::default();
        for sent in 1..=MESSAGES {
            let tally = ws_std::broadcast(&writers, &payload, slow);
            total.queued += tally.queued;
            total.skipped += tally.skipped;
            total.closed += tally.closed;
            // The fast ones' halves write at once (their readers would
            // within 100 ms); paced by the fast readers, however slow the
            // machine. The stalled one's socket buffers, then its queue,
            // fill.
            for writer in &mut writers[1..] {
                writer.flush().unwrap();
            }
            while counts.iter().any(|count| count.load(SeqCst) + 2 < sent) {
                thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(total.closed, 1, "{total:?}");
        assert_eq!(total.queued + total.skipped + total.closed, 3 * MESSAGES);
        for writer in &writers {
            let _ = writer.try_close(CloseCode::NORMAL, "done");
        }
        for client in fast {
            assert_eq!(client.join().unwrap(), (MESSAGES, Some(CloseCode::NORMAL)));
        }
        let (messages, code) = drain(stalled.unwrap(), &AtomicUsize::new(0));
        assert!(messages < MESSAGES, "{messages}");
        assert_eq!(code, Some(CloseCode::TRY_AGAIN_LATER));
    });
}
