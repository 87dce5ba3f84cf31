//! Connects to a WebSocket URL, sends a couple of messages, prints the
//! echoes and closes.
//!
//! ```text
//! cargo run -p ws-std --example std_client -- ws://127.0.0.1:9002/
//! ```

use ws_std::{CloseCode, Message};

fn main() -> ws_std::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9002/".into());
    let (mut ws, response) = ws_std::connect(&url)?;
    println!("connected to {url}, subprotocol {:?}", response.protocol);
    let messages = [
        Message::text("hello"),
        Message::binary(vec![1, 2, 3]),
        Message::text("x".repeat(70_000)),
    ];
    for message in messages {
        ws.send(message)?;
        match ws.recv() {
            Some(echo) => {
                let echo = echo?;
                let preview: String = format!("{echo:?}").chars().take(40).collect();
                println!("echo: {} bytes {preview}...", echo.len());
            }
            None => {
                println!("the server closed: {:?}", ws.close_frame());
                return Ok(());
            }
        }
    }
    ws.close(CloseCode::NORMAL, "done")?;
    println!("closed: {:?}", ws.close_frame());
    Ok(())
}
