//! `wsx connect`: an interactive client. Stdin lines go out as messages,
//! received messages are printed on stdout, everything else goes to stderr.
//!
//! The connection helpers here (the request from the command line, the
//! wording of connection failures) are shared with `wsx bench`.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use tokio::sync::mpsc;
use tokio::time::Instant;
use ws_tokio::rustls::ClientConfig;
use ws_tokio::{
    ClientRequest, ClientResponse, CloseCode, CloseFrame, Config, DeflateConfig, Error,
    HandshakeError, MaybeTlsStream, Message, Options, WebSocket,
};

/// Exit status when the peer closed with a code other than 1000 or 1001.
const EXIT_PEER_CLOSED: u8 = 2;

/// Arguments of `wsx connect`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Received text messages are printed as they are, binary ones as lowercase hex,
one message per line. Connection details go to stderr, so stdout has only
messages. At the end of stdin wsx waits for replies still on their way (see
--linger), closes with 1000 and waits for the server's Close (at most
--close-timeout).

Exit status:
  0  clean close: we closed after the end of stdin and the server answered,
     or the server closed with 1000 (normal) or 1001 (going away)
  1  failure: bad URL, connection refused, TLS error, handshake rejected,
     protocol error, connection lost (one line on stderr says which)
  2  the server closed with another code (`closed: CODE REASON` on stderr)")]
pub(crate) struct Args {
    /// The `ws://` or `wss://` URL to connect to.
    url: String,
    /// Stdin lines are hex (spaces allowed), sent as binary messages.
    #[arg(long)]
    binary: bool,
    #[command(flatten)]
    connection: ConnectionArgs,
    /// An extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Offer a subprotocol (repeatable; offered in the order given).
    #[arg(long = "subprotocol", value_name = "NAME")]
    subprotocols: Vec<String>,
    /// After the end of stdin, wait until no message arrived for this long
    /// (at most --close-timeout) before closing, so that replies still on
    /// their way are printed; 0 closes at once.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    linger: Duration,
    /// Send a ping after this many seconds without traffic (keepalive).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    ping_interval: Option<Duration>,
}

/// The connection options `connect` and `bench` share.
#[derive(Debug, clap::Args)]
pub(crate) struct ConnectionArgs {
    /// Do not offer permessage-deflate compression.
    #[arg(long)]
    pub(crate) no_deflate: bool,
    /// How long to wait for the peer's Close after sending ours.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub(crate) close_timeout: Duration,
    /// For `wss://`: trust the CA certificates in this PEM file instead of
    /// Mozilla's roots (a private CA, a self-signed test server).
    #[arg(long, value_name = "FILE")]
    pub(crate) cacert: Option<PathBuf>,
}

impl ConnectionArgs {
    /// The handshake and connection options these arguments ask for.
    pub(crate) fn options(&self, config: Config) -> Options {
        let options =
            Options::default().with_config(config.with_close_timeout(Some(self.close_timeout)));
        if self.no_deflate {
            options.with_deflate(DeflateConfig::OFF)
        } else {
            options
        }
    }
}

/// How to reach a server: the options, and the TLS configuration of
/// `--cacert` (otherwise `wss://` uses Mozilla's roots).
#[derive(Clone, Debug)]
pub(crate) struct Dialer {
    pub(crate) options: Options,
    tls: Option<Arc<ClientConfig>>,
}

impl Dialer {
    /// The dialer for `args`, with `config` for the connections.
    pub(crate) fn new(args: &ConnectionArgs, config: Config) -> anyhow::Result<Self> {
        let tls = args.cacert.as_deref().map(tls_config).transpose()?;
        let options = args.options(config);
        Ok(Self { options, tls })
    }

    /// Connects, over TLS with the `--cacert` roots when given.
    pub(crate) async fn connect(
        &self,
        request: ClientRequest,
    ) -> ws_tokio::Result<(WebSocket<MaybeTlsStream>, ClientResponse)> {
        match &self.tls {
            Some(tls) if request.is_secure() => {
                ws_tokio::connect_with_tls(request, &self.options, Arc::clone(tls)).await
            }
            _ => ws_tokio::connect_with(request, &self.options).await,
        }
    }
}

/// A client TLS configuration trusting the certificates of the PEM file
/// `path` (ALPN `http/1.1`, the opening handshake's protocol).
fn tls_config(path: &Path) -> anyhow::Result<Arc<ClientConfig>> {
    use ws_tokio::rustls::pki_types::pem::PemObject;
    use ws_tokio::rustls::{self, RootCertStore, pki_types::CertificateDer};

    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read --cacert {}", path.display()))?
    {
        let cert = cert.with_context(|| format!("bad certificate in {}", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("unusable certificate in {}", path.display()))?;
    }
    if roots.is_empty() {
        bail!("no certificate in {}", path.display());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Parses a non-negative number of seconds, fractions allowed.
pub(crate) fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is not a valid duration"))
}

/// Parses the URL, refusing what `ClientRequest` refuses with the reason.
pub(crate) fn parse_url(url: &str) -> anyhow::Result<ClientRequest> {
    ClientRequest::new(url).map_err(|e| match e {
        HandshakeError::InvalidRequest(why) => anyhow!("invalid URL {url:?}: {why}"),
        other => anyhow!("invalid URL {url:?}: {other}"),
    })
}

/// `host:port` of a request, for messages (IPv6 hosts in brackets).
pub(crate) fn target(request: &ClientRequest) -> String {
    if request.host().contains(':') {
        format!("[{}]:{}", request.host(), request.port())
    } else {
        format!("{}:{}", request.host(), request.port())
    }
}

/// A one-line (for a rejection: the status line, then the body) account of
/// why connecting to `target` failed; `secure`: over TLS (`wss://`).
pub(crate) fn connect_error(target: &str, secure: bool, error: Error) -> anyhow::Error {
    if let Some(tls) = error.tls() {
        return anyhow!("TLS error with {target}: {tls}");
    }
    match error {
        Error::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            anyhow!("connection refused by {target}")
        }
        // Past the TCP connect, tokio-rustls reports a peer that ends the
        // TLS handshake (not a TLS server) as a bare end of stream.
        Error::Io(e) if secure && e.kind() == io::ErrorKind::UnexpectedEof => {
            anyhow!("TLS error with {target}: {e} (is it a TLS server?)")
        }
        Error::Io(e) => anyhow!("cannot connect to {target}: {e}"),
        Error::Handshake(HandshakeError::Rejected(response)) => {
            let mut message = format!(
                "handshake rejected by {target}: HTTP/1.1 {} {}",
                response.status, response.reason
            );
            let body = printable_body(&response.body);
            if !body.is_empty() {
                message.push('\n');
                message.push_str(&body);
            }
            anyhow!(message)
        }
        Error::Handshake(HandshakeError::TimedOut) => {
            anyhow!("timed out connecting to {target}: no WebSocket handshake in time")
        }
        Error::Handshake(e) => anyhow!("WebSocket handshake with {target} failed: {e}"),
        other => anyhow!("cannot connect to {target}: {other}"),
    }
}

/// How much of a refusal's body is printed.
const BODY_LIMIT: usize = 2048;

/// The body as text for a terminal: lossy UTF-8, control characters other
/// than newlines and tabs escaped (the peer must not drive the terminal),
/// at most [`BODY_LIMIT`] bytes, trimmed.
fn printable_body(body: &[u8]) -> String {
    let cut = body.len().min(BODY_LIMIT);
    let text = String::from_utf8_lossy(&body[..cut]);
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if cut < body.len() {
        out.push_str(&format!("\n... ({} more bytes)", body.len() - cut));
    }
    out
}

/// The negotiated extensions, for messages.
pub(crate) fn extensions(response: &ClientResponse) -> String {
    if response.extensions.is_empty() {
        "none".to_owned()
    } else {
        response.extensions.join(", ")
    }
}

/// Runs `wsx connect`.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut request = parse_url(&args.url)?;
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .filter(|(name, _)| !name.trim().is_empty())
            .ok_or_else(|| anyhow!("invalid header {header:?}: expected 'Name: value'"))?;
        request = request.header(name.trim(), value.trim());
    }
    for protocol in &args.subprotocols {
        request = request.protocol(protocol);
    }
    let (target, secure) = (target(&request), request.is_secure());
    let config =
        Config::default().with_keepalive(args.ping_interval, Config::default().ping_timeout);
    let dialer = Dialer::new(&args.connection, config)?;

    let (mut ws, response) = dialer
        .connect(request)
        .await
        .map_err(|e| connect_error(&target, secure, e))?;
    eprintln!("connected to {} (101 Switching Protocols)", args.url);
    eprintln!("extensions: {}", extensions(&response));
    match &response.protocol {
        Some(protocol) => eprintln!("subprotocol: {protocol}"),
        None if !args.subprotocols.is_empty() => eprintln!("subprotocol: none chosen"),
        None => {}
    }

    let mut lines = stdin_lines();
    let mut out = io::stdout().lock();
    // After the end of stdin: when to close (pushed back by each message
    // received, up to `cap`).
    let mut linger: Option<(Instant, Instant)> = None;
    // Whether we sent the Close (at the end of stdin) rather than the peer.
    let mut we_closed = false;
    loop {
        let close_at = linger.map(|(at, _)| at);
        tokio::select! {
            // `recv` is cancel-safe, and so is `mpsc::Receiver::recv`.
            received = ws.recv() => match received {
                Some(Ok(message)) => {
                    print_message(&mut out, &message)?;
                    if let Some((at, cap)) = &mut linger {
                        *at = (Instant::now() + args.linger).min(*cap);
                    }
                }
                Some(Err(e)) => return Err(session_error(e)),
                None => break,
            },
            line = lines.recv(), if !we_closed && linger.is_none() => match line {
                Some(Ok(line)) => {
                    let message = if args.binary {
                        Message::binary(parse_hex(&line)?)
                    } else {
                        Message::text(line)
                    };
                    match ws.send(message).await {
                        Ok(()) => {}
                        // The peer closed meanwhile: `recv` tells how.
                        Err(Error::Send(_)) if ws.close_frame().is_some() => {}
                        Err(e) => return Err(session_error(e)),
                    }
                }
                Some(Err(e)) => return Err(e),
                None => {
                    let now = Instant::now();
                    linger = Some((now + args.linger, now + args.connection.close_timeout));
                }
            },
            () = tokio::time::sleep_until(close_at.unwrap_or_else(Instant::now)), if close_at.is_some() => {
                (linger, we_closed) = (None, true);
                // Runs the close handshake to its end (bounded by the close
                // timeout); messages that arrive meanwhile are kept for
                // `recv`, which the loop drains before it ends.
                match ws.close(CloseCode::NORMAL, "").await {
                    Ok(()) => {}
                    Err(Error::Send(_)) if ws.close_frame().is_some() => {}
                    Err(e) => return Err(session_error(e)),
                }
            }
        }
    }
    out.flush().context("cannot write to stdout")?;
    let frame = ws
        .close_frame()
        .cloned()
        .unwrap_or_else(|| CloseFrame::new(CloseCode::ABNORMAL, ""));
    finish(&frame, we_closed, args.connection.close_timeout)
}

/// The exit status for how the connection ended; see `Args`' help.
fn finish(
    frame: &CloseFrame,
    we_closed: bool,
    close_timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let code = frame.code;
    if code == CloseCode::ABNORMAL {
        if we_closed {
            bail!(
                "the server did not answer our Close within {} s",
                close_timeout.as_secs_f64()
            );
        }
        bail!("connection lost: closed without a Close frame");
    }
    // The reason is the peer's text: escaped like a refusal's body.
    let reason = printable_body(frame.reason.as_bytes()).replace('\n', "\\n");
    eprintln!("{}", format!("closed: {} {reason}", code.0).trim_end());
    if we_closed || code == CloseCode::NORMAL || code == CloseCode::GOING_AWAY {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(EXIT_PEER_CLOSED))
    }
}

/// A failure of the open connection, for the one-line error.
fn session_error(error: Error) -> anyhow::Error {
    match error {
        Error::Io(e) => anyhow!("connection failed: {e}"),
        other => anyhow!("connection failed: {other}"),
    }
}

/// Prints a received message on its own line: text as is, binary as hex.
fn print_message(out: &mut impl Write, message: &Message) -> anyhow::Result<()> {
    match message {
        Message::Text(text) => writeln!(out, "{text}"),
        Message::Binary(data) => writeln!(out, "{}", to_hex(data)),
    }
    // Flushed per message: a consumer of a pipe sees each one as it comes.
    .and_then(|()| out.flush())
    .context("cannot write to stdout")
}

/// Lowercase hex, no separators.
pub(crate) fn to_hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(data.len() * 2);
    for &byte in data {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    hex
}

/// Hex digits in pairs, whitespace allowed anywhere between pairs.
fn parse_hex(line: &str) -> anyhow::Result<Vec<u8>> {
    let digits: Vec<u8> = line.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let invalid = || anyhow!("invalid hex line {line:?}: expected pairs of hex digits");
    if !digits.len().is_multiple_of(2) {
        return Err(invalid());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).map_err(|_| invalid())?;
            u8::from_str_radix(text, 16).map_err(|_| invalid())
        })
        .collect()
}

/// Stdin's lines (without their `\n` or `\r\n`), read on a thread of
/// their own. Not tokio's stdin: its read blocks a thread of the runtime's
/// pool that cannot be cancelled, so the runtime's shutdown would wait for
/// one more line after the server closed; a plain thread ends with the
/// process.
fn stdin_lines() -> mpsc::Receiver<anyhow::Result<String>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let line = line.context("cannot read stdin");
            let failed = line.is_err();
            if tx.blocking_send(line).is_err() || failed {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_both_ways() {
        assert_eq!(parse_hex("00 ff 10").unwrap(), [0x00, 0xff, 0x10]);
        assert_eq!(parse_hex("00FF10").unwrap(), [0x00, 0xff, 0x10]);
        assert_eq!(parse_hex("").unwrap(), [0u8; 0]);
        assert!(parse_hex("0").is_err());
        assert!(parse_hex("0g").is_err());
        assert!(parse_hex("é1").is_err());
        assert_eq!(to_hex(&[0x00, 0xff, 0x10]), "00ff10");
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("x").is_err());
    }

    #[test]
    fn body_is_escaped_and_bounded() {
        assert_eq!(
            printable_body(b"  not\x1b[31m found\n"),
            "not\\u{1b}[31m found"
        );
        assert!(printable_body(&[b'a'; 5000]).ends_with("(2952 more bytes)"));
    }
}
