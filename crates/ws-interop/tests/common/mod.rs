//! Our servers and clients for each adapter, driven by one shared scenario.
//!
//! The server side (`serve_stream`) accepts its first connection in two steps
//! (`read_request`, then `Incoming::accept` choosing the subprotocol `chat`
//! when it is offered) and later ones with the one-call `accept(stream)`. It
//! echoes text as text and binary as binary and understands three text
//! commands, the same as the Python and Node peers in `interop/`:
//! - `close-me`: close with 4001 "bye";
//! - `ping-me`: ping with "from-server", answer "pong-received" once the pong is in;
//! - (peers only) `last-close`: answer "<code> <reason>" of the last connection that closed.
//!
//! The client side (`client_main`) runs the fixed scenario described on [`Plan`].

#![allow(dead_code)] // each test binary uses a different part

use core::{fmt::Display, time::Duration};
use std::{net::SocketAddr, sync::mpsc, thread, time::Instant};

use bytes::Bytes;
use ws_proto::{AcceptOptions, ClientRequest, ClientResponse, CloseCode, Config, Event, Message};

/// Bound for every wait: a whole server, a whole client run, a peer's start.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);
/// The echo sizes every pair and every peer goes through.
pub(crate) const SIZES: [usize; 6] = [0, 125, 126, 65535, 65536, 1 << 20];
/// The one big message of the cross tests.
pub(crate) const BIG: usize = 16 << 20;
/// A text message with multi-byte UTF-8 in it.
pub(crate) const UTF8_TEXT: &str = "h\u{e9}llo w\u{f6}rld \u{2713} \u{1f389}";
/// The code and reason our clients close their first connection with.
pub(crate) const CLIENT_CLOSE: (u16, &str) = (4000, "done");
/// The code and reason servers close with on `close-me`.
pub(crate) const SERVER_CLOSE: (u16, &str) = (4001, "bye");

/// The five adapters: three readiness-based async runtimes, the blocking
/// one, and compio's completion-based one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Adapter {
    /// `ws-tokio` on a tokio current-thread runtime.
    Tokio,
    /// `ws-futures` on smol (`smol::net`, i.e. async-net).
    Smol,
    /// `ws-futures` on async-std (`async_std::net` streams).
    AsyncStd,
    /// `ws-std`, blocking.
    Std,
    /// `ws-compio` on a compio runtime (io_uring, or its polling driver) of
    /// its own thread.
    Compio,
}

impl Adapter {
    /// Starts one of our servers that serves `connections` connections one
    /// after the other, then reports what it saw on each.
    pub(crate) fn start_server(self, connections: usize) -> Server {
        match self {
            Self::Tokio => tokio_rt::start_server(connections),
            Self::Smol => smol_rt::start_server(connections),
            Self::AsyncStd => async_std_rt::start_server(connections),
            Self::Std => std_rt::start_server(connections),
            Self::Compio => compio_rt::start_server(connections),
        }
    }

    /// [`start_server`](Self::start_server) over TLS (`wss://localhost`);
    /// async-std's streams go through `ws_futures::client` / `accept`, as
    /// any futures-io stream would, and ws-compio speaks no TLS: both are
    /// left out.
    pub(crate) fn start_tls_server(self, connections: usize) -> Server {
        match self {
            Self::Tokio => tokio_rt::start_tls_server(connections),
            Self::Smol => smol_rt::start_tls_server(connections),
            Self::Std => std_rt::start_tls_server(connections),
            other => panic!("no TLS server for {other:?} yet"),
        }
    }

    /// Runs our client scenario against `url`, bounded by [`TIMEOUT`].
    pub(crate) fn run_client(self, url: &str, plan: Plan) -> Result<(), String> {
        let url = url.to_owned();
        bounded(&format!("{self:?} client"), move || match self {
            Self::Tokio => tokio_rt::run_client(&url, plan),
            Self::Smol => smol_rt::run_client(&url, plan),
            Self::AsyncStd => async_std_rt::run_client(&url, plan),
            Self::Std => std_rt::run_client(&url, plan),
            Self::Compio => compio_rt::run_client(&url, plan),
        })
    }
}

/// What our client does. Always:
/// 1. connection 1 offers `chat` and checks it was chosen; echoes text and
///    binary at every size of [`SIZES`] (plus [`BIG`] when `big`) and
///    [`UTF8_TEXT`]; pings and checks the pong's payload; sends `ping-me` and
///    checks it is pinged ("from-server") before "pong-received" arrives;
///    closes with [`CLIENT_CLOSE`] and checks the echo's code.
/// 2. connection 2 uses the one-call `connect(url)` (default options, no
///    subprotocol) and checks none was chosen; sends `close-me` and checks the
///    server's Close is [`SERVER_CLOSE`].
///
/// With `peer_server` (the server is a Python/Node peer that records what it
/// received), connection 2 first checks with `last-close` that the peer saw
/// [`CLIENT_CLOSE`], and a connection 3 checks that it saw our echo of 4001.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Plan {
    /// Also echo one [`BIG`] text and binary message.
    pub(crate) big: bool,
    /// The server is a peer that answers `last-close`.
    pub(crate) peer_server: bool,
}

/// What one of our servers saw on one connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConnReport {
    /// The subprotocols the client offered (first connection only: later ones
    /// go through the one-call `accept(stream)`).
    pub(crate) protocols: Vec<String>,
    /// Data messages received (commands included).
    pub(crate) messages: usize,
    /// Pings received (each answered automatically).
    pub(crate) pings: usize,
    /// `close_frame()` at the end: the client's Close, or its echo of ours.
    pub(crate) close: Option<(u16, String)>,
    /// Whether the server started the close (`close-me`).
    pub(crate) closed_by_us: bool,
    /// The first error, if any.
    pub(crate) error: Option<String>,
}

/// A running server of ours.
#[derive(Debug)]
pub(crate) struct Server {
    /// `ws://127.0.0.1:<port>/interop`
    pub(crate) url: String,
    result: mpsc::Receiver<Result<Vec<ConnReport>, String>>,
}

impl Server {
    /// Waits (bounded) for the server to finish its connections.
    pub(crate) fn reports(self) -> Vec<ConnReport> {
        match self.result.recv_timeout(TIMEOUT + Duration::from_secs(10)) {
            Ok(Ok(reports)) => reports,
            Ok(Err(e)) => panic!("server failed: {e}"),
            Err(e) => panic!("server did not finish: {e}"),
        }
    }
}

/// The connection config of every test: limits raised above [`BIG`].
pub(crate) fn config() -> Config {
    Config::default()
        .with_max_frame_size(32 << 20)
        .with_max_message_size(32 << 20)
        .with_close_timeout(Some(Duration::from_secs(5)))
}

/// Runs `f` on its own thread and waits for it at most [`TIMEOUT`] plus a margin.
pub(crate) fn bounded<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(TIMEOUT + Duration::from_secs(10)) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("{what}: timed out")),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(format!("{what}: panicked")),
    }
}

/// A server started over TLS with the test certificate for `localhost`
/// ([`tls::pki`]): its URL becomes `wss://localhost:<port>/interop`.
fn as_wss(mut server: Server) -> Server {
    server.url = server.url.replace("ws://127.0.0.1", "wss://localhost");
    server
}

/// Spawns a server thread. `run` binds, sends its address, serves and reports.
fn spawn_server(
    run: impl FnOnce(mpsc::Sender<SocketAddr>) -> Result<Vec<ConnReport>, String> + Send + 'static,
) -> Server {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (tx, result) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(run(addr_tx));
    });
    match addr_rx.recv_timeout(TIMEOUT) {
        Ok(addr) => Server {
            url: format!("ws://{addr}/interop"),
            result,
        },
        Err(_) => match result.recv_timeout(Duration::from_secs(1)) {
            Ok(Err(e)) => panic!("server did not start: {e}"),
            _ => panic!("server did not start"),
        },
    }
}

pub(crate) fn text_of(size: usize) -> String {
    const PATTERN: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    PATTERN
        .iter()
        .cycle()
        .take(size)
        .map(|&b| char::from(b))
        .collect()
}

pub(crate) fn binary_of(size: usize) -> Bytes {
    // Not a multiple of 256 long, so a misplaced mask offset shows.
    (0..size)
        .map(|i| (i % 251) as u8 ^ 0x5a)
        .collect::<Vec<u8>>()
        .into()
}

/// A short description of a message (never its payload: it may be 16 MiB).
pub(crate) fn describe_message(message: &Message) -> String {
    let kind = if message.is_text() { "text" } else { "binary" };
    if message.len() <= 32 {
        format!(
            "{kind} message {:?}",
            String::from_utf8_lossy(message.as_bytes())
        )
    } else {
        format!("{kind} message of {} bytes", message.len())
    }
}

pub(crate) fn describe_recv<E: Display>(item: Option<Result<Message, E>>) -> String {
    match item {
        None => "the end of the connection".to_owned(),
        Some(Err(e)) => format!("error: {e}"),
        Some(Ok(message)) => describe_message(&message),
    }
}

pub(crate) fn describe_event<E: Display>(item: Option<Result<Event, E>>) -> String {
    match item {
        None => "the end of the connection".to_owned(),
        Some(Err(e)) => format!("error: {e}"),
        Some(Ok(Event::Message(message))) => describe_message(&message),
        Some(Ok(event)) => format!("{event:?}"),
    }
}

pub(crate) fn ensure(condition: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what()) }
}

/// `Some("close-me")` etc. for a text message that is a command.
fn command(message: &Message) -> Option<&str> {
    match message {
        Message::Text(text) if ["close-me", "ping-me"].contains(&&**text) => Some(text),
        _ => None,
    }
}

fn close_of(frame: Option<&ws_proto::CloseFrame>) -> Option<(u16, String)> {
    frame.map(|f| (f.code.0, f.reason.to_string()))
}

/// The server and client scenario, written once for async and blocking
/// adapters: `scenario!(async await)` or `scenario!()`. The including module
/// provides `adapter` (the crate), `Stream` and `connect(request, &options)`.
macro_rules! scenario {
    ($($async:tt $aw:tt)?) => {
        fn options() -> adapter::Options {
            let mut options = adapter::Options::default();
            options.config = super::config();
            options
        }

        /// Serves the `index`th accepted TCP stream, reporting what happened.
        $($async)? fn serve_stream(stream: Stream, index: usize) -> ConnReport {
            let mut report = ConnReport::default();
            if let Err(e) = serve_inner(stream, index, &mut report)$(.$aw)? {
                report.error.get_or_insert(e);
            }
            report
        }

        $($async)? fn serve_inner(
            stream: Stream,
            index: usize,
            report: &mut ConnReport,
        ) -> Result<(), String> {
            let mut ws = if index == 0 {
                // The two-step form, choosing `chat` when it is offered.
                let incoming = adapter::read_request_with(stream, &options())$(.$aw)?
                    .map_err(|e| format!("read_request: {e}"))?;
                report.protocols = incoming.request().protocols().to_vec();
                let mut accept = AcceptOptions::new();
                if report.protocols.iter().any(|p| p == "chat") {
                    accept = accept.protocol("chat");
                }
                incoming.accept(&accept)$(.$aw)?.map_err(|e| format!("accept: {e}"))?
            } else {
                // Later connections (no subprotocol offered): the one-call form.
                adapter::accept(stream)$(.$aw)?.map_err(|e| format!("accept: {e}"))?
            };
            prepare(&mut ws).map_err(|e| format!("prepare: {e}"))?;
            loop {
                let event = match ws.recv_event()$(.$aw)? {
                    None => break,
                    Some(Ok(event)) => event,
                    Some(Err(e)) => {
                        report.close = close_of(ws.close_frame());
                        return Err(format!("recv_event: {e}"));
                    }
                };
                match event {
                    Event::Message(message) => {
                        report.messages += 1;
                        match command(&message) {
                            Some("close-me") => {
                                report.closed_by_us = true;
                                ws.close(CloseCode(SERVER_CLOSE.0), SERVER_CLOSE.1)$(.$aw)?
                                    .map_err(|e| format!("close: {e}"))?;
                                break;
                            }
                            Some(_ping_me) => {
                                ws.ping(Bytes::from_static(b"from-server"))$(.$aw)?
                                    .map_err(|e| format!("ping: {e}"))?;
                                loop {
                                    match ws.recv_event()$(.$aw)? {
                                        Some(Ok(Event::Pong(p))) if p == b"from-server"[..] => break,
                                        Some(Ok(Event::Ping(_))) => report.pings += 1,
                                        other => {
                                            return Err(format!(
                                                "waiting for our pong, got {}",
                                                describe_event(other)
                                            ));
                                        }
                                    }
                                }
                                ws.send(Message::text("pong-received"))$(.$aw)?
                                    .map_err(|e| format!("send: {e}"))?;
                            }
                            None => ws
                                .send(message)$(.$aw)?
                                .map_err(|e| format!("send: {e}"))?,
                        }
                    }
                    Event::Ping(_) => report.pings += 1,
                    _ => {} // Pong, Close (the end follows)
                }
            }
            report.close = close_of(ws.close_frame());
            Ok(())
        }

        /// Our client scenario (see `Plan`).
        $($async)? fn client_main(url: &str, plan: Plan) -> Result<(), String> {
            let options = options();
            let request = |protocol: bool| -> Result<ClientRequest, String> {
                let request = ClientRequest::new(url).map_err(|e| format!("request: {e}"))?;
                Ok(if protocol { request.protocol("chat") } else { request })
            };

            // Connection 1: subprotocol, echoes, pings, our close.
            let (mut ws, response): (_, ClientResponse) = connect(request(true)?, &options)$(.$aw)?
                .map_err(|e| format!("connect: {e}"))?;
            ensure(response.protocol.as_deref() == Some("chat"), || {
                format!("subprotocol {:?}, expected \"chat\"", response.protocol)
            })?;
            let big = plan.big.then_some(BIG);
            for size in SIZES.into_iter().chain(big) {
                let messages = [Message::text(text_of(size)), Message::binary(binary_of(size))];
                for message in messages {
                    ws.send(message.clone())$(.$aw)?
                        .map_err(|e| format!("send {}: {e}", describe_message(&message)))?;
                    match ws.recv()$(.$aw)? {
                        Some(Ok(echo)) if echo == message => {}
                        other => {
                            return Err(format!(
                                "echo of {}: got {}",
                                describe_message(&message),
                                describe_recv(other)
                            ));
                        }
                    }
                }
            }
            ws.send(Message::text(UTF8_TEXT))$(.$aw)?.map_err(|e| format!("send: {e}"))?;
            match ws.recv()$(.$aw)? {
                Some(Ok(Message::Text(text))) if text == UTF8_TEXT => {}
                other => return Err(format!("UTF-8 echo: got {}", describe_recv(other))),
            }

            ws.ping(Bytes::from_static(b"from-client"))$(.$aw)?
                .map_err(|e| format!("ping: {e}"))?;
            match ws.recv_event()$(.$aw)? {
                Some(Ok(Event::Pong(p))) if p == b"from-client"[..] => {}
                other => return Err(format!("waiting for our pong, got {}", describe_event(other))),
            }

            ws.send(Message::text("ping-me"))$(.$aw)?.map_err(|e| format!("send: {e}"))?;
            let mut pinged = false;
            loop {
                match ws.recv_event()$(.$aw)? {
                    Some(Ok(Event::Ping(p))) if p == b"from-server"[..] => pinged = true,
                    Some(Ok(Event::Message(Message::Text(t)))) if t == "pong-received" => break,
                    other => {
                        return Err(format!(
                            "after ping-me: expected Ping(\"from-server\") then \"pong-received\", got {}",
                            describe_event(other)
                        ));
                    }
                }
            }
            ensure(pinged, || "ping-me: the server's ping never showed up".to_owned())?;

            ws.close(CloseCode(CLIENT_CLOSE.0), CLIENT_CLOSE.1)$(.$aw)?
                .map_err(|e| format!("close: {e}"))?;
            let echo = close_of(ws.close_frame());
            ensure(echo.as_ref().map(|c| c.0) == Some(CLIENT_CLOSE.0), || {
                format!("close echo {echo:?}, expected code {}", CLIENT_CLOSE.0)
            })?;
            match ws.recv()$(.$aw)? {
                None => {}
                other => return Err(format!("recv after close: got {}", describe_recv(other))),
            }
            drop(ws);

            // Connection 2: the one-call `connect(url)`, no subprotocol, the server closes.
            let (mut ws, response) = connect_url(url)$(.$aw)?
                .map_err(|e| format!("connect 2: {e}"))?;
            ensure(response.protocol.is_none(), || {
                format!("connection 2: subprotocol {:?} though none was offered", response.protocol)
            })?;
            if plan.peer_server {
                let expected = format!("{} {}", CLIENT_CLOSE.0, CLIENT_CLOSE.1);
                last_close(&mut ws, &expected)$(.$aw)??;
            }
            ws.send(Message::text("close-me"))$(.$aw)?.map_err(|e| format!("send: {e}"))?;
            match ws.recv()$(.$aw)? {
                None => {}
                other => return Err(format!("after close-me: got {}", describe_recv(other))),
            }
            let close = close_of(ws.close_frame());
            ensure(close == Some((SERVER_CLOSE.0, SERVER_CLOSE.1.to_owned())), || {
                format!("the server closed with {close:?}, expected {SERVER_CLOSE:?}")
            })?;
            drop(ws);

            // Connection 3 (peer servers): the peer saw our echo of its 4001.
            if plan.peer_server {
                let (mut ws, _) = connect(request(false)?, &options)$(.$aw)?
                    .map_err(|e| format!("connect 3: {e}"))?;
                last_close(&mut ws, &format!("{} ", SERVER_CLOSE.0))$(.$aw)??;
                ws.close(CloseCode::NORMAL, "")$(.$aw)?.map_err(|e| format!("close 3: {e}"))?;
            }
            Ok(())
        }

        /// Asks a peer server for the last close it saw until it starts with
        /// `expected` (the peer records it once the TCP connection is gone).
        $($async)? fn last_close(
            ws: &mut adapter::WebSocket<Stream>,
            expected: &str,
        ) -> Result<(), String> {
            let mut seen = String::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                ws.send(Message::text("last-close"))$(.$aw)?.map_err(|e| format!("send: {e}"))?;
                match ws.recv()$(.$aw)? {
                    Some(Ok(Message::Text(text))) => seen = text.to_string(),
                    other => return Err(format!("last-close: got {}", describe_recv(other))),
                }
                if seen.starts_with(expected) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(format!("the peer's last close is {seen:?}, expected {expected:?}"))
        }
    };
}

pub(crate) mod tokio_rt {
    use ws_tokio as adapter;

    use super::*;

    type Stream = adapter::MaybeTlsStream;

    /// `wss://` requests trust the test CA ([`tls::pki`]).
    async fn connect(
        request: ClientRequest,
        options: &adapter::Options,
    ) -> Result<(adapter::WebSocket<Stream>, ClientResponse), adapter::Error> {
        match request.is_secure() {
            true => adapter::connect_with_tls(request, options, tls::pki().client.clone()).await,
            false => adapter::connect_with(request, options).await,
        }
    }

    async fn connect_url(
        url: &str,
    ) -> Result<(adapter::WebSocket<Stream>, ClientResponse), adapter::Error> {
        connect(ClientRequest::new(url)?, &adapter::Options::default()).await
    }

    /// Nothing to set up: every wait is bounded by the runtime's timer.
    fn prepare(_ws: &mut adapter::WebSocket<Stream>) -> std::io::Result<()> {
        Ok(())
    }

    scenario!(async await);

    /// A current-thread runtime, as every tokio side of these tests runs on.
    pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))
    }

    pub(crate) fn start_server(connections: usize) -> Server {
        start_server_with(connections, false)
    }

    /// The server over TLS (tokio-rustls); see [`as_wss`].
    pub(crate) fn start_tls_server(connections: usize) -> Server {
        as_wss(start_server_with(connections, true))
    }

    fn start_server_with(connections: usize, tls: bool) -> Server {
        spawn_server(move |addr_tx| {
            runtime()?.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| format!("bind: {e}"))?;
                let _ = addr_tx.send(listener.local_addr().map_err(|e| e.to_string())?);
                let serve = async {
                    let mut reports = Vec::new();
                    for _ in 0..connections {
                        let (tcp, _) = listener
                            .accept()
                            .await
                            .map_err(|e| format!("accept: {e}"))?;
                        let stream = match tls {
                            false => adapter::MaybeTlsStream::Plain(tcp),
                            true => {
                                let acceptor = adapter::tokio_rustls::TlsAcceptor::from(
                                    tls::pki().server.clone(),
                                );
                                let tls = acceptor
                                    .accept(tcp)
                                    .await
                                    .map_err(|e| format!("tls: {e}"))?;
                                adapter::MaybeTlsStream::Rustls(Box::new(tls.into()))
                            }
                        };
                        reports.push(serve_stream(stream, reports.len()).await);
                    }
                    Ok(reports)
                };
                tokio::time::timeout(TIMEOUT, serve)
                    .await
                    .map_err(|_| "tokio server timed out".to_owned())?
            })
        })
    }

    pub(crate) fn run_client(url: &str, plan: Plan) -> Result<(), String> {
        runtime()?.block_on(async {
            tokio::time::timeout(TIMEOUT, client_main(url, plan))
                .await
                .map_err(|_| "tokio client timed out".to_owned())?
        })
    }
}

mod smol_rt {
    use ws_futures as adapter;

    use super::*;

    type Stream = adapter::MaybeTlsStream;

    /// `wss://` requests trust the test CA ([`tls::pki`]).
    async fn connect(
        request: ClientRequest,
        options: &adapter::Options,
    ) -> Result<(adapter::WebSocket<Stream>, ClientResponse), adapter::Error> {
        match request.is_secure() {
            true => adapter::connect_with_tls(request, options, tls::pki().client.clone()).await,
            false => adapter::connect_with(request, options).await,
        }
    }

    async fn connect_url(
        url: &str,
    ) -> Result<(adapter::WebSocket<Stream>, ClientResponse), adapter::Error> {
        connect(ClientRequest::new(url)?, &adapter::Options::default()).await
    }

    /// Nothing to set up: every wait is bounded by the runtime's timer.
    fn prepare(_ws: &mut adapter::WebSocket<Stream>) -> std::io::Result<()> {
        Ok(())
    }

    scenario!(async await);

    async fn with_timeout<T>(
        what: &str,
        future: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        smol::future::or(future, async {
            smol::Timer::after(TIMEOUT).await;
            Err(format!("{what} timed out"))
        })
        .await
    }

    pub(crate) fn start_server(connections: usize) -> Server {
        start_server_with(connections, false)
    }

    /// The server over TLS (futures-rustls); see [`as_wss`].
    pub(crate) fn start_tls_server(connections: usize) -> Server {
        as_wss(start_server_with(connections, true))
    }

    fn start_server_with(connections: usize, tls: bool) -> Server {
        spawn_server(move |addr_tx| {
            smol::block_on(async move {
                let listener = smol::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| format!("bind: {e}"))?;
                let _ = addr_tx.send(listener.local_addr().map_err(|e| e.to_string())?);
                with_timeout("smol server", async {
                    let mut reports = Vec::new();
                    for _ in 0..connections {
                        let (tcp, _) = listener
                            .accept()
                            .await
                            .map_err(|e| format!("accept: {e}"))?;
                        let stream = match tls {
                            false => adapter::MaybeTlsStream::Plain(tcp),
                            true => {
                                let config = tls::pki().server.clone();
                                let acceptor = adapter::futures_rustls::TlsAcceptor::from(config);
                                let tls = acceptor
                                    .accept(tcp)
                                    .await
                                    .map_err(|e| format!("tls: {e}"))?;
                                adapter::MaybeTlsStream::Rustls(Box::new(tls.into()))
                            }
                        };
                        reports.push(serve_stream(stream, reports.len()).await);
                    }
                    Ok(reports)
                })
                .await
            })
        })
    }

    pub(crate) fn run_client(url: &str, plan: Plan) -> Result<(), String> {
        smol::block_on(with_timeout("smol client", client_main(url, plan)))
    }
}

mod async_std_rt {
    use ws_futures as adapter;

    use super::*;

    type Stream = async_std::net::TcpStream;

    /// TCP through async-std, then the handshake through `ws_futures::client`.
    async fn connect(
        request: ClientRequest,
        options: &adapter::Options,
    ) -> Result<(adapter::WebSocket<Stream>, ClientResponse), adapter::Error> {
        let stream = Stream::connect((request.host(), request.port())).await?;
        adapter::client(stream, request, options).await
    }

    /// `connect(url)` with default options, the async-std way.
    async fn connect_url(
        url: &str,
    ) -> Result<(adapter::WebSocket<Stream>, ClientResponse), adapter::Error> {
        let request = ClientRequest::new(url)?;
        connect(request, &adapter::Options::default()).await
    }

    /// Nothing to set up: every wait is bounded by the runtime's timer.
    fn prepare(_ws: &mut adapter::WebSocket<Stream>) -> std::io::Result<()> {
        Ok(())
    }

    scenario!(async await);

    async fn with_timeout<T>(
        what: &str,
        future: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        async_std::future::timeout(TIMEOUT, future)
            .await
            .map_err(|_| format!("{what} timed out"))?
    }

    pub(crate) fn start_server(connections: usize) -> Server {
        spawn_server(move |addr_tx| {
            async_std::task::block_on(async move {
                let listener = async_std::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| format!("bind: {e}"))?;
                let _ = addr_tx.send(listener.local_addr().map_err(|e| e.to_string())?);
                with_timeout("async-std server", async {
                    let mut reports = Vec::new();
                    for _ in 0..connections {
                        let (stream, _) = listener
                            .accept()
                            .await
                            .map_err(|e| format!("accept: {e}"))?;
                        reports.push(serve_stream(stream, reports.len()).await);
                    }
                    Ok(reports)
                })
                .await
            })
        })
    }

    pub(crate) fn run_client(url: &str, plan: Plan) -> Result<(), String> {
        async_std::task::block_on(with_timeout("async-std client", client_main(url, plan)))
    }
}

mod std_rt {
    use std::net::{TcpListener, TcpStream};

    use ws_std as adapter;

    use super::*;

    type Stream = adapter::MaybeTlsStream;

    /// `wss://` requests trust the test CA ([`tls::pki`]).
    fn connect(
        request: ClientRequest,
        options: &adapter::Options,
    ) -> Result<(adapter::WebSocket<Stream>, ClientResponse), adapter::Error> {
        let (mut ws, response) = match request.is_secure() {
            true => adapter::connect_with_tls(request, options, tls::pki().client.clone())?,
            false => adapter::connect_with(request, options)?,
        };
        prepare(&mut ws)?;
        Ok((ws, response))
    }

    fn connect_url(
        url: &str,
    ) -> Result<(adapter::WebSocket<Stream>, ClientResponse), adapter::Error> {
        connect(ClientRequest::new(url)?, &adapter::Options::default())
    }

    /// Bounds every blocking read and write of an open connection.
    fn prepare(ws: &mut adapter::WebSocket<Stream>) -> std::io::Result<()> {
        ws.set_read_timeout(Some(TIMEOUT))?;
        ws.get_ref().get_ref().set_write_timeout(Some(TIMEOUT))
    }

    /// Bounds the handshake's reads and writes.
    fn set_timeouts(stream: &TcpStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))
    }

    scenario!();

    pub(crate) fn start_server(connections: usize) -> Server {
        start_server_with(connections, |stream| {
            Ok(adapter::MaybeTlsStream::Plain(stream))
        })
    }

    /// The server over TLS (ws-std's `TlsStream`); see [`as_wss`].
    pub(crate) fn start_tls_server(connections: usize) -> Server {
        as_wss(start_server_with(connections, |stream| {
            let tls = adapter::TlsStream::server(stream, tls::pki().server.clone())?;
            Ok(adapter::MaybeTlsStream::Rustls(Box::new(tls)))
        }))
    }

    fn start_server_with(
        connections: usize,
        wrap: fn(TcpStream) -> std::io::Result<Stream>,
    ) -> Server {
        spawn_server(move |addr_tx| {
            let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
            let _ = addr_tx.send(listener.local_addr().map_err(|e| e.to_string())?);
            listener.set_nonblocking(true).map_err(|e| e.to_string())?;
            let deadline = Instant::now() + TIMEOUT;
            let mut reports = Vec::new();
            while reports.len() < connections {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
                        set_timeouts(&stream).map_err(|e| e.to_string())?;
                        let stream = wrap(stream).map_err(|e| format!("tls: {e}"))?;
                        reports.push(serve_stream(stream, reports.len()));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return Err("std server timed out".to_owned());
                        }
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(format!("accept: {e}")),
                }
            }
            Ok(reports)
        })
    }

    pub(crate) fn run_client(url: &str, plan: Plan) -> Result<(), String> {
        client_main(url, plan)
    }
}

mod compio_rt {
    use ws_compio as adapter;

    use super::*;

    type Stream = compio::net::TcpStream;

    /// `ws://` only: ws-compio speaks no TLS.
    async fn connect(
        request: ClientRequest,
        options: &adapter::Options,
    ) -> Result<(adapter::WebSocket<Stream>, ClientResponse), adapter::Error> {
        adapter::connect_with(request, options).await
    }

    async fn connect_url(
        url: &str,
    ) -> Result<(adapter::WebSocket<Stream>, ClientResponse), adapter::Error> {
        adapter::connect(url).await
    }

    /// Nothing to set up: every wait is bounded by the runtime's timer.
    fn prepare(_ws: &mut adapter::WebSocket<Stream>) -> std::io::Result<()> {
        Ok(())
    }

    scenario!(async await);

    async fn with_timeout<T>(
        what: &str,
        future: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        compio::time::timeout(TIMEOUT, future)
            .await
            .map_err(|_| format!("{what} timed out"))?
    }

    /// compio's runtime runs on the calling thread (its futures are not
    /// `Send`): the server's thread of [`spawn_server`], the client's of
    /// [`bounded`].
    fn runtime() -> Result<compio::runtime::Runtime, String> {
        compio::runtime::Runtime::new().map_err(|e| format!("runtime: {e}"))
    }

    pub(crate) fn start_server(connections: usize) -> Server {
        spawn_server(move |addr_tx| {
            runtime()?.block_on(async move {
                let listener = compio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| format!("bind: {e}"))?;
                let _ = addr_tx.send(listener.local_addr().map_err(|e| e.to_string())?);
                with_timeout("compio server", async {
                    let mut reports = Vec::new();
                    for _ in 0..connections {
                        let (stream, _) = listener
                            .accept()
                            .await
                            .map_err(|e| format!("accept: {e}"))?;
                        reports.push(serve_stream(stream, reports.len()).await);
                    }
                    Ok(reports)
                })
                .await
            })
        })
    }

    pub(crate) fn run_client(url: &str, plan: Plan) -> Result<(), String> {
        runtime()?.block_on(with_timeout("compio client", client_main(url, plan)))
    }
}

/// Who the client on the other side of one of our servers was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientKind {
    /// One of our clients, `big` when it also echoed [`BIG`] messages.
    Ours {
        /// Whether the [`BIG`] messages were sent too.
        big: bool,
    },
    /// A Python or Node peer running its `client` scenario.
    Peer,
}

/// Checks what one of our servers saw on the two connections of a scenario.
pub(crate) fn check_reports(reports: &[ConnReport], client: ClientKind) {
    assert_eq!(reports.len(), 2, "connections served: {reports:#?}");
    let (first, second) = (&reports[0], &reports[1]);
    for report in reports {
        assert_eq!(report.error, None, "server error: {reports:#?}");
    }
    assert!(
        first.protocols.iter().any(|p| p == "chat"),
        "chat not offered: {reports:#?}"
    );
    assert!(!first.closed_by_us, "{reports:#?}");
    assert!(second.closed_by_us, "{reports:#?}");
    assert_eq!(second.messages, 1, "close-me only: {reports:#?}");
    let big = matches!(client, ClientKind::Ours { big: true });
    // Text and binary per size, the UTF-8 text and ping-me; peers also send a
    // fragmented text and a fragmented binary message.
    let fragmented = if client == ClientKind::Peer { 2 } else { 0 };
    let expected = 2 * (SIZES.len() + usize::from(big)) + 2 + fragmented;
    assert_eq!(
        first.messages, expected,
        "messages on connection 1: {reports:#?}"
    );
    assert!(first.pings >= 1, "the client's ping: {reports:#?}");
    match client {
        ClientKind::Ours { .. } => {
            assert_eq!(first.pings, 1, "{reports:#?}");
            let close = Some((CLIENT_CLOSE.0, CLIENT_CLOSE.1.to_owned()));
            assert_eq!(first.close, close, "the client's close: {reports:#?}");
            // Our echo carries the code only.
            assert_eq!(
                second.close.as_ref().map(|c| c.0),
                Some(SERVER_CLOSE.0),
                "{reports:#?}"
            );
        }
        ClientKind::Peer => {
            assert_eq!(
                first.close,
                Some((1000, "done".to_owned())),
                "the peer's close: {reports:#?}"
            );
            // Both peers echo code and reason.
            let echo = Some((SERVER_CLOSE.0, SERVER_CLOSE.1.to_owned()));
            assert_eq!(second.close, echo, "the peer's close echo: {reports:#?}");
        }
    }
}

/// The certificates of the TLS tests: a CA made once per process, a
/// certificate for `localhost` signed by it, the rustls configurations of a
/// client trusting the CA and of the server, and PEM files for the peers.
pub(crate) mod tls {
    use std::{
        path::PathBuf,
        sync::{Arc, OnceLock},
    };

    use ws_std::rustls::{self, ClientConfig, ServerConfig};

    /// See the module doc.
    pub(crate) struct Pki {
        pub(crate) client: Arc<ClientConfig>,
        pub(crate) server: Arc<ServerConfig>,
        /// The CA, the certificate and its key, as PEM files.
        pub(crate) ca_pem: PathBuf,
        pub(crate) cert_pem: PathBuf,
        pub(crate) key_pem: PathBuf,
    }

    /// The process's test PKI, made on first use.
    pub(crate) fn pki() -> &'static Pki {
        static PKI: OnceLock<Pki> = OnceLock::new();
        PKI.get_or_init(make)
    }

    fn make() -> Pki {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "ws-interop test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let dir = std::env::temp_dir().join(format!("ws-interop-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let mut client = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], der.into())
            .unwrap();
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Pki {
            client: Arc::new(client),
            server: Arc::new(server),
            ca_pem: write("ca.pem", ca_cert.pem()),
            cert_pem: write("cert.pem", cert.pem()),
            key_pem: write("key.pem", key.serialize_pem()),
        }
    }
}
