//! A WebSocket route in an axum app, without axum's own (tungstenite-based)
//! `ws` feature: axum runs on hyper, so the route is hyper's upgrade, the
//! `upgrade` function of `tokio_hyper_server.rs`, used as is: ws-proto
//! checks the request and writes the `101`'s headers, ws-tokio drives the
//! upgraded stream, and the subprotocol and permessage-deflate negotiated
//! reach the connection.
//!
//! ```text
//! cargo run -p ws-tokio --example tokio_axum_server                    # demo on loopback, then exits
//! cargo run -p ws-tokio --example tokio_axum_server -- 127.0.0.1:9030  # serve ws://127.0.0.1:9030/ws
//! ```

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::net::TcpListener;

#[allow(dead_code, unreachable_pub)] // its own `main` and hyper server
#[path = "tokio_hyper_server.rs"]
pub mod hyper_server;

/// The app: `/ws` is a WebSocket echo endpoint (subprotocol `echo.v1` when
/// offered), `/` a plain page.
pub fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "try /ws\n" }))
        .route("/ws", get(ws_route))
}

async fn ws_route(mut request: Request) -> Response {
    match hyper_server::upgrade(&mut request) {
        Ok(switching) => switching.map(|()| Body::empty()),
        Err(why) => (StatusCode::BAD_REQUEST, why + "\n").into_response(),
    }
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
    hyper_server::demo(&addr.to_string(), "axum").await
}
