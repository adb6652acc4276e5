//! `linkner eval`: entity-level precision / recall / F1 of a trained tagger on labelled data,
//! and optionally the quality of uncertainty estimators at finding its mistakes.
//!
//! ```text
//! linkner eval --model DIR --data test.txt [--json]
//!              [--estimator all|paper|NAME[,NAME...]] [--mc-samples N] [--plot OUT.png]
//! ```
//!
//! With `--estimator`, the tagger predicts once with what every estimator needs (Monte-Carlo
//! samples), every predicted entity is judged against gold (exact span and type), and each
//! estimator gets AUROC, AURC, ECE and the routed-fraction → F1 curve. Estimators that need
//! Dirichlet parameters are skipped (with a note) when the model is not evidential-trained.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use linkner::core::score::{Mode, Scorer, Scores};
use linkner::core::{Candidate, Document, Sentence, WordSpan};
use linkner::core::{LocalTagger, PredictOptions};
use linkner::tagger::{AnyTagger, DocumentContext, TaggerKind, score_tagger_documents};
use linkner_uncertainty::report::{report_from_scores, score_all};
use linkner_uncertainty::{
    EstimatorConfig, EstimatorReport, Outcome, Requirements, RiskCoverage, UncertaintyEstimator,
    judge_sentence, metrics,
};
use serde::Serialize;

use super::CliError;
use super::tagger_common::load_tagger;

/// Arguments of `linkner eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Tagger folder: a checkpoint from `linkner train`, or a Hugging Face token-classification
    /// folder (`config.json` with `id2label`, `model.safetensors`, `tokenizer.json`).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The folder's kind (`span` or `token_classification`); detected by default.
    #[arg(long, value_name = "KIND", value_parser = super::pipeline_args::kind_parser())]
    pub tagger_kind: Option<TaggerKind>,
    /// A label schema (built-in name or JSON/TOML file) with the model's types, whose names and
    /// descriptions replace the stored ones.
    #[arg(long, value_name = "NAME|FILE")]
    pub schema: Option<String>,
    /// Labelled data (CoNLL, spanner JSON or JSONL).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// How the data files are read (format and reader options).
    #[command(flatten)]
    pub formats: super::formats::DataArgs,
    /// Sentences per forward pass (default: 32 on the CPU, 256 on CUDA).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Where the tagger runs (`--device`, `--threads`).
    #[command(flatten)]
    pub run_on: super::tagger_common::DeviceArgs,
    /// Concurrent CPU streams of the forward passes (default 0: one single-threaded stream per
    /// thread; 1: every batch in turn on all the threads; see docs/tagger.md).
    #[arg(long, default_value_t = 0)]
    pub streams: usize,
    /// Encode every sentence alone even if the model was trained with document context (for
    /// comparisons; the model's own setting is the default).
    #[arg(long)]
    pub no_doc_context: bool,
    /// Float precision of the forward pass: f32 or bf16.
    #[arg(long, value_parser = super::pipeline_args::precision_parser(), default_value = "f32")]
    pub precision: linkner::tagger::Precision,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Uncertainty estimators to evaluate: `all` (every built-in and measure), `paper` (the
    /// four the paper compares), or a comma-separated list of names (`confidence`, `entropy`,
    /// `mc_dropout[:MEASURE][@N]`, `evidential[:MEASURE]`).
    #[arg(long, value_name = "all|paper|NAME[,NAME...]")]
    pub estimator: Option<String>,
    /// Monte-Carlo dropout passes for every `mc_dropout` estimator (overrides `@N`).
    #[arg(long, value_name = "N")]
    pub mc_samples: Option<usize>,
    /// Also run the encoder with dropout in the Monte-Carlo passes (slower; by default only the
    /// span classifier is stochastic).
    #[arg(long)]
    pub mc_encoder: bool,
    /// Write the risk–coverage curves of the estimators to this PNG (needs `--estimator`).
    #[arg(long, value_name = "OUT.png")]
    pub plot: Option<PathBuf>,
}

/// Timing of the deterministic pass and of the pass with Monte-Carlo samples.
#[derive(Debug, Clone, Serialize)]
pub struct PassTiming {
    /// Sentences tagged.
    pub sentences: usize,
    /// Milliseconds per sentence of one deterministic pass.
    pub deterministic_ms_per_sentence: f64,
    /// Monte-Carlo passes asked for (0: none was run).
    pub mc_samples: usize,
    /// Milliseconds per sentence of the pass with `mc_samples` stochastic passes (deterministic
    /// pass included); `None` when no estimator needs samples.
    pub mc_ms_per_sentence: Option<f64>,
    /// `mc_ms_per_sentence / deterministic_ms_per_sentence`.
    pub mc_cost_ratio: Option<f64>,
}

/// An estimator that was not evaluated, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// Estimator name.
    pub name: String,
    /// Why it was skipped.
    pub reason: String,
}

/// Parses `--estimator` (and applies `--mc-samples`).
fn parse_estimators(
    spec: &str,
    mc_samples: Option<usize>,
) -> Result<Vec<EstimatorConfig>, CliError> {
    let mut configs = match spec.trim() {
        "all" => EstimatorConfig::all(),
        "paper" => EstimatorConfig::paper_set(),
        list if list.starts_with('{') => vec![list.parse::<EstimatorConfig>()?],
        list => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse::<EstimatorConfig>)
            .collect::<Result<Vec<_>, _>>()?,
    };
    if configs.is_empty() {
        return Err("--estimator names no estimator".into());
    }
    if let Some(n) = mc_samples {
        for c in &mut configs {
            if let EstimatorConfig::McDropout { samples, .. } = c {
                *samples = n;
            }
        }
    }
    Ok(configs)
}

/// Runs `linkner eval`.
pub fn run(args: EvalArgs) -> Result<(), CliError> {
    let device = args.run_on.apply()?;
    let args = EvalArgs {
        batch_size: Some(
            args.batch_size
                .unwrap_or_else(|| linkner::tagger::default_batch_size(&device)),
        ),
        ..args
    };
    if args.plot.is_some() && args.estimator.is_none() {
        return Err("--plot needs --estimator".into());
    }
    let configs = match &args.estimator {
        Some(spec) => Some(parse_estimators(spec, args.mc_samples)?),
        None => None,
    };
    let tagger = load_tagger(
        &args.model,
        args.tagger_kind,
        args.schema.as_deref(),
        &device,
        args.precision,
    )?;
    let tagger = tagger.with_streams(args.streams);
    let tagger = if args.no_doc_context {
        tagger.with_document_context(DocumentContext::off())
    } else {
        tagger
    };
    // A label outside the model's schema is an error naming the file, the line and the label.
    let docs = args
        .formats
        .read_documents(&args.data, Some(tagger.schema().clone()))?;
    let data: Vec<Sentence> = docs.iter().flat_map(|d| d.sentences.clone()).collect();
    match configs {
        None => plain(&args, &tagger, &docs, &data),
        Some(configs) => with_estimators(&args, &tagger, &docs, &data, &configs),
    }
}

/// `linkner eval` without estimators: scores and speed.
fn plain(
    args: &EvalArgs,
    tagger: &AnyTagger,
    docs: &[Document],
    data: &[Sentence],
) -> Result<(), CliError> {
    let started = Instant::now();
    let scores = score_tagger_documents(tagger, docs, args.batch_size.unwrap_or(32))?;
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        println!("{}", serde_json::to_string(&scores)?);
    } else {
        println!("{}", scores.table());
        println!(
            "{} sentences in {:.1} s ({:.1} sentences/s)",
            data.len(),
            secs,
            data.len() as f64 / secs.max(1e-9)
        );
        print_unreachable(tagger, data);
    }
    Ok(())
}

fn print_unreachable(tagger: &AnyTagger, data: &[Sentence]) {
    let Some(width) = tagger.max_span_width() else {
        return;
    };
    let unreachable: usize = data
        .iter()
        .map(|s| linkner::tagger::span::out_of_reach(&s.spans, width))
        .sum();
    println!("{unreachable} gold entities are wider than the max span width ({width} words)");
}

/// Tags the sentences of `docs` and returns the candidates of each sentence (all documents in
/// order) and the milliseconds per sentence.
fn timed_pass(
    tagger: &AnyTagger,
    docs: &[Document],
    options: &PredictOptions,
) -> Result<(Vec<Vec<Candidate>>, f64), CliError> {
    let started = Instant::now();
    let cands: Vec<Vec<Candidate>> = tagger
        .tag_documents(docs, options)?
        .into_iter()
        .flatten()
        .collect();
    let ms = started.elapsed().as_secs_f64() * 1e3 / cands.len().max(1) as f64;
    Ok((cands, ms))
}

/// `linkner eval --estimator …`.
fn with_estimators(
    args: &EvalArgs,
    tagger: &AnyTagger,
    docs: &[Document],
    data: &[Sentence],
    configs: &[EstimatorConfig],
) -> Result<(), CliError> {
    let (mut estimators, mut skipped) = build_estimators(configs, tagger.is_evidential())?;
    let needs = estimators
        .iter()
        .fold(Requirements::none(), |acc, e| acc.union(e.requirements()));
    let (cands, timing) = estimator_passes(args, tagger, docs, data.len(), &needs)?;
    let (scores, labelled, n_gold) = judge_all(data, cands)?;

    let mut reports: Vec<EstimatorReport> = Vec::new();
    let mut curves: Vec<(String, Vec<RiskCoverage>)> = Vec::new();
    if labelled.is_empty() {
        for estimator in estimators.drain(..) {
            skipped.push(Skipped {
                name: estimator.name().to_string(),
                reason: "the tagger predicted no entity: nothing to judge".into(),
            });
        }
    }
    for estimator in &estimators {
        let items = score_all(estimator.as_ref(), &labelled)?;
        reports.push(report_from_scores(&estimator.name(), &items, n_gold)?);
        if !items.is_empty() {
            curves.push((
                estimator.name().to_string(),
                metrics::risk_coverage(&items)?,
            ));
        }
    }
    if let Some(path) = &args.plot {
        write_plot(path, &args.data, &curves)?;
    }

    if args.json {
        let mut value = serde_json::to_value(&scores)?;
        if let Some(object) = value.as_object_mut() {
            object.insert("estimators".into(), serde_json::to_value(&reports)?);
            object.insert("skipped_estimators".into(), serde_json::to_value(&skipped)?);
            object.insert("timing".into(), serde_json::to_value(&timing)?);
        }
        println!("{}", serde_json::to_string(&value)?);
    } else {
        println!("{}", scores.table());
        print_unreachable(tagger, data);
        println!();
        print_reports(&reports);
        for s in &skipped {
            println!("skipped {}: {}", s.name, s.reason);
        }
        println!();
        print_curves(&reports);
        println!();
        print_timing(&timing, args.plot.as_deref());
    }
    Ok(())
}

/// Built estimators.
type Estimators = Vec<Box<dyn UncertaintyEstimator>>;

/// Predicted entities with their judgement against gold.
type Judged = Vec<(Candidate, Outcome)>;

/// The estimators of `configs`, and those skipped because the model gives them no Dirichlet
/// parameters.
fn build_estimators(
    configs: &[EstimatorConfig],
    evidential: bool,
) -> Result<(Estimators, Vec<Skipped>), CliError> {
    let mut estimators: Estimators = Vec::new();
    let mut skipped = Vec::new();
    for config in configs {
        let estimator = config.build()?;
        if estimator.requirements().needs_alpha && !evidential {
            skipped.push(Skipped {
                name: estimator.name().to_string(),
                reason: "needs Dirichlet parameters (alpha); the model is not evidential-trained \
                         (a token-classification checkpoint never is)"
                    .into(),
            });
        } else {
            estimators.push(estimator);
        }
    }
    Ok((estimators, skipped))
}

/// The deterministic pass, and the Monte-Carlo one when an estimator needs samples: the
/// candidates the estimators judge (those of the last pass) and the timing of both.
fn estimator_passes(
    args: &EvalArgs,
    tagger: &AnyTagger,
    docs: &[Document],
    sentences: usize,
    needs: &Requirements,
) -> Result<(Vec<Vec<Candidate>>, PassTiming), CliError> {
    let base = PredictOptions {
        batch_size: args.batch_size.unwrap_or(32),
        mc_encoder: args.mc_encoder,
        ..PredictOptions::default()
    };
    let (det_cands, det_ms) = timed_pass(tagger, docs, &base)?;
    let (cands, mc_ms) = if needs.mc_samples > 0 {
        let options = PredictOptions {
            mc_samples: needs.mc_samples,
            ..base
        };
        let (cands, ms) = timed_pass(tagger, docs, &options)?;
        (cands, Some(ms))
    } else {
        (det_cands, None)
    };
    let timing = PassTiming {
        sentences,
        deterministic_ms_per_sentence: det_ms,
        mc_samples: needs.mc_samples,
        mc_ms_per_sentence: mc_ms,
        mc_cost_ratio: mc_ms.map(|m| m / det_ms.max(1e-12)),
    };
    Ok((cands, timing))
}

/// The entity scores of the candidates against gold, every predicted entity judged (exact
/// span and type), and the number of gold entities.
fn judge_all(
    data: &[Sentence],
    cands: Vec<Vec<Candidate>>,
) -> Result<(Scores, Judged, usize), CliError> {
    let mut scorer = Scorer::new(Mode::Conlleval);
    let mut labelled: Judged = Vec::new();
    let mut n_gold = 0;
    for (sentence, c) in data.iter().zip(cands) {
        let pred: Vec<WordSpan> = c.iter().map(|c| c.span.clone()).collect();
        scorer.add_spans(&sentence.spans, &pred)?;
        n_gold += sentence.spans.len();
        labelled.extend(judge_sentence(c, &sentence.spans));
    }
    Ok((scorer.finish(), labelled, n_gold))
}

/// The time per sentence of the passes, and where the plot went.
fn print_timing(timing: &PassTiming, plot: Option<&Path>) {
    println!(
        "time per sentence: {:.2} ms deterministic pass ({} sentences)",
        timing.deterministic_ms_per_sentence, timing.sentences
    );
    if let (Some(ms), Some(ratio)) = (timing.mc_ms_per_sentence, timing.mc_cost_ratio) {
        println!(
            "                   {ms:.2} ms with {} MC-dropout passes ({ratio:.2}× one pass)",
            timing.mc_samples
        );
    }
    if let Some(path) = plot {
        println!("risk–coverage plot written to {}", path.display());
    }
}

fn write_plot(
    path: &Path,
    data: &Path,
    curves: &[(String, Vec<RiskCoverage>)],
) -> Result<(), CliError> {
    // The last three path components name the set (`oov/test.txt` alone would not).
    let parts: Vec<String> = data
        .components()
        .rev()
        .take(3)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let name = parts.into_iter().rev().collect::<Vec<_>>().join("/");
    let title = format!("Risk–coverage ({name})");
    linkner_uncertainty::plot::risk_coverage_png(path, &title, curves)?;
    Ok(())
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.4}"))
}

fn print_reports(reports: &[EstimatorReport]) {
    println!(
        "{:<32} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8}",
        "estimator", "pred", "wrong", "AUROC", "AURC", "AURC*", "ECE"
    );
    for r in reports {
        println!(
            "{:<32} {:>7} {:>7} {:>8} {:>8.4} {:>8.4} {:>8.4}",
            r.name,
            r.n_predicted,
            r.n_wrong,
            fmt_opt(r.auroc),
            r.aurc,
            r.aurc_optimal,
            r.ece
        );
    }
    println!("(AURC* is the AURC of a perfect ranking; ECE of the confidence 1 − score, 15 bins)");
}

fn print_curves(reports: &[EstimatorReport]) {
    let Some(first) = reports.first() else {
        return;
    };
    println!("routed fraction → local F1 of the kept predictions (oracle F1 in parentheses)");
    print!("{:>7}", "routed");
    for r in reports {
        print!(" {:>24}", r.name);
    }
    println!();
    for (i, point) in first.curve.iter().enumerate() {
        print!("{:>7.2}", point.routed_fraction);
        for r in reports {
            match r.curve.get(i) {
                Some(p) => print!(" {:>24}", format!("{:.4} ({:.4})", p.local_f1, p.oracle_f1)),
                None => print!(" {:>24}", "-"),
            }
        }
        println!();
    }
}
