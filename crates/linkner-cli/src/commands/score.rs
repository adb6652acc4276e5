//! `linkner score`.

use clap::Args;

use super::CliError;

/// Arguments of `linkner score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Gold file.
    #[arg(long)]
    pub gold: std::path::PathBuf,
    /// Prediction file.
    #[arg(long)]
    pub pred: std::path::PathBuf,
}

/// Runs `linkner score`.
pub fn run(_args: ScoreArgs) -> Result<(), CliError> {
    Err("not implemented yet".into())
}
