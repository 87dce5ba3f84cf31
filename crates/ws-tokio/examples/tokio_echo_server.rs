//! An echo server.
//!
//! ```text
//! cargo run -p ws-tokio --example tokio_echo_server -- 127.0.0.1:9002
//! ```

use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ws_tokio::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("echo server on ws://{}", listener.local_addr()?);
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = serve(stream).await {
                eprintln!("{peer}: {e}");
            }
        });
    }
}

async fn serve(stream: tokio::net::TcpStream) -> ws_tokio::Result<()> {
    stream.set_nodelay(true)?;
    let mut ws = ws_tokio::accept(stream).await?;
    while let Some(message) = ws.recv().await {
        ws.send(message?).await?;
    }
    if let Some(frame) = ws.close_frame() {
        println!("closed: {} {:?}", frame.code, frame.reason);
    }
    Ok(())
}
