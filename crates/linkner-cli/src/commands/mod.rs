//! One module per subcommand; each exposes `XxxArgs` (clap) and `run(args)`.

pub mod annotate;
pub mod bench;
pub mod bench_stream;
pub mod eval;
pub mod frontier;
pub mod input;
pub mod link;
pub mod llm_failures;
mod pipeline_args;
pub mod predict;
pub mod report;
pub mod schema;
pub mod score;
pub mod serve;
mod tagger_common;
pub mod train;
pub mod tune;

/// The error type every subcommand returns.
pub type CliError = Box<dyn std::error::Error + Send + Sync + 'static>;
