//! Connects, sends a couple of messages, prints the echoes and closes.
//!
//! ```text
//! cargo run -p ws-compio --example compio_echo_server &
//! cargo run -p ws-compio --example compio_client -- ws://127.0.0.1:9002
//! ```

use ws_compio::{CloseCode, Message};

#[compio::main]
async fn main() -> ws_compio::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9002".into());
    let (mut ws, response) = ws_compio::connect(&url).await?;
    println!("connected to {url} (subprotocol {:?})", response.protocol);
    let messages = [
        Message::text("hello"),
        Message::binary(vec![1, 2, 3]),
        Message::text("x".repeat(70_000)),
    ];
    for message in messages {
        ws.send(message).await?;
        match ws.recv().await {
            Some(echo) => {
                let echo = echo?;
                let preview: String = format!("{echo:?}").chars().take(40).collect();
                println!("echo: {} bytes {preview}...", echo.len());
            }
            None => break,
        }
    }
    ws.close(CloseCode::NORMAL, "done").await?;
    if let Some(frame) = ws.close_frame() {
        println!("closed: {} {:?}", frame.code, frame.reason);
    }
    Ok(())
}
