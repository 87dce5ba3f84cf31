//! Sending without waiting, over real sockets, every scenario on every
//! runtime of the including adapter (ws-tokio, ws-futures; see
//! `runtime.rs`): `WriteHalf::try_send`, `try_close` and `broadcast` with a
//! peer that stops reading.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use crate::common::{AsyncRead, AsyncWrite, Rt, pair, ws};
use ws::{
    Broadcast, CloseCode, Config, Error, HandshakeConfig, Message, Options, SendError, WebSocket,
    WhenFull,
};

/// The server's options: a small outgoing queue (the high-water mark), no
/// permessage-deflate (the payloads below would compress to nothing).
fn server_options(max_write_buffer: usize) -> Options {
    let config = Config::default()
        .with_max_write_buffer(max_write_buffer)
        .with_close_timeout(Some(Duration::from_secs(20)));
    Options::default()
        .with_config(config)
        .with_handshake(HandshakeConfig::default())
}

fn client_options() -> Options {
    Options::default().with_handshake(HandshakeConfig::default())
}

/// Receives until the connection ends: the data messages, and why it ended.
async fn drain<S: AsyncRead + AsyncWrite + Unpin>(
    ws: WebSocket<S>,
) -> (Vec<Message>, Option<CloseCode>) {
    drain_counting(ws, Arc::default()).await
}

/// [`drain`], counting the messages in `count` as they arrive.
async fn drain_counting<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocket<S>,
    count: Arc<AtomicUsize>,
) -> (Vec<Message>, Option<CloseCode>) {
    let mut messages = Vec::new();
    while let Some(Ok(message)) = ws.recv().await {
        messages.push(message);
        count.fetch_add(1, SeqCst);
    }
    (messages, ws.close_frame().map(|frame| frame.code))
}

/// A write half is shared between tasks (`Arc<WriteHalf>`), as a chat
/// server's rooms share them.
fn shared_between_tasks<T: Send + Sync>(_: &T) {}

async fn try_send_and_try_close_from_another_task<R: Rt>() {
    let (server, client) = pair::<R>(&server_options(1 << 20), &client_options()).await;
    let (mut reader, writer) = server.split();
    let writer = Arc::new(writer);
    shared_between_tasks(&writer);
    let client = R::spawn(drain(client));
    // The reader waits for data; another task queues without waiting, and
    // the reader's receive writes it out.
    let reading = R::spawn(async move {
        let ended = reader.recv().await.map(|r| r.is_ok());
        (ended, reader.close_frame().map(|frame| frame.code))
    });
    let other = Arc::clone(&writer);
    R::spawn(async move {
        other.try_send(Message::text("one")).unwrap();
        other.try_send(Message::binary(&b"two"[..])).unwrap();
        other.try_close(CloseCode::GOING_AWAY, "bye").unwrap();
    })
    .await;
    let (messages, code) = client.await;
    assert_eq!(
        messages,
        [Message::text("one"), Message::binary(&b"two"[..])]
    );
    assert_eq!(code, Some(CloseCode::GOING_AWAY));
    // The reader's receive finished the close handshake.
    let (ended, code) = reading.await;
    assert_eq!(ended, None);
    assert_eq!(code, Some(CloseCode::GOING_AWAY));
    let refused = writer.try_send(Message::text("late")).unwrap_err();
    assert!(
        matches!(refused, Error::Send(SendError::Closed)),
        "{refused:?}"
    );
}

async fn try_send_fails_fast_on_a_full_queue<R: Rt>() {
    let (server, client) = pair::<R>(&server_options(64 << 10), &client_options()).await;
    let (mut reader, writer) = server.split();
    let stop = Arc::new(AtomicBool::new(false));
    let keep_reading = Arc::clone(&stop);
    // The reader keeps the queue moving into the socket until it is full.
    let reading = R::spawn(async move {
        while !keep_reading.load(SeqCst) {
            let tick = R::sleep(Duration::from_millis(10));
            let recv = reader.recv();
            futures_util::future::select(Box::pin(recv), tick).await;
        }
        reader
    });
    let payload = Message::binary(vec![7u8; 16 << 10]);
    let mut full = None;
    for _ in 0..10_000 {
        match writer.try_send(payload.clone()) {
            Ok(()) => R::sleep(Duration::from_millis(1)).await,
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let full = full.expect("a peer that never reads fills the queue");
    assert!(full.is_full(), "{full:?}");
    assert!(matches!(full, Error::Send(SendError::Full(m)) if m == payload));
    stop.store(true, SeqCst);
    drop((reading.await, client));
}

async fn broadcast_closes_a_stalled_peer_and_the_others_get_everything<R: Rt>() {
    const MESSAGES: usize = 800;
    let mut writers = Vec::new();
    let mut fast = Vec::new();
    let mut received = Vec::new();
    let mut readers = Vec::new();
    let mut stalled = None;
    for i in 0..3 {
        let (server, client) = pair::<R>(&server_options(64 << 10), &client_options()).await;
        let (mut reader, writer) = server.split();
        writers.push(Arc::new(writer));
        readers.push(R::spawn(async move {
            while let Some(Ok(_)) = reader.recv().await {}
        }));
        if i == 0 {
            stalled = Some(client);
        } else {
            let count = Arc::new(AtomicUsize::new(0));
            received.push(Arc::clone(&count));
            fast.push(R::spawn(drain_counting(client, count)));
        }
    }
    let payload = Message::binary(vec![1u8; 16 << 10]);
    let slow = WhenFull::Close(CloseCode::TRY_AGAIN_LATER, "too slow");
    let mut total = Broadcast::default();
    for sent in 1..=MESSAGES {
        let tally = ws::broadcast(&writers, &payload, slow);
        total.queued += tally.queued;
        total.skipped += tally.skipped;
        total.closed += tally.closed;
        // Paced by the fast readers (at most two messages behind), however
        // slow the machine: their queues never fill, while the stalled
        // one's socket buffers (12.8 MB sent in all), then its 64 KiB
        // queue, do.
        while received.iter().any(|count| count.load(SeqCst) + 2 < sent) {
            R::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(total.closed, 1, "{total:?}");
    assert_eq!(total.queued + total.skipped + total.closed, 3 * MESSAGES);
    for writer in &writers {
        writer.try_close(CloseCode::NORMAL, "done").unwrap_or(());
    }
    for client in fast {
        let (messages, code) = client.await;
        assert_eq!(messages.len(), MESSAGES);
        assert_eq!(code, Some(CloseCode::NORMAL));
    }
    // The stalled peer reads at last: what was queued before the Close,
    // then the Close.
    let (messages, code) = drain(stalled.unwrap()).await;
    assert!(messages.len() < MESSAGES, "{}", messages.len());
    assert_eq!(code, Some(CloseCode::TRY_AGAIN_LATER));
    for reader in readers {
        reader.await;
    }
}

crate::common::on_runtimes!(60;
    try_send_and_try_close_from_another_task,
    try_send_fails_fast_on_a_full_queue,
    broadcast_closes_a_stalled_peer_and_the_others_get_everything,
);
