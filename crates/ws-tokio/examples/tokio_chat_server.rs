//! A broadcast chat server: every message a client sends goes to every
//! client. Shows the decisions a real server makes:
//!
//! - `read_request`, then `reject` (no `?name=` in the URL) or `accept`;
//! - a subprotocol picked from the server's own list
//!   (`AcceptOptions::protocols`: the first of ours the client offered);
//! - `split`: one task receives, another sends, neither waits for the other.
//!
//! ```text
//! cargo run -p ws-tokio --example tokio_chat_server                         # demo on loopback, then exits
//! cargo run -p ws-tokio --example tokio_chat_server -- --listen 127.0.0.1:9010
//! ```
//! Then e.g. `python3 -m websockets 'ws://127.0.0.1:9010/?name=ada'`.

use std::time::Duration;

use tokio::{net::TcpListener, sync::broadcast};
use ws_tokio::{AcceptOptions, ClientRequest, CloseCode, Message, Options};

#[tokio::main]
async fn main() -> ws_tokio::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen = match args.as_slice() {
        [flag, addr] if flag == "--listen" => Some(addr.clone()),
        _ => None,
    };
    let listener = TcpListener::bind(listen.as_deref().unwrap_or("127.0.0.1:0")).await?;
    let addr = listener.local_addr()?;
    println!("chat server on ws://{addr}/?name=you");
    let (room, _) = broadcast::channel::<String>(64);
    let server = tokio::spawn(serve(listener, room));
    if listen.is_some() {
        return server.await.map_err(std::io::Error::other)?;
    }

    // Demo: a client without a name is turned away; two named ones chat.
    let refused = ws_tokio::connect(&format!("ws://{addr}/")).await;
    println!(
        "without a name: {}",
        refused.err().map(|e| e.to_string()).unwrap_or_default()
    );
    let join = |name: &str| {
        let url = format!("ws://{addr}/?name={name}");
        async move {
            let request = ClientRequest::new(&url)?
                .protocol("chat.v2")
                .protocol("chat");
            ws_tokio::connect_with(request, &Options::default()).await
        }
    };
    let (mut ada, response) = join("ada").await?;
    println!("ada speaks {:?}", response.protocol);
    let (mut bob, _) = join("bob").await?;
    ada.send(Message::text("hello, bob")).await?;
    let heard = tokio::time::timeout(Duration::from_secs(5), bob.recv()).await;
    if let Ok(Some(Ok(message))) = heard {
        println!("bob hears: {}", String::from_utf8_lossy(message.as_bytes()));
    }
    ada.close(CloseCode::NORMAL, "bye").await?;
    bob.close(CloseCode::NORMAL, "bye").await?;
    server.abort();
    Ok(())
}

async fn serve(listener: TcpListener, room: broadcast::Sender<String>) -> ws_tokio::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let room = room.clone();
        tokio::spawn(async move {
            if let Err(e) = client(stream, room).await {
                eprintln!("client ended: {e}");
            }
        });
    }
}

async fn client(
    stream: tokio::net::TcpStream,
    room: broadcast::Sender<String>,
) -> ws_tokio::Result<()> {
    let incoming = ws_tokio::read_request(stream).await?;
    // An asynchronous check (a database, a token service) would go here.
    let Some(name) = incoming
        .request()
        .query()
        .and_then(|query| query.split('&').find_map(|pair| pair.strip_prefix("name=")))
        .map(str::to_owned)
    else {
        return incoming.reject(401, &[], b"add ?name=you to the URL").await;
    };
    let options = AcceptOptions::new().protocols(["chat.v2", "chat"]);
    let ws = incoming.accept(&options).await?;
    let (mut reader, mut writer) = ws.split();

    // The writer task forwards the room to this client; the reader task
    // (this one) forwards this client to the room. A client that stops
    // reading slows only its own writer.
    let mut inbox = room.subscribe();
    let forward = tokio::spawn(async move {
        while let Ok(line) = inbox.recv().await {
            if writer.send(Message::text(line)).await.is_err() {
                break;
            }
        }
    });
    while let Some(message) = reader.recv().await {
        let text = String::from_utf8_lossy(message?.as_bytes()).into_owned();
        let _ = room.send(format!("{name}: {text}"));
    }
    forward.abort();
    Ok(())
}
