//! One module per subcommand; each exposes `XxxArgs` (clap) and `run(args)`.

pub mod score;

/// The error type every subcommand returns.
pub type CliError = Box<dyn std::error::Error + Send + Sync + 'static>;
