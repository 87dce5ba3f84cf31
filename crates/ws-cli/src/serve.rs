//! `wsx serve`: the chat page at `/`, a broadcast chat at
//! `/chat?room=NAME&nick=NAME`, an echo endpoint at `/echo`, over `http://`
//! or, with `--tls-cert`/`--tls-key`, `https://` (and `wss://`).
//!
//! The HTTP layer is ours (a request head read with `httparse`, a few fixed
//! answers); WebSocket upgrades go to ws-proto's `ServerRequest`, and the
//! accepted connection is driven by ws-tokio over the same stream.

mod chat;
mod http;
mod redis;

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};
use ws_tokio::rustls::{self, ServerConfig};
use ws_tokio::tokio_rustls::TlsAcceptor;
use ws_tokio::{
    AcceptOptions, BytesMut, CloseCode, Config, DeflateConfig, Driver, MaybeTlsStream,
    ServerRequest, WebSocket,
};

use self::chat::Hub;
use self::http::{Head, HeadError};

/// The chat page, compiled in.
const PAGE: &str = include_str!("serve/page.html");
/// Close reason sent to every client on Ctrl-C / SIGTERM.
const SHUTTING_DOWN: &str = "server shutting down";
/// How long shutdown waits for the clients' close handshakes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Bounds reading a request head (and the TLS handshake), and idle
/// keep-alive connections.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest chat message accepted from a client.
const MAX_CHAT_MESSAGE: usize = 64 * 1024;
/// Longest room or nick name, in bytes.
const MAX_NAME: usize = 32;

/// Arguments of `wsx serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on (port 0 picks a free port; the first line on
    /// stdout is `listening on http://ADDR`).
    #[arg(default_value = "127.0.0.1:8080")]
    addr: String,
    /// Bytes a chat member's outgoing queue may hold; a member whose queue
    /// is full (it reads too slowly) is closed with 1013.
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
    outbox: usize,
    /// Certificate chain (PEM): serve https:// and wss://.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Share rooms with other nodes through Redis pub/sub (redis://HOST:PORT).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
}

/// What every connection task shares.
#[derive(Debug)]
struct Server {
    hub: Arc<Hub>,
    /// Configuration of chat connections.
    chat: Config,
    /// Becomes true on Ctrl-C / SIGTERM.
    shutdown: watch::Receiver<bool>,
    /// Upgraded and held by every WebSocket task: shutdown waits until
    /// they are all dropped.
    alive: mpsc::WeakSender<()>,
}

/// Runs `wsx serve`.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
        _ => None,
    };
    let redis = args.redis.as_deref().map(redis::client).transpose()?;
    // Signals first: a Ctrl-C right after the "listening" line is handled.
    let mut signals = Signals::new()?;
    let listener = TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {scheme}://{addr}")?;
        stdout.flush()?;
    }

    let hub = match redis {
        None => Arc::new(Hub::new(None)),
        Some(client) => {
            let (tx, rx) = mpsc::channel(redis::QUEUE);
            let hub = Arc::new(Hub::new(Some(tx)));
            let node = RandomState::new().hash_one(std::process::id());
            let url = args.redis.as_deref().unwrap_or_default();
            info!(node = %format!("{node:016x}"), "redis: scale-out through {url}");
            redis::start(client, node, Arc::clone(&hub), rx);
            hub
        }
    };
    info!(%addr, tls = tls.is_some(), outbox = args.outbox, "wsx serve: listening");

    let (shutdown_tx, shutdown) = watch::channel(false);
    let (alive, mut all_done) = mpsc::channel(1);
    let server = Arc::new(Server {
        hub,
        chat: Config::default()
            .with_max_message_size(MAX_CHAT_MESSAGE)
            .with_max_frame_size(MAX_CHAT_MESSAGE)
            .with_max_write_buffer(args.outbox),
        shutdown,
        alive: alive.downgrade(),
    });
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait a little, go on.
                    warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            signal = signals.recv() => {
                info!("{signal}: closing every client with 1001");
                break;
            }
        };
        let server = Arc::clone(&server);
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let stream = match tls {
                None => MaybeTlsStream::Plain(tcp),
                Some(tls) => match tls_handshake(&tls, tcp).await {
                    Ok(stream) => stream,
                    Err(e) => return debug!(%peer, "TLS handshake failed: {e}"),
                },
            };
            connection(stream, peer, &server).await;
        });
    }

    drop(listener);
    let _ = shutdown_tx.send(true);
    drop(alive);
    if tokio::time::timeout(SHUTDOWN_GRACE, all_done.recv())
        .await
        .is_err()
    {
        warn!("shutdown: some clients did not finish their close handshake in time");
    }
    info!("wsx serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Returns once the server is shutting down.
async fn shutting_down(shutdown: &mut watch::Receiver<bool>) {
    // An error means the server is gone: shut down too.
    let _ = shutdown.wait_for(|&down| down).await;
}

/// Ctrl-C and SIGTERM.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// Reads the PEM certificate chain and key into a TLS acceptor (ALPN
/// `http/1.1`).
fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("cannot read TLS certificate {}", cert.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read TLS private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("unusable TLS certificate or key")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn tls_handshake(tls: &TlsAcceptor, tcp: TcpStream) -> std::io::Result<MaybeTlsStream> {
    let stream = tokio::time::timeout(HEAD_TIMEOUT, tls.accept(tcp))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    Ok(MaybeTlsStream::Rustls(Box::new(stream.into())))
}

/// Serves one connection: plain HTTP requests (kept alive) until a
/// WebSocket upgrade, which takes the connection over.
async fn connection(mut stream: MaybeTlsStream, peer: SocketAddr, server: &Server) {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let read = tokio::time::timeout(HEAD_TIMEOUT, http::read_head(&mut stream, &mut buf));
        let head = match read.await {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) => return,
            Err(_) => return debug!(%peer, "HTTP: timed out waiting for a request"),
            Ok(Err(HeadError::Io(e))) => return debug!(%peer, "HTTP: {e}"),
            Ok(Err(HeadError::Malformed(e))) => {
                debug!(%peer, "HTTP: malformed request: {e}");
                let _ = stream
                    .write_all(&http::text(400, "malformed request\n", false))
                    .await;
                return;
            }
            Ok(Err(HeadError::TooLarge)) => {
                let answer = http::text(431, "request head too large\n", false);
                let _ = stream.write_all(&answer).await;
                return;
            }
        };
        if head.method != "GET" && head.method != "HEAD" {
            let answer = http::response(405, &[("Allow", "GET, HEAD")], b"", false, false);
            let _ = stream.write_all(&answer).await;
            return debug!(%peer, method = head.method, "HTTP: 405");
        }
        if head.is_websocket() {
            return upgrade(stream, buf, head, peer, server).await;
        }
        let keep_alive = head.keep_alive();
        let head_only = head.method == "HEAD";
        let answer = match head.path() {
            "/" | "/index.html" => {
                let headers = [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Cache-Control", "no-cache"),
                    ("X-Content-Type-Options", "nosniff"),
                ];
                http::response(200, &headers, PAGE.as_bytes(), head_only, keep_alive)
            }
            "/favicon.ico" => http::response(204, &[], b"", head_only, keep_alive),
            _ => http::text(404, "not found\n", keep_alive),
        };
        debug!(%peer, path = head.path(), "HTTP: {}", &answer[9..12].escape_ascii());
        if stream.write_all(&answer).await.is_err() || !keep_alive {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// What an upgrade request asks for.
enum Endpoint {
    Chat { room: String, nick: String },
    Echo,
}

/// Checks a WebSocket upgrade request, answers it, and runs the endpoint.
async fn upgrade(
    mut stream: MaybeTlsStream,
    buf: BytesMut,
    head: Head,
    peer: SocketAddr,
    server: &Server,
) {
    let headers = head.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
    let request = match ServerRequest::from_parts(&head.method, &head.target, headers) {
        Ok(request) => request,
        Err(e) => {
            debug!(%peer, "WebSocket: bad upgrade request: {e}");
            let answer = e
                .response()
                .unwrap_or_else(|| http::text(400, &format!("{e}\n"), false));
            let _ = stream.write_all(&answer).await;
            return;
        }
    };
    let (endpoint, config) = match request.path() {
        "/chat" => match chat_names(request.query().unwrap_or("")) {
            Ok((room, nick)) => (Endpoint::Chat { room, nick }, server.chat.clone()),
            Err(why) => {
                debug!(%peer, "chat: refused: {why}");
                let _ = stream
                    .write_all(&http::text(400, &format!("{why}\n"), false))
                    .await;
                return;
            }
        },
        "/echo" => (Endpoint::Echo, Config::default()),
        path => {
            debug!(%peer, path, "WebSocket: 404");
            let _ = stream
                .write_all(&http::text(404, "not found\n", false))
                .await;
            return;
        }
    };
    // A request built from parts has deflate off unless the options say so.
    let options = AcceptOptions::new().deflate(DeflateConfig::default());
    let accepted = match request.accept(&options) {
        Ok(accepted) => accepted,
        Err(e) => {
            debug!(%peer, "WebSocket: cannot accept: {e}");
            let answer = http::text(400, &format!("{e}\n"), false);
            let _ = stream.write_all(&answer).await;
            return;
        }
    };
    if let Err(e) = stream.write_all(accepted.response()).await {
        return debug!(%peer, "WebSocket: cannot answer: {e}");
    }
    let extensions = accepted.negotiated().extensions().join(", ");
    // What the client sent after its request is the first WebSocket bytes.
    let driver = Driver::with_buffer(accepted.connection(config), buf);
    let ws = WebSocket::from_driver(stream, driver);
    let _alive = server.alive.upgrade();
    match endpoint {
        Endpoint::Chat { room, nick } => {
            info!(%peer, path = "/chat", room, nick, extensions, "chat: connected");
            let hub = Arc::clone(&server.hub);
            chat::run(ws, hub, room, nick, peer, server.shutdown.clone()).await;
        }
        Endpoint::Echo => {
            info!(%peer, path = "/echo", extensions, "echo: connected");
            echo(ws, peer, server.shutdown.clone()).await;
        }
    }
}

/// The room and nick of a `/chat` request, or why they are refused.
fn chat_names(query: &str) -> Result<(String, String), String> {
    let name = |key: &str, default: &dyn Fn() -> String| -> Result<String, String> {
        let value = match http::query_value(query, key) {
            None => return Ok(default()),
            Some(value) => value?,
        };
        let value = value.trim();
        if value.is_empty() {
            Err(format!("{key} is empty"))
        } else if value.len() > MAX_NAME {
            Err(format!("{key} is longer than {MAX_NAME} bytes"))
        } else {
            Ok(value.to_owned())
        }
    };
    let room = name("room", &|| "lobby".to_owned())?;
    let nick = name("nick", &|| {
        format!("guest-{}", 1000 + RandomState::new().hash_one(0u8) % 9000)
    })?;
    Ok((room, nick))
}

/// Echoes every message back as it came (text as text, binary as binary).
async fn echo(
    mut ws: WebSocket<MaybeTlsStream>,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let message = tokio::select! {
            biased;
            message = ws.recv() => message,
            () = shutting_down(&mut shutdown) => {
                // Completes the close handshake (bounded by the close timeout).
                let _ = ws.close(CloseCode::GOING_AWAY, SHUTTING_DOWN).await;
                break;
            }
        };
        match message {
            Some(Ok(message)) => {
                if let Err(e) = ws.send(message).await {
                    debug!(%peer, "echo: cannot send: {e}");
                    break;
                }
            }
            Some(Err(e)) => {
                info!(%peer, "echo: connection error: {e}");
                break;
            }
            None => break,
        }
    }
    match ws.close_frame() {
        Some(close) => {
            info!(%peer, code = close.code.0, reason = %close.reason, "echo: closed");
        }
        None => info!(%peer, "echo: closed"),
    }
}
