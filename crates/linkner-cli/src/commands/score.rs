//! `linkner score`: entity-level precision / recall / F1 of a prediction file against a gold
//! file.
//!
//! ```text
//! linkner score --gold test.txt --pred predictions.jsonl [--mode strict --scheme iob2] [--json]
//! ```
//!
//! Sentences are paired in reading order (document boundaries need not agree) and must have the
//! same number of words. A side's entities are its tags when the file has tags (CoNLL), read
//! with `--mode`; its entity spans otherwise (spanner JSON, JSONL). Scores are those of
//! `linkner_core::score` (conlleval / seqeval-exact).

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use linkner::core::io::{DataFormat, read_dataset};
use linkner::core::score::{Mode, Scores, score_documents};
use linkner::core::{Document, LabelSchema, TagScheme};

use super::CliError;
use super::formats::FormatArg;

/// Arguments of `linkner score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Gold file (CoNLL columns, LinkNER spanner JSON or JSONL).
    #[arg(long, value_name = "FILE")]
    pub gold: PathBuf,
    /// Prediction file, with the gold file's sentences in the same order.
    #[arg(long, value_name = "FILE")]
    pub pred: PathBuf,
    /// Format of both files. By default `.txt`/`.conll` files are CoNLL and any other is
    /// detected (a folder brat, Parquet hf, JSON by its keys; `.json` spanner and `.jsonl` jsonl
    /// when the keys say nothing).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<FormatArg>,
    /// Format of the gold file (overrides `--format`).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub gold_format: Option<FormatArg>,
    /// Format of the prediction file (overrides `--format`).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub pred_format: Option<FormatArg>,
    /// How entities are read from tags: `conlleval` (seqeval's default mode; any tag sequence,
    /// orphan `I-` included) or `strict` (seqeval `mode="strict"`: only well-formed chunks of
    /// `--scheme` count, a tag outside the scheme is an error).
    #[arg(long, value_enum, default_value_t = ModeArg::Conlleval)]
    pub mode: ModeArg,
    /// Tag scheme of `--mode strict`.
    #[arg(long, value_enum, default_value_t = SchemeArg::Iob2)]
    pub scheme: SchemeArg,
    /// A label schema (built-in name or JSON/TOML file): a label of either file outside it is an
    /// error naming the file, the line and the label. By default any label is scored.
    #[arg(long, value_name = "NAME|FILE")]
    pub schema: Option<String>,
    /// Print one JSON object `{"precision","recall","f1","support","predicted","correct",
    /// "per_label":{...}}` instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Scoring modes on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// conlleval / seqeval default mode.
    Conlleval,
    /// seqeval `mode="strict"` with `--scheme`.
    Strict,
}

/// Tag schemes of strict mode on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemeArg {
    /// `B-` opens every entity.
    Iob2,
    /// `B-`, `I-`, `E-`, `S-`.
    #[value(alias = "bioes")]
    Iobes,
    /// `B-` only between adjacent entities of one type.
    Iob1,
}

impl From<SchemeArg> for TagScheme {
    fn from(s: SchemeArg) -> TagScheme {
        match s {
            SchemeArg::Iob2 => TagScheme::Iob2,
            SchemeArg::Iobes => TagScheme::Bioes,
            SchemeArg::Iob1 => TagScheme::Iob1,
        }
    }
}

impl ScoreArgs {
    /// The scoring mode the arguments ask for.
    pub fn score_mode(&self) -> Mode {
        match self.mode {
            ModeArg::Conlleval => Mode::Conlleval,
            ModeArg::Strict => Mode::Strict(self.scheme.into()),
        }
    }
}

/// The format of `path`: the one given, else from the extension, else from the content.
fn resolve_format(path: &Path, given: Option<FormatArg>) -> Result<DataFormat, CliError> {
    if let Some(f) = given {
        return Ok(f.into());
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    Ok(match (ext.as_deref(), DataFormat::detect(path)?) {
        (Some("txt" | "conll" | "bio" | "tsv"), _) => DataFormat::Conll,
        // A JSON file its keys do not tell apart goes by its extension.
        (Some("json"), DataFormat::Conll) => DataFormat::Spanner,
        (Some("jsonl" | "ndjson"), DataFormat::Conll) => DataFormat::Jsonl,
        (_, detected) => detected,
    })
}

/// Reads one side, with the file named in any error.
fn read_side(
    what: &str,
    path: &Path,
    format: DataFormat,
    schema: Option<&LabelSchema>,
) -> Result<Vec<Document>, CliError> {
    read_dataset(path, Some(format), schema.cloned())
        .map_err(|e| format!("cannot read the {what} file as {format}: {e}").into())
}

/// Runs `linkner score`.
pub fn run(args: ScoreArgs) -> Result<(), CliError> {
    let mode = args.score_mode();
    let gold_format = resolve_format(&args.gold, args.gold_format.or(args.format))?;
    let pred_format = resolve_format(&args.pred, args.pred_format.or(args.format))?;
    let schema = args
        .schema
        .as_deref()
        .map(LabelSchema::resolve)
        .transpose()?;
    let gold = read_side("gold", &args.gold, gold_format, schema.as_ref())?;
    let pred = read_side("prediction", &args.pred, pred_format, schema.as_ref())?;
    let scores = score_documents(&gold, &pred, mode).map_err(|e| -> CliError {
        format!(
            "cannot score {} against {}: {e}",
            args.pred.display(),
            args.gold.display()
        )
        .into()
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&scores)?);
    } else {
        print!(
            "{}",
            report(&args, gold_format, pred_format, &gold, mode, &scores)
        );
    }
    Ok(())
}

/// The human report: what was compared, then the scores table.
fn report(
    args: &ScoreArgs,
    gold_format: DataFormat,
    pred_format: DataFormat,
    gold: &[Document],
    mode: Mode,
    scores: &Scores,
) -> String {
    let sentences: usize = gold.iter().map(|d| d.sentences.len()).sum();
    let words: usize = gold
        .iter()
        .flat_map(|d| &d.sentences)
        .map(|s| s.len())
        .sum();
    format!(
        "gold: {} ({gold_format})\npred: {} ({pred_format})\nmode: {mode}; {sentences} \
         sentences, {words} words\n\n{}\n",
        args.gold.display(),
        args.pred.display(),
        scores.table()
    )
}
