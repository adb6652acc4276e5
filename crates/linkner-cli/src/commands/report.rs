//! `linkner report`: regenerates `docs/results.md` and its PNG plots — local F1, linked F1 with
//! the configured LLM, the oracle ceiling, % routed, LLM calls and time on CoNLL-03 test, its
//! Typos / OOV robustness sets, WikiGold (out of domain), WNUT-17 and TwitterNER; and F1 against
//! the routing threshold (0.0 … 1.0) for every estimator.
//!
//! ```text
//! linkner report --model CONLL_DIR [--wnut-model DIR] [--twitter-model DIR]
//!                [--evidential-model DIR] --llm-url URL [--sample 100] [--out docs/results.md]
//! ```
//!
//! Per set, on a seeded sample of `--sample` sentences:
//! 1. the pipeline runs once at the headline setting (entropy, threshold 0.4 unless changed):
//!    its local, linked and oracle F1, routed share, calls, tokens and time are the table row;
//! 2. the pipeline runs once more per estimator with every entity routed (answers come from the
//!    LLM cache after the first of these runs), and [`spans_at_threshold`] replays every
//!    threshold from it. The replay at the headline setting is checked against run 1.
//!
//! The local F1 of the full set is measured too (tagger only). Sets whose file or model is
//! missing are listed as skipped, never silently dropped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use linkner::core::Sentence;
use linkner::core::score::{Mode, Scorer};
use linkner::llm::{LlmClassifier, OpenAiBuilder};
use linkner::tagger::SpanTagger;
use linkner::uncertainty::EstimatorConfig;
use linkner::uncertainty::plot::{PlotSpec, Series, line_plot};
use linkner::{Annotation, LinkScores, Pipeline, RoutingPolicy, StatsSnapshot, spans_at_threshold};
use serde::Serialize;

use super::CliError;
use super::link::{annotate_all, read_gold, run_and_score, runtime};
use super::llm_failures::{FailureArgs, FailureTally};
use super::pipeline_args::PipelineArgs;

/// Arguments of `linkner report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// LLM and pipeline settings (`--model` is the CoNLL-03 tagger).
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Tagger trained on WNUT-17 (the WNUT-17 row is skipped without it).
    #[arg(long, value_name = "DIR")]
    pub wnut_model: Option<PathBuf>,
    /// Tagger trained on TwitterNER (the TwitterNER row is skipped without it).
    #[arg(long, value_name = "DIR")]
    pub twitter_model: Option<PathBuf>,
    /// Evidential-trained CoNLL-03 tagger: adds the evidential estimator's curves on the
    /// CoNLL-03 sets.
    #[arg(long, value_name = "DIR")]
    pub evidential_model: Option<PathBuf>,
    /// Datasets folder (`conll03/`, `wikigold/`, `wnut17/`, `twitterner/`).
    #[arg(
        long,
        value_name = "DIR",
        env = "LINKNER_DATA",
        default_value = "../shared/data"
    )]
    pub data_dir: PathBuf,
    /// Only these sets (comma-separated names: conll03, typos, oov, wikigold, wnut17,
    /// twitterner).
    #[arg(long, value_name = "NAMES")]
    pub sets: Option<String>,
    /// Sentences per set for the LLM runs (seeded sample; 0 = the whole set).
    #[arg(long, default_value_t = 100)]
    pub sample: usize,
    /// Seed of the sample.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Thresholds of the curves: from 0 to 1 in this step.
    #[arg(long, default_value_t = 0.05)]
    pub step: f32,
    /// Sentences per pipeline call.
    #[arg(long, default_value_t = 64)]
    pub chunk: usize,
    /// The Markdown report.
    #[arg(long, value_name = "FILE", default_value = "docs/results.md")]
    pub out: PathBuf,
    /// Folder of the PNG plots (linked from the report by a path relative to it).
    #[arg(long, value_name = "DIR", default_value = "docs/plots")]
    pub plots: PathBuf,
    /// Also write every figure as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// When the LLM side failed (counted over every LLM run of the report).
    #[command(flatten)]
    pub failures: FailureArgs,
}

/// One evaluation set of the report.
struct SetSpec {
    name: &'static str,
    title: &'static str,
    file: &'static str,
    examples: &'static str,
    model: ModelKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ModelKind {
    Conll,
    Wnut,
    Twitter,
}

const SETS: &[SetSpec] = &[
    SetSpec {
        name: "conll03",
        title: "CoNLL-03 test",
        file: "conll03/conll/test.txt",
        examples: "conll03/conll/train.txt",
        model: ModelKind::Conll,
    },
    SetSpec {
        name: "typos",
        title: "CoNLL-03 Typos",
        file: "conll03/robustness_conll/typos/test.txt",
        examples: "conll03/conll/train.txt",
        model: ModelKind::Conll,
    },
    SetSpec {
        name: "oov",
        title: "CoNLL-03 OOV",
        file: "conll03/robustness_conll/oov/test.txt",
        examples: "conll03/conll/train.txt",
        model: ModelKind::Conll,
    },
    SetSpec {
        name: "wikigold",
        title: "WikiGold (OOD)",
        file: "wikigold/wikigold.conll.txt",
        examples: "conll03/conll/train.txt",
        model: ModelKind::Conll,
    },
    SetSpec {
        name: "wnut17",
        title: "WNUT-17 test",
        file: "wnut17/emerging.test.annotated",
        examples: "wnut17/wnut17train.conll",
        model: ModelKind::Wnut,
    },
    SetSpec {
        name: "twitterner",
        title: "TwitterNER test",
        file: "twitterner/test.txt",
        examples: "twitterner/train.txt",
        model: ModelKind::Twitter,
    },
];

/// One point of an F1-vs-threshold curve.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdPoint {
    /// The threshold (entities with uncertainty above it are routed).
    pub threshold: f32,
    /// Fraction of the entities routed.
    pub routed_fraction: f64,
    /// Linked F1 (the LLM's decisions for routed entities).
    pub linked_f1: f64,
    /// Oracle F1 (gold labels for routed entities).
    pub oracle_f1: f64,
}

/// One estimator's curve on one set.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    /// Estimator name.
    pub estimator: String,
    /// The tagger it ran on.
    pub model: String,
    /// Points, threshold ascending.
    pub points: Vec<ThresholdPoint>,
}

/// The figures of one set.
#[derive(Debug, Clone, Serialize)]
pub struct SetResult {
    /// Short name.
    pub name: String,
    /// Display name.
    pub title: String,
    /// The data file.
    pub file: PathBuf,
    /// Sentences in the file.
    pub sentences_in_file: usize,
    /// Local F1 on the whole file (tagger alone).
    pub local_f1_full: f64,
    /// Sentences of the sample the LLM runs used.
    pub sentences: usize,
    /// Local, linked and oracle scores of the headline run on the sample.
    pub scores: LinkScores,
    /// Counters of the headline run.
    pub stats: StatsSnapshot,
    /// Wall seconds of the headline run.
    pub wall_seconds: f64,
    /// F1 vs threshold per estimator.
    pub curves: Vec<Curve>,
    /// Linked F1 of the replay at the headline setting (equals `scores.linked.f1` when the LLM
    /// is deterministic).
    pub replay_f1: Option<f64>,
    /// The PNG of the curves, relative to the report.
    pub plot: Option<String>,
}

/// Everything the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The LLM backend.
    pub llm: String,
    /// The headline estimator.
    pub estimator: String,
    /// The headline policy.
    pub policy: String,
    /// Sample size per set.
    pub sample: usize,
    /// Sample seed.
    pub seed: u64,
    /// Per-set results.
    pub sets: Vec<SetResult>,
    /// Sets not run, and why.
    pub skipped: Vec<(String, String)>,
    /// The command line that produced it.
    pub command: String,
    /// Total wall seconds.
    pub wall_seconds: f64,
}

/// Runs `linkner report`.
pub fn run(args: ReportArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let config = args.pipeline.link_config()?;
    if config.llm.is_none() {
        return Err("the report needs an LLM: give --llm-url (or LINKNER_LLM_URL)".into());
    }
    if !(args.step > 0.0 && args.step <= 1.0) {
        return Err("--step must be in (0, 1]".into());
    }
    if let Some(n) = args.pipeline.threads {
        linkner::tagger::set_threads(n)?;
    }
    let wanted: Option<Vec<String>> = args
        .sets
        .as_ref()
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    if let Some(w) = &wanted
        && let Some(bad) = w
            .iter()
            .find(|n| !SETS.iter().any(|s| s.name == n.as_str()))
    {
        return Err(format!(
            "unknown set `{bad}`; expected: {}",
            SETS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
        )
        .into());
    }
    let device = config.tagger.device()?;
    let rt = runtime()?;
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    let mut llm_name = String::new();
    let mut tally = FailureTally::default();
    for set in SETS {
        if let Some(w) = &wanted
            && !w.iter().any(|n| n == set.name)
        {
            continue;
        }
        let model = match set.model {
            ModelKind::Conll => Some(config.tagger.model.clone()),
            ModelKind::Wnut => args.wnut_model.clone(),
            ModelKind::Twitter => args.twitter_model.clone(),
        };
        let Some(model) = model else {
            skipped.push((
                set.title.to_string(),
                "no tagger given for it (--wnut-model / --twitter-model)".to_string(),
            ));
            continue;
        };
        let file = args.data_dir.join(set.file);
        if !file.exists() {
            skipped.push((
                set.title.to_string(),
                format!("{} not found", file.display()),
            ));
            continue;
        }
        eprintln!("== {} ({}) ==", set.title, file.display());
        let tagger = Arc::new(SpanTagger::load(&model, &device)?);
        let schema = tagger.config.schema.clone();

        // The LLM backend of this set: its few-shot examples come from the set's own training
        // file (one backend, one answer cache for every run on the set).
        let mut set_config = config.clone();
        let examples = args.data_dir.join(set.examples);
        if set_config.examples.is_none() && examples.exists() {
            set_config.examples = Some(linkner::ExamplesSection {
                from: examples,
                format: None,
                per_class: 2,
                seed: 42,
            });
        }
        let llm_config = set_config
            .llm_config(&schema)?
            .ok_or("the report needs an LLM")?;
        let llm: Arc<dyn LlmClassifier> = Arc::new(OpenAiBuilder::from_config(llm_config).build()?);
        llm_name = llm.name();
        let pipeline = |estimator: &EstimatorConfig,
                        policy: RoutingPolicy,
                        tagger: Arc<SpanTagger>|
         -> Result<Pipeline, CliError> {
            // The config's settings with this run's estimator and policy, and the set's LLM.
            let mut run = config.clone();
            run.estimator = estimator.clone();
            run.policy = policy;
            Ok(run
                .builder_without_llm()?
                .llm(llm.clone())
                .tagger(tagger)
                .build()?)
        };

        // Local F1 on the whole file.
        let (full, total) = read_gold(&file, None, None, 0)?;
        let local_full = {
            let p = pipeline(&config.estimator, RoutingPolicy::Never, tagger.clone())?;
            let (scores, _, _) =
                rt.block_on(run_and_score(&p, &full, args.chunk, "local, full set"))?;
            scores.local.f1
        };
        let sample = (args.sample > 0).then_some(args.sample);
        let (gold, _) = read_gold(&file, None, sample, args.seed)?;

        // 1. The headline run.
        let headline = pipeline(&config.estimator, config.policy.clone(), tagger.clone())?;
        let (scores, stats, wall) =
            rt.block_on(run_and_score(&headline, &gold, args.chunk, "linked"))?;
        tally.add_run(&stats);

        // 2. Every estimator with everything routed, replayed at every threshold.
        let mut estimators: Vec<(EstimatorConfig, Arc<SpanTagger>, String)> = vec![
            (
                EstimatorConfig::Confidence {},
                tagger.clone(),
                model_name(&model),
            ),
            (
                EstimatorConfig::default(),
                tagger.clone(),
                model_name(&model),
            ),
            ("mc_dropout".parse()?, tagger.clone(), model_name(&model)),
        ];
        if tagger.config.evidential.is_some() {
            estimators.push(("evidential".parse()?, tagger.clone(), model_name(&model)));
        } else if set.model == ModelKind::Conll
            && let Some(ev) = &args.evidential_model
        {
            let ev_tagger = Arc::new(SpanTagger::load(ev, &device)?);
            estimators.push(("evidential".parse()?, ev_tagger, model_name(ev)));
        }
        let set_model_name = model_name(&model);
        let thresholds: Vec<f32> = {
            let n = (1.0 / args.step).round() as usize;
            (0..=n).map(|i| (i as f32 * args.step).min(1.0)).collect()
        };
        let mut curves = Vec::new();
        let mut replay_f1 = None;
        for (estimator, tagger, model) in estimators {
            let p = pipeline(&estimator, RoutingPolicy::Always, tagger)?;
            let label = format!("all routed, {}", p.estimator_name());
            let annotations = rt.block_on(annotate_all(&p, &gold, args.chunk, &label))?;
            tally.add_run(&p.stats());
            let points = thresholds
                .iter()
                .map(|&t| replay(&gold, &annotations, t))
                .collect::<Result<Vec<_>, CliError>>()?;
            if estimator == config.estimator
                && let RoutingPolicy::Threshold { threshold } = config.policy
                && model == set_model_name
            {
                let at = replay(&gold, &annotations, threshold)?;
                replay_f1 = Some(at.linked_f1);
            }
            curves.push(Curve {
                estimator: p.estimator_name().to_string(),
                model,
                points,
            });
        }
        tally.add_backend(llm.stats().as_ref());
        let plot = plot_curves(&args, set, &curves, scores.local.f1)?;
        results.push(SetResult {
            name: set.name.to_string(),
            title: set.title.to_string(),
            file,
            sentences_in_file: total,
            local_f1_full: local_full,
            sentences: gold.len(),
            scores,
            stats,
            wall_seconds: wall.as_secs_f64(),
            curves,
            replay_f1,
            plot,
        });
    }
    let estimator_name = config.estimator.build()?.name().to_string();
    let report = Report {
        llm: llm_name,
        estimator: estimator_name,
        policy: config.policy.to_string(),
        sample: args.sample,
        seed: args.seed,
        sets: results,
        skipped,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    let md = markdown(&report, &args);
    if let Some(dir) = args.out.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, md).map_err(|e| format!("{}: {e}", args.out.display()))?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    eprintln!("report written to {}", args.out.display());
    tally.check(args.failures.llm_failure_limit)
}

fn model_name(path: &Path) -> String {
    // Resolve symlinks so that `conll03-minilm-ce` names the checkpoint it points to.
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The linked and oracle F1 at `threshold`, replayed from an all-routed run.
fn replay(
    gold: &[Sentence],
    annotations: &[Annotation],
    threshold: f32,
) -> Result<ThresholdPoint, CliError> {
    let mut linked = Scorer::new(Mode::Conlleval);
    let mut oracle = Scorer::new(Mode::Conlleval);
    let (mut routed, mut entities) = (0usize, 0usize);
    for (g, a) in gold.iter().zip(annotations) {
        linked.add_spans(&g.spans, &spans_at_threshold(a, threshold, None))?;
        oracle.add_spans(&g.spans, &spans_at_threshold(a, threshold, Some(&g.spans)))?;
        for e in a.entities.iter().chain(&a.rejected) {
            entities += 1;
            if e.uncertainty > threshold {
                routed += 1;
            }
        }
    }
    Ok(ThresholdPoint {
        threshold,
        routed_fraction: if entities == 0 {
            0.0
        } else {
            routed as f64 / entities as f64
        },
        linked_f1: linked.finish().f1,
        oracle_f1: oracle.finish().f1,
    })
}

fn plot_curves(
    args: &ReportArgs,
    set: &SetSpec,
    curves: &[Curve],
    local_f1: f64,
) -> Result<Option<String>, CliError> {
    if curves.is_empty() {
        return Ok(None);
    }
    std::fs::create_dir_all(&args.plots)?;
    let file = format!("results-{}-f1-vs-threshold.png", set.name);
    let path = args.plots.join(&file);
    let mut series: Vec<Series> = curves
        .iter()
        .map(|c| {
            Series::new(
                format!("linked, {}", c.estimator),
                c.points
                    .iter()
                    .map(|p| (f64::from(p.threshold), 100.0 * p.linked_f1))
                    .collect(),
            )
        })
        .collect();
    if let Some(c) = curves.first() {
        series.push(Series::new(
            format!("oracle ceiling, {}", c.estimator),
            c.points
                .iter()
                .map(|p| (f64::from(p.threshold), 100.0 * p.oracle_f1))
                .collect(),
        ));
    }
    series.push(Series::new(
        "local tagger only",
        vec![(0.0, 100.0 * local_f1), (1.0, 100.0 * local_f1)],
    ));
    let lo = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(f64::INFINITY, f64::min);
    let hi = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(f64::NEG_INFINITY, f64::max);
    let spec = PlotSpec {
        title: format!("{}: F1 vs routing threshold", set.title),
        x_label: "threshold (entities with uncertainty above it go to the LLM)".into(),
        y_label: "entity F1 (%)".into(),
        x_range: (0.0, 1.0),
        y_range: Some(((lo - 2.0).max(0.0), (hi + 2.0).min(100.0))),
        size: (900, 600),
    };
    line_plot(&path, &spec, &series)?;
    // The report links plots relative to its own folder.
    let rel = relative_to(&path, args.out.parent().unwrap_or(Path::new("")));
    Ok(Some(rel))
}

/// `path` written relative to `base` when it lies below it, else as given.
fn relative_to(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

fn markdown(r: &Report, args: &ReportArgs) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Results: local tagger vs LinkNER linking\n");
    let _ = writeln!(
        md,
        "Generated by `linkner report` — do not edit by hand; rerun it. Command:\n\n```sh\n{}\n```\n",
        r.command
    );
    let _ = writeln!(
        md,
        "LLM: `{}`. Headline setting: estimator `{}`, policy `{}`. LLM figures are on a seeded \
         sample of {} sentences per set (seed {}; 0 = whole set); \"local F1 (full)\" is the \
         tagger alone on the whole set. Oracle = routed entities get their **gold** label: the \
         ceiling of the routing, not an LLM result. Total time {:.0} s.\n",
        r.llm, r.estimator, r.policy, r.sample, r.seed, r.wall_seconds
    );
    let _ = writeln!(
        md,
        "| set | sentences (sample / all) | local F1 (full) | local F1 (sample) | linked F1 | Δ linked − local | oracle ceiling | routed | LLM calls | cache hits | failed | LLM time (s) | wall (s) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in &r.sets {
        let st = &s.stats;
        let _ = writeln!(
            md,
            "| {} | {} / {} | {} | {} | **{}** | {:+.2} | {} | {} of {} ({:.1} %) | {} | {} | {} | {:.1} | {:.1} |",
            s.title,
            s.sentences,
            s.sentences_in_file,
            pct(s.local_f1_full),
            pct(s.scores.local.f1),
            pct(s.scores.linked.f1),
            100.0 * (s.scores.linked.f1 - s.scores.local.f1),
            pct(s.scores.oracle.f1),
            st.routed,
            st.entities,
            100.0 * st.routed_fraction(),
            st.llm_calls(),
            st.cache_hits,
            st.failures,
            st.llm_time.as_secs_f64(),
            s.wall_seconds
        );
    }
    for (name, why) in &r.skipped {
        let _ = writeln!(md, "| {name} | skipped: {why} | | | | | | | | | | | |");
    }
    let _ = writeln!(
        md,
        "\nThe LinkNER paper reports +3.04 to +21.30 F1 from linking with GPT-3.5 on these \
         sets; the Δ column is what the local LLM above does, and the oracle column is the most \
         any LLM could add at this routing.\n"
    );
    for s in &r.sets {
        let _ = writeln!(md, "## {}\n", s.title);
        if let Some(replay) = s.replay_f1 {
            let same = (replay - s.scores.linked.f1).abs() < 1e-9;
            let _ = writeln!(
                md,
                "Replay check: the all-routed run replayed at the headline setting gives linked F1 \
                 {} ({}).\n",
                pct(replay),
                if same {
                    "same as the headline run"
                } else {
                    "differs from the headline run: the LLM answered differently between runs"
                }
            );
        }
        if let Some(plot) = &s.plot {
            let _ = writeln!(md, "![F1 vs threshold, {}]({plot})\n", s.title);
        }
        if s.curves.is_empty() {
            continue;
        }
        let _ = write!(md, "| threshold |");
        for c in &s.curves {
            let _ = write!(
                md,
                " {} ({}) routed / linked / oracle |",
                c.estimator, c.model
            );
        }
        let _ = writeln!(md);
        let _ = write!(md, "|---|");
        for _ in &s.curves {
            let _ = write!(md, "---|");
        }
        let _ = writeln!(md);
        let n = s.curves[0].points.len();
        let every = ((0.1 / args.step).round() as usize).max(1);
        for i in (0..n).filter(|i| i % every == 0 || i + 1 == n) {
            let _ = write!(md, "| {:.2} |", s.curves[0].points[i].threshold);
            for c in &s.curves {
                match c.points.get(i) {
                    Some(p) => {
                        let _ = write!(
                            md,
                            " {:.0} % / {} / {} |",
                            100.0 * p.routed_fraction,
                            pct(p.linked_f1),
                            pct(p.oracle_f1)
                        );
                    }
                    None => {
                        let _ = write!(md, " - |");
                    }
                }
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md);
    }
    md
}
