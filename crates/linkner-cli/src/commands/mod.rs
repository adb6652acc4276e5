//! One module per subcommand; each exposes `XxxArgs` (clap) and `run(args)`.

pub mod annotate;
pub mod bench;
pub mod bench_stream;
pub mod convert;
pub mod eval;
pub mod formats;
pub mod frontier;
pub mod input;
pub mod link;
pub mod llm_failures;
mod pipeline_args;
pub mod predict;
pub mod provenance;
pub mod report;
pub mod schema;
pub mod score;
pub mod serve;
mod tagger_common;
pub mod train;
pub mod tune;

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records `-q/--quiet` for the whole run (called once by `main`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `-q/--quiet` was given: no notes and no progress bars on standard error.
pub fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// A progress bar of `len` steps, drawn on standard error unless `--quiet`.
pub fn progress_bar(len: u64) -> indicatif::ProgressBar {
    if quiet() {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(len)
    }
}

/// The error type every subcommand returns.
pub type CliError = Box<dyn std::error::Error + Send + Sync + 'static>;
