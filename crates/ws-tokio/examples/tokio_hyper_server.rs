//! A WebSocket endpoint inside a hyper 1.x server: hyper parses the HTTP
//! request and owns the connection; ws-proto checks the upgrade request and
//! writes the answer's headers; hyper sends the `101` and hands over the
//! upgraded stream, which ws-tokio then drives. What was negotiated (the
//! subprotocol, permessage-deflate) reaches the connection through
//! `Accepted::connection`.
//!
//! ```text
//! cargo run -p ws-tokio --example tokio_hyper_server                    # demo on loopback, then exits
//! cargo run -p ws-tokio --example tokio_hyper_server -- 127.0.0.1:9020  # serve ws://127.0.0.1:9020/ws
//! ```

use std::convert::Infallible;

use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Bytes, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use ws_tokio::{
    AcceptOptions, ClientRequest, Config, DeflateConfig, Driver, Message, Options, ServerRequest,
    WebSocket,
};

/// Serves hyper connections from `listener`: `/ws` is a WebSocket echo
/// endpoint speaking the `echo.v1` subprotocol when offered; everything
/// else is a plain HTTP answer.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(handle);
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = connection.await {
                eprintln!("http connection: {e}");
            }
        });
    }
}

/// The subprotocol this endpoint speaks, and permessage-deflate (a request
/// built from parts has it off unless the accept options say so).
fn accept_options() -> AcceptOptions {
    AcceptOptions::new()
        .protocols(["echo.v1"])
        .deflate(DeflateConfig::default())
}

async fn handle(
    mut request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != "/ws" {
        return Ok(Response::new(Full::new(Bytes::from_static(b"try /ws\n"))));
    }
    // The request hyper already parsed, checked as a WebSocket upgrade.
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()));
    let accepted = match ServerRequest::from_parts(request.method().as_str(), target, headers)
        .and_then(|ws| ws.accept(&accept_options()))
    {
        Ok(accepted) => accepted,
        Err(e) => {
            let mut response = Response::new(Full::new(Bytes::from(format!("{e}\n"))));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(response);
        }
    };
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in accepted.headers() {
        if let (Ok(name), Ok(value)) = (name.parse::<hyper::header::HeaderName>(), value.parse()) {
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
    Ok(response)
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
    // Demo: one client, one echo, then exit.
    let request = ClientRequest::new(&format!("ws://{addr}/ws"))?.protocol("echo.v1");
    let (mut ws, response) = ws_tokio::connect_with(request, &Options::default()).await?;
    ws.send(Message::text("hello through hyper")).await?;
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
