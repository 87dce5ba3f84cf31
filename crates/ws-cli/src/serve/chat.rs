//! The broadcast chat: rooms of members, each a connection's write half.
//!
//! Delivery never waits for a member: a line is offered to every member's
//! outgoing queue with the library's non-blocking broadcast, and a member
//! whose queue is full (it reads too slowly) is closed with 1013 instead of
//! stalling the room. With `--redis`, lines are also published for the
//! other nodes, and lines from them are delivered here the same way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};
use ws_tokio::{CloseCode, MaybeTlsStream, Message, WebSocket, WhenFull, WriteHalf};

/// A member's sending side, shared between its own task and the room.
type Member = Arc<WriteHalf<MaybeTlsStream>>;

/// The reason a slow member is closed with (and the log says).
pub(crate) const TOO_SLOW: &str = "too slow: outbox full";

/// A line for the other nodes: the room and the line.
pub(crate) type Publish = (String, String);

/// Every room of this node.
#[derive(Debug)]
pub(crate) struct Hub {
    rooms: Mutex<HashMap<String, HashMap<u64, Member>>>,
    next_id: AtomicU64,
    /// To the Redis task, when `--redis` is given.
    redis: Option<mpsc::Sender<Publish>>,
}

impl Hub {
    pub(crate) fn new(redis: Option<mpsc::Sender<Publish>>) -> Self {
        Self {
            rooms: Mutex::default(),
            next_id: AtomicU64::new(1),
            redis,
        }
    }

    fn join(&self, room: &str, member: Member) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        rooms.entry(room.to_owned()).or_default().insert(id, member);
        id
    }

    fn leave(&self, room: &str, id: u64) {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(members) = rooms.get_mut(room) {
            members.remove(&id);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// Says `line` in `room`: to the members here at once, and to the other
    /// nodes through Redis when there is one (best effort: a line that
    /// cannot be handed over now is not delivered elsewhere).
    pub(crate) fn say(&self, room: &str, line: String) {
        self.deliver(room, &line);
        if let Some(redis) = &self.redis
            && let Err(e) = redis.try_send((room.to_owned(), line))
        {
            debug!(room, "redis: cross-node copy dropped ({e})");
        }
    }

    /// Delivers `line` to this node's members of `room`, without waiting for
    /// any of them.
    pub(crate) fn deliver(&self, room: &str, line: &str) {
        // Offered outside the lock: compressing for each member takes time.
        let members: Vec<Member> = {
            let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
            match rooms.get(room) {
                Some(members) => members.values().cloned().collect(),
                None => return,
            }
        };
        let message = Message::text(line);
        let slow = WhenFull::Close(CloseCode::TRY_AGAIN_LATER, TOO_SLOW);
        let tally = ws_tokio::broadcast(&members, &message, slow);
        if tally.closed > 0 {
            warn!(
                room,
                closed = tally.closed,
                "closed {} slow member(s) with 1013 ({TOO_SLOW})",
                tally.closed
            );
        }
    }
}

/// Runs one chat member: joins, relays its text messages to the room,
/// leaves. Binary messages are ignored (the chat is text).
pub(crate) async fn run(
    ws: WebSocket<MaybeTlsStream>,
    hub: Arc<Hub>,
    room: String,
    nick: String,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut reader, writer) = ws.split();
    let writer = Arc::new(writer);
    let id = hub.join(&room, Arc::clone(&writer));
    hub.say(&room, format!("* {nick} joined"));
    // The reader also writes out what the room queued: keep it receiving
    // until the connection is over (the close timeout bounds that).
    let mut shutting_down = false;
    loop {
        let message = tokio::select! {
            message = reader.recv() => message,
            () = super::shutting_down(&mut shutdown), if !shutting_down => {
                // The Close goes out behind what is queued; keep receiving
                // for the peer's answer.
                shutting_down = true;
                let _ = writer.try_close(CloseCode::GOING_AWAY, super::SHUTTING_DOWN);
                continue;
            }
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                hub.say(&room, format!("{nick}: {text}"));
                // The members' tasks write what was queued for them. Woken
                // from here, tokio runs them on this worker once this task
                // yields, which a receive from a full buffer never does:
                // without this, a burst fills their queues unwritten.
                tokio::task::yield_now().await;
            }
            Some(Ok(Message::Binary(data))) => {
                debug!(%peer, room, nick, len = data.len(), "binary message ignored");
            }
            Some(Err(e)) => {
                info!(%peer, room, nick, "chat: connection error: {e}");
                break;
            }
            None => break,
        }
    }
    hub.leave(&room, id);
    hub.say(&room, format!("* {nick} left"));
    match reader.close_frame() {
        Some(close) => info!(
            %peer, room, nick, code = close.code.0, reason = %close.reason, "chat: closed"
        ),
        None => info!(%peer, room, nick, "chat: closed"),
    }
}
