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
use futures_util::StreamExt;
use linkner::{Annotation, StreamOrder};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::CliError;
use super::input::source_name;
use super::llm_failures::{FailureArgs, FailureTally};
use super::pipeline_args::PipelineArgs;

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

/// Reads `reader` line by line (`\n` or `\r\n`) into `tx`, each line with its number; a line
/// longer than `limit` bytes is read to its end in constant memory and becomes an error.
fn read_lines(
    mut reader: Box<dyn BufRead + Send>,
    name: &str,
    format: InputFormat,
    limit: usize,
    tx: &mpsc::Sender<Read>,
) {
    let mut n = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let (complete, too_long) = match read_capped(&mut reader, &mut buf, limit) {
            Ok(r) => r,
            Err(e) => {
                let id = LineId {
                    line: n + 1,
                    id: None,
                };
                let _ = tx.blocking_send((id, Err(format!("{name}: line {}: {e}", n + 1))));
                return;
            }
        };
        if !complete && buf.is_empty() && !too_long {
            return;
        }
        n += 1;
        let item = parse_line(&buf, too_long, n, name, format, limit);
        if tx.blocking_send(item).is_err() {
            return;
        }
        if !complete {
            return;
        }
    }
}

/// Reads one line into `buf` (without its end), keeping at most `limit` bytes. Returns
/// (ended by a newline, longer than the limit).
fn read_capped(
    reader: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<(bool, bool)> {
    let mut too_long = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok((false, too_long));
        }
        let (take, newline) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            let room = limit.saturating_sub(buf.len());
            if take > room {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        reader.consume(take + usize::from(newline));
        if newline {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok((true, too_long));
        }
    }
}

/// One line's document, or the located reason it is none.
fn parse_line(
    bytes: &[u8],
    too_long: bool,
    line: u64,
    name: &str,
    format: InputFormat,
    limit: usize,
) -> Read {
    let at = |m: String| format!("{name}: line {line}: {m}");
    let plain = LineId { line, id: None };
    if too_long {
        return (
            plain,
            Err(at(format!(
                "longer than {limit} bytes (--max-line-bytes); line skipped"
            ))),
        );
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return (
                plain,
                Err(at(format!(
                    "invalid UTF-8 at byte {} of the line",
                    e.valid_up_to() + 1
                ))),
            );
        }
    };
    match format {
        InputFormat::Text => (plain, Ok(text.to_string())),
        InputFormat::Jsonl => parse_json_line(text, line, &at),
    }
}

/// `{"id": …, "text": "…"}`.
fn parse_json_line(text: &str, line: u64, at: &dyn Fn(String) -> String) -> Read {
    let plain = LineId { line, id: None };
    if text.trim().is_empty() {
        return (
            plain,
            Err(at(
                "empty line; expected a JSON object {\"id\": …, \"text\": \"…\"}".into(),
            )),
        );
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return (plain, Err(at(format!("not JSON: {e}")))),
    };
    let Value::Object(mut map) = value else {
        return (
            plain,
            Err(at(
                "expected a JSON object {\"id\": …, \"text\": \"…\"}".into()
            )),
        );
    };
    let id = LineId {
        line,
        id: map.remove("id"),
    };
    match map.remove("text") {
        Some(Value::String(t)) => (id, Ok(t)),
        Some(other) => (
            id,
            Err(at(format!(
                "field `text` must be a string, got {}",
                kind_of(&other)
            ))),
        ),
        None => (id, Err(at("missing field `text` (a string)".into()))),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The record writer of `--output-format` when linkner-core writes it (not jsonl, text).
fn record_writer(
    args: &AnnotateArgs,
) -> Result<Option<Box<dyn linkner::core::io::RecordWriter>>, CliError> {
    let Some(format) = args.format.record_format() else {
        return Ok(None);
    };
    let output = args.output.as_deref().filter(|p| p.as_os_str() != "-");
    super::formats::open_record_writer(format, output, args.offsets).map(Some)
}

/// Whether the router sent an entity to the LLM.
fn routed(e: &linkner::LinkedEntity) -> bool {
    !matches!(e.provenance, linkner::Provenance::Local)
}

/// The record of an annotation: id the caller's (or `line<N>`), entities with their
/// uncertainty and whether they were routed.
fn text_record(id: &LineId, a: &Annotation) -> linkner::core::io::TextRecord {
    use linkner::core::io::{RecordEntity, TextRecord};
    let id = match &id.id {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => format!("line{}", id.line),
    };
    TextRecord {
        id: Some(id),
        text: a.sentence.text.clone(),
        tokens: Some(a.sentence.tokens.clone()),
        entities: a
            .entities
            .iter()
            .map(|e| RecordEntity {
                entity: e.entity.clone(),
                uncertainty: Some(f64::from(e.uncertainty)),
                routed: Some(routed(e)),
            })
            .collect(),
        predicted: true,
    }
}

/// Writes the records, flushed one by one.
struct Writer<'a, W: Write> {
    out: &'a mut W,
    /// The writer of a format that linkner-core writes (then `out` is not written).
    records: Option<Box<dyn linkner::core::io::RecordWriter>>,
    format: AnnotateFormat,
    on_error: OnError,
    /// `--only routed`.
    only_routed: bool,
    written: u64,
}

impl<W: Write> Writer<'_, W> {
    /// Writes the pipeline's items and the bad lines: in input order by the markers, or as
    /// they come.
    async fn run(
        &mut self,
        mut stream: linkner::Annotations<LineId>,
        mut marks: mpsc::Receiver<Marker>,
        order: Order,
    ) -> Result<(), CliError> {
        match order {
            Order::Input => {
                while let Some(mark) = marks.recv().await {
                    match mark {
                        Marker::Bad(id, message) => self.error(&id, message)?,
                        Marker::Doc => match stream.next().await {
                            Some(item) => self.item(item)?,
                            None => return Err("the pipeline ended before the input".into()),
                        },
                    }
                }
                // Documents handed over before a stop are still finished.
                while let Some(item) = stream.next().await {
                    self.item(item)?;
                }
            }
            Order::Completed => {
                let (mut marks_open, mut stream_open) = (true, true);
                while marks_open || stream_open {
                    tokio::select! {
                        mark = marks.recv(), if marks_open => match mark {
                            Some(Marker::Bad(id, message)) => self.error(&id, message)?,
                            Some(Marker::Doc) => {}
                            None => marks_open = false,
                        },
                        item = stream.next(), if stream_open => match item {
                            Some(item) => self.item(item)?,
                            None => stream_open = false,
                        },
                    }
                }
            }
        }
        Ok(())
    }

    fn item(&mut self, item: linkner::Streamed<LineId>) -> Result<(), CliError> {
        match item.result {
            Ok(a) => self.annotation(&item.id, &a),
            Err(e) => {
                let message = format!("line {}: {e}", item.id.line);
                self.error(&item.id, message)
            }
        }
    }

    fn annotation(&mut self, id: &LineId, a: &Annotation) -> Result<(), CliError> {
        let kept;
        let a = if self.only_routed {
            if !a.entities.iter().any(routed) {
                return Ok(());
            }
            let mut only = a.clone();
            only.entities.retain(routed);
            kept = only;
            &kept
        } else {
            a
        };
        if let Some(records) = &mut self.records {
            records.write(&text_record(id, a))?;
            self.written += 1;
            return Ok(());
        }
        match self.format {
            AnnotateFormat::Jsonl => {
                let mut v = serde_json::to_value(a)?;
                if let Value::Object(map) = &mut v {
                    map.insert("line".into(), id.line.into());
                    if let Some(i) = &id.id {
                        map.insert("id".into(), i.clone());
                    }
                }
                serde_json::to_writer(&mut *self.out, &v)?;
                self.out.write_all(b"\n")?;
            }
            AnnotateFormat::Text => {
                if let Some(i) = &id.id {
                    writeln!(self.out, "[{i}]")?;
                }
                self.out
                    .write_all(super::link::annotation_text(a).as_bytes())?;
            }
            _ => unreachable!("record formats are written above"),
        }
        self.written += 1;
        self.out.flush()?;
        Ok(())
    }

    fn error(&mut self, id: &LineId, message: String) -> Result<(), CliError> {
        if self.on_error == OnError::Fail {
            self.out.flush()?;
            return Err(message.into());
        }
        tracing::warn!("{message}; skipped");
        match self.format {
            AnnotateFormat::Jsonl => {
                let mut record = serde_json::json!({
                    "error": {"line": id.line, "message": message}
                });
                if let Some(i) = &id.id {
                    record["id"] = i.clone();
                }
                serde_json::to_writer(&mut *self.out, &record)?;
                self.out.write_all(b"\n")?;
            }
            AnnotateFormat::Text => writeln!(self.out, "error: {message}")?,
            // A record format has no place for an error: the warning above says it.
            _ => {}
        }
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(input: &[u8], format: InputFormat, limit: usize) -> Vec<Read> {
        let (tx, mut rx) = mpsc::channel(64);
        let reader: Box<dyn BufRead + Send> = Box::new(std::io::BufReader::with_capacity(
            8,
            std::io::Cursor::new(input.to_vec()),
        ));
        read_lines(reader, "in", format, limit, &tx);
        drop(tx);
        let mut out = Vec::new();
        while let Ok(x) = rx.try_recv() {
            out.push(x);
        }
        out
    }

    #[test]
    fn text_lines_keep_their_numbers_and_bad_ones_are_located() {
        let long = "x".repeat(40);
        let input = format!("first\r\nsecond caf\u{e9}\n{long}\n\nlast");
        let mut bytes = input.into_bytes();
        // Make line 2 invalid UTF-8.
        let at = bytes.windows(2).position(|w| w == "é".as_bytes()).unwrap();
        bytes[at + 1] = b'(';
        let got = lines_of(&bytes, InputFormat::Text, 32);
        let lines: Vec<u64> = got.iter().map(|(id, _)| id.line).collect();
        assert_eq!(lines, vec![1, 2, 3, 4, 5]);
        assert_eq!(got[0].1, Ok("first".into()));
        assert_eq!(
            got[1].1,
            Err("in: line 2: invalid UTF-8 at byte 11 of the line".into())
        );
        assert!(
            got[2]
                .1
                .as_ref()
                .unwrap_err()
                .contains("line 3: longer than 32 bytes")
        );
        assert_eq!(got[3].1, Ok(String::new()));
        assert_eq!(got[4].1, Ok("last".into()));
        assert!(lines_of(b"", InputFormat::Text, 32).is_empty());
    }

    #[test]
    fn jsonl_lines_pass_their_id_and_refuse_what_is_not_a_document() {
        let input = br#"{"id": 7, "text": "Rome"}
{"text": "no id"}

{"id": "x", "text": 3}
[1, 2]
{"id": "y"}
{"id": {"k": 1}, "text": "ok"
"#;
        let got = lines_of(input, InputFormat::Jsonl, 1 << 20);
        assert_eq!(got.len(), 7);
        assert_eq!(got[0].0.id, Some(Value::from(7)));
        assert_eq!(got[0].1, Ok("Rome".into()));
        assert_eq!(
            (got[1].0.id.clone(), got[1].1.clone()),
            (None, Ok("no id".into()))
        );
        let err = |i: usize| got[i].1.clone().unwrap_err();
        assert!(err(2).contains("line 3: empty line"), "{}", err(2));
        assert!(err(3).contains("line 4: field `text` must be a string, got a number"));
        assert_eq!(got[3].0.id, Some(Value::from("x")), "the id still travels");
        assert!(err(4).contains("line 5: expected a JSON object"));
        assert!(err(5).contains("line 6: missing field `text`"));
        assert!(err(6).contains("line 7: not JSON"));
    }
}
