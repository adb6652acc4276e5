//! `linkner train`: fine-tunes a SpanNER tagger on a Hugging Face encoder.
//!
//! ```text
//! linkner train --train train.txt --dev dev.txt --encoder DIR --out model/ [--loss ce|evidential]
//! ```
//!
//! Shows a progress bar (loss, sentences/s, ETA), prints one line per epoch (dev P/R/F1), and
//! saves the best-on-dev tagger (weights, config, label schema, tokenizer) into `--out`.
//!
//! The label schema is `--schema` (a built-in name or a schema file), else inferred from the
//! training file; the checkpoint stores it and every later command reads it from there. A label
//! of the dev file outside the schema is an error naming the file, the line and the label.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use linkner::core::{Document, LabelSchema};
use linkner::tagger::train::{EpochReport, TrainObserver, train_documents};
use linkner::tagger::{
    DeviceSpec, DocumentContext, HeadOptions, LossConfig, SpanTagger, TrainConfig,
};

use super::CliError;
use super::tagger_common::{count_sentences, schema_from_data, truncate_sentences};

/// Training losses on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LossArg {
    /// Cross-entropy over spans (non-entity spans down-weighted).
    Ce,
    /// Evidential deep learning (E-NER): Dirichlet outputs, usable by the evidential estimator.
    Evidential,
}

/// Arguments of `linkner train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training data (CoNLL, spanner JSON or JSONL).
    #[arg(long, value_name = "FILE")]
    pub train: PathBuf,
    /// Development data for early stopping and model selection.
    #[arg(long, value_name = "FILE")]
    pub dev: Option<PathBuf>,
    /// Hugging Face encoder folder (`config.json`, `model.safetensors`, `tokenizer.json`);
    /// default: all-MiniLM-L6-v2 as `scripts/setup-python.sh` installs it.
    #[arg(long, value_name = "DIR", env = "LINKNER_ENCODER")]
    pub encoder: Option<PathBuf>,
    /// Output folder of the trained tagger.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Label schema: a built-in name (conll03, wnut17, twitterner, ontonotes5) or a JSON/TOML
    /// schema file (see `linkner schema`). Without it, the schema is inferred from the training
    /// file's tags (a built-in one when the types are exactly its types).
    #[arg(long, value_name = "NAME|FILE")]
    pub schema: Option<String>,
    /// How both data files are read (format and reader options).
    #[command(flatten)]
    pub formats: super::formats::DataArgs,
    /// Training loss.
    #[arg(long, value_enum, default_value_t = LossArg::Ce)]
    pub loss: LossArg,
    /// Maximum number of epochs.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Sentences (windows) per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Peak learning rate of the encoder.
    #[arg(long, default_value_t = 5e-5)]
    pub lr: f64,
    /// Learning-rate multiplier of the new span classifier.
    #[arg(long, default_value_t = 20.0)]
    pub head_lr_multiplier: f64,
    /// Fraction of steps of linear warm-up.
    #[arg(long, default_value_t = 0.1)]
    pub warmup: f64,
    /// Weight of non-entity spans in the loss.
    #[arg(long, default_value_t = 0.5)]
    pub non_entity_weight: f32,
    /// Longest span, in words.
    #[arg(long, default_value_t = 5)]
    pub max_span_width: usize,
    /// Stop after this many epochs without a better dev F1 (0: never).
    #[arg(long, default_value_t = 2)]
    pub patience: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Encode every sentence alone: no context from the neighbouring sentences of a document
    /// (stored in the checkpoint, so inference does the same).
    #[arg(long)]
    pub no_doc_context: bool,
    /// Document context: most sub-tokens of the sentences packed into one window core.
    #[arg(long, value_name = "N", default_value_t = DocumentContext::on().core_tokens)]
    pub doc_core_tokens: usize,
    /// Document context: sub-tokens of context from the neighbouring sentences on each side.
    #[arg(long, value_name = "N", default_value_t = DocumentContext::on().margin_tokens)]
    pub doc_margin_tokens: usize,
    /// Where the tagger runs (`--device`, `--threads`).
    #[command(flatten)]
    pub run_on: super::tagger_common::DeviceArgs,
    /// Use only the first N training sentences (quick runs).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print the training report as JSON at the end.
    #[arg(long)]
    pub json: bool,
}

struct Bar {
    bar: ProgressBar,
    started: Instant,
    sentences: usize,
    loss: f64,
}

impl Bar {
    /// A bar of unknown length (set when training starts), hidden under `--quiet`.
    fn new() -> Result<Bar, CliError> {
        let bar = super::progress_bar(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} ETA {eta_precise} {msg}",
            )?
            .progress_chars("=> "),
        );
        Ok(Bar {
            bar,
            started: Instant::now(),
            sentences: 0,
            loss: 0.0,
        })
    }
}

impl TrainObserver for Bar {
    fn on_start(&mut self, epochs: usize, steps_per_epoch: usize, _sentences: usize) {
        self.bar.set_length((epochs * steps_per_epoch) as u64);
        self.started = Instant::now();
    }

    fn on_step(&mut self, epoch: usize, _step: usize, loss: f64, sentences: usize) {
        self.sentences += sentences;
        self.loss = if self.loss == 0.0 {
            loss
        } else {
            0.98 * self.loss + 0.02 * loss
        };
        let rate = self.sentences as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_message(format!(
            "epoch {epoch} loss {:.4} {rate:.1} sent/s",
            self.loss
        ));
        self.bar.inc(1);
    }

    fn on_epoch(&mut self, r: &EpochReport) {
        let dev = match (r.dev_precision, r.dev_recall, r.dev_f1) {
            (Some(p), Some(rc), Some(f)) => {
                format!(
                    " dev P {:.2} R {:.2} F1 {:.2}",
                    100.0 * p,
                    100.0 * rc,
                    100.0 * f
                )
            }
            _ => String::new(),
        };
        let line = format!(
            "epoch {}: loss {:.4}, {:.0} s, {:.1} sent/s{dev}",
            r.epoch, r.train_loss, r.train_seconds, r.sentences_per_second
        );
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

/// The schema of the training file when no `--schema` is given, with a notice on stderr.
fn inferred_schema(args: &TrainArgs) -> Result<LabelSchema, CliError> {
    let (schema, builtin) = schema_from_data(&args.train, &args.formats)?;
    if builtin {
        eprintln!(
            "no --schema given: the types of {} ({}) are those of the built-in schema `{}`; \
             using it",
            args.train.display(),
            schema.type_names().join(", "),
            schema.name
        );
    } else {
        eprintln!(
            "no --schema given: inferred schema `{}` from {}: {} (in order of first appearance).\n\
             The LLM will only see generic descriptions of these types. For better linking, \
             write them in a schema file and train (or link) with it:\n  \
             linkner schema --from-data {} > schema.toml   # edit llm_name and description\n  \
             linkner train --schema schema.toml ...",
            schema.name,
            args.train.display(),
            schema.type_names().join(", "),
            args.train.display()
        );
    }
    Ok(schema)
}

/// Runs `linkner train`.
pub fn run(args: TrainArgs) -> Result<(), CliError> {
    let schema = match &args.schema {
        Some(spec) => LabelSchema::resolve(spec)?,
        None => inferred_schema(&args)?,
    };
    let device = args.run_on.apply()?;
    let (train_set, dev_set) = read_sets(&args, &schema)?;
    let document_context = DocumentContext {
        enabled: !args.no_doc_context,
        core_tokens: args.doc_core_tokens,
        margin_tokens: args.doc_margin_tokens,
    };
    if document_context.enabled && document_context.core_tokens == 0 {
        return Err("--doc-core-tokens must be > 0".into());
    }
    print_data_note(&train_set, &document_context);
    let head = HeadOptions {
        max_span_width: args.max_span_width,
        document_context,
        ..HeadOptions::default()
    };
    let tagger = load_encoder(&args, schema, head, &device)?;
    let config = train_config(&args);
    let mut observer = Bar::new()?;
    let (best, report) = train_documents(tagger, &train_set, &dev_set, &config, &mut observer)?;
    observer.bar.finish_and_clear();
    best.save(&args.out)?;
    eprintln!(
        "saved the tagger of epoch {} to {} ({} of {} training entities wider than {} words)",
        report.best_epoch,
        args.out.display(),
        report.out_of_reach_train,
        report.train_entities,
        args.max_span_width
    );
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

/// The training documents (cut to `--limit` sentences) and the dev documents (none without
/// `--dev`).
fn read_sets(
    args: &TrainArgs,
    schema: &LabelSchema,
) -> Result<(Vec<Document>, Vec<Document>), CliError> {
    let mut train_set = args
        .formats
        .read_documents(&args.train, Some(schema.clone()))?;
    if let Some(n) = args.limit {
        truncate_sentences(&mut train_set, n);
    }
    let dev_set = match &args.dev {
        Some(p) => args.formats.read_documents(p, Some(schema.clone()))?,
        None => Vec::new(),
    };
    Ok((train_set, dev_set))
}

/// Says on standard error how much training data there is and whether document context is on.
fn print_data_note(train_set: &[Document], document_context: &DocumentContext) {
    let multi = |docs: &[Document]| docs.iter().filter(|d| d.sentences.len() > 1).count();
    eprintln!(
        "{} training sentences in {} documents{}; document context {}",
        count_sentences(train_set),
        train_set.len(),
        if multi(train_set) == 0 {
            " (the file marks none: every sentence is read alone)"
        } else {
            ""
        },
        if document_context.enabled {
            format!(
                "on (cores of up to {} sub-tokens, {} of context on each side)",
                document_context.core_tokens, document_context.margin_tokens
            )
        } else {
            "off".to_string()
        }
    );
}

/// A fresh span tagger on the encoder of `--encoder` (or the default MiniLM), saying what was
/// loaded.
fn load_encoder(
    args: &TrainArgs,
    schema: LabelSchema,
    head: HeadOptions,
    device: &DeviceSpec,
) -> Result<SpanTagger, CliError> {
    let encoder = match &args.encoder {
        Some(dir) => dir.clone(),
        None => linkner::tagger::default_encoder_dir().ok_or(
            "no --encoder given and all-MiniLM-L6-v2 was not found (run \
             scripts/setup-python.sh, or pass --encoder DIR / set LINKNER_ENCODER)",
        )?,
    };
    let (tagger, report) =
        SpanTagger::from_encoder_dir(&encoder, schema, head, &device.checked_device()?)?;
    eprintln!(
        "encoder {}: {} tensors loaded, {} unused ({})",
        encoder.display(),
        report.applied.len(),
        report.unused.len(),
        report.unused.join(", ")
    );
    Ok(tagger)
}

/// The trainer's settings from the flags.
fn train_config(args: &TrainArgs) -> TrainConfig {
    TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        head_lr_multiplier: args.head_lr_multiplier,
        warmup_ratio: args.warmup,
        non_entity_weight: args.non_entity_weight,
        loss: match args.loss {
            LossArg::Ce => LossConfig::Ce,
            LossArg::Evidential => LossConfig::evidential(),
        },
        seed: args.seed,
        patience: args.patience,
        ..TrainConfig::default()
    }
}
