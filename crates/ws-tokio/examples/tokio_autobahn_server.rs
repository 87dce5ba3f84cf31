//! Echo server for the Autobahn|Testsuite fuzzingclient.
//!
//! ```text
//! cargo run --release -p ws-tokio --example tokio_autobahn_server -- 127.0.0.1:9001
//! ```

use tokio::net::{TcpListener, TcpStream};
use ws_tokio::{Config, Options};

#[tokio::main]
async fn main() -> ws_tokio::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("autobahn echo server on ws://{}", listener.local_addr()?);
    let options = Options::default().with_config(
        Config::default()
            .with_max_frame_size(64 << 20)
            .with_max_message_size(64 << 20),
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let options = options.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(stream, &options).await {
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
