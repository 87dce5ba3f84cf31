//! Client for the Autobahn fuzzing server (`wstest -m fuzzingserver`): runs
//! every case, echoing each message, then asks for the reports.
//!
//! ```text
//! cargo run --release -p ws-compio --example compio_autobahn_client -- ws://127.0.0.1:9001 ws-compio
//! ```

use ws_compio::{ClientRequest, Config, Options};

#[compio::main]
async fn main() -> ws_compio::Result<()> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let base = base.trim_end_matches('/').to_owned();
    let agent = args.next().unwrap_or_else(|| env!("CARGO_PKG_NAME").into());
    let options = Options::default().with_config(
        Config::default()
            .with_max_frame_size(64 << 20)
            .with_max_message_size(64 << 20),
    );
    let connect = async |path: &str| {
        ws_compio::connect_with(ClientRequest::new(&format!("{base}{path}"))?, &options).await
    };

    let (mut ws, _) = connect("/getCaseCount").await?;
    let count: u32 = match ws.recv().await {
        Some(message) => String::from_utf8_lossy(message?.as_bytes())
            .trim()
            .parse()
            .unwrap_or(0),
        None => 0,
    };
    drop(ws);
    println!("{count} cases");

    for case in 1..=count {
        match connect(&format!("/runCase?case={case}&agent={agent}")).await {
            Ok((mut ws, _)) => {
                while let Some(Ok(message)) = ws.recv().await {
                    if ws.send(message).await.is_err() {
                        break;
                    }
                }
            }
            Err(e) => eprintln!("case {case}: {e}"),
        }
    }

    let (mut ws, _) = connect(&format!("/updateReports?agent={agent}")).await?;
    while ws.recv().await.is_some() {}
    println!("reports updated for {agent}");
    Ok(())
}
