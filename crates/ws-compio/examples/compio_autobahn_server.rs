//! Echo server for the Autobahn fuzzing client (`wstest -m fuzzingclient`),
//! one task per connection, with 64 MiB frame and message limits.
//!
//! ```text
//! cargo run --release -p ws-compio --example compio_autobahn_server -- 127.0.0.1:9001
//! ```

use compio::net::TcpListener;
use ws_compio::{Config, Options};

#[compio::main]
async fn main() -> std::io::Result<()> {
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
    while let Ok((stream, _)) = listener.accept().await {
        let options = options.clone();
        compio::runtime::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(mut ws) = ws_compio::accept_with(stream, &options).await else {
                return;
            };
            while let Some(Ok(message)) = ws.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        })
        .detach();
    }
    Ok(())
}
