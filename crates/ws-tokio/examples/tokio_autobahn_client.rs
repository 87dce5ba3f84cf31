//! Client for the Autobahn|Testsuite fuzzingserver.
//!
//! ```text
//! cargo run --release -p ws-tokio --example tokio_autobahn_client -- ws://127.0.0.1:9001 ws-tokio
//! ```

use ws_tokio::{ClientRequest, CloseCode, Config, Error, Message, Options};

#[tokio::main]
async fn main() -> ws_tokio::Result<()> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let agent = args.next().unwrap_or_else(|| env!("CARGO_PKG_NAME").into());
    let options = Options::default().with_config(
        Config::default()
            .with_max_frame_size(64 << 20)
            .with_max_message_size(64 << 20),
    );
    let connect = |path: String| {
        let options = options.clone();
        let url = format!("{base}{path}");
        async move { ws_tokio::connect_with(ClientRequest::new(&url)?, &options).await }
    };

    let (mut ws, _) = connect("/getCaseCount".into()).await?;
    let count: u32 = match ws.recv().await {
        Some(Ok(Message::Text(text))) => text.as_str().trim().parse().unwrap_or(0),
        other => return Err(std::io::Error::other(format!("no case count: {other:?}")).into()),
    };
    ws.close(CloseCode::NORMAL, "").await?;
    println!("{count} cases");

    for case in 1..=count {
        let (mut ws, _) = connect(format!("/runCase?case={case}&agent={agent}")).await?;
        if let Err(e) = echo(&mut ws).await {
            println!("case {case}: {e}");
        }
    }

    let (mut ws, _) = connect(format!("/updateReports?agent={agent}")).await?;
    ws.close(CloseCode::NORMAL, "").await?;
    println!("reports updated for {agent}");
    Ok(())
}

async fn echo(ws: &mut ws_tokio::WebSocket<ws_tokio::MaybeTlsStream>) -> Result<(), Error> {
    while let Some(message) = ws.recv().await {
        ws.send(message?).await?;
    }
    Ok(())
}
