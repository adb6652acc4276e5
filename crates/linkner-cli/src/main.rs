//! `linkner`: the command line of the linkner workspace.
//!
//! One binary, one subcommand per job: `score`, `train`, `predict`, `eval`, `link`, `annotate`,
//! `serve`, `schema`, `convert`, `tune`; the tools that measure this project (`bench`, `report`)
//! under `linkner dev`. A subcommand prints a human table by default and one JSON object with
//! the flag `--json`.

mod commands;
mod malloc;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use linkner::core::error_chain;

/// LinkNER in Rust: a local span tagger whose uncertain entities are settled by an LLM.
#[derive(Debug, Parser)]
#[command(name = "linkner", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log lines on standard error: -v info, -vv debug, -vvv trace (`LINKNER_LOG`, a
    /// tracing filter, wins when set).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Errors only: no warnings, notes or progress bars on standard error.
    #[arg(short, long, global = true)]
    quiet: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Entity-level precision / recall / F1 of a prediction file against a gold file.
    Score(commands::score::ScoreArgs),
    /// Fine-tune a SpanNER tagger on a Hugging Face encoder (progress bar, early stopping).
    Train(commands::train::TrainArgs),
    /// Tag raw text or a dataset file (any format) with a trained tagger (JSONL with label
    /// distributions, or any dataset format).
    Predict(commands::predict::PredictArgs),
    /// Precision / recall / F1 of a trained tagger on labelled data.
    Eval(commands::eval::EvalArgs),
    /// `linkner dev bench` (kept here for existing scripts).
    #[command(hide = true)]
    Bench(commands::bench::BenchArgs),
    /// Local-only vs linked (local + LLM) F1 on labelled data, with the oracle ceiling of the
    /// routing, % routed, LLM calls, cache hits, tokens and time.
    Link(commands::link::LinkArgs),
    /// Annotate a stream of documents (plain text or JSONL, one per line) with the whole
    /// pipeline; each annotation written as soon as it is ready (JSONL, text, Label Studio,
    /// spaCy, doccano, Hugging Face, CoNLL or brat out).
    Annotate(commands::annotate::AnnotateArgs),
    /// Serve the pipeline over HTTP: POST /v1/annotate (JSON) and /v1/annotate/stream
    /// (NDJSON), /healthz, /readyz, /metrics (Prometheus), /openapi.json and a page at /.
    Serve(commands::serve::ServeArgs),
    /// Convert a labelled dataset between formats (CoNLL, Hugging Face, spaCy, Label Studio,
    /// doccano, brat, JSONL).
    Convert(commands::convert::ConvertArgs),
    /// Print a label schema as an editable TOML/JSON file: inferred from labelled data
    /// (`--from-data FILE`), a built-in, a schema file (checked) or a tagger folder's.
    Schema(commands::schema::SchemaArgs),
    /// `linkner dev report` (kept here for existing scripts).
    #[command(hide = true)]
    Report(commands::report::ReportArgs),
    /// Developer tools that measure linkner itself: benchmarks against the Python peer and the
    /// whole-set results report (data from --data / LINKNER_DATA, outputs where --out says).
    #[command(subcommand)]
    Dev(DevCommand),
    /// Tune routing, merge policy, estimator and prompt on a dev split from one LLM pass per
    /// prompt variant; writes the best setting as a pipeline config.
    Tune(commands::tune::TuneArgs),
}

/// `linkner dev …`: the tools that measure this project.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run; boxing buys nothing
enum DevCommand {
    /// Benchmarks against the Python/PyTorch peer (tagger inference, training, stream).
    Bench(commands::bench::BenchArgs),
    /// The whole-set results report (the repository's docs/results.md) and its plots: local,
    /// linked and oracle F1 on six sets, and F1 against the routing threshold per estimator.
    Report(commands::report::ReportArgs),
}

/// Exit statuses: 0 success, 1 an error (printed once on standard error), 2 a usage error
/// (from clap), 3 the LLM failed for too many routed entities
/// ([`commands::llm_failures::EXIT_LLM_FAILURES`]; all output was written), 130 / 143 when
/// `annotate` was stopped by SIGINT / SIGTERM after writing what was in flight.
fn main() -> ExitCode {
    malloc::tune();
    let cli = Cli::parse();
    commands::set_quiet(cli.quiet);
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LINKNER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, never into a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // `--json` is a flag (JSON on standard output) in every command that has it; file outputs
    // are `--json-out FILE` (`report`, `tune`).
    let json_errors = std::env::args_os().skip(1).any(|a| a == "--json");
    let result = match cli.command {
        Command::Score(args) => commands::score::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Predict(args) => commands::predict::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Link(args) => commands::link::run(args),
        Command::Annotate(args) => commands::annotate::run_annotate(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Tune(args) => commands::tune::run(args),
        Command::Schema(args) => commands::schema::run(args),
        Command::Convert(args) => commands::convert::run(args),
        Command::Bench(args) | Command::Dev(DevCommand::Bench(args)) => commands::bench::run(args),
        Command::Dev(DevCommand::Report(args)) => commands::report::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(i) = e.downcast_ref::<commands::annotate::Interrupted>() {
                eprintln!("linkner: {i}");
                return ExitCode::from(u8::try_from(128 + i.signal).unwrap_or(1));
            }
            if let Some(f) = e.downcast_ref::<commands::llm_failures::LlmFailures>() {
                eprintln!("linkner: {f}");
                return ExitCode::from(commands::llm_failures::EXIT_LLM_FAILURES);
            }
            let text = error_chain(e.as_ref());
            eprintln!("error: {text}");
            if json_errors {
                println!("{}", error_json(e.as_ref(), &text));
            }
            ExitCode::FAILURE
        }
    }
}

/// The JSON object a command run with `--json` prints on standard output when it fails:
/// `{"error": {"message": <the one-line text>, "causes": [<each source's message>],
/// "exit_code": 1}}`.
fn error_json(e: &(dyn std::error::Error + 'static), text: &str) -> serde_json::Value {
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    serde_json::json!({"error": {"message": text, "causes": causes, "exit_code": 1}})
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        // Catches a subcommand flag that clashes with the global -q/-v, duplicate names, …
        super::Cli::command().debug_assert();
    }

    #[test]
    fn a_json_error_lists_every_cause() {
        // An error of the workspace that wraps another (its text holds the cause's).
        let e = linkner::LinkError::Io {
            path: "config.json".into(),
            source: std::io::Error::other("no such file"),
        };
        let v = super::error_json(&e, &error_chain(&e));
        assert_eq!(v["error"]["message"], "config.json: no such file");
        assert_eq!(v["error"]["causes"], serde_json::json!(["no such file"]));
    }
}
