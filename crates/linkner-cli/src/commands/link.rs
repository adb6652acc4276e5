//! `linkner link` (local-only vs linked F1 on labelled data); `linkner annotate` lives in
//! [`super::annotate`].
//!
//! ```text
//! linkner link --model DIR --data test.txt --llm-url URL [--policy 0.4|budget:10%|...]
//!              [--estimator entropy] [--oracle] [--sample N] [--json]
//! linkner annotate --model DIR --llm-url URL [--input FILE] [--output FILE]
//! ```
//!
//! `link` runs the pipeline once and scores, from the same run, the local tagger alone, the
//! linked output, and the oracle ceiling of that routing (gold labels for routed entities). With
//! `--oracle` no LLM is called at all: a [`GoldOracle`] answers, and the output says so.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::ProgressStyle;
use linkner::core::score::Scores;
use linkner::core::{Document, Sentence};
use linkner::{Annotation, GoldOracle, LinkScores, Pipeline, StatsSnapshot, score_annotations};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use super::CliError;
use super::llm_failures::{FailureArgs, FailureTally};
use super::pipeline_args::PipelineArgs;

/// Arguments of `linkner link`.
#[derive(Debug, Args)]
pub struct LinkArgs {
    /// The pipeline (tagger, estimator, policy, LLM).
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Labelled data (CoNLL, spanner JSON or JSONL).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// How the data files are read (format and reader options).
    #[command(flatten)]
    pub formats: super::formats::DataArgs,
    /// Replace the LLM by the gold label of each routed entity: the ceiling of this routing.
    /// No LLM is called; every output line says ORACLE.
    #[arg(long)]
    pub oracle: bool,
    /// Use a seeded random sample of N sentences (kept in file order) instead of all (0: all).
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// Seed of `--sample`.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Sentences per pipeline call.
    #[arg(long, default_value_t = 64)]
    pub chunk: usize,
    /// Print one JSON object instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// When the LLM side failed.
    #[command(flatten)]
    pub failures: FailureArgs,
}

/// What `linkner link` measured.
#[derive(Debug, Clone, Serialize)]
pub struct LinkReport {
    /// The data file.
    pub data: PathBuf,
    /// Sentences evaluated.
    pub sentences: usize,
    /// Sentences in the file (more than `sentences` with `--sample`).
    pub sentences_in_file: usize,
    /// True when the LLM was replaced by gold labels (`--oracle`): `scores.linked` is then the
    /// oracle, not an LLM result.
    pub oracle_mode: bool,
    /// The estimator's name.
    pub estimator: String,
    /// The routing policy.
    pub policy: String,
    /// The LLM backend's name (`oracle (gold labels)` with `--oracle`).
    pub llm: Option<String>,
    /// Local-only, linked and oracle-ceiling scores.
    pub scores: LinkScores,
    /// The pipeline's counters.
    pub stats: StatsSnapshot,
    /// The LLM backend's own counters (failures by kind, retries, circuit breaker trips,
    /// latency percentiles), when it keeps them.
    pub llm_stats: Option<linkner::llm::Stats>,
    /// Wall-clock seconds of the whole run (tagger and LLM).
    pub wall_seconds: f64,
}

/// Labelled data read for `link`, `tune` and `report`: the sentences and the documents they
/// come from (the tagger reads a document's sentences together when it has document context).
pub struct GoldSet {
    /// The documents, holding only the kept sentences (all of them without a sample). A file
    /// that marks no documents gives one document per sentence.
    pub documents: Vec<Document>,
    /// The kept sentences, in file order (the gold of the scores).
    pub sentences: Vec<Sentence>,
    /// Sentences in the file.
    pub total: usize,
}

impl GoldSet {
    /// Sentences per kept document, in order: the units of a document-level bootstrap
    /// ([`linkner::tune::paired_bootstrap_grouped`]; all ones for a file that marks no
    /// documents).
    pub fn groups(&self) -> Vec<usize> {
        self.documents.iter().map(|d| d.sentences.len()).collect()
    }
}

/// Reads labelled data with its documents; with `sample`, keeps a seeded random sample of whole
/// documents holding at least that many sentences (in file order; for a file that marks no
/// documents, exactly that many sentences).
pub fn read_gold(
    path: &std::path::Path,
    formats: &super::formats::DataArgs,
    sample: Option<usize>,
    seed: u64,
) -> Result<GoldSet, CliError> {
    let documents = formats.read_documents(path, None)?;
    let total: usize = documents.iter().map(|d| d.sentences.len()).sum();
    if total == 0 {
        return Err(format!("{}: no sentences (the data file is empty)", path.display()).into());
    }
    let documents = match sample.filter(|&n| n > 0 && n < total) {
        None => documents,
        Some(n) => {
            // Whole documents, in a seeded random order, until `n` sentences are reached: a
            // document-context tagger then sees the same context as on the whole file. (A file
            // that marks no documents has one sentence per document: a plain sentence sample.)
            let mut idx: Vec<usize> = (0..documents.len()).collect();
            idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
            let mut keep = vec![false; documents.len()];
            let mut count = 0;
            for i in idx {
                if count >= n {
                    break;
                }
                keep[i] = true;
                count += documents[i].sentences.len();
            }
            documents
                .into_iter()
                .zip(keep)
                .filter_map(|(d, k)| k.then_some(d))
                .collect()
        }
    };
    let sentences = documents
        .iter()
        .flat_map(|d| d.sentences.iter().cloned())
        .collect();
    Ok(GoldSet {
        documents,
        sentences,
        total,
    })
}

/// Annotates the sentences of `documents` with `pipeline` (whole documents per call, about
/// `chunk` sentences each), with a progress bar on stderr (routed and failed entities so far
/// in its message). One annotation per sentence, in order.
pub async fn annotate_all(
    pipeline: &Pipeline,
    documents: &[Document],
    chunk: usize,
    label: &str,
) -> Result<Vec<Annotation>, CliError> {
    let n: usize = documents.iter().map(|d| d.sentences.len()).sum();
    let bar = super::progress_bar(n as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} sentences ({per_sec}, ETA {eta}) {msg}",
        )?
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    let before = pipeline.stats();
    let mut out = Vec::with_capacity(n);
    let mut rest = documents;
    while !rest.is_empty() {
        // Whole documents, at least one, up to `chunk` sentences.
        let mut take = 0;
        let mut sentences = 0;
        while take < rest.len() && (take == 0 || sentences + rest[take].sentences.len() <= chunk) {
            sentences += rest[take].sentences.len();
            take += 1;
        }
        let (part, tail) = rest.split_at(take);
        rest = tail;
        out.extend(pipeline.annotate_documents(part.to_vec()).await?);
        let s = pipeline.stats().since(&before);
        bar.set_message(format!("routed {} · failed {}", s.routed, s.failures));
        bar.inc(sentences as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Runs the pipeline over `gold` (see [`annotate_all`]) and scores it: local, linked and oracle
/// scores, the run's counters and its wall time.
pub async fn run_and_score(
    pipeline: &Pipeline,
    gold: &GoldSet,
    chunk: usize,
    label: &str,
) -> Result<(LinkScores, StatsSnapshot, Duration), CliError> {
    let started = Instant::now();
    let before = pipeline.stats();
    let annotations = annotate_all(pipeline, &gold.documents, chunk, label).await?;
    let scores = score_annotations(&gold.sentences, &annotations)?;
    Ok((scores, pipeline.stats().since(&before), started.elapsed()))
}

/// A tokio runtime for the CLI (two workers: the tagger runs on the blocking pool).
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Runs `linkner link`.
pub fn run(args: LinkArgs) -> Result<(), CliError> {
    let gold = read_gold(&args.data, &args.formats, args.sample, args.seed)?;
    let config = args.pipeline.link_config()?;
    if let Some(note) = &config.note
        && !super::quiet()
    {
        // E.g. why a tuned config routes nothing: the run's Δ of zero is then explained.
        eprintln!("linkner: config note: {note}");
    }
    let oracle: Option<Arc<dyn linkner::llm::LlmClassifier>> = args.oracle.then(|| {
        Arc::new(GoldOracle::new(&gold.sentences)) as Arc<dyn linkner::llm::LlmClassifier>
    });
    let pipeline = args.pipeline.build(&config, oracle)?;
    // The data's labels must be the tagger's: a label outside its schema is an error naming
    // the file, the line and the label.
    args.formats
        .read(&args.data, Some(pipeline.schema().clone()))?;
    let label = if args.oracle { "link (ORACLE)" } else { "link" };
    let rt = runtime()?;
    let (scores, stats, wall) = rt.block_on(run_and_score(&pipeline, &gold, args.chunk, label))?;
    let report = LinkReport {
        data: args.data.clone(),
        sentences: gold.sentences.len(),
        sentences_in_file: gold.total,
        oracle_mode: args.oracle,
        estimator: pipeline.estimator_name().to_string(),
        policy: pipeline.policy().to_string(),
        llm: pipeline.llm_name(),
        scores,
        stats,
        llm_stats: pipeline.llm_stats(),
        wall_seconds: wall.as_secs_f64(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", human(&report));
    }
    let mut tally = FailureTally::default();
    tally.add_run(&report.stats);
    tally.check(args.failures.llm_failure_limit)
}

fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

fn score_row(name: &str, s: &Scores) -> String {
    format!(
        "{name:<58} {:>7} {:>7} {:>7}\n",
        pct(s.precision),
        pct(s.recall),
        pct(s.f1)
    )
}

/// The human-readable report.
pub fn human(r: &LinkReport) -> String {
    let mut out = String::new();
    human_heading(&mut out, r);
    human_scores(&mut out, r);
    human_stats(&mut out, r);
    out
}

/// The data, the setting and the oracle warning.
fn human_heading(out: &mut String, r: &LinkReport) {
    let sampled = if r.sentences < r.sentences_in_file {
        format!(
            " (seeded sample of {} of {} sentences)",
            r.sentences, r.sentences_in_file
        )
    } else {
        format!(" ({} sentences)", r.sentences)
    };
    out.push_str(&format!("data: {}{sampled}\n", r.data.display()));
    out.push_str(&format!(
        "estimator: {} · policy: {} · LLM: {}\n",
        r.estimator,
        r.policy,
        r.llm.as_deref().unwrap_or("none")
    ));
    if r.oracle_mode {
        out.push_str(
            "ORACLE MODE: routed entities get their GOLD label; no LLM was called. These figures \
             are the ceiling of this routing, not an LLM result.\n",
        );
    }
}

/// Local, linked and oracle scores, overall and per type.
fn human_scores(out: &mut String, r: &LinkReport) {
    out.push('\n');
    out.push_str(&format!("{:<58} {:>7} {:>7} {:>7}\n", "", "P", "R", "F1"));
    out.push_str(&score_row("local tagger only", &r.scores.local));
    let linked_name = if r.oracle_mode {
        "ORACLE: gold labels for routed entities (no LLM)"
    } else {
        "linked (local + LLM)"
    };
    out.push_str(&score_row(linked_name, &r.scores.linked));
    if !r.oracle_mode {
        out.push_str(&score_row(
            "oracle ceiling of this routing (gold labels, not an LLM)",
            &r.scores.oracle,
        ));
    }
    out.push_str(&format!(
        "\nper type F1 {:>15} {:>9} {:>9} {:>9}\n",
        "support",
        "local",
        if r.oracle_mode { "ORACLE" } else { "linked" },
        "oracle"
    ));
    for (name, local) in &r.scores.local.per_label {
        let f = |s: &Scores| {
            s.per_label
                .get(name)
                .map_or_else(|| "-".to_string(), |l| pct(l.f1))
        };
        out.push_str(&format!(
            "  {name:<10} {:>15} {:>9} {:>9} {:>9}\n",
            local.support,
            pct(local.f1),
            f(&r.scores.linked),
            f(&r.scores.oracle)
        ));
    }
}

/// What was routed, what came of it, tokens and time.
fn human_stats(out: &mut String, r: &LinkReport) {
    let s = &r.stats;
    out.push_str(&format!(
        "\nrouted {} of {} entities ({:.1} %): {} requests, {} LLM calls, {} cache hits\n",
        s.routed,
        s.entities,
        100.0 * s.routed_fraction(),
        s.llm_requests,
        s.llm_calls(),
        s.cache_hits
    ));
    out.push_str(&format!(
        "outcomes: {} confirmed, {} relabelled, {} rejected, {} failed (local label kept)\n",
        s.confirmed, s.relabelled, s.rejected, s.failures
    ));
    if let Some(ls) = r.llm_stats.as_ref().filter(|_| s.failures > 0) {
        let kinds: Vec<String> = ls
            .failures_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        out.push_str(&format!(
            "LLM failures by kind: {}; {} retries; circuit breaker opened {} times\n",
            kinds.join(", "),
            ls.retries,
            ls.breaker_trips
        ));
    }
    out.push_str(&format!(
        "tokens: {} prompt ({} reused from the server's cache), {} completion\n",
        s.prompt_tokens, s.cached_prompt_tokens, s.completion_tokens
    ));
    out.push_str(&format!(
        "time: tagger {:.1} s, estimator {:.2} s, LLM {:.1} s (summed over calls), wall {:.1} s\n",
        s.tagger_time.as_secs_f64(),
        s.estimator_time.as_secs_f64(),
        s.llm_time.as_secs_f64(),
        r.wall_seconds
    ));
}

/// The readable form of one annotation.
pub(super) fn annotation_text(a: &linkner::Annotation) -> String {
    let mut out = format!("{}\n", a.text());
    for e in a.entities.iter().chain(&a.rejected) {
        let how = match &e.provenance {
            linkner::Provenance::LlmRelabelled { from } => format!("llm_relabelled from {from}"),
            linkner::Provenance::LlmFailed { kind, error } => {
                format!("llm_failed ({}: {error})", kind.name())
            }
            linkner::Provenance::LlmRejected => format!("llm_rejected (was {})", e.local_label),
            linkner::Provenance::Budget { reason } => format!("budget ({})", reason.name()),
            p => p.name().to_string(),
        };
        out.push_str(&format!(
            "  chars [{}, {}) {:<24} {:<6} uncertainty {:.2}  {how}\n",
            e.entity.start, e.entity.end, e.entity.text, e.entity.label, e.uncertainty
        ));
    }
    out
}
