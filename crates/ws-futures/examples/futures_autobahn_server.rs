//! Echo server for the Autobahn|Testsuite fuzzingclient.
//!
//! ```text
//! cargo run --release -p ws-futures --example futures_autobahn_server -- 127.0.0.1:9001
//! ```

use core::error::Error;

use smol::net::{TcpListener, TcpStream};
use ws_futures::{Config, Options};

fn main() -> Result<(), Box<dyn Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    smol::block_on(listen(&addr))
}

async fn listen(addr: &str) -> Result<(), Box<dyn Error>> {
    let listener = TcpListener::bind(addr).await?;
    println!("autobahn echo server on ws://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        smol::spawn(async move {
            // Protocol errors are what many cases test for: not worth a line each.
            let _ = serve(stream).await;
        })
        .detach();
    }
}

async fn serve(stream: TcpStream) -> ws_futures::Result<()> {
    stream.set_nodelay(true)?;
    let config = Config::default()
        .with_max_frame_size(64 << 20)
        .with_max_message_size(64 << 20);
    let options = Options::default().with_config(config);
    let mut ws = ws_futures::accept_with(stream, &options).await?;
    while let Some(message) = ws.recv().await {
        ws.send(message?).await?;
    }
    Ok(())
}
