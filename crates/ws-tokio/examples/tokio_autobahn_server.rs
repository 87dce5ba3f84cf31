//! Echo server for the Autobahn|Testsuite fuzzingclient.
//!
//! ```text
//! cargo run --release -p ws-tokio --example tokio_autobahn_server -- 127.0.0.1:9001
//! ```
//!
//! With `AUTOBAHN_STREAMING=1` it echoes every message as a stream instead:
//! received piece by piece (`Streaming::Always`) and sent back piece by
//! piece as they arrive, which runs the suite against the streaming path.

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use ws_tokio::{Config, Options, Streaming};

#[tokio::main]
async fn main() -> ws_tokio::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("autobahn echo server on ws://{}", listener.local_addr()?);
    let streaming = std::env::var_os("AUTOBAHN_STREAMING").is_some_and(|v| v == "1");
    let config = Config::default()
        .with_max_frame_size(64 << 20)
        .with_max_message_size(64 << 20);
    let config = match streaming {
        true => config.with_streaming(Streaming::Always),
        false => config,
    };
    let options = Options::default().with_config(config);
    loop {
        let (stream, _) = listener.accept().await?;
        let options = options.clone();
        tokio::spawn(async move {
            let served = match streaming {
                true => serve_streaming(stream, &options).await,
                false => serve(stream, &options).await,
            };
            if let Err(e) = served {
                eprintln!("{e}");
            }
        });
    }
}

async fn serve(stream: TcpStream, options: &Options) -> ws_tokio::Result<()> {
    stream.set_nodelay(true)?;
    let mut ws = ws_tokio::accept_with(stream, options).await?;
    while let Some(message) = ws.recv().await {
        ws.send(message?).await?;
    }
    Ok(())
}

/// Echoes each message piece by piece as it arrives, never holding it.
async fn serve_streaming(stream: TcpStream, options: &Options) -> ws_tokio::Result<()> {
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = ws_tokio::accept_with(stream, options).await?.split();
    loop {
        let Some(message) = reader.recv_stream().await else {
            return Ok(());
        };
        let mut message = message?;
        let mut echo = writer.send_stream(message.is_text());
        while let Some(piece) = message.next_piece().await {
            echo.write_all(&piece?).await?;
        }
        echo.finish().await?;
    }
}
