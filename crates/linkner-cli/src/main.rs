//! `linkner`: the command line of the linkner workspace.
//!
//! One binary, one subcommand per job: `score` (span F1 of predictions against gold), and, as the
//! other crates land, `train`, `predict`, `eval`, `link`, `annotate` and `bench`. Every
//! subcommand prints a human table by default and one JSON object with `--json`.

mod commands;
mod malloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// LinkNER in Rust: a local span tagger whose uncertain entities are settled by an LLM.
#[derive(Debug, Parser)]
#[command(name = "linkner", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Entity-level precision / recall / F1 of a prediction file against a gold file.
    Score(commands::score::ScoreArgs),
    /// Fine-tune a SpanNER tagger on a Hugging Face encoder (progress bar, early stopping).
    Train(commands::train::TrainArgs),
    /// Tag raw text or a dataset file with a trained tagger (JSONL with label distributions,
    /// or CoNLL).
    Predict(commands::predict::PredictArgs),
    /// Precision / recall / F1 of a trained tagger on labelled data.
    Eval(commands::eval::EvalArgs),
    /// Benchmarks against the Python/PyTorch peer (tagger inference, training).
    Bench(commands::bench::BenchArgs),
    /// Local-only vs linked (local + LLM) F1 on labelled data, with the oracle ceiling of the
    /// routing, % routed, LLM calls, cache hits, tokens and time.
    Link(commands::link::LinkArgs),
    /// Annotate plain text (one document per line) with the whole pipeline; JSONL out.
    Annotate(commands::link::AnnotateArgs),
    /// Regenerate docs/results.md and its plots: local, linked and oracle F1 on six sets, and
    /// F1 against the routing threshold for every estimator.
    Report(commands::report::ReportArgs),
}

fn main() -> ExitCode {
    malloc::tune();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LINKNER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Score(args) => commands::score::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Predict(args) => commands::predict::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Link(args) => commands::link::run(args),
        Command::Annotate(args) => commands::link::run_annotate(args),
        Command::Report(args) => commands::report::run(args),
        Command::Bench(args) => commands::bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(e.as_ref());
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
