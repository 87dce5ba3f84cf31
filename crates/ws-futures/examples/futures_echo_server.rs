//! An echo server on smol.
//!
//! ```text
//! cargo run -p ws-futures --example futures_echo_server -- 127.0.0.1:9002
//! ```

use core::error::Error;

use smol::net::{TcpListener, TcpStream};

fn main() -> Result<(), Box<dyn Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    smol::block_on(listen(&addr))
}

async fn listen(addr: &str) -> Result<(), Box<dyn Error>> {
    let listener = TcpListener::bind(addr).await?;
    println!("echo server on ws://{}", listener.local_addr()?);
    loop {
        let (stream, peer) = listener.accept().await?;
        smol::spawn(async move {
            if let Err(e) = serve(stream).await {
                eprintln!("{peer}: {e}");
            }
        })
        .detach();
    }
}

/// Echoes every message until the client closes.
async fn serve(stream: TcpStream) -> ws_futures::Result<()> {
    stream.set_nodelay(true)?;
    let mut ws = ws_futures::accept(stream).await?;
    while let Some(message) = ws.recv().await {
        ws.send(message?).await?;
    }
    Ok(())
}
