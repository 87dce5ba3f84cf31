//! `wss://` with two sans-IO state machines and no adapter: rustls'
//! `Connection` turns ciphertext into plaintext and back, ws-proto turns
//! plaintext into WebSocket events and back, and this file's loop is the
//! only code that touches the socket (`std::net`, blocking, one thread per
//! side). Swap the loop for your own (mio, io_uring, a game server's tick)
//! and both protocols come along unchanged.
//!
//! The demo makes a CA and a certificate for `localhost` (rcgen), serves an
//! echo on 127.0.0.1 and connects to it with SNI `localhost`, certificate
//! verification and ALPN `http/1.1`, all with rustls' default provider (aws-lc-rs).
//!
//! ```text
//! cargo run -p ws-proto --example tls_echo
//! ```

use std::{
    error::Error,
    io::{self, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName},
};
use ws_proto::{
    AcceptOptions, ClientHandshake, ClientRequest, CloseCode, Config, Connection, Event, Message,
    ServerHandshake,
    bytes::{Buf, BytesMut},
};

type Result<T> = core::result::Result<T, Box<dyn Error + Send + Sync>>;

/// The demo: a `wss://` echo server and a client on 127.0.0.1.
pub fn main() -> Result<()> {
    let (client_config, server_config) = demo_configs()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = thread::spawn(move || serve(listener.accept()?.0, server_config));
    let echoed = client(addr, "localhost", client_config)?;
    println!(
        "{echoed} messages echoed over wss://localhost:{}",
        addr.port()
    );
    server.join().map_err(|_| "server thread panicked")??;
    Ok(())
}

/// A socket and the TLS state machine on it; `plain` holds decrypted bytes
/// for ws-proto.
struct Tls {
    socket: TcpStream,
    tls: rustls::Connection,
    plain: BytesMut,
}

impl Tls {
    /// Writes the ciphertext rustls has queued, then waits up to `timeout`
    /// (`None`: forever) for ciphertext and decrypts it into `plain`.
    /// `Ok(false)`: the peer closed the TCP connection.
    fn pump(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        self.flush()?;
        self.socket.set_read_timeout(timeout)?;
        let mut cipher = [0u8; 16 * 1024];
        let n = match self.socket.read(&mut cipher) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(true);
            }
            Err(e) => return Err(e),
        };
        let mut input = &cipher[..n];
        while !input.is_empty() {
            self.tls.read_tls(&mut input)?;
            let state = self.tls.process_new_packets().map_err(|e| {
                // The alert rustls queued tells the peer why; then fail.
                let _ = self.flush();
                io::Error::new(io::ErrorKind::InvalidData, e)
            })?;
            let len = state.plaintext_bytes_to_read();
            let start = self.plain.len();
            self.plain.resize(start + len, 0);
            self.tls.reader().read_exact(&mut self.plain[start..])?;
            if state.peer_has_closed() && len == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Encrypts `bytes` (rustls takes what its buffer allows; the
    /// ciphertext goes out whenever it is full).
    fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = self.tls.writer().write(bytes)?;
            bytes = &bytes[n..];
            if n == 0 {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Writes out all queued ciphertext.
    fn flush(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            self.tls.write_tls(&mut self.socket)?;
        }
        Ok(())
    }

    /// Hands everything ws-proto queued to TLS, and the ciphertext to the
    /// socket.
    fn send(&mut self, conn: &mut Connection) -> io::Result<()> {
        let out = conn.outgoing();
        while out.has_remaining() {
            let chunk = out.chunk();
            let len = chunk.len();
            self.write(chunk)?;
            out.advance(len);
        }
        self.flush()
    }
}

/// Accepts one `wss://` connection and echoes every message until closed.
pub fn serve(socket: TcpStream, config: Arc<ServerConfig>) -> Result<()> {
    let tls = ServerConnection::new(config)?.into();
    let mut tls = Tls {
        socket,
        tls,
        plain: BytesMut::new(),
    };
    let mut handshake = ServerHandshake::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let request = loop {
        if let Some(request) = handshake.receive(&mut tls.plain)? {
            break request;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !tls.pump(Some(left))? {
            return Err("no WebSocket request".into());
        }
    };
    let accepted = request.accept(&AcceptOptions::new().protocols(["echo"]))?;
    tls.write(accepted.response())?;
    let mut conn = accepted.connection(Config::default());
    run(&mut tls, &mut conn, |conn, event| {
        if let Event::Message(message) = event {
            conn.send(message)?;
        }
        Ok(())
    })
}

/// Connects with TLS to `addr` as `host`, sends a few messages, checks the
/// echoes and closes; returns how many came back.
pub fn client(addr: SocketAddr, host: &str, config: Arc<ClientConfig>) -> Result<usize> {
    let request =
        ClientRequest::new(&format!("wss://{host}:{}/echo", addr.port()))?.protocol("echo");
    assert!(request.is_secure());
    let name = ServerName::try_from(request.host().to_owned())?;
    let mut tls = Tls {
        socket: TcpStream::connect(addr)?,
        tls: ClientConnection::new(config, name)?.into(),
        plain: BytesMut::new(),
    };
    let mut handshake = ClientHandshake::new(&request)?;
    tls.write(handshake.request())?;
    let response = loop {
        if let Some(response) = handshake.receive(&mut tls.plain)? {
            break response;
        }
        if !tls.pump(Some(Duration::from_secs(10)))? {
            return Err(handshake.receive_eof(&mut tls.plain).into());
        }
    };
    let alpn = tls.tls.alpn_protocol().map(<[u8]>::to_vec);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let mut conn = response.connection(Config::default());
    assert_eq!(conn.protocol(), Some("echo"));
    let messages = [
        Message::text("hello over TLS"),
        Message::binary(vec![7; 100_000]),
        Message::text("é".repeat(40_000)),
    ];
    for message in messages.clone() {
        conn.send(message)?;
    }
    let mut echoed = Vec::new();
    run(&mut tls, &mut conn, |conn, event| {
        if let Event::Message(message) = event {
            echoed.push(message);
            if echoed.len() == messages.len() {
                conn.close(CloseCode::NORMAL, "done")?;
            }
        }
        Ok(())
    })?;
    if echoed != messages {
        return Err("the echoes differ from what was sent".into());
    }
    Ok(echoed.len())
}

/// The run loop: drain ws-proto's events, send what it queued, stop when it
/// says the transport may close (with a TLS close_notify), otherwise wait
/// for bytes or for its timer.
fn run(
    tls: &mut Tls,
    conn: &mut Connection,
    mut on_event: impl FnMut(&mut Connection, Event) -> Result<()>,
) -> Result<()> {
    let origin = Instant::now();
    loop {
        loop {
            match conn.next_event(&mut tls.plain) {
                Ok(Some(event)) => on_event(conn, event)?,
                Ok(None) => break,
                Err(e) => {
                    // The Close frame with e.close_code() is queued: send it.
                    let _ = tls.send(conn);
                    return Err(e.into());
                }
            }
        }
        tls.send(conn)?;
        if conn.should_close_transport() {
            tls.tls.send_close_notify();
            tls.flush()?;
            return Ok(());
        }
        let timeout = conn.poll_timeout(origin.elapsed()).map(|deadline| {
            deadline
                .saturating_sub(origin.elapsed())
                .max(Duration::from_millis(1))
        });
        if !tls.pump(timeout)? {
            conn.handle_eof();
        }
        conn.handle_timeout(origin.elapsed());
    }
}

/// A CA, a certificate for `localhost` signed by it, and the rustls
/// configurations of a client that trusts the CA and of the server.
pub fn demo_configs() -> Result<(Arc<ClientConfig>, Arc<ServerConfig>)> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate()?;
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?
        .signed_by(&leaf_key, &issuer)?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca_cert.der().to_vec()))?;
    let mut client = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(client), Arc::new(server)))
}
