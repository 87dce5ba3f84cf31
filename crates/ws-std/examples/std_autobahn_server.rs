//! Echo server for the Autobahn fuzzing client (`wstest -m fuzzingclient`),
//! one thread per connection, with 64 MiB frame and message limits.
//!
//! ```text
//! cargo run --release -p ws-std --example std_autobahn_server -- 127.0.0.1:9001
//! ```

use std::{net::TcpListener, thread};

use ws_std::{Config, Options};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr)?;
    println!("autobahn echo server on ws://{}", listener.local_addr()?);
    let options = Options::default().with_config(
        Config::default()
            .with_max_frame_size(64 << 20)
            .with_max_message_size(64 << 20),
    );
    for stream in listener.incoming().flatten() {
        let options = options.clone();
        thread::spawn(move || {
            let _ = stream.set_nodelay(true);
            let Ok(mut ws) = ws_std::accept_with(stream, &options) else {
                return;
            };
            while let Some(Ok(message)) = ws.recv() {
                if ws.send(message).is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}
