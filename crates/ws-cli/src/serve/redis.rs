//! `--redis`: rooms shared between `wsx serve` nodes through Redis pub/sub.
//!
//! Each chat line said here goes to the local members at once (see
//! [`Hub::say`]) and is published on `wsx:room:<room>` as
//! `<node-id> <line>`; one task PSUBSCRIBEs to `wsx:room:*` and delivers the
//! lines of the other nodes to the local members. Redis is never on the
//! path of local delivery: while it is unreachable, rooms keep working on
//! each node, cross-node copies are dropped, and the task reconnects with
//! backoff.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::chat::{Hub, Publish};

/// Channel prefix; the room name follows.
const PREFIX: &str = "wsx:room:";
/// First and longest wait between connection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));
/// Lines waiting for the Redis task; more are dropped (not delivered to the
/// other nodes) rather than slowing the rooms.
pub(crate) const QUEUE: usize = 4096;

/// The client for `url` (nothing is connected yet), or why `url` is invalid.
pub(crate) fn client(url: &str) -> anyhow::Result<redis::Client> {
    redis::Client::open(url).map_err(|e| anyhow::anyhow!("invalid --redis URL {url:?}: {e}"))
}

/// Starts the Redis task for `hub`, which sends its lines through `lines`'
/// sender.
pub(crate) fn start(
    client: redis::Client,
    node: u64,
    hub: Arc<Hub>,
    lines: mpsc::Receiver<Publish>,
) {
    tokio::spawn(run(client, node, hub, lines));
}

/// Connects, relays until the connection is lost, waits, reconnects.
async fn run(client: redis::Client, node: u64, hub: Arc<Hub>, mut lines: mpsc::Receiver<Publish>) {
    let mut backoff = BACKOFF.0;
    loop {
        match session(&client, node, &hub, &mut lines, &mut backoff).await {
            Ok(()) => return, // the hub is gone: shutting down
            Err(Lost::Connect(e)) => warn!("redis: cannot connect: {e}; retrying in {backoff:?}"),
            Err(Lost::Lost(why)) => {
                warn!("redis: connection lost ({why}); reconnecting in {backoff:?}");
            }
        }
        // Meanwhile, local rooms go on; their cross-node copies are dropped.
        let wait = tokio::time::sleep(backoff);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                line = lines.recv() => match line {
                    Some((room, _)) => debug!(room, "redis: not connected, cross-node copy dropped"),
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}

/// How a session ended.
enum Lost {
    /// Never connected (or subscribed).
    Connect(redis::RedisError),
    /// Connected, then lost it.
    Lost(String),
}

/// One connection: subscribe, then relay both ways until something fails.
/// `Ok(())` once the hub is gone.
async fn session(
    client: &redis::Client,
    node: u64,
    hub: &Hub,
    lines: &mut mpsc::Receiver<Publish>,
    backoff: &mut Duration,
) -> Result<(), Lost> {
    // Two connections: one subscribed (it can do nothing else), one to publish.
    let mut publisher = client
        .get_multiplexed_async_connection()
        .await
        .map_err(Lost::Connect)?;
    let mut pubsub = client.get_async_pubsub().await.map_err(Lost::Connect)?;
    pubsub
        .psubscribe(format!("{PREFIX}*"))
        .await
        .map_err(Lost::Connect)?;
    info!(node = %format!("{node:016x}"), "redis: connected and subscribed to {PREFIX}*");
    *backoff = BACKOFF.0;
    let me = format!("{node:016x}");
    let (_sink, mut messages) = pubsub.split(); // the sink keeps the subscription
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Err(Lost::Lost("subscription ended".into()));
                };
                let Some(room) = message.get_channel_name().strip_prefix(PREFIX) else {
                    continue;
                };
                let Ok(payload) = std::str::from_utf8(message.get_payload_bytes()) else {
                    continue;
                };
                match payload.split_once(' ') {
                    Some((from, line)) if from != me => hub.deliver(room, line),
                    Some(_) => {} // ours, delivered locally already
                    None => debug!(room, "redis: malformed frame ignored"),
                }
            }
            line = lines.recv() => {
                let Some((room, line)) = line else { return Ok(()) };
                let frame = format!("{me} {line}");
                let published: redis::RedisResult<usize> =
                    publisher.publish(format!("{PREFIX}{room}"), frame).await;
                if let Err(e) = published {
                    return Err(Lost::Lost(e.to_string()));
                }
            }
        }
    }
}
