//! `wss://` over rustls (the adapters' `rustls` features): our clients
//! against our servers with certificates made at test time
//! ([`common::tls`]), ws-std with itself, ws-tokio and ws-futures (smol)
//! across to ws-std both ways: messages up to 16 MiB, both close directions, the split halves and
//! the timers over TLS, and the typed failures (wrong host, untrusted CA, a
//! peer that does not speak TLS, a TLS peer on a plaintext URL). Every test
//! binds 127.0.0.1:0 and is bounded in time.

mod common;

use std::{
    net::{TcpListener, TcpStream},
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use ws_std::{
    ClientRequest, CloseCode, Config, Error, Message, Options, TlsStream, WebSocket,
    rustls::{self, ClientConfig, ServerConfig},
};

/// Runs `f` on its own thread, bounded by [`common::TIMEOUT`]; fails the
/// test if it panics or runs out of time.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    common::bounded("tls test", move || Ok(f())).unwrap()
}

fn pki() -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let pki = common::tls::pki();
    (Arc::clone(&pki.client), Arc::clone(&pki.server))
}

fn big() -> Options {
    let config = Config::default()
        .with_max_frame_size(32 << 20)
        .with_max_message_size(32 << 20);
    Options::default().with_config(config)
}

/// Serves one TLS WebSocket connection with `serve`; returns the port.
fn tls_server<T: Send + 'static>(
    config: Arc<ServerConfig>,
    serve: impl FnOnce(WebSocket<TlsStream>) -> T + Send + 'static,
) -> (u16, thread::JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let tcp = listener.accept().unwrap().0;
        let tls = TlsStream::server(tcp, config).unwrap();
        serve(ws_std::accept_with(tls, &big()).unwrap())
    });
    (port, handle)
}

/// Echoes until the connection ends; returns the close code it saw.
fn echo(mut ws: WebSocket<TlsStream>) -> Option<u16> {
    while let Some(Ok(message)) = ws.recv() {
        ws.send(message).unwrap();
    }
    ws.close_frame().map(|f| f.code.0)
}

fn connect(
    port: u16,
    client: Arc<ClientConfig>,
) -> ws_std::Result<WebSocket<ws_std::MaybeTlsStream>> {
    let request = ClientRequest::new(&format!("wss://localhost:{port}/"))?;
    Ok(ws_std::connect_with_tls(request, &big(), client)?.0)
}

#[test]
fn echo_up_to_16_mib_over_tls_and_the_client_closes() {
    bounded(|| {
        let (client, server) = pki();
        let (port, handle) = tls_server(server, echo);
        let mut ws = connect(port, client).unwrap();
        let alpn = match ws.get_ref() {
            ws_std::MaybeTlsStream::Rustls(tls) => {
                tls.with_connection(|c| c.alpn_protocol().map(<[u8]>::to_vec))
            }
            other => panic!("not TLS: {other:?}"),
        };
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        let messages = [
            Message::text("hello over TLS"),
            Message::binary(vec![0xa5; 100_000]),
            Message::text("é".repeat(8 << 20)), // 16 MiB of text
        ];
        for message in messages {
            ws.send(message.clone()).unwrap();
            assert_eq!(ws.recv().unwrap().unwrap(), message);
        }
        ws.close(CloseCode::NORMAL, "bye").unwrap();
        assert_eq!(ws.close_frame().unwrap().code, CloseCode::NORMAL);
        assert_eq!(handle.join().unwrap(), Some(1000));
    });
}

#[test]
fn the_server_closes_over_tls() {
    bounded(|| {
        let (client, server) = pki();
        let (port, handle) = tls_server(server, |mut ws| {
            ws.send(Message::text("last words")).unwrap();
            ws.close(CloseCode::GOING_AWAY, "going away").unwrap();
            ws.close_frame().map(|f| f.code)
        });
        let mut ws = connect(port, client).unwrap();
        assert_eq!(ws.recv().unwrap().unwrap(), Message::text("last words"));
        assert!(ws.recv().is_none());
        assert_eq!(ws.close_frame().unwrap().code, CloseCode::GOING_AWAY);
        assert_eq!(handle.join().unwrap(), Some(CloseCode::GOING_AWAY));
    });
}

#[test]
fn split_halves_over_tls() {
    bounded(|| {
        let (client, server) = pki();
        let (port, handle) = tls_server(server, echo);
        let ws = connect(port, client).unwrap();
        let (mut reader, mut writer) = ws.split();
        let sender = thread::spawn(move || {
            for i in 0..200 {
                writer
                    .send(Message::text(format!("message {i} {}", "x".repeat(i * 50))))
                    .unwrap();
            }
            writer
        });
        for i in 0..200 {
            let expected = Message::text(format!("message {i} {}", "x".repeat(i * 50)));
            assert_eq!(reader.recv().unwrap().unwrap(), expected);
        }
        let mut writer = sender.join().unwrap();
        writer.close(CloseCode::NORMAL, "").unwrap();
        assert!(reader.recv().is_none(), "the reader completes the close");
        assert_eq!(reader.close_frame().unwrap().code, CloseCode::NORMAL);
        assert_eq!(handle.join().unwrap(), Some(1000));
    });
}

/// A TLS peer that goes silent after the handshake: a client with
/// keepalive (a ping after 100 ms of silence, 200 ms to answer) gives up
/// on it within 2 s, with 1006. `recv_once(url, config)` connects (the test
/// CA trusted), receives once, and returns whether a message came and the
/// close code it ended with.
fn check_keepalive(
    recv_once: impl FnOnce(String, Config) -> (bool, Option<CloseCode>) + Send + 'static,
) {
    let (port, handle) = tls_server(pki().1, |ws| {
        thread::sleep(Duration::from_secs(3)); // handshake done, then silence
        drop(ws);
    });
    let ping = Some(Duration::from_millis(100));
    let config = Config::default().with_keepalive(ping, Some(Duration::from_millis(200)));
    let start = Instant::now();
    let (message, code) = bounded(move || recv_once(format!("wss://localhost:{port}/"), config));
    assert!(!message, "the silent peer sent nothing");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(code, Some(CloseCode::ABNORMAL));
    handle.join().unwrap();
}

#[test]
fn keepalive_gives_up_on_a_silent_tls_peer() {
    check_keepalive(|url, config| {
        let request = ClientRequest::new(&url).unwrap();
        let options = Options::default().with_config(config);
        let (mut ws, _) = ws_std::connect_with_tls(request, &options, pki().0).unwrap();
        let message = matches!(ws.recv(), Some(Ok(_)));
        (message, ws.close_frame().map(|f| f.code))
    });
}

/// The error a client gets connecting to `url` with `client`, and the
/// server thread's outcome.
fn client_error(result: ws_std::Result<WebSocket<ws_std::MaybeTlsStream>>) -> Error {
    match result {
        Ok(_) => panic!("the connection succeeded"),
        Err(e) => e,
    }
}

/// A TLS server for one connection whose handshake is expected to fail;
/// the thread returns whether it did.
fn failing_tls_server(config: Arc<ServerConfig>) -> (u16, thread::JoinHandle<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let tls = TlsStream::server(listener.accept().unwrap().0, config).unwrap();
        ws_std::accept(tls).is_err()
    });
    (port, handle)
}

/// The refusals every client must make, each against a TLS server whose
/// handshake must fail too: a certificate for another name (127.0.0.1 is
/// not `localhost`; the test CA trusted) and an untrusted one (`connect`'s
/// defaults trust Mozilla's roots, not the test CA). `attempt(url,
/// trust_test_ca)` connects and returns the error.
fn check_refusals(attempt: impl Fn(String, bool) -> Option<Error>) {
    for (host, trust_test_ca) in [("127.0.0.1", true), ("localhost", false)] {
        let (port, handle) = failing_tls_server(pki().1);
        let error = attempt(format!("wss://{host}:{port}/"), trust_test_ca);
        let refused = match error.as_ref().and_then(Error::tls) {
            Some(rustls::Error::InvalidCertificate(e)) if trust_test_ca => {
                matches!(e, rustls::CertificateError::NotValidForNameContext { .. })
            }
            Some(rustls::Error::InvalidCertificate(e)) => {
                *e == rustls::CertificateError::UnknownIssuer
            }
            _ => false,
        };
        assert!(
            refused,
            "{host}, test CA trusted: {trust_test_ca}: {error:?}"
        );
        assert!(handle.join().unwrap(), "the server saw the handshake fail");
    }
}

#[test]
fn a_wrong_name_and_an_untrusted_ca_are_refused_with_typed_errors() {
    check_refusals(|url, trust_test_ca| {
        bounded(move || {
            let request = ClientRequest::new(&url).unwrap();
            let result = match trust_test_ca {
                true => ws_std::connect_with_tls(request, &Options::default(), pki().0),
                false => ws_std::connect_with(request, &Options::default()),
            };
            result.err()
        })
    });
}

#[test]
fn a_plaintext_server_on_a_wss_url_is_a_tls_error() {
    bounded(|| {
        let (client, _) = pki();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = thread::spawn(move || ws_std::accept(listener.accept().unwrap().0).is_err());
        let error = client_error(connect(port, client));
        assert!(error.tls().is_some(), "{error:?}");
        assert!(
            handle.join().unwrap(),
            "the plaintext server refused the ClientHello"
        );
    });
}

#[test]
fn a_tls_server_on_a_ws_url_fails_the_handshake() {
    bounded(|| {
        let (_, server) = pki();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = thread::spawn(move || {
            let tcp: TcpStream = listener.accept().unwrap().0;
            let tls = TlsStream::server(tcp, server).unwrap();
            ws_std::accept(tls).err().map(|e| e.tls().is_some())
        });
        let error = client_error(ws_std::connect(&format!("ws://127.0.0.1:{port}/")).map(|r| r.0));
        assert!(
            matches!(error, Error::Handshake(_) | Error::Io(_)),
            "{error:?}"
        );
        assert_eq!(
            handle.join().unwrap(),
            Some(true),
            "the TLS server saw no ClientHello"
        );
    });
}

// ----- ws-tokio (`rustls` feature, tokio-rustls), across to ws-std -----

/// Runs `f` on a current-thread tokio runtime, bounded like the rest.
fn tokio_bounded<T: Send + 'static>(f: impl AsyncFnOnce() -> T + Send + 'static) -> T {
    bounded(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        runtime.unwrap().block_on(f())
    })
}

/// ws-tokio's `wss://` server (`accept_tls`) on a loopback port, serving
/// one connection with `serve`; returns the port.
fn tokio_tls_server<T: Send + 'static>(
    serve: impl AsyncFnOnce(ws_tokio::WebSocket<ws_tokio::MaybeTlsStream>) -> T + Send + 'static,
) -> (u16, thread::JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        runtime.unwrap().block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let tcp = listener.accept().await.unwrap().0;
            let options = Options::default().with_config(big().config);
            serve(ws_tokio::accept_tls(tcp, pki().1, &options).await.unwrap()).await
        })
    });
    (port, handle)
}

/// ws-tokio's client with the test CA.
async fn tokio_connect(
    url: &str,
    config: Config,
) -> ws_std::Result<ws_tokio::WebSocket<ws_tokio::MaybeTlsStream>> {
    let options = Options::default().with_config(config);
    let request = ClientRequest::new(url)?;
    Ok(ws_tokio::connect_with_tls(request, &options, pki().0)
        .await?
        .0)
}

#[test]
fn tokio_client_std_tls_server_echo_up_to_16_mib() {
    let (port, handle) = tls_server(pki().1, echo);
    tokio_bounded(async move || {
        let mut ws = tokio_connect(&format!("wss://localhost:{port}/"), big().config)
            .await
            .unwrap();
        for message in [
            Message::binary(vec![3; 70_000]),
            Message::text("ü".repeat(8 << 20)),
        ] {
            ws.send(message.clone()).await.unwrap();
            assert_eq!(ws.recv().await.unwrap().unwrap(), message);
        }
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    });
    assert_eq!(handle.join().unwrap(), Some(1000));
}

#[test]
fn std_client_tokio_tls_server_which_closes() {
    let (port, handle) = tokio_tls_server(async |mut ws| {
        ws.send(Message::text("from tokio over TLS")).await.unwrap();
        ws.close(CloseCode::GOING_AWAY, "").await.unwrap();
        ws.close_frame().map(|f| f.code)
    });
    bounded(move || {
        let mut ws = connect(port, pki().0).unwrap();
        assert_eq!(
            ws.recv().unwrap().unwrap(),
            Message::text("from tokio over TLS")
        );
        assert!(ws.recv().is_none());
        assert_eq!(ws.close_frame().unwrap().code, CloseCode::GOING_AWAY);
    });
    assert_eq!(handle.join().unwrap(), Some(CloseCode::GOING_AWAY));
}

#[test]
fn tokio_split_halves_and_keepalive_over_tls() {
    let (port, handle) = tls_server(pki().1, echo);
    tokio_bounded(async move || {
        let ws = tokio_connect(&format!("wss://localhost:{port}/"), big().config)
            .await
            .unwrap();
        let (mut reader, mut writer) = ws.split();
        let sender = tokio::spawn(async move {
            for i in 0..100 {
                writer
                    .send(Message::binary(vec![i; 1000 * usize::from(i)]))
                    .await
                    .unwrap();
            }
            writer
        });
        for i in 0..100 {
            assert_eq!(reader.recv().await.unwrap().unwrap().len(), 1000 * i);
        }
        let mut writer = sender.await.unwrap();
        writer.close(CloseCode::NORMAL, "").await.unwrap();
        assert!(reader.recv().await.is_none());
    });
    assert_eq!(handle.join().unwrap(), Some(1000));

    check_keepalive(|url, config| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        runtime.unwrap().block_on(async move {
            let mut ws = tokio_connect(&url, config).await.unwrap();
            let message = matches!(ws.recv().await, Some(Ok(_)));
            (message, ws.close_frame().map(|f| f.code))
        })
    });
}

#[test]
fn tokio_refuses_a_wrong_name_an_untrusted_ca_and_a_plaintext_server() {
    check_refusals(|url, trust_test_ca| {
        tokio_bounded(async move || match trust_test_ca {
            true => tokio_connect(&url, Config::default()).await.err(),
            false => ws_tokio::connect(&url).await.err(),
        })
    });

    // A plaintext WebSocket server on a wss:// URL.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || ws_std::accept(listener.accept().unwrap().0).is_err());
    let error = tokio_bounded(async move || {
        tokio_connect(&format!("wss://localhost:{port}/"), Config::default())
            .await
            .err()
    });
    assert!(error.as_ref().and_then(Error::tls).is_some(), "{error:?}");
    assert!(handle.join().unwrap());

    // A TLS server on a ws:// URL.
    let (port, handle) = failing_tls_server(pki().1);
    let error = tokio_bounded(async move || {
        ws_tokio::connect(&format!("ws://127.0.0.1:{port}/"))
            .await
            .err()
    });
    assert!(
        matches!(error, Some(Error::Handshake(_) | Error::Io(_))),
        "{error:?}"
    );
    assert!(handle.join().unwrap());
}

// ----- ws-futures (`rustls` feature, futures-rustls) on smol, across to ws-std -----

/// ws-futures' client with the test CA, on smol.
async fn smol_connect(
    url: &str,
    config: Config,
) -> ws_std::Result<ws_futures::WebSocket<ws_futures::MaybeTlsStream>> {
    let options = Options::default().with_config(config);
    let request = ClientRequest::new(url)?;
    Ok(ws_futures::connect_with_tls(request, &options, pki().0)
        .await?
        .0)
}

#[test]
fn smol_client_std_tls_server_echo_and_keepalive() {
    let (port, handle) = tls_server(pki().1, echo);
    bounded(move || {
        smol::block_on(async move {
            let url = format!("wss://localhost:{port}/");
            let mut ws = smol_connect(&url, big().config).await.unwrap();
            for message in [
                Message::binary(vec![5; 70_000]),
                Message::text("ß".repeat(8 << 20)),
            ] {
                ws.send(message.clone()).await.unwrap();
                assert_eq!(ws.recv().await.unwrap().unwrap(), message);
            }
            ws.close(CloseCode::NORMAL, "").await.unwrap();
        });
    });
    assert_eq!(handle.join().unwrap(), Some(1000));

    check_keepalive(|url, config| {
        smol::block_on(async move {
            let mut ws = smol_connect(&url, config).await.unwrap();
            let message = matches!(ws.recv().await, Some(Ok(_)));
            (message, ws.close_frame().map(|f| f.code))
        })
    });
}

#[test]
fn std_client_smol_tls_server_and_the_typed_failures() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        smol::block_on(async move {
            let listener = smol::net::TcpListener::try_from(listener).unwrap();
            let tcp = listener.accept().await.unwrap().0;
            let options = Options::default().with_config(big().config);
            let mut ws = ws_futures::accept_tls(tcp, pki().1, &options)
                .await
                .unwrap();
            while let Some(Ok(message)) = ws.recv().await {
                ws.send(message).await.unwrap();
            }
            ws.close_frame().map(|f| f.code)
        })
    });
    bounded(move || {
        let ws = connect(port, pki().0).unwrap();
        let (mut reader, mut writer) = ws.split();
        let sender = thread::spawn(move || {
            for i in 0..50 {
                writer
                    .send(Message::binary(vec![i; 2000 * usize::from(i)]))
                    .unwrap();
            }
            writer
        });
        for i in 0..50 {
            assert_eq!(reader.recv().unwrap().unwrap().len(), 2000 * i);
        }
        let mut writer = sender.join().unwrap();
        writer.close(CloseCode::NORMAL, "").unwrap();
        assert!(reader.recv().is_none());
    });
    assert_eq!(server.join().unwrap(), Some(CloseCode::NORMAL));

    check_refusals(|url, trust_test_ca| {
        bounded(move || {
            smol::block_on(async move {
                match trust_test_ca {
                    true => smol_connect(&url, Config::default()).await.err(),
                    false => ws_futures::connect(&url).await.err(),
                }
            })
        })
    });
}
