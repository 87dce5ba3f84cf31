//! A WebSocket endpoint inside a hyper 1.x server: hyper parses the HTTP
//! request and owns the connection; ws-proto checks the upgrade request and
//! writes the answer's headers; hyper sends the `101` and hands over the
//! upgraded stream, which ws-tokio then drives. What was negotiated (the
//! subprotocol, permessage-deflate) reaches the connection through
//! `Accepted::connection`. [`upgrade`] is all of it, and serves axum as is
//! (`tokio_axum_server.rs`).
//!
//! ```text
//! cargo run -p ws-tokio --example tokio_hyper_server                    # demo on loopback, then exits
//! cargo run -p ws-tokio --example tokio_hyper_server -- 127.0.0.1:9020  # serve ws://127.0.0.1:9020/ws
//! ```

use std::convert::Infallible;

use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode,
    body::Bytes,
    header::{HeaderName, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use ws_tokio::{
    AcceptOptions, ClientRequest, Config, DeflateConfig, Driver, Message, Options, ServerRequest,
    WebSocket,
};

/// Checks `request` as a WebSocket upgrade (subprotocol `echo.v1` when
/// offered, permessage-deflate) and spawns an echo on the upgraded stream.
/// Returns the `101` to answer with (headers only), or why the request is
/// no acceptable upgrade (answer `400`).
pub fn upgrade<B>(request: &mut Request<B>) -> Result<Response<()>, String> {
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()));
    // A request built from parts has deflate off unless the options say so.
    let options = AcceptOptions::new()
        .protocols(["echo.v1"])
        .deflate(DeflateConfig::default());
    let accepted = ServerRequest::from_parts(request.method().as_str(), target, headers)
        .and_then(|ws| ws.accept(&options))
        .map_err(|e| e.to_string())?;
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in accepted.headers() {
        let name = HeaderName::try_from(name.as_str()).map_err(|e| e.to_string())?;
        let value = HeaderValue::try_from(value.as_str()).map_err(|e| e.to_string())?;
        response.headers_mut().insert(name, value);
    }
    let upgraded = hyper::upgrade::on(request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgraded.await else { return };
        let driver = Driver::new(accepted.connection(Config::default()));
        let mut ws = WebSocket::from_driver(TokioIo::new(upgraded), driver);
        while let Some(Ok(message)) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    });
    Ok(response)
}

/// Serves hyper connections from `listener`: `/ws` upgrades, everything
/// else gets a plain answer.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .with_upgrades();
            if let Err(e) = connection.await {
                eprintln!("http connection: {e}");
            }
        });
    }
}

async fn handle(
    mut request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != "/ws" {
        return Ok(Response::new(Full::new(Bytes::from_static(b"try /ws\n"))));
    }
    Ok(match upgrade(&mut request) {
        Ok(switching) => switching.map(|()| Full::default()),
        Err(why) => {
            let mut response = Response::new(Full::new(Bytes::from(why + "\n")));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        }
    })
}

#[tokio::main]
async fn main() -> ws_tokio::Result<()> {
    let listen = std::env::args().nth(1);
    let listener = TcpListener::bind(listen.as_deref().unwrap_or("127.0.0.1:0")).await?;
    let addr = listener.local_addr()?;
    println!("hyper server with a WebSocket endpoint at ws://{addr}/ws");
    let server = tokio::spawn(serve(listener));
    if listen.is_some() {
        return Ok(server.await.map_err(std::io::Error::other)??);
    }
    demo(&addr.to_string(), "hyper").await
}

/// The demo client: one echo through the server at `addr`, then a close.
pub async fn demo(addr: &str, through: &str) -> ws_tokio::Result<()> {
    let request = ClientRequest::new(&format!("ws://{addr}/ws"))?.protocol("echo.v1");
    let (mut ws, response) = ws_tokio::connect_with(request, &Options::default()).await?;
    ws.send(Message::text(format!("hello through {through}")))
        .await?;
    let echoed = ws.recv().await.transpose()?;
    let deflate = ws.connection().deflate().is_some();
    println!(
        "subprotocol {:?}, deflate {deflate}, echo {echoed:?}",
        response.protocol
    );
    ws.close(ws_tokio::CloseCode::NORMAL, "").await
}
