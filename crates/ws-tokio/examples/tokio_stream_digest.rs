//! Receives messages of any size in bounded memory: every message is read
//! piece by piece as it arrives ([`WebSocket::recv_stream`]), fed into a
//! SHA-256 and dropped, and answered with one text message
//! `<length in bytes> <sha256 hex>`. permessage-deflate is negotiated as by
//! default (a compressed message is inflated a piece at a time). One task
//! per connection.
//!
//! ```text
//! cargo run --release -p ws-tokio --example tokio_stream_digest -- 127.0.0.1:9004
//! ```

use core::fmt::Write as _;

use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use ws_tokio::{Config, Message, Options, Streaming, WebSocket};

#[tokio::main]
async fn main() -> ws_tokio::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9004".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("stream digest server on ws://{}", listener.local_addr()?);
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = serve(stream).await {
                eprintln!("{peer}: {e}");
            }
        });
    }
}

async fn serve(stream: TcpStream) -> ws_tokio::Result<()> {
    stream.set_nodelay(true)?;
    // Every message in pieces; the default options offer and accept
    // permessage-deflate.
    let config = Config::default().with_streaming(Streaming::Always);
    let mut ws = ws_tokio::accept_with(stream, &Options::default().with_config(config)).await?;
    // `let ... else` rather than `while let`: the stream borrows `ws`, which
    // the loop body uses again to answer.
    loop {
        let Some(message) = ws.recv_stream().await else {
            break;
        };
        let (len, digest) = {
            let mut message = message?;
            let (mut len, mut hash) = (0u64, Sha256::new());
            while let Some(piece) = message.next_piece().await {
                let piece = piece?;
                len += piece.len() as u64;
                hash.update(&piece);
            }
            (len, hash.finalize())
        };
        let mut answer = format!("{len} ");
        for byte in digest {
            let _ = write!(answer, "{byte:02x}");
        }
        ws.send(Message::text(answer)).await?;
    }
    report(&ws);
    Ok(())
}

fn report(ws: &WebSocket<TcpStream>) {
    if let Some(frame) = ws.close_frame() {
        println!("closed: {} {:?}", frame.code, frame.reason);
    }
}
