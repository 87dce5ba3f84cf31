//! The load generator: one `current_thread` tokio runtime (pin it to its own
//! core), hand-written client handshakes with a fixed key, pre-built masked
//! frames written again and again without copies, and echoes counted by
//! parsing frame headers only.
//!
//! ```text
//! loadgen bench --port P --conns C --size S --in-flight F [--kind text|binary]
//!               [--warmup 1] [--secs 3] [--server-pid PID] [--stats-port Q] [--deflate]
//! loadgen count --port P --conns C --size S --in-flight F --messages M
//!               [--kind text|binary] [--timeout 600] [--deflate]
//! loadgen idle  --port P --conns C [--deflate]
//! ```
//!
//! `--deflate` offers permessage-deflate (`permessage-deflate;
//! client_max_window_bits`), fails unless the 101 agrees to it, and sends
//! text messages from a rotating set of 64 distinct ones, each compressed
//! independently (see `ws_bench::payload`): chat-like JSON when `--size` is
//! under 16 KiB, log lines otherwise, of about `--size` bytes. Echoes are
//! still counted from frame headers (final data frames, any length).
//!
//! `bench` prints one line: `RESULT key=value ...` with `msgs_per_sec`
//! (echoes received per second after the warm-up), `wire_in` and
//! `wire_out` (bytes per message on the wire, headers included, sent and
//! echoed: with `--deflate`, what each side's compression achieved), `loadgen_cpu` (this
//! process's CPU time / wall time: 1.0 is a full core), `server_cpu` (the
//! same for `--server-pid`), `other_cpu` (busy time of the whole machine
//! not spent in these two processes, in cores), and with `--stats-port`
//! (a `bench_server_counting`), `allocs_per_msg` and `reallocs_per_msg`.
//!
//! `count` sends exactly M messages on each connection (F in flight), waits
//! for all C * M echoes, prints `RESULT echoes=... secs=...`, then sends a
//! Close frame on each connection (ignoring errors: a server started with
//! `--exit-after-echoes C*M` is gone by then) and exits. It fails if the
//! echoes do not all arrive within `--timeout` seconds.
//!
//! `idle` opens the connections, prints `CONNECTED <n>`, waits for a line
//! on stdin, sends one 16-byte text message on each connection (with
//! `--deflate`: four compressed JSON messages of about 1 KiB) and waits
//! for every echo, prints `ECHOED`, then waits for end of input.

use std::{
    collections::HashMap,
    io::{self, BufRead, Write},
    mem::MaybeUninit,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use socket2::SockRef;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, Interest},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::Semaphore,
};
use ws_bench::{
    BoxError,
    frame::{BINARY, EchoCounter, TEXT, masked, masked_frame},
    payload::{self, Text},
    procfs, tune,
};

/// Echoes received on all connections.
static RECEIVED: AtomicU64 = AtomicU64::new(0);
/// Bytes received (read or discarded) on all connections.
static RECEIVED_BYTES: AtomicU64 = AtomicU64::new(0);
/// Frames written on all connections, and their bytes.
static SENT: AtomicU64 = AtomicU64::new(0);
static SENT_BYTES: AtomicU64 = AtomicU64::new(0);
/// Connections that failed.
static ERRORS: AtomicU64 = AtomicU64::new(0);

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";
/// The same request offering permessage-deflate: any server window, and
/// `client_max_window_bits` so the server may also limit ours.
const REQUEST_DEFLATE: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
/// Distinct messages in a deflate rotation.
const ROTATION: usize = 64;

/// Frames up to this many bytes (all in flight together) go out in one
/// write from a pre-built batch.
const BATCH_LIMIT: usize = 64 * 1024;
const READ_SIZE: usize = 128 * 1024;
/// Payload remainders at least this long are discarded in the kernel.
const DISCARD_ABOVE: u64 = 4096;

struct Args(HashMap<String, String>);

impl Args {
    fn parse(args: &[String]) -> Result<Self, BoxError> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(key) = it.next() {
            let key = key
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected {key}"))?;
            if key == "deflate" {
                map.insert(key.to_owned(), "true".to_owned());
                continue;
            }
            let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            map.insert(key.to_owned(), value.clone());
        }
        Ok(Self(map))
    }

    fn get<T: std::str::FromStr>(&self, key: &str, default: Option<T>) -> Result<T, BoxError> {
        match self.0.get(key) {
            Some(v) => v.parse().map_err(|_| format!("bad --{key} {v}").into()),
            None => default.ok_or_else(|| format!("--{key} is required").into()),
        }
    }

    fn deflate(&self) -> bool {
        self.0.contains_key("deflate")
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("bench") => Args::parse(&args[1..]).and_then(|a| runtime.block_on(bench(&a))),
        Some("count") => Args::parse(&args[1..]).and_then(|a| runtime.block_on(count(&a))),
        Some("idle") => Args::parse(&args[1..]).and_then(|a| idle(&runtime, &a)),
        _ => Err("usage: loadgen bench|count|idle --port P --conns C ... (see the source)".into()),
    };
    match result {
        Ok(()) => {
            // Connections and tasks are simply dropped with the process.
            let _ = io::stdout().flush();
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Connects and does the client handshake (offering permessage-deflate
/// with `deflate`); returns bytes read past the 101.
async fn connect(port: u16, deflate: bool) -> Result<(TcpStream, Vec<u8>), BoxError> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    tune::tune(&stream)?;
    stream
        .write_all(if deflate { REQUEST_DEFLATE } else { REQUEST })
        .await?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("end of stream in the handshake".into());
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            if !head.starts_with(b"HTTP/1.1 101") {
                return Err(
                    format!("handshake refused: {}", String::from_utf8_lossy(&head)).into(),
                );
            }
            if deflate {
                check_deflate(&head[..end])?;
            }
            return Ok((stream, head[end + 4..].to_vec()));
        }
        if head.len() > 16 * 1024 {
            return Err("response head too long".into());
        }
    }
}

/// The response head must agree to permessage-deflate, and allow the
/// client a window of at least 8 bits: the load generator compresses with
/// zlib's 9 bits, whose longest distance (250 bytes) fits any allowed window.
fn check_deflate(head: &[u8]) -> Result<(), BoxError> {
    let head = String::from_utf8_lossy(head);
    let agreed = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, value)| value.trim().to_ascii_lowercase())
        .filter(|v| v.starts_with("permessage-deflate"))
        .ok_or_else(|| format!("the server did not agree to permessage-deflate:\n{head}"))?;
    for param in agreed.split(';').skip(1) {
        if let Some((name, value)) = param.split_once('=')
            && name.trim() == "client_max_window_bits"
            && value
                .trim()
                .trim_matches('"')
                .parse::<u8>()
                .is_ok_and(|b| b < 8)
        {
            return Err(format!("client window too small: {agreed}").into());
        }
    }
    Ok(())
}

async fn connect_all(
    port: u16,
    conns: usize,
    deflate: bool,
) -> Result<Vec<(TcpStream, Vec<u8>)>, BoxError> {
    let mut all = Vec::with_capacity(conns);
    for _ in 0..conns {
        all.push(connect(port, deflate).await?);
    }
    Ok(all)
}

/// What the writers send: `count` distinct frames back to back in `ring`,
/// then the first `max_batch - 1` of them again, so that any `k <=
/// max_batch` consecutive frames, from any start, are one slice: a burst
/// is one write, and frames are never copied.
#[derive(Clone)]
struct Frames {
    ring: Bytes,
    /// Where frame `i` of the ring starts (and, at `i + 1`, ends).
    offsets: Arc<[usize]>,
    count: usize,
    max_batch: usize,
}

impl Frames {
    /// Small frames: all in flight may go out in one write. Large ones:
    /// one frame per write.
    fn new(frames: &[Vec<u8>], in_flight: usize) -> Self {
        let longest = frames.iter().map(Vec::len).max().unwrap_or(0);
        let max_batch = if longest * in_flight <= BATCH_LIMIT {
            in_flight
        } else {
            1
        };
        let mut ring = Vec::new();
        let mut offsets = vec![0];
        for i in 0..frames.len() + max_batch - 1 {
            ring.extend_from_slice(&frames[i % frames.len()]);
            offsets.push(ring.len());
        }
        Self {
            ring: Bytes::from(ring),
            offsets: offsets.into(),
            count: frames.len(),
            max_batch,
        }
    }

    /// `k` frames from frame `start` (below `count`).
    fn slice(&self, start: usize, k: usize) -> &[u8] {
        &self.ring[self.offsets[start]..self.offsets[start + k]]
    }
}

/// Keeps the semaphore's permits' worth of frames in flight until `total`
/// frames are sent (`u64::MAX`: forever); returns the write half. Starts
/// at frame `first` of the rotation.
async fn writer(
    mut w: OwnedWriteHalf,
    in_flight: Arc<Semaphore>,
    frames: Frames,
    first: usize,
    total: u64,
) -> Result<OwnedWriteHalf, BoxError> {
    let max_batch = frames.max_batch;
    let mut next = first % frames.count;
    let mut sent = 0;
    while sent < total {
        in_flight.acquire().await?.forget();
        let mut k = 1;
        let room = (total - sent - 1).min(max_batch as u64 - 1) as usize;
        let extra = in_flight.available_permits().min(room);
        if extra > 0
            && let Ok(permits) = in_flight.try_acquire_many(extra as u32)
        {
            permits.forget();
            k += extra;
        }
        let burst = frames.slice(next, k);
        w.write_all(burst).await?;
        SENT.fetch_add(k as u64, Ordering::Relaxed);
        SENT_BYTES.fetch_add(burst.len() as u64, Ordering::Relaxed);
        next = (next + k) % frames.count;
        sent += k as u64;
    }
    Ok(w)
}

/// Counts echoes and releases one in-flight slot per echo. Headers are read;
/// large payload remainders are discarded in the kernel (`recv` with
/// `MSG_TRUNC`, which TCP on Linux supports), never copied to user space.
/// Returns once `until` echoes have arrived (`u64::MAX`: never).
async fn reader(
    mut r: OwnedReadHalf,
    in_flight: Arc<Semaphore>,
    leftover: Vec<u8>,
    until: u64,
    deflate: bool,
) -> Result<(), BoxError> {
    let mut got = 0;
    let mut counter = if deflate {
        EchoCounter::deflate()
    } else {
        EchoCounter::new()
    };
    let mut buf = vec![0; READ_SIZE];
    // Only its length matters: MSG_TRUNC writes nothing into it.
    let mut discard = vec![MaybeUninit::<u8>::uninit(); READ_SIZE];
    let mut n = leftover.len();
    buf[..n].copy_from_slice(&leftover);
    loop {
        RECEIVED_BYTES.fetch_add(n as u64, Ordering::Relaxed);
        let done = if n > 0 {
            counter
                .feed(&buf[..n])
                .map_err(|e| format!("bad echo stream: {e:?}"))?
        } else {
            0
        };
        if done > 0 {
            RECEIVED.fetch_add(done, Ordering::Relaxed);
            in_flight.add_permits(done as usize);
            got += done;
            if got >= until {
                return Ok(());
            }
        }
        let left = counter.payload_left();
        if left >= DISCARD_ABOVE {
            let want = left.min(READ_SIZE as u64) as usize;
            let stream: &TcpStream = r.as_ref();
            let dropped = match stream.try_io(Interest::READABLE, || {
                SockRef::from(stream).recv_with_flags(&mut discard[..want], libc::MSG_TRUNC)
            }) {
                Ok(dropped) => dropped,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    r.readable().await?;
                    n = 0;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if dropped == 0 {
                return Err("the server closed the connection".into());
            }
            RECEIVED_BYTES.fetch_add(dropped as u64, Ordering::Relaxed);
            if counter.discard(dropped as u64) > 0 {
                RECEIVED.fetch_add(1, Ordering::Relaxed);
                in_flight.add_permits(1);
                got += 1;
                if got >= until {
                    return Ok(());
                }
            }
            n = 0;
            continue;
        }
        n = r.read(&mut buf).await?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
    }
}

fn failed(e: &BoxError) {
    if ERRORS.fetch_add(1, Ordering::Relaxed) == 0 {
        eprintln!("loadgen: connection failed: {e}");
    }
}

async fn query_stats(port: u16) -> Result<[u64; 3], BoxError> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut line = String::new();
    stream.read_to_string(&mut line).await?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    Ok([v[0], v[1], v[2]])
}

struct Snapshot {
    at: Instant,
    received: u64,
    received_bytes: u64,
    sent: u64,
    sent_bytes: u64,
    own_cpu: f64,
    server_cpu: f64,
    machine_busy: f64,
    stats: Option<[u64; 3]>,
}

async fn snapshot(server_pid: Option<u32>, stats_port: Option<u16>) -> Result<Snapshot, BoxError> {
    let stats = match stats_port {
        Some(port) => Some(query_stats(port).await?),
        None => None,
    };
    Ok(Snapshot {
        at: Instant::now(),
        received: RECEIVED.load(Ordering::Relaxed),
        received_bytes: RECEIVED_BYTES.load(Ordering::Relaxed),
        sent: SENT.load(Ordering::Relaxed),
        sent_bytes: SENT_BYTES.load(Ordering::Relaxed),
        own_cpu: procfs::cpu_seconds(std::process::id())?,
        server_cpu: match server_pid {
            Some(pid) => procfs::cpu_seconds(pid)?,
            None => f64::NAN,
        },
        machine_busy: procfs::machine_busy_seconds()?,
        stats,
    })
}

fn opcode(args: &Args) -> Result<u8, BoxError> {
    match args.get("kind", Some("text".to_owned()))?.as_str() {
        "text" => Ok(TEXT),
        "binary" => Ok(BINARY),
        other => Err(format!("bad --kind {other}").into()),
    }
}

/// The frames the writers send from: one frame of `size` letters, or with
/// `--deflate`, the rotation of independently compressed text messages.
fn frames(args: &Args, size: usize, in_flight: usize) -> Result<Frames, BoxError> {
    if !args.deflate() {
        return Ok(Frames::new(&[masked_frame(opcode(args)?, size)], in_flight));
    }
    if opcode(args)? != TEXT {
        return Err("--deflate sends text messages (leave out --kind)".into());
    }
    Ok(Frames::new(&compressed_frames(size, ROTATION), in_flight))
}

/// `count` masked frames of independently compressed text of about `size`
/// bytes (chat JSON under 16 KiB, log lines from there).
fn compressed_frames(size: usize, count: usize) -> Vec<Vec<u8>> {
    let kind = if size < 16 << 10 {
        Text::Json
    } else {
        Text::Log
    };
    payload::texts(kind, size, count)
        .iter()
        .map(|t| masked(TEXT, true, &payload::compress(t.as_bytes())))
        .collect()
}

/// `count`: exactly `--messages` echoes per connection, then Close.
async fn count(args: &Args) -> Result<(), BoxError> {
    let port: u16 = args.get("port", None)?;
    let conns: usize = args.get("conns", None)?;
    let size: usize = args.get("size", None)?;
    let in_flight: usize = args.get("in-flight", None)?;
    let messages: u64 = args.get("messages", None)?;
    let timeout: f64 = args.get("timeout", Some(600.0))?;
    let deflate = args.deflate();
    if in_flight == 0 || conns == 0 || messages == 0 {
        return Err("--conns, --in-flight and --messages must be positive".into());
    }
    let frames = frames(args, size, in_flight)?;
    let started = Instant::now();
    let all = async {
        let mut writers = Vec::with_capacity(conns);
        let mut readers = Vec::with_capacity(conns);
        for (i, (stream, leftover)) in connect_all(port, conns, deflate)
            .await?
            .into_iter()
            .enumerate()
        {
            let (r, w) = stream.into_split();
            let slots = Arc::new(Semaphore::new(in_flight));
            let slots2 = Arc::clone(&slots);
            writers.push(tokio::spawn(writer(
                w,
                slots2,
                frames.clone(),
                i * 7,
                messages,
            )));
            readers.push(tokio::spawn(reader(r, slots, leftover, messages, deflate)));
        }
        for r in readers {
            r.await??;
        }
        let mut halves = Vec::with_capacity(conns);
        for w in writers {
            halves.push(w.await??);
        }
        Ok::<_, BoxError>(halves)
    };
    let halves = tokio::time::timeout(Duration::from_secs_f64(timeout), all)
        .await
        .map_err(|_| {
            format!(
                "timed out after {timeout} s with {} echoes",
                RECEIVED.load(Ordering::Relaxed)
            )
        })??;
    let echoes = RECEIVED.load(Ordering::Relaxed);
    println!(
        "RESULT echoes={echoes} secs={:.3} wire_in={:.1} wire_out={:.1}",
        started.elapsed().as_secs_f64(),
        SENT_BYTES.load(Ordering::Relaxed) as f64 / SENT.load(Ordering::Relaxed).max(1) as f64,
        RECEIVED_BYTES.load(Ordering::Relaxed) as f64 / echoes.max(1) as f64,
    );
    io::stdout().flush()?;
    // Only now, so that a server exiting after its last echo never sees a
    // Close before it; the server may already be gone, hence no errors.
    let close = masked_frame(0x8, 0);
    for mut w in halves {
        let _ = w.write_all(&close).await;
        let _ = w.shutdown().await;
    }
    Ok(())
}

async fn bench(args: &Args) -> Result<(), BoxError> {
    let port: u16 = args.get("port", None)?;
    let conns: usize = args.get("conns", None)?;
    let size: usize = args.get("size", None)?;
    let in_flight: usize = args.get("in-flight", None)?;
    let deflate = args.deflate();
    let warmup: f64 = args.get("warmup", Some(1.0))?;
    let secs: f64 = args.get("secs", Some(3.0))?;
    let server_pid: Option<u32> = args.0.get("server-pid").and_then(|p| p.parse().ok());
    let stats_port: Option<u16> = args.0.get("stats-port").and_then(|p| p.parse().ok());
    if in_flight == 0 || conns == 0 {
        return Err("--conns and --in-flight must be positive".into());
    }

    let frames = frames(args, size, in_flight)?;
    for (i, (stream, leftover)) in connect_all(port, conns, deflate)
        .await?
        .into_iter()
        .enumerate()
    {
        let (r, w) = stream.into_split();
        let slots = Arc::new(Semaphore::new(in_flight));
        let (slots2, frames) = (Arc::clone(&slots), frames.clone());
        // Connections start at different points of the rotation.
        tokio::spawn(async move {
            if let Err(e) = writer(w, slots2, frames, i * 7, u64::MAX).await {
                failed(&e);
            }
        });
        tokio::spawn(async move {
            if let Err(e) = reader(r, slots, leftover, u64::MAX, deflate).await {
                failed(&e);
            }
        });
    }
    tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
    let start = snapshot(server_pid, stats_port).await?;
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let end = snapshot(server_pid, stats_port).await?;

    let wall = end.at.duration_since(start.at).as_secs_f64();
    let echoes = end.received - start.received;
    let own = end.own_cpu - start.own_cpu;
    let server = end.server_cpu - start.server_cpu;
    let other =
        (end.machine_busy - start.machine_busy) - own - if server.is_nan() { 0.0 } else { server };
    let mut line = format!(
        "RESULT msgs_per_sec={:.0} echoes={echoes} secs={wall:.3} wire_in={:.1} wire_out={:.1} \
         loadgen_cpu={:.3} server_cpu={:.3} other_cpu={:.3} errors={}",
        echoes as f64 / wall,
        (end.sent_bytes - start.sent_bytes) as f64 / (end.sent - start.sent).max(1) as f64,
        (end.received_bytes - start.received_bytes) as f64 / echoes.max(1) as f64,
        own / wall,
        server / wall,
        (other / wall).max(0.0),
        ERRORS.load(Ordering::Relaxed),
    );
    if let (Some(a), Some(b)) = (start.stats, end.stats) {
        let n = (b[2] - a[2]).max(1) as f64;
        line += &format!(
            " server_echoes={} allocs_per_msg={:.3} reallocs_per_msg={:.3}",
            b[2] - a[2],
            (b[0] - a[0]) as f64 / n,
            (b[1] - a[1]) as f64 / n
        );
    }
    println!("{line}");
    if echoes == 0 || ERRORS.load(Ordering::Relaxed) > 0 {
        return Err("connections failed or nothing was echoed".into());
    }
    Ok(())
}

fn idle(runtime: &tokio::runtime::Runtime, args: &Args) -> Result<(), BoxError> {
    let port: u16 = args.get("port", None)?;
    let conns: usize = args.get("conns", None)?;
    let deflate = args.deflate();
    let mut all = runtime.block_on(connect_all(port, conns, deflate))?;
    println!("CONNECTED {}", all.len());
    io::stdout().flush()?;
    let stdin = io::stdin();
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    // Plain: one 16-byte text each. Deflate: four 1 KiB JSON messages each,
    // one at a time, from a rotation of 64.
    let (frames, each) = if deflate {
        (compressed_frames(1024, ROTATION), 4)
    } else {
        (vec![masked_frame(TEXT, 16)], 1)
    };
    runtime.block_on(async {
        let mut buf = vec![0; 4096];
        for (i, (stream, _)) in all.iter_mut().enumerate() {
            let mut counter = if deflate {
                EchoCounter::deflate()
            } else {
                EchoCounter::new()
            };
            for m in 0..each {
                stream
                    .write_all(&frames[(i * each + m) % frames.len()])
                    .await?;
                loop {
                    let n = stream.read(&mut buf).await?;
                    if n == 0 {
                        return Err::<(), BoxError>("the server closed a connection".into());
                    }
                    if counter
                        .feed(&buf[..n])
                        .map_err(|e| format!("bad echo: {e:?}"))?
                        > 0
                    {
                        break;
                    }
                }
            }
        }
        Ok(())
    })?;
    println!("ECHOED");
    io::stdout().flush()?;
    line.clear();
    while stdin.lock().read_line(&mut line)? > 0 {
        line.clear();
    }
    Ok(())
}
