//! Runs the whole benchmark from the binaries next to it (build them first:
//! `cargo build --release -p ws-bench`) and prints the tables described in
//! the crate README.
//!
//! ```text
//! runner [--repeats 3] [--secs 3] [--warmup 1] [--scenarios abcdefghi]
//!        [--libs ws-tokio,ws-compio,tokio-tungstenite,fastwebsockets,tokio-websockets]
//!        [--deflate-libs ws-tokio-deflate,ws-tokio-deflate-yawclike,yawc]
//!        [--deflate-mem-libs ws-tokio-deflate,ws-tokio-deflate-yawclike,ws-tokio-deflate-nct,yawc]
//!        [--idle-conns 10000] [--deflate-idle-conns 1000]
//!        [--busy 0.25] [--retries 8] [--port 20000]
//! ```
//!
//! Scenarios j to m (permessage-deflate: throughput j and k, instructions
//! l, memory m) are opt-in: `--scenarios jklm`.

use std::{
    collections::HashMap,
    ffi::OsStr,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, ExitCode, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use ws_bench::{BoxError, procfs, server::Library};

/// How long (m) waits after the traffic before its last reading: longer
/// than ws-tokio's `release_contexts_after` (1 s) plus its timer's slack.
const IDLE_AFTER: Duration = Duration::from_secs(3);

/// One throughput scenario.
#[derive(Clone, Copy)]
struct Scenario {
    id: char,
    conns: usize,
    size: usize,
    in_flight: usize,
    kind: &'static str,
    /// The load generator negotiates permessage-deflate and sends
    /// compressed text (`loadgen --deflate`).
    deflate: bool,
}

const SCENARIOS: [Scenario; 6] = [
    Scenario {
        id: 'a',
        conns: 1,
        size: 16,
        in_flight: 1,
        kind: "text",
        deflate: false,
    },
    Scenario {
        id: 'b',
        conns: 100,
        size: 16,
        in_flight: 8,
        kind: "text",
        deflate: false,
    },
    Scenario {
        id: 'c',
        conns: 16,
        size: 1024,
        in_flight: 16,
        kind: "text",
        deflate: false,
    },
    Scenario {
        id: 'd',
        conns: 50,
        size: 1024,
        in_flight: 4,
        kind: "text",
        deflate: false,
    },
    Scenario {
        id: 'e',
        conns: 10,
        size: 64 << 10,
        in_flight: 4,
        kind: "binary",
        deflate: false,
    },
    Scenario {
        id: 'f',
        conns: 10,
        size: 1 << 20,
        in_flight: 2,
        kind: "text",
        deflate: false,
    },
];

/// The permessage-deflate throughput scenarios (text of about `size` bytes:
/// chat JSON for (j), log lines for (k); see `ws_bench::payload`).
const DEFLATE_SCENARIOS: [Scenario; 2] = [
    Scenario {
        id: 'j',
        conns: 16,
        size: 1 << 10,
        in_flight: 4,
        kind: "text",
        deflate: true,
    },
    Scenario {
        id: 'k',
        conns: 4,
        size: 64 << 10,
        in_flight: 2,
        kind: "text",
        deflate: true,
    },
];

/// (l): instructions per echo in (j) and (k).
const DEFLATE_IR_CASES: [IrCase; 2] = [
    IrCase {
        s: DEFLATE_SCENARIOS[0],
        n1: 1_600,
        n2: 8_000,
    },
    IrCase {
        s: DEFLATE_SCENARIOS[1],
        n1: 40,
        n2: 200,
    },
];

/// One (i) case: a scenario and the two total echo counts (multiples of
/// `conns`) whose instruction counts are subtracted.
struct IrCase {
    s: Scenario,
    n1: u64,
    n2: u64,
}

/// (i): (b) with all 100 connections; (f) with 2 connections instead of 10.
const IR_CASES: [IrCase; 6] = [
    IrCase {
        s: Scenario {
            id: 'a',
            conns: 1,
            size: 16,
            in_flight: 1,
            kind: "text",
            deflate: false,
        },
        n1: 5_000,
        n2: 25_000,
    },
    IrCase {
        s: Scenario {
            id: 'b',
            conns: 100,
            size: 16,
            in_flight: 8,
            kind: "text",
            deflate: false,
        },
        n1: 5_000,
        n2: 25_000,
    },
    IrCase {
        s: Scenario {
            id: 'c',
            conns: 16,
            size: 1 << 10,
            in_flight: 16,
            kind: "text",
            deflate: false,
        },
        // Multiples of the connection count: each sends N / conns.
        n1: 4_800,
        n2: 24_000,
    },
    IrCase {
        s: Scenario {
            id: 'd',
            conns: 50,
            size: 1 << 10,
            in_flight: 4,
            kind: "text",
            deflate: false,
        },
        n1: 5_000,
        n2: 25_000,
    },
    IrCase {
        s: Scenario {
            id: 'e',
            conns: 10,
            size: 64 << 10,
            in_flight: 4,
            kind: "binary",
            deflate: false,
        },
        n1: 500,
        n2: 2_500,
    },
    IrCase {
        s: Scenario {
            id: 'f',
            conns: 2,
            size: 1 << 20,
            in_flight: 2,
            kind: "text",
            deflate: false,
        },
        n1: 40,
        n2: 200,
    },
];

/// glibc's `memcpy` / `memset` use `rep movsb` / `rep stosb` above these
/// thresholds, which valgrind counts once per byte: set out of reach.
const GLIBC_TUNABLES: &str = concat!(
    "glibc.cpu.x86_rep_movsb_threshold=1099511627776:",
    "glibc.cpu.x86_rep_stosb_threshold=1099511627776"
);

/// How long a server may take to print `READY` (valgrind starts slowly).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

impl Scenario {
    fn label(&self) -> String {
        let size = match self.size {
            s if s >= 1 << 20 => format!("{} MiB", s >> 20),
            s if s >= 1 << 10 => format!("{} KiB", s >> 10),
            s => format!("{s} B"),
        };
        let conns = if self.conns == 1 { "conn" } else { "conns" };
        let kind = match (self.deflate, self.size < 16 << 10) {
            (false, _) => self.kind,
            (true, true) => "json",
            (true, false) => "log",
        };
        format!(
            "({}) {} {conns} {size} {kind} x{}",
            self.id, self.conns, self.in_flight
        )
    }
}

struct Options {
    repeats: usize,
    secs: f64,
    warmup: f64,
    scenarios: String,
    libs: Vec<Library>,
    deflate_libs: Vec<Library>,
    deflate_mem_libs: Vec<Library>,
    idle_conns: usize,
    deflate_idle_conns: usize,
    /// Other processes' CPU use (cores) above which a run is repeated.
    busy: f64,
    retries: usize,
    port: u16,
}

fn parse_options() -> Result<Options, BoxError> {
    let mut o = Options {
        repeats: 3,
        secs: 3.0,
        warmup: 1.0,
        scenarios: "abcdefghi".into(),
        libs: Library::ALL.to_vec(),
        deflate_libs: vec![
            Library::WsTokioDeflate,
            Library::WsTokioDeflateYawcLike,
            Library::Yawc,
        ],
        deflate_mem_libs: Library::DEFLATE.to_vec(),
        idle_conns: 10_000,
        deflate_idle_conns: 1_000,
        busy: 0.25,
        retries: 8,
        port: 20_000,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(key) = it.next() {
        let value = it.next().ok_or_else(|| format!("{key} needs a value"))?;
        match key.as_str() {
            "--repeats" => o.repeats = value.parse()?,
            "--secs" => o.secs = value.parse()?,
            "--warmup" => o.warmup = value.parse()?,
            "--scenarios" => o.scenarios.clone_from(value),
            "--libs" => o.libs = parse_libs(value, false)?,
            "--deflate-libs" => o.deflate_libs = parse_libs(value, true)?,
            "--deflate-mem-libs" => o.deflate_mem_libs = parse_libs(value, true)?,
            "--idle-conns" => o.idle_conns = value.parse()?,
            "--deflate-idle-conns" => o.deflate_idle_conns = value.parse()?,
            "--busy" => o.busy = value.parse()?,
            "--retries" => o.retries = value.parse()?,
            "--port" => o.port = value.parse()?,
            _ => return Err(format!("unknown option {key} (see the README)").into()),
        }
    }
    if o.repeats == 0 || o.libs.is_empty() || o.deflate_libs.is_empty() {
        return Err("--repeats, --libs and --deflate-libs must not be empty".into());
    }
    Ok(o)
}

/// A comma-separated list of libraries: deflate servers only, or none.
fn parse_libs(value: &str, deflate: bool) -> Result<Vec<Library>, BoxError> {
    value
        .split(',')
        .map(|name| match Library::parse(name) {
            Some(l) if l.deflate() == deflate => Ok(l),
            Some(_) if deflate => {
                Err(format!("{name} does not negotiate permessage-deflate").into())
            }
            Some(_) => Err(format!("{name} is for the deflate scenarios (--deflate-libs)").into()),
            None => Err(format!("unknown library {name}").into()),
        })
        .collect()
}

/// What one load-generator run reported.
#[derive(Clone, Debug, Default)]
struct Measurement {
    values: HashMap<String, f64>,
}

impl Measurement {
    fn get(&self, key: &str) -> f64 {
        self.values.get(key).copied().unwrap_or(f64::NAN)
    }
}

struct Runner {
    bin_dir: PathBuf,
    pin: bool,
    next_port: u16,
    retries_left: usize,
    opts: Options,
}

/// A running server; killed on drop.
struct Server {
    child: Child,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to `timeout` for the first line of `child`'s stdout: the
/// running server if it is `READY`, `None` (the child killed) otherwise.
fn start(mut child: Child, timeout: Duration) -> Result<Option<Server>, BoxError> {
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let ok = stdout.read_line(&mut line).is_ok() && line.trim() == "READY";
        let _ = tx.send((ok, stdout));
    });
    match rx.recv_timeout(timeout) {
        Ok((ok, stdout)) => {
            let server = Server {
                child,
                _stdout: stdout,
            };
            Ok(ok.then_some(server))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("no READY within {} s", timeout.as_secs()).into())
        }
    }
}

impl Runner {
    fn command(&self, core: u32, binary: &str) -> Command {
        self.pinned(core, self.bin_dir.join(binary).as_os_str())
    }

    /// `program` pinned to `core` (when `taskset` exists).
    fn pinned(&self, core: u32, program: &OsStr) -> Command {
        if self.pin {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(core.to_string()).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = if port > 60_000 { 20_000 } else { port + 2 };
        port
    }

    /// Starts `binary` for `lib` on core 0 and waits for `READY`.
    fn server(&mut self, binary: &str, lib: Library) -> Result<(Server, u16), BoxError> {
        let mut last = None;
        for _ in 0..3 {
            let port = self.port();
            let child = self
                .command(0, binary)
                .arg(lib.name())
                .arg(port.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("{}: {e}", self.bin_dir.join(binary).display()))?;
            if let Some(server) = start(child, READY_TIMEOUT)? {
                return Ok((server, port));
            }
            last = Some(format!(
                "{binary} {} on port {port} did not start",
                lib.name()
            ));
        }
        Err(last.unwrap_or_default().into())
    }

    /// Runs `loadgen bench` on core 1 and parses its `RESULT` line.
    fn loadgen(&self, args: &[String]) -> Result<Measurement, BoxError> {
        self.loadgen_mode("bench", args)
    }

    /// Runs `loadgen <mode>` on core 1 and parses its `RESULT` line.
    fn loadgen_mode(&self, mode: &str, args: &[String]) -> Result<Measurement, BoxError> {
        let output = self
            .command(1, "loadgen")
            .arg(mode)
            .args(args)
            .stderr(Stdio::inherit())
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .ok_or_else(|| format!("loadgen printed no result ({})", output.status))?;
        let values = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(f64::NAN)))
            .collect();
        if !output.status.success() {
            return Err(format!("loadgen failed ({}): {line}", output.status).into());
        }
        Ok(Measurement { values })
    }

    fn bench_args(&self, s: &Scenario, port: u16, warmup: f64, secs: f64) -> Vec<String> {
        loadgen_args(
            s,
            port,
            [
                ("--warmup", warmup.to_string()),
                ("--secs", secs.to_string()),
            ],
        )
    }

    /// One throughput run of `lib` in `s`, repeated (while retries last)
    /// when other processes used the CPU meanwhile.
    fn throughput(&mut self, lib: Library, s: &Scenario) -> Result<Measurement, BoxError> {
        let mut best: Option<Measurement> = None;
        loop {
            let (server, port) = self.server("bench_server", lib)?;
            let mut args = self.bench_args(s, port, self.opts.warmup, self.opts.secs);
            args.extend(["--server-pid".to_owned(), server.pid().to_string()]);
            let m = self.loadgen(&args)?;
            drop(server);
            let other = m.get("other_cpu");
            eprintln!(
                "  {:<18} {:>10.0} msg/s  loadgen cpu {:.2}  server cpu {:.2}  other {:.2}",
                lib.name(),
                m.get("msgs_per_sec"),
                m.get("loadgen_cpu"),
                m.get("server_cpu"),
                other
            );
            if best.as_ref().is_none_or(|b| other < b.get("other_cpu")) {
                best = Some(m);
            }
            if other <= self.opts.busy || self.retries_left == 0 {
                break;
            }
            self.retries_left -= 1;
            eprintln!("    busy machine (other processes: {other:.2} cores): repeating");
        }
        Ok(best.unwrap_or_default())
    }

    /// (g): server RSS growth per idle connection, and after one echo each.
    /// (m), for a deflate server: with permessage-deflate negotiated, right
    /// after four 1 KiB JSON echoes each, and [`IDLE_AFTER`] later (ws-tokio
    /// frees idle compression contexts after 1 s).
    fn memory(&mut self, lib: Library) -> Result<(f64, f64, f64), BoxError> {
        let (server, port) = self.server("bench_server", lib)?;
        std::thread::sleep(Duration::from_millis(200));
        let before = procfs::vm_rss_kib(server.pid())?;
        let conns = if lib.deflate() {
            self.opts.deflate_idle_conns
        } else {
            self.opts.idle_conns
        };
        let mut command = self.command(1, "loadgen");
        command
            .args(["idle", "--port", &port.to_string()])
            .args(["--conns", &conns.to_string()]);
        if lib.deflate() {
            command.arg("--deflate");
        }
        let mut client = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let result = (|| -> Result<(f64, f64, f64), BoxError> {
            let mut out = BufReader::new(client.stdout.take().ok_or("no stdout")?);
            let mut stdin = client.stdin.take().ok_or("no stdin")?;
            let mut line = String::new();
            out.read_line(&mut line)?;
            let n: f64 = line
                .strip_prefix("CONNECTED ")
                .and_then(|n| n.trim().parse().ok())
                .ok_or_else(|| format!("loadgen idle: {line:?}"))?;
            std::thread::sleep(Duration::from_millis(500));
            let idle = procfs::vm_rss_kib(server.pid())?;
            writeln!(stdin, "echo")?;
            line.clear();
            out.read_line(&mut line)?;
            if line.trim() != "ECHOED" {
                return Err(format!("loadgen idle: {line:?}").into());
            }
            std::thread::sleep(Duration::from_millis(500));
            let echoed = procfs::vm_rss_kib(server.pid())?;
            let later = match lib.deflate() {
                true => {
                    std::thread::sleep(IDLE_AFTER);
                    procfs::vm_rss_kib(server.pid())?
                }
                false => echoed,
            };
            drop(server);
            drop(stdin);
            let per_conn = |rss: u64| (rss as f64 - before as f64) / n;
            Ok((per_conn(idle), per_conn(echoed), per_conn(later)))
        })();
        let _ = client.kill();
        let _ = client.wait();
        result
    }

    /// (h): allocations per echoed message, from the counting server.
    fn allocations(&mut self, lib: Library, s: &Scenario) -> Result<(f64, f64), BoxError> {
        let (server, port) = self.server("bench_server_counting", lib)?;
        let mut args = self.bench_args(s, port, 1.0, 2.0);
        args.extend(["--stats-port".to_owned(), (port + 1).to_string()]);
        let m = self.loadgen(&args)?;
        drop(server);
        Ok((m.get("allocs_per_msg"), m.get("reallocs_per_msg")))
    }

    /// Instructions (valgrind's `Ir`, user space only) of one
    /// `bench_server --exit-after-echoes total` under cachegrind while
    /// `loadgen count` sends `total / s.conns` messages per connection.
    fn instructions(&mut self, lib: Library, s: &Scenario, total: u64) -> Result<u64, BoxError> {
        if !total.is_multiple_of(s.conns as u64) {
            // The server would wait for echoes the load generator never asks for.
            return Err(format!("{total} echoes do not split over {} connections", s.conns).into());
        }
        let per_conn = total / s.conns as u64;
        let mut last = String::new();
        for _ in 0..3 {
            let port = self.port();
            let out = std::env::temp_dir().join(format!(
                "ws-bench-cachegrind-{}-{port}.out",
                std::process::id()
            ));
            // Valgrind's own messages (cache warnings even without the cache
            // simulation): shown only when the server fails.
            let log = out.with_extension("log");
            let child = self
                .pinned(0, OsStr::new("valgrind"))
                .args([
                    "--tool=cachegrind",
                    "--cache-sim=no",
                    "--branch-sim=no",
                    "-q",
                ])
                .arg(format!("--cachegrind-out-file={}", out.display()))
                .arg(format!("--log-file={}", log.display()))
                .arg(self.bin_dir.join("bench_server"))
                .args([lib.name(), &port.to_string()])
                .args(["--exit-after-echoes", &total.to_string()])
                .env("GLIBC_TUNABLES", GLIBC_TUNABLES)
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("valgrind: {e}"))?;
            let Some(mut server) = start(child, READY_TIMEOUT)? else {
                last = format!(
                    "valgrind bench_server {} on port {port} did not start",
                    lib.name()
                );
                continue;
            };
            let args = loadgen_args(
                s,
                port,
                [
                    ("--messages", per_conn.to_string()),
                    ("--timeout", "600".to_owned()),
                ],
            );
            self.loadgen_mode("count", &args)?;
            // The server exits by itself after its last echo; valgrind then
            // writes the output file.
            let deadline = Instant::now() + Duration::from_secs(120);
            let status = loop {
                if let Some(status) = server.child.try_wait()? {
                    break status;
                }
                if Instant::now() > deadline {
                    return Err(format!("{} under valgrind did not exit", lib.name()).into());
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let messages = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_file(&log);
            if !status.success() {
                return Err(format!("{} under valgrind: {status}\n{messages}", lib.name()).into());
            }
            let text = std::fs::read_to_string(&out)?;
            let _ = std::fs::remove_file(&out);
            return parse_ir(&text)
                .ok_or_else(|| format!("no Ir total in {}", out.display()).into());
        }
        Err(last.into())
    }
}

/// The `Ir` total of a cachegrind (or callgrind) output file: the
/// `summary:` (or `totals:`) line, in the column `events:` names `Ir`.
fn parse_ir(text: &str) -> Option<u64> {
    let events = text.lines().find_map(|l| l.strip_prefix("events:"))?;
    let column = events.split_whitespace().position(|e| e == "Ir")?;
    let totals = text.lines().find_map(|l| {
        l.strip_prefix("summary:")
            .or_else(|| l.strip_prefix("totals:"))
    })?;
    totals.split_whitespace().nth(column)?.parse().ok()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn run(opts: Options) -> Result<(), BoxError> {
    let exe = std::env::current_exe()?;
    let bin_dir = exe.parent().unwrap_or_else(|| Path::new(".")).to_path_buf();
    for binary in ["bench_server", "bench_server_counting", "loadgen"] {
        if !bin_dir.join(binary).exists() {
            return Err(format!(
                "{} is missing: run `cargo build --release -p ws-bench` first",
                bin_dir.join(binary).display()
            )
            .into());
        }
    }
    if (opts.scenarios.contains('i') || opts.scenarios.contains('l'))
        && !Command::new("valgrind")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    {
        return Err(
            "scenarios i and l need valgrind (or leave them out: --scenarios abcdefgh)".into(),
        );
    }
    let pin = Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !pin {
        eprintln!("taskset not found: server and load generator are not pinned");
    }
    let started = Instant::now();
    let mut runner = Runner {
        bin_dir,
        pin,
        next_port: opts.port,
        retries_left: opts.retries,
        opts,
    };
    let libs = runner.opts.libs.clone();
    let deflate_libs = runner.opts.deflate_libs.clone();
    let scenarios = runner.opts.scenarios.clone();

    let plain: Vec<Scenario> = SCENARIOS
        .into_iter()
        .filter(|s| scenarios.contains(s.id))
        .collect();
    let rows = throughput_rows(&mut runner, &plain, &libs)?;
    print!("{}", throughput_table(&runner.opts, &rows, &libs, false));
    let _ = std::io::stdout().flush();

    if scenarios.contains('g') {
        let n = runner.opts.idle_conns;
        println!(
            "\n(g) server memory (VmRSS growth) with {n} idle connections, KiB per connection"
        );
        println!("{:<18} {:>10} {:>16}", "library", "idle", "after 1 echo");
        for lib in &libs {
            let (idle, echoed, _) = runner.memory(*lib)?;
            println!("{:<18} {idle:>10.2} {echoed:>16.2}", lib.name());
        }
    }
    if scenarios.contains('h') {
        let cases = [
            Scenario {
                id: 'h',
                conns: 10,
                size: 16,
                in_flight: 4,
                kind: "text",
                deflate: false,
            },
            Scenario {
                id: 'h',
                conns: 10,
                size: 64 << 10,
                in_flight: 4,
                kind: "binary",
                deflate: false,
            },
        ];
        println!(
            "\n(h) server heap allocations per echoed message (counting allocator; 10 conns x4 in flight, 2 s after 1 s warm-up)"
        );
        println!(
            "{:<18} {:>12} {:>14} {:>18} {:>20}",
            "library", "16 B allocs", "16 B reallocs", "64 KiB bin allocs", "64 KiB bin reallocs"
        );
        for lib in &libs {
            let (a16, r16) = runner.allocations(*lib, &cases[0])?;
            let (a64, r64) = runner.allocations(*lib, &cases[1])?;
            println!(
                "{:<18} {a16:>12.3} {r16:>14.3} {a64:>18.3} {r64:>20.3}",
                lib.name()
            );
        }
    }
    if scenarios.contains('i') {
        instructions_table(&mut runner, &IR_CASES, &libs, 'i')?;
    }

    let deflate: Vec<Scenario> = DEFLATE_SCENARIOS
        .into_iter()
        .filter(|s| scenarios.contains(s.id))
        .collect();
    let rows = throughput_rows(&mut runner, &deflate, &deflate_libs)?;
    print!(
        "{}",
        throughput_table(&runner.opts, &rows, &deflate_libs, true)
    );
    let _ = std::io::stdout().flush();
    if scenarios.contains('l') {
        instructions_table(&mut runner, &DEFLATE_IR_CASES, &deflate_libs, 'l')?;
    }
    if scenarios.contains('m') {
        let n = runner.opts.deflate_idle_conns;
        println!(
            "\n(m) server memory (VmRSS growth) with {n} connections, permessage-deflate \
             negotiated, KiB per connection"
        );
        println!(
            "{:<26} {:>15} {:>22} {:>16}",
            "library", "after handshake", "after 4 x 1 KiB JSON", "idle 3 s later"
        );
        for lib in runner.opts.deflate_mem_libs.clone() {
            let (idle, echoed, later) = runner.memory(lib)?;
            println!(
                "{:<26} {idle:>15.2} {echoed:>22.2} {later:>16.2}",
                lib.name()
            );
        }
    }
    println!(
        "\ntotal time {:.0} s; {} busy-machine repeats used",
        started.elapsed().as_secs_f64(),
        runner.opts.retries - runner.retries_left
    );
    Ok(())
}

/// The load generator's arguments for scenario `s` against `port`, then the
/// mode's own two.
fn loadgen_args(s: &Scenario, port: u16, mode: [(&str, String); 2]) -> Vec<String> {
    [
        ("--port", port.to_string()),
        ("--conns", s.conns.to_string()),
        ("--size", s.size.to_string()),
        ("--in-flight", s.in_flight.to_string()),
        ("--kind", s.kind.to_owned()),
    ]
    .into_iter()
    .chain(mode)
    .flat_map(|(k, v)| [k.to_owned(), v])
    .chain(s.deflate.then(|| "--deflate".to_owned()))
    .collect()
}

/// The ratio columns after the libraries' own: for the uncompressed
/// libraries, the best peer (the highest of `values` when `higher_is_better`,
/// else the lowest) and ws-tokio / best peer, then, with ws-compio in
/// `libs`, the best epoll server (every tokio one, ws-tokio included) and
/// ws-compio / that; for the deflate servers, each ws-tokio variant / yawc.
fn ratio_columns(
    values: &HashMap<Library, f64>,
    libs: &[Library],
    deflate: bool,
    higher_is_better: bool,
) -> Vec<(String, f64)> {
    let value = |l: &Library| values.get(l).copied().unwrap_or(f64::NAN);
    if deflate {
        let Some(yawc) = libs.iter().find(|l| !l.is_ws_tokio()) else {
            return Vec::new();
        };
        return libs
            .iter()
            .filter(|l| l.is_ws_tokio())
            .map(|l| {
                (
                    format!("{}/{}", short(*l), yawc.name()),
                    value(l) / value(yawc),
                )
            })
            .collect();
    }
    // The best of `libs` except `excluded`.
    let best = |excluded: &[Library]| {
        let others = libs.iter().filter(|l| !excluded.contains(l)).map(value);
        if higher_is_better {
            others.fold(f64::NAN, f64::max)
        } else {
            others.fold(f64::NAN, f64::min)
        }
    };
    let best_peer = best(&[Library::WsTokio, Library::WsCompio]);
    let mut columns = vec![
        ("best peer".to_owned(), best_peer),
        ("ratio".to_owned(), value(&Library::WsTokio) / best_peer),
    ];
    if libs.contains(&Library::WsCompio) {
        let best_epoll = best(&[Library::WsCompio]);
        columns.push(("best epoll".to_owned(), best_epoll));
        columns.push((
            "compio/ep".to_owned(),
            value(&Library::WsCompio) / best_epoll,
        ));
    }
    columns
}

/// A short name for a ratio column's header.
fn short(lib: Library) -> &'static str {
    match lib {
        Library::WsTokioDeflate => "wtd",
        Library::WsTokioDeflateYawcLike => "wtd-yl",
        Library::WsTokioDeflateNct => "wtd-nct",
        other => other.name(),
    }
}

/// One throughput row: the scenario's label and each library's runs.
type Row = (String, HashMap<Library, Vec<Measurement>>);

/// Runs every library in every scenario, `repeats` times, interleaved.
fn throughput_rows(
    runner: &mut Runner,
    scenarios: &[Scenario],
    libs: &[Library],
) -> Result<Vec<Row>, BoxError> {
    let mut rows = Vec::new();
    for s in scenarios {
        eprintln!("{}", s.label());
        let mut runs: HashMap<Library, Vec<Measurement>> = HashMap::new();
        for r in 0..runner.opts.repeats {
            for i in 0..libs.len() {
                // Interleaved, and each repeat starts with another library.
                let lib = libs[(i + r) % libs.len()];
                let m = runner.throughput(lib, s)?;
                runs.entry(lib).or_default().push(m);
            }
        }
        rows.push((s.label(), runs));
    }
    Ok(rows)
}

/// The throughput table of `rows` (nothing without rows); for the deflate
/// servers, followed by the bytes per message on the wire.
fn throughput_table(opts: &Options, rows: &[Row], libs: &[Library], deflate: bool) -> String {
    let mut out = String::new();
    let Some((_, first)) = rows.first() else {
        return out;
    };
    let width = if deflate { 26 } else { 18 };
    let medians = |runs: &HashMap<Library, Vec<Measurement>>, key: &str| {
        libs.iter()
            .map(|lib| {
                let mut v: Vec<f64> = runs[lib].iter().map(|m| m.get(key)).collect();
                (*lib, median(&mut v))
            })
            .collect::<HashMap<_, _>>()
    };
    out += &format!(
        "\n{}Throughput: echoed messages/s, median of {} ({} s each after {} s warm-up; \
         server pinned to CPU 0, load generator to CPU 1)\n",
        if deflate { "permessage-deflate " } else { "" },
        opts.repeats,
        opts.secs,
        opts.warmup
    );
    out += &format!("{:<28}", "scenario");
    for lib in libs {
        out += &format!(" {:>width$}", lib.name());
    }
    for (header, _) in ratio_columns(&medians(first, "msgs_per_sec"), libs, deflate, true) {
        out += &format!(" {header:>10}");
    }
    out += &format!(" {:>7} {:>7} {:>6}\n", "srv cpu", "lg cpu", "other");
    for (label, runs) in rows {
        out += &format!("{label:<28}");
        let medians = medians(runs, "msgs_per_sec");
        for lib in libs {
            out += &format!(" {:>width$.0}", medians[lib]);
        }
        for (_, ratio) in ratio_columns(&medians, libs, deflate, true) {
            if ratio >= 100.0 {
                out += &format!(" {ratio:>10.0}");
            } else {
                out += &format!(" {ratio:>10.2}");
            }
        }
        let all = runs.values().flatten();
        let max = |key: &str| all.clone().map(|m| m.get(key)).fold(f64::NAN, f64::max);
        let min = |key: &str| all.clone().map(|m| m.get(key)).fold(f64::NAN, f64::min);
        let lg = max("loadgen_cpu");
        out += &format!(
            " {:>7.2} {:>6.2}{} {:>6.2}\n",
            min("server_cpu"),
            lg,
            if lg >= 0.9 { "!" } else { " " },
            max("other_cpu"),
        );
    }
    if deflate {
        out += "wtd = ws-tokio-deflate, wtd-yl = ws-tokio-deflate-yawclike, wtd-nct = \
                ws-tokio-deflate-nct; x/yawc = x's median / yawc's (above 1: x is faster); ";
    } else {
        out += "ratio = ws-tokio / best peer (the best of the other tokio libraries); \
                best epoll = the best tokio (epoll) server, ws-tokio included; compio/ep = \
                ws-compio / best epoll; ";
    }
    out += "srv cpu = lowest server CPU use of any run \
            (1.00 = a full core: the server was the bottleneck); lg cpu = highest load \
            generator CPU use (! = at least 0.90: the generator may have limited that \
            row); other = highest CPU use of other processes during a run, in cores.\n";
    if deflate {
        out += "\nBytes per message on the wire, frame headers included (medians): \
                sent by the load generator (the same for every server) / echoed by the server\n";
        out += &format!("{:<28}", "scenario");
        for lib in libs {
            out += &format!(" {:>width$}", lib.name());
        }
        out += "\n";
        for (label, runs) in rows {
            out += &format!("{label:<28}");
            let sent = medians(runs, "wire_in");
            let echoed = medians(runs, "wire_out");
            for lib in libs {
                out += &format!(
                    " {:>width$}",
                    format!("{:.0} / {:.0}", sent[lib], echoed[lib])
                );
            }
            out += "\n";
        }
    }
    out
}

/// (i), (l): server instructions per echo, `(Ir(n2) - Ir(n1)) / (n2 - n1)`.
fn instructions_table(
    runner: &mut Runner,
    cases: &[IrCase],
    libs: &[Library],
    letter: char,
) -> Result<(), BoxError> {
    let deflate = cases.iter().any(|c| c.s.deflate);
    let mut rows = Vec::new();
    for case in cases {
        let s = &case.s;
        eprintln!("({letter}) {} under valgrind", s.label());
        let mut per_echo = HashMap::new();
        for lib in libs {
            let t = Instant::now();
            let ir1 = runner.instructions(*lib, s, case.n1)?;
            let ir2 = runner.instructions(*lib, s, case.n2)?;
            let v = (ir2 as f64 - ir1 as f64) / (case.n2 - case.n1) as f64;
            eprintln!(
                "  {:<26} Ir({}) = {ir1}, Ir({}) = {ir2}: {v:.0} per echo ({:.0} s)",
                lib.name(),
                case.n1,
                case.n2,
                t.elapsed().as_secs_f64()
            );
            per_echo.insert(*lib, v);
        }
        rows.push((s.label(), case.n1, case.n2, per_echo));
    }
    println!(
        "\n({letter}) server user-space instructions per echoed message (valgrind cachegrind Ir; \
         (Ir(N2) - Ir(N1)) / (N2 - N1), N = echoes over all connections)"
    );
    let width = if deflate { 26 } else { 18 };
    let mut out = format!("{:<30} {:>13}", "scenario", "N1 / N2");
    for lib in libs {
        out += &format!(" {:>width$}", lib.name());
    }
    if let Some((_, _, _, first)) = rows.first() {
        for (header, _) in ratio_columns(first, libs, deflate, false) {
            out += &format!(" {header:>10}");
        }
    }
    out += "\n";
    for (label, n1, n2, per_echo) in &rows {
        out += &format!("{label:<30} {:>13}", format!("{n1} / {n2}"));
        for lib in libs {
            out += &format!(" {:>width$.0}", per_echo[lib]);
        }
        for (_, ratio) in ratio_columns(per_echo, libs, deflate, false) {
            if ratio >= 100.0 {
                out += &format!(" {ratio:>10.0}");
            } else {
                out += &format!(" {ratio:>10.2}");
            }
        }
        out += "\n";
    }
    if deflate {
        out += "x/yawc = x's instructions per echo / yawc's (below 1: x executes fewer; the \
                target for ws-tokio-deflate is 0.7 or less).\n";
    } else {
        out += "best peer = fewest instructions among the other tokio libraries; ratio = \
                ws-tokio / best peer (below 1: ws-tokio executes fewer instructions per echo); \
                best epoll = fewest among the tokio (epoll) servers, ws-tokio included; \
                compio/ep = ws-compio / best epoll.\n";
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_options().and_then(run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runner: {e}");
            ExitCode::FAILURE
        }
    }
}
