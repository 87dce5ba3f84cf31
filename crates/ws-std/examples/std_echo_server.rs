//! An echo server, one thread per connection.
//!
//! ```text
//! cargo run -p ws-std --example std_echo_server -- 127.0.0.1:9002
//! ```

use std::{net::TcpListener, thread};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let listener = TcpListener::bind(&addr)?;
    println!("echo server on ws://{}", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        thread::spawn(move || {
            if let Err(e) = serve(stream) {
                eprintln!("connection ended with an error: {e}");
            }
        });
    }
    Ok(())
}

fn serve(stream: std::net::TcpStream) -> ws_std::Result<()> {
    let peer = stream.peer_addr()?;
    stream.set_nodelay(true)?;
    let mut ws = ws_std::accept(stream)?;
    while let Some(message) = ws.recv() {
        ws.send(message?)?;
    }
    println!("{peer} closed: {:?}", ws.close_frame());
    Ok(())
}
