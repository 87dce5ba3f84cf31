//! `wsx bench`.

use std::process::ExitCode;

/// Arguments of `wsx bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `wsx bench`.
pub(crate) async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
