//! A WebSocket route in an axum app, without axum's own (tungstenite-based)
//! `ws` feature: the handler checks the upgrade request with ws-proto,
//! answers `101` with the headers ws-proto wrote, and drives the upgraded
//! stream with ws-tokio. The subprotocol and permessage-deflate negotiated
//! reach the connection through `Accepted::connection`.
//!
//! ```text
//! cargo run -p ws-tokio --example tokio_axum_server                    # demo on loopback, then exits
//! cargo run -p ws-tokio --example tokio_axum_server -- 127.0.0.1:9030  # serve ws://127.0.0.1:9030/ws
//! ```

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use ws_tokio::{
    AcceptOptions, ClientRequest, Config, DeflateConfig, Driver, Message, Options, ServerRequest,
    WebSocket,
};

/// The app: `/ws` is a WebSocket echo endpoint (subprotocol `echo.v1` when
/// offered), `/` a plain page.
pub fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "try /ws\n" }))
        .route("/ws", get(upgrade))
}

/// Accepts the upgrade and spawns the echo loop on the upgraded stream.
async fn upgrade(mut request: Request) -> Response {
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()));
    let options = AcceptOptions::new()
        .protocols(["echo.v1"])
        .deflate(DeflateConfig::default());
    let accepted = match ServerRequest::from_parts(request.method().as_str(), target, headers)
        .and_then(|ws| ws.accept(&options))
    {
        Ok(accepted) => accepted,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in accepted.headers() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let driver = Driver::new(accepted.connection(Config::default()));
        let mut ws = WebSocket::from_driver(TokioIo::new(upgraded), driver);
        while let Some(Ok(message)) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    });
    response
}

#[tokio::main]
async fn main() -> ws_tokio::Result<()> {
    let listen = std::env::args().nth(1);
    let listener = TcpListener::bind(listen.as_deref().unwrap_or("127.0.0.1:0")).await?;
    let addr = listener.local_addr()?;
    println!("axum app with a WebSocket route at ws://{addr}/ws");
    let server = tokio::spawn(async move { axum::serve(listener, app()).await });
    if listen.is_some() {
        return Ok(server.await.map_err(std::io::Error::other)??);
    }
    // Demo: one client, one echo, then exit.
    let request = ClientRequest::new(&format!("ws://{addr}/ws"))?.protocol("echo.v1");
    let (mut ws, response) = ws_tokio::connect_with(request, &Options::default()).await?;
    ws.send(Message::text("hello through axum")).await?;
    let echoed = ws.recv().await.transpose()?;
    let deflate = ws.connection().deflate().is_some();
    println!(
        "subprotocol {:?}, deflate {deflate}, echo {echoed:?}",
        response.protocol
    );
    ws.close(ws_tokio::CloseCode::NORMAL, "").await?;
    server.abort();
    Ok(())
}
