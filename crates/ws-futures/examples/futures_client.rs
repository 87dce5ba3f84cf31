//! Connects, sends a couple of messages, prints the echoes, and closes.
//!
//! ```text
//! cargo run -p ws-futures --example futures_client -- ws://127.0.0.1:9002/
//! ```

use core::error::Error;

use ws_futures::{CloseCode, Message};

fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9002/".into());
    smol::block_on(async {
        let (mut ws, response) = ws_futures::connect(&url).await?;
        println!("connected to {url}, subprotocol {:?}", response.protocol);
        for message in [Message::text("hello"), Message::binary(vec![1, 2, 3])] {
            ws.send(message).await?;
            match ws.recv().await {
                Some(echo) => println!("echo: {:?}", echo?),
                None => break,
            }
        }
        ws.close(CloseCode::NORMAL, "done").await?;
        println!("closed: {:?}", ws.close_frame());
        Ok(())
    })
}
