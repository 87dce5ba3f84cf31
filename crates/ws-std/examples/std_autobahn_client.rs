//! Client for the Autobahn fuzzing server (`wstest -m fuzzingserver`): runs
//! every case, echoing each message, then asks for the reports.
//!
//! ```text
//! cargo run --release -p ws-std --example std_autobahn_client -- ws://127.0.0.1:9001 ws-std
//! ```

use ws_std::{ClientRequest, Config, Options};

fn main() -> ws_std::Result<()> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let base = base.trim_end_matches('/');
    let agent = args.next().unwrap_or_else(|| "ws-std".into());
    let options = Options::default().with_config(
        Config::default()
            .with_max_frame_size(64 << 20)
            .with_max_message_size(64 << 20),
    );
    let connect =
        |path: &str| ws_std::connect_with(ClientRequest::new(&format!("{base}{path}"))?, &options);

    let (mut ws, _) = connect("/getCaseCount")?;
    let count: u32 = match ws.recv() {
        Some(message) => String::from_utf8_lossy(message?.as_bytes())
            .trim()
            .parse()
            .unwrap_or(0),
        None => 0,
    };
    drop(ws);
    println!("{count} cases");

    for case in 1..=count {
        match connect(&format!("/runCase?case={case}&agent={agent}")) {
            Ok((mut ws, _)) => {
                while let Some(Ok(message)) = ws.recv() {
                    if ws.send(message).is_err() {
                        break;
                    }
                }
            }
            Err(e) => eprintln!("case {case}: {e}"),
        }
    }

    let (mut ws, _) = connect(&format!("/updateReports?agent={agent}"))?;
    while ws.recv().is_some() {}
    println!("reports updated for {agent}");
    Ok(())
}
