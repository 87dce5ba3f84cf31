//! `wsx serve`.

use std::process::ExitCode;

/// Arguments of `wsx serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `wsx serve`.
pub(crate) async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
