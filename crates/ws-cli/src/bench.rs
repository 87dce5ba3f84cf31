//! `wsx bench`: a load generator against any echo endpoint. Each connection
//! keeps `--inflight` messages outstanding, checks every echo against what
//! it sent and records the round trip; the report gives throughput and
//! latency percentiles.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use ws_tokio::{CloseCode, Config, MaybeTlsStream, Message, WebSocket};

use crate::connect::{ConnectionArgs, Dialer, connect_error, parse_secs, parse_url, target};

/// Arguments of `wsx bench`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Every echo is checked: its type, its length and its first bytes (a sequence
number) must be those of the message sent. A progress line on stderr is
updated every second; the report goes to stdout (--json: one JSON object).
MB/s counts payload bytes in both directions (sent and echoed), 1 MB = 10^6
bytes. Latency is from the send to the echo, in microseconds.

Exit status: 0 when the run completed, 1 when a connection failed to connect,
failed during the run or received a wrong echo.")]
pub(crate) struct Args {
    /// The `ws://` or `wss://` URL of an echo endpoint.
    url: String,
    /// Connections opened at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,
    /// Payload bytes per message.
    #[arg(long, value_name = "BYTES", default_value_t = 16, value_parser = clap::value_parser!(u32).range(0..=MAX_SIZE))]
    size: u32,
    /// Messages outstanding per connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    inflight: u32,
    /// How long to run, in seconds (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    duration: Duration,
    /// Send binary messages (default: text).
    #[arg(long)]
    binary: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: ConnectionArgs,
}

/// The largest `--size`: a 16 MiB message fits in one frame at the default
/// limits, ours and most servers'.
const MAX_SIZE: i64 = 16 * 1024 * 1024;

/// The latencies recorded, in microseconds: up to an hour, 3 significant
/// digits (about 140 KiB, shared by all connections).
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Latencies a connection gathers before it takes the shared histogram's
/// lock to record them.
const BATCH: usize = 256;

/// What the connection tasks share with the progress line and the report.
#[derive(Debug)]
struct Shared {
    /// Echoes received (and checked) before the deadline, all connections.
    echoes: AtomicU64,
    /// Connections still running.
    open: AtomicUsize,
    /// Round trips in microseconds.
    latencies: Mutex<Histogram<u64>>,
}

impl Shared {
    fn record(&self, batch: &mut Vec<u64>) {
        let mut histogram = self
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for &us in batch.iter() {
            histogram.saturating_record(us);
        }
        batch.clear();
    }
}

/// What every connection sends.
#[derive(Debug)]
struct Plan {
    /// The payload each message starts from; its first bytes are replaced by
    /// the message's sequence number.
    template: Vec<u8>,
    binary: bool,
    inflight: usize,
    deadline: Instant,
    close_timeout: Duration,
}

impl Plan {
    /// Message number `seq`: the template with `seq` in 8 hex digits in
    /// front (as much of them as fits), ASCII so text stays valid UTF-8.
    fn message(&self, seq: u32) -> Message {
        let mut payload = self.template.clone();
        let tag = tag(seq);
        let n = payload.len().min(tag.len());
        payload[..n].copy_from_slice(&tag[..n]);
        if self.binary {
            Message::binary(payload)
        } else {
            Message::text(String::from_utf8(payload).expect("the payload is ASCII"))
        }
    }

    /// Whether `echo` is message `seq` as sent: same type, same length, same
    /// first bytes (the rest is not compared, to keep the check cheap).
    fn check(&self, echo: &Message, seq: u32) -> anyhow::Result<()> {
        let tag = tag(seq);
        let n = self.template.len().min(tag.len());
        let bytes = echo.as_bytes();
        if echo.is_text() == self.binary {
            let got = if echo.is_text() { "text" } else { "binary" };
            bail!("wrong echo of message {seq}: a {got} message");
        }
        if bytes.len() != self.template.len() || bytes[..n] != tag[..n] {
            let start = &bytes[..bytes.len().min(n)];
            bail!(
                "wrong echo of message {seq}: {} bytes starting {:?}, sent {} bytes starting {:?}",
                bytes.len(),
                String::from_utf8_lossy(start),
                self.template.len(),
                String::from_utf8_lossy(&tag[..n]),
            );
        }
        Ok(())
    }
}

/// A sequence number as 8 lowercase hex digits.
fn tag(seq: u32) -> [u8; 8] {
    let mut tag = [0; 8];
    let hex = format!("{seq:08x}");
    tag.copy_from_slice(hex.as_bytes());
    tag
}

/// The payload messages start from: letters and digits for text, every byte
/// value for binary.
fn template(size: usize, binary: bool) -> Vec<u8> {
    const TEXT: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    if binary {
        (0..size).map(|i| (i % 256) as u8).collect()
    } else {
        TEXT.iter().copied().cycle().take(size).collect()
    }
}

/// Runs `wsx bench`.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.duration.is_zero() {
        bail!("--duration must be more than 0 seconds");
    }
    let request = parse_url(&args.url)?;
    let (target, secure) = (target(&request), request.is_secure());
    let dialer = Dialer::new(&args.connection, Config::default())?;
    let offered = !args.connection.no_deflate;

    // Every connection first, so that the clock starts with all of them open.
    let mut connecting = JoinSet::new();
    for index in 0..args.connections {
        let (request, dialer) = (request.clone(), dialer.clone());
        connecting.spawn(async move { (index, dialer.connect(request).await) });
    }
    let mut sockets = Vec::with_capacity(args.connections as usize);
    let mut deflated = 0;
    while let Some(joined) = connecting.join_next().await {
        let (index, connected) = joined.context("a connecting task failed")?;
        let (ws, response) = connected
            .map_err(|e| connect_error(&target, secure, e))
            .with_context(|| format!("connection {} of {}", index + 1, args.connections))?;
        deflated += usize::from(response.deflate.is_some());
        sockets.push(ws);
    }
    let deflate = deflated == sockets.len();
    let compression = match (offered, deflated) {
        (false, _) => "permessage-deflate not offered".to_owned(),
        (true, 0) => "permessage-deflate offered, declined by the server".to_owned(),
        (true, n) if n == sockets.len() => "permessage-deflate accepted by the server".to_owned(),
        (true, n) => format!(
            "permessage-deflate accepted on {n} of {} connections",
            sockets.len()
        ),
    };
    eprintln!(
        "{} connection(s) open to {}; {compression}",
        sockets.len(),
        args.url
    );

    let start = Instant::now();
    let plan = Arc::new(Plan {
        template: template(args.size as usize, args.binary),
        binary: args.binary,
        inflight: args.inflight as usize,
        deadline: start + args.duration,
        close_timeout: args.connection.close_timeout,
    });
    let histogram = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).context("histogram")?;
    let shared = Arc::new(Shared {
        echoes: AtomicU64::new(0),
        open: AtomicUsize::new(sockets.len()),
        latencies: Mutex::new(histogram),
    });
    let progress = tokio::spawn(progress(Arc::clone(&shared), start));
    let mut running = JoinSet::new();
    for (index, ws) in sockets.into_iter().enumerate() {
        let (plan, shared) = (Arc::clone(&plan), Arc::clone(&shared));
        running.spawn(async move {
            let outcome = drive(ws, &plan, &shared).await;
            shared.open.fetch_sub(1, Ordering::Relaxed);
            outcome.with_context(|| format!("connection {}", index + 1))
        });
    }
    let mut failure = None;
    while let Some(joined) = running.join_next().await {
        let outcome = joined.map_err(anyhow::Error::from).and_then(|done| done);
        if let Err(e) = outcome {
            // The first failure ends the run; the others would say the same.
            failure.get_or_insert(e);
            running.abort_all();
        }
    }
    progress.abort();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    if let Some(e) = failure {
        return Err(e);
    }

    let report = Report {
        url: args.url,
        connections: args.connections,
        size: args.size,
        inflight: args.inflight,
        binary: args.binary,
        deflate,
        duration: args.duration,
        messages: shared.echoes.load(Ordering::Relaxed),
        latencies: shared
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    };
    let text = if args.json {
        report.json()
    } else {
        report.text()
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// One connection's run: `inflight` messages out, one more per echo until
/// the deadline, then a close with 1000.
async fn drive(
    mut ws: WebSocket<MaybeTlsStream>,
    plan: &Plan,
    shared: &Shared,
) -> anyhow::Result<()> {
    // Echoes come back in order: the oldest outstanding send is the one
    // each echo answers.
    let mut outstanding: VecDeque<(Instant, u32)> = VecDeque::with_capacity(plan.inflight);
    let mut batch = Vec::with_capacity(BATCH);
    let mut seq = 0u32;
    let stop = sleep_until(plan.deadline);
    tokio::pin!(stop);
    for _ in 0..plan.inflight {
        ws.feed(plan.message(seq)).await?;
        outstanding.push_back((Instant::now(), seq));
        seq = seq.wrapping_add(1);
    }
    ws.flush().await?;
    loop {
        // `recv` is cancel-safe; `send` loses its message only when
        // cancelled, and we stop sending then anyway.
        let received = tokio::select! {
            biased;
            () = &mut stop => break,
            received = ws.recv() => received,
        };
        let now = Instant::now();
        let echo = match received {
            Some(echo) => echo?,
            None => bail!("the server closed the connection: {}", closed(&ws)),
        };
        let (sent, expected) = outstanding
            .pop_front()
            .ok_or_else(|| anyhow!("an echo arrived with no message outstanding"))?;
        plan.check(&echo, expected)?;
        if now >= plan.deadline {
            break;
        }
        batch.push(u64::try_from((now - sent).as_micros()).unwrap_or(u64::MAX));
        if batch.len() == BATCH {
            shared.record(&mut batch);
        }
        shared.echoes.fetch_add(1, Ordering::Relaxed);
        let message = plan.message(seq);
        outstanding.push_back((Instant::now(), seq));
        seq = seq.wrapping_add(1);
        tokio::select! {
            biased;
            () = &mut stop => break,
            sent = ws.send(message) => sent?,
        }
    }
    shared.record(&mut batch);
    // The close timeout bounds waiting for the server's Close; this bounds
    // writing ours to a server that stopped reading.
    let limit = plan.close_timeout + Duration::from_secs(1);
    match tokio::time::timeout(limit, ws.close(CloseCode::NORMAL, "")).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("closing: {e}"),
        Err(_) => tracing::warn!("closing: no answer within {limit:?}"),
    }
    Ok(())
}

/// How the connection ended, for messages.
fn closed(ws: &WebSocket<MaybeTlsStream>) -> String {
    match ws.close_frame() {
        Some(frame) if frame.code == CloseCode::ABNORMAL => "without a Close frame".to_owned(),
        Some(frame) => format!("{} {}", frame.code.0, frame.reason),
        None => "no close frame".to_owned(),
    }
}

/// The progress line on stderr, every second: elapsed time, echoes per
/// second over the last second, connections open. Overwritten in place on
/// a terminal, one line per second otherwise (logs, pipes).
async fn progress(shared: Arc<Shared>, start: Instant) {
    let terminal = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut last = (start, 0);
    loop {
        let now = tick.tick().await;
        let echoes = shared.echoes.load(Ordering::Relaxed);
        let rate = (echoes - last.1) as f64 / (now - last.0).as_secs_f64();
        last = (now, echoes);
        let line = format!(
            "{:7.1} s {:>12.0} msg/s {:>7} open",
            (now - start).as_secs_f64(),
            rate,
            shared.open.load(Ordering::Relaxed)
        );
        let mut err = std::io::stderr().lock();
        let _ = if terminal {
            write!(err, "\r{line}").and_then(|()| err.flush())
        } else {
            writeln!(err, "{line}")
        };
    }
}

/// The results of a run.
#[derive(Debug)]
struct Report {
    url: String,
    connections: u32,
    size: u32,
    inflight: u32,
    binary: bool,
    /// Every connection negotiated permessage-deflate.
    deflate: bool,
    duration: Duration,
    /// Echoes received before the deadline.
    messages: u64,
    latencies: Histogram<u64>,
}

impl Report {
    fn messages_per_s(&self) -> f64 {
        self.messages as f64 / self.duration.as_secs_f64()
    }

    /// Payload megabytes per second, both directions (each echo is one
    /// message sent and one received).
    fn mb_per_s(&self) -> f64 {
        self.messages_per_s() * 2.0 * f64::from(self.size) / 1e6
    }

    /// p50, p99, p99.9 and max in microseconds (0 without any echo).
    fn percentiles(&self) -> [(&'static str, u64); 4] {
        let h = &self.latencies;
        let at = |q| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            }
        };
        [
            ("p50", at(0.5)),
            ("p99", at(0.99)),
            ("p99.9", at(0.999)),
            ("max", if h.is_empty() { 0 } else { h.max() }),
        ]
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let kind = if self.binary { "binary" } else { "text" };
        let deflate = if self.deflate {
            "permessage-deflate"
        } else {
            "none"
        };
        let _ = writeln!(out, "url          {}", self.url);
        let _ = writeln!(out, "connections  {}", self.connections);
        let _ = writeln!(out, "size         {} bytes ({kind})", self.size);
        let _ = writeln!(out, "inflight     {} per connection", self.inflight);
        let _ = writeln!(out, "compression  {deflate}");
        let _ = writeln!(out, "duration     {:.2} s", self.duration.as_secs_f64());
        let _ = writeln!(out, "messages     {} echoes", self.messages);
        let _ = writeln!(out, "rate         {:.0} messages/s", self.messages_per_s());
        let _ = writeln!(
            out,
            "throughput   {:.2} MB/s (payload bytes sent + received)",
            self.mb_per_s()
        );
        let _ = write!(out, "latency us  ");
        for (name, us) in self.percentiles() {
            let _ = write!(out, " {name} {us}");
        }
        out
    }

    fn json(&self) -> String {
        let [p50, p99, p999, max] = self.percentiles().map(|(_, us)| us);
        serde_json::json!({
            "url": self.url,
            "connections": self.connections,
            "size": self.size,
            "inflight": self.inflight,
            "binary": self.binary,
            "deflate": self.deflate,
            "duration_s": self.duration.as_secs_f64(),
            "messages": self.messages,
            "messages_per_s": self.messages_per_s(),
            "mb_per_s": self.mb_per_s(),
            "mb_per_s_counts": "payload bytes sent + received",
            "latency_us": { "p50": p50, "p99": p99, "p99_9": p999, "max": max },
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(size: usize, binary: bool) -> Plan {
        Plan {
            template: template(size, binary),
            binary,
            inflight: 1,
            deadline: Instant::now(),
            close_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn echoes_are_checked() {
        for binary in [false, true] {
            let plan = plan(64, binary);
            let message = plan.message(0x2a);
            assert_eq!(message.len(), 64);
            assert_eq!(&message.as_bytes()[..8], b"0000002a");
            plan.check(&message, 0x2a).unwrap();
            assert!(plan.check(&message, 0x2b).is_err());
            assert!(plan.check(&flipped(plan.message(0x2a)), 0x2a).is_err());
        }
        let short = plan(3, false);
        short.check(&short.message(0x2a), 0x2a).unwrap();
        assert!(short.check(&Message::text("000a"), 0x2a).is_err());
        let empty = plan(0, true);
        empty.check(&empty.message(7), 7).unwrap();
    }

    /// The same payload as the other type.
    fn flipped(message: Message) -> Message {
        if message.is_text() {
            Message::binary(message.into_bytes())
        } else {
            Message::text(String::from_utf8(message.into_bytes().to_vec()).unwrap())
        }
    }
}
