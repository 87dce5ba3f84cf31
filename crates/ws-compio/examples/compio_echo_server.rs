//! An echo server, one task per connection, on compio (io_uring, or its
//! polling driver where io_uring is unavailable).
//!
//! ```text
//! cargo run -p ws-compio --example compio_echo_server -- --listen 127.0.0.1:9002
//! ```
//!
//! The address may also be given alone (`-- 127.0.0.1:9002`), as for the
//! other adapters' echo servers.

use compio::net::{TcpListener, TcpStream};

#[compio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = match args.next() {
        Some(flag) if flag == "--listen" => args.next(),
        other => other,
    };
    let addr = addr.unwrap_or_else(|| "127.0.0.1:9002".into());
    let listener = TcpListener::bind(&addr).await?;
    let driver = compio::runtime::Runtime::with_current(|rt| rt.driver_type());
    println!(
        "echo server on ws://{} ({driver:?} driver)",
        listener.local_addr()?
    );
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        compio::runtime::spawn(async move {
            if let Err(e) = serve(stream, peer).await {
                eprintln!("connection ended with an error: {e}");
            }
        })
        .detach();
    }
}

async fn serve(stream: TcpStream, peer: std::net::SocketAddr) -> ws_compio::Result<()> {
    stream.set_nodelay(true)?;
    let mut ws = ws_compio::accept(stream).await?;
    while let Some(message) = ws.recv().await {
        ws.send(message?).await?;
    }
    println!("{peer} closed: {:?}", ws.close_frame());
    Ok(())
}
