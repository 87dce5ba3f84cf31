//! The hyper and axum examples, tested: their servers run on 127.0.0.1:0
//! and our client checks the subprotocol choice, permessage-deflate, a
//! large echo, and that a plain request to the WebSocket route is refused.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use ws_tokio::{ClientRequest, CloseCode, Message, Options};

// The axum example includes the hyper one (`axum_example::hyper_server`).
#[allow(dead_code, unreachable_pub)]
#[path = "../examples/tokio_axum_server.rs"]
mod axum_example;

/// Starts `serve` on a fresh loopback listener; returns its address.
async fn start<F, T>(serve: impl FnOnce(TcpListener) -> F) -> String
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(listener));
    addr
}

/// Our client against the endpoint at `addr`: with and without the
/// subprotocol, deflate negotiated, a 1 MiB text echoed, a clean close.
async fn client_checks(addr: &str) {
    let url = format!("ws://{addr}/ws");
    let request = ClientRequest::new(&url)
        .unwrap()
        .protocol("other")
        .protocol("echo.v1");
    let (mut ws, response) = ws_tokio::connect_with(request, &Options::default())
        .await
        .unwrap();
    assert_eq!(response.protocol.as_deref(), Some("echo.v1"));
    assert!(ws.connection().deflate().is_some(), "deflate negotiated");
    let big = "the route upgrades and echoes ".repeat(35_000);
    for message in [
        Message::text("hi"),
        Message::text(big.as_str()),
        Message::binary(vec![7u8; 70_000]),
    ] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), message);
    }
    ws.close(CloseCode::NORMAL, "done").await.unwrap();
    assert_eq!(ws.close_frame().unwrap().code, CloseCode::NORMAL);

    let (mut ws, response) = ws_tokio::connect(&url).await.unwrap();
    assert_eq!(
        response.protocol, None,
        "no subprotocol offered, none chosen"
    );
    ws.send(Message::text("plain")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("plain"));

    // A GET without the upgrade headers is answered 400 with the reason.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

#[tokio::test]
async fn hyper_upgrade_to_a_websocket() {
    let check = async {
        let addr = start(axum_example::hyper_server::serve).await;
        client_checks(&addr).await;
    };
    tokio::time::timeout(Duration::from_secs(30), check)
        .await
        .unwrap();
}

#[tokio::test]
async fn axum_route_upgrades_to_a_websocket() {
    let check = async {
        let addr =
            start(|listener| async move { axum::serve(listener, axum_example::app()).await }).await;
        client_checks(&addr).await;
    };
    tokio::time::timeout(Duration::from_secs(30), check)
        .await
        .unwrap();
}
