//! One module per subcommand; each exposes `XxxArgs` (clap) and `run(args)`.

pub mod eval;
pub mod predict;
pub mod score;
mod tagger_common;
pub mod train;

/// The error type every subcommand returns.
pub type CliError = Box<dyn std::error::Error + Send + Sync + 'static>;
