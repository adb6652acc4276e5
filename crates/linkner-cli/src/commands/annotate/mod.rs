//! `linkner annotate`: a stream of documents in (plain text or JSONL, one per line, from a file
//! or standard input), one annotation out per line **as soon as it is ready**, flushed.
//!
//! ```text
//! tail -f tweets.jsonl | linkner annotate --config configs/twitterner.json --input-format jsonl \
//!     --latency-budget-ms 2000 --llm-budget 4 [--order completed] [--max-wait-ms 10]
//! ```
//!
//! The input is read on a thread of its own, line by line, and fed to the library's stream
//! path ([`linkner::Pipeline::stream`]): micro-batched tagging, LLM calls under the routing
//! budget, bounded memory whatever the length of the input. A line that cannot be read (not
//! UTF-8, not a JSON object with a `text`, longer than `--max-line-bytes`) is an error of that
//! line only: `--on-error skip` writes an error record in its place and goes on, `fail` stops
//! after writing everything before it. On SIGINT or SIGTERM the command stops reading, finishes
//! and writes the documents already read, and exits with 130 or 143.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use clap::Args;
use linkner::StreamOrder;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::CliError;
use super::input::source_name;
use super::llm_failures::{FailureArgs, FailureTally};
use super::pipeline_args::PipelineArgs;

mod lines;
mod output;

use lines::read_lines;
use output::{Writer, record_writer};

/// Arguments of `linkner annotate`.
#[derive(Debug, Args)]
pub struct AnnotateArgs {
    /// The pipeline (tagger, estimator, policy, LLM).
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Input, one document per line; standard input when absent or `-`.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// How the input lines are read.
    #[arg(long, value_enum, default_value_t = InputFormat::Text)]
    pub input_format: InputFormat,
    /// JSONL output (one annotation per input line); standard output when absent.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print the run statistics to stderr at the end.
    #[arg(long)]
    pub stats: bool,
    /// Output format.
    #[arg(long = "output-format", alias = "format", value_enum, default_value_t = AnnotateFormat::Jsonl)]
    pub format: AnnotateFormat,
    /// The unit of written offsets (default: the format's own; utf16 for label-studio; jsonl
    /// and text are always chars).
    #[arg(long, value_enum, value_name = "UNIT")]
    pub offsets: Option<super::formats::OffsetsArg>,
    /// Which entities are written: `all`, or only those the router sent to the LLM (and only
    /// the documents that have one): what a team reviews, e.g. in Label Studio.
    #[arg(long, value_enum, default_value_t = Only::All)]
    pub only: Only,
    /// What a line that cannot be annotated does (not UTF-8, not JSON, too long, or its tagging
    /// failed): `fail` stops the run naming the line; `skip` writes an error record in its
    /// place (`{"error": {"line": N, "message": …}}`) and goes on.
    #[arg(long, value_enum, default_value_t = OnError::Fail)]
    pub on_error: OnError,
    /// Output order: `input` (each line waits for the lines before it) or `completed` (each as
    /// soon as it is ready; records carry `line` and `id`).
    #[arg(long, value_enum, default_value_t = Order::Input)]
    pub order: Order,
    /// How long a tagger batch waits for more lines after its first, in milliseconds (default:
    /// the config's `pipeline.stream_max_wait_ms`, 10).
    #[arg(long, value_name = "MS")]
    pub max_wait_ms: Option<u64>,
    /// Longest input line in bytes; a longer one is an error of that line (read and dropped
    /// in constant memory).
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
    pub max_line_bytes: usize,
    /// When the LLM side failed.
    #[command(flatten)]
    pub failures: FailureArgs,
}

/// How `annotate` reads its input lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// Each line is a document (an empty line gives an annotation without entities).
    Text,
    /// Each line is `{"id": …, "text": "…"}`; the id (any JSON value, optional) is passed
    /// through to the output record.
    Jsonl,
}

/// What `linkner annotate` does with a line it cannot annotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnError {
    /// Stop with an error naming the line.
    Fail,
    /// Write an error record for the line and go on.
    Skip,
}

/// Output order of `annotate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    /// Input order.
    Input,
    /// As completed.
    Completed,
}

/// Output formats of `linkner annotate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AnnotateFormat {
    /// One JSON annotation per input line, with `line` (and `id` when the input gave one).
    Jsonl,
    /// The text, then one line per entity (char span, text, label, uncertainty, provenance).
    Text,
    /// Label Studio tasks with predictions (uncertainty as region score), to import for review.
    LabelStudio,
    /// spaCy Doc.to_json documents, one per line.
    Spacy,
    /// doccano JSONL.
    Doccano,
    /// Hugging Face datasets JSON lines (tokens + ner_tags).
    Hf,
    /// CoNLL (word and IOB2 tag).
    Conll,
    /// brat standoff folder (needs --output DIR).
    Brat,
}

impl AnnotateFormat {
    /// The record format of the formats written by linkner-core's record writers.
    fn record_format(self) -> Option<linkner::core::io::DataFormat> {
        use linkner::core::io::DataFormat;
        Some(match self {
            AnnotateFormat::Jsonl | AnnotateFormat::Text => return None,
            AnnotateFormat::LabelStudio => DataFormat::LabelStudio,
            AnnotateFormat::Spacy => DataFormat::Spacy,
            AnnotateFormat::Doccano => DataFormat::Doccano,
            AnnotateFormat::Hf => DataFormat::Hf,
            AnnotateFormat::Conll => DataFormat::Conll,
            AnnotateFormat::Brat => DataFormat::Brat,
        })
    }
}

/// Which entities `linkner annotate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// Every entity of every document.
    All,
    /// The entities the router sent to the LLM, in the documents that have one.
    Routed,
}

/// `linkner annotate` stopped by a signal after writing what was in flight: the exit status is
/// `128 + signal`.
#[derive(Debug)]
pub struct Interrupted {
    /// The signal number (2 SIGINT, 15 SIGTERM).
    pub signal: i32,
    /// Annotations written.
    pub written: u64,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = if self.signal == 2 {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        write!(
            f,
            "stopped by {name} after writing {} annotations (everything read was finished)",
            self.written
        )
    }
}

impl std::error::Error for Interrupted {}

/// The id a document carries through the stream: its line and the caller's id.
#[derive(Debug, Clone)]
struct LineId {
    line: u64,
    id: Option<Value>,
}

/// One line as read: the document, or why it cannot be one.
type Read = (LineId, Result<String, String>);

/// What the writer is told, in input order.
enum Marker {
    /// A document that went to the pipeline.
    Doc,
    /// A line that could not be read (its id and the message).
    Bad(LineId, String),
}

/// Runs `linkner annotate`.
pub fn run_annotate(args: AnnotateArgs) -> Result<(), CliError> {
    let mut config = args.pipeline.link_config()?;
    if let Some(ms) = args.max_wait_ms {
        config.pipeline.stream_max_wait_ms = ms;
    }
    config.pipeline.stream_order = match args.order {
        Order::Input => StreamOrder::Input,
        Order::Completed => StreamOrder::Completed,
    };
    let input = args.input.clone().filter(|p| p.as_os_str() != "-");
    let source = source_name(input.as_deref());
    // Open the input before the model loads: a missing file is said at once.
    let reader: Box<dyn BufRead + Send> = match &input {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).map_err(|e| format!("{source}: {e}"))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let records = record_writer(&args)?;
    let pipeline = args.pipeline.build(&config, None)?;
    let out: Box<dyn Write> = match &args.output {
        _ if records.is_some() => Box::new(std::io::sink()),
        Some(path) => {
            Box::new(std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    let rt = super::link::runtime()?;
    let written = rt.block_on(async {
        let (lines_tx, lines_rx) = mpsc::channel::<Read>(256);
        let format = args.input_format;
        let limit = args.max_line_bytes;
        let name = source.clone();
        // A blocking reader on its own thread: the runtime never waits for the input.
        std::thread::spawn(move || read_lines(reader, &name, format, limit, &lines_tx));
        let (stop_tx, stop_rx) = watch::channel(0i32);
        tokio::spawn(watch_signals(stop_tx));
        let (docs_tx, docs_rx) = mpsc::channel::<(LineId, String)>(64);
        let (marks_tx, marks_rx) = mpsc::channel::<Marker>(4096);
        tokio::spawn(split(lines_rx, docs_tx, marks_tx, stop_rx.clone()));
        let docs = futures_util::stream::unfold(docs_rx, |mut rx| async move {
            rx.recv().await.map(|d| (d, rx))
        });
        let stream = pipeline.stream(docs)?;
        let mut writer = Writer {
            out: &mut out,
            records,
            format: args.format,
            on_error: args.on_error,
            only_routed: args.only == Only::Routed,
            written: 0,
        };
        writer.run(stream, marks_rx, args.order).await?;
        if let Some(r) = &mut writer.records {
            r.finish()?;
        }
        let signal = *stop_rx.borrow();
        Ok::<_, CliError>((writer.written, signal))
    })?;
    out.flush()?;
    let (written, signal) = written;
    let stats = pipeline.stats();
    if args.stats {
        eprintln!("{}", serde_json::to_string(&stats)?);
    }
    if signal != 0 {
        return Err(Box::new(Interrupted { signal, written }));
    }
    let mut tally = FailureTally::default();
    tally.add_run(&stats);
    tally.check(args.failures.llm_failure_limit)
}

/// Sets `stop` to the signal number on SIGINT or SIGTERM.
async fn watch_signals(stop: watch::Sender<i32>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot listen for SIGINT/SIGTERM; they will end the run at once");
        return;
    };
    let n = tokio::select! {
        _ = int.recv() => 2,
        _ = term.recv() => 15,
    };
    let _ = stop.send(n);
}

/// Sends the readable lines to the pipeline and a marker per line to the writer, until the
/// input ends or a signal says stop.
async fn split(
    mut lines: mpsc::Receiver<Read>,
    docs: mpsc::Sender<(LineId, String)>,
    marks: mpsc::Sender<Marker>,
    mut stop: watch::Receiver<i32>,
) {
    loop {
        let line = tokio::select! {
            biased;
            _ = stop.changed() => return,
            line = lines.recv() => line,
        };
        let Some((id, line)) = line else { return };
        let sent = match line {
            Ok(text) => {
                docs.send((id, text)).await.is_ok() && marks.send(Marker::Doc).await.is_ok()
            }
            Err(message) => marks.send(Marker::Bad(id, message)).await.is_ok(),
        };
        if !sent {
            return;
        }
    }
}
