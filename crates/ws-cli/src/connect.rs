//! `wsx connect`.

use std::process::ExitCode;

/// Arguments of `wsx connect`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `wsx connect`.
pub(crate) async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
