//! The sans-IO `wss://` example (`examples/tls_echo.rs`: rustls' and
//! ws-proto's state machines over `std::net`), run as a test, plus the two
//! failures a client must see: a certificate for another host name, and one
//! from a CA it does not trust.

use std::{net::TcpListener, thread};

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/tls_echo.rs"]
mod tls_echo;

#[test]
fn the_sans_io_wss_example_echoes() {
    tls_echo::main().unwrap();
}

/// Serves one TLS connection with the demo server config; the client
/// connects as `host` trusting `client_config`'s roots. Returns the
/// client's error text.
fn client_error(host: &str, trust_other_ca: bool) -> String {
    let (client_config, server_config) = tls_echo::demo_configs().unwrap();
    let client_config = if trust_other_ca {
        tls_echo::demo_configs().unwrap().0
    } else {
        client_config
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server =
        thread::spawn(move || tls_echo::serve(listener.accept().unwrap().0, server_config));
    let error = tls_echo::client(addr, host, client_config)
        .unwrap_err()
        .to_string();
    assert!(
        server.join().unwrap().is_err(),
        "the server saw the handshake fail"
    );
    error
}

#[test]
fn a_certificate_for_another_host_is_refused() {
    let error = client_error("wrong.localhost", false);
    assert!(error.contains("not valid for name"), "{error}");
}

#[test]
fn a_certificate_from_an_untrusted_ca_is_refused() {
    // Both demo CAs have the same name, so the chain is built and its
    // signature fails; with other names it would be an unknown issuer.
    let error = client_error("localhost", true);
    assert!(error.contains("invalid peer certificate"), "{error}");
}
