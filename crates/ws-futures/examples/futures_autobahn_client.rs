//! Client for the Autobahn|Testsuite fuzzingserver.
//!
//! ```text
//! cargo run --release -p ws-futures --example futures_autobahn_client -- ws://127.0.0.1:9001 ws-futures
//! ```

use core::error::Error;

use ws_futures::{ClientRequest, Config, Options};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let agent = args.next().unwrap_or_else(|| "ws-futures".into());
    let config = Config::default()
        .with_max_frame_size(64 << 20)
        .with_max_message_size(64 << 20);
    let options = Options::default().with_config(config);
    smol::block_on(async {
        let count: u32 = {
            let request = ClientRequest::new(&format!("{base}/getCaseCount"))?;
            let (mut ws, _) = ws_futures::connect_with(request, &options).await?;
            let message = ws.recv().await.ok_or("no case count")??;
            while ws.recv().await.is_some() {}
            core::str::from_utf8(message.as_bytes())?.trim().parse()?
        };
        println!("{count} cases");
        for case in 1..=count {
            let url = format!("{base}/runCase?case={case}&agent={agent}");
            if let Err(e) = run_case(&url, &options).await {
                println!("case {case}: {e}");
            }
        }
        let request = ClientRequest::new(&format!("{base}/updateReports?agent={agent}"))?;
        let (mut ws, _) = ws_futures::connect_with(request, &options).await?;
        while ws.recv().await.is_some() {}
        println!("reports updated");
        Ok(())
    })
}

/// Echoes every message of one case until the server closes.
async fn run_case(url: &str, options: &Options) -> ws_futures::Result<()> {
    let (mut ws, _) = ws_futures::connect_with(ClientRequest::new(url)?, options).await?;
    while let Some(message) = ws.recv().await {
        ws.send(message?).await?;
    }
    Ok(())
}
