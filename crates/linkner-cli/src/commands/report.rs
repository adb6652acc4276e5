//! `linkner report`: regenerates `docs/results.md` — for each of the six test sets, the tagger
//! alone against the pipeline with the set's **tuned** config (`configs/<set>.json`, written by
//! `linkner tune` on a dev split), on the whole set: local F1, linked F1, Δ with a paired
//! bootstrap confidence interval, the oracle ceiling of that routing, % routed, the LLM's
//! accuracy on routed entities, calls, tokens and time; optionally an ablation table on one set
//! (one config per technique), the dev F1-vs-threshold plots of the tuning runs and their
//! cost–accuracy frontiers (dev F1 against LLM calls, see [`super::frontier`]).
//!
//! ```text
//! linkner dev report --configs configs --data-dir $LINKNER_DATA [--sets oov,wnut17]
//!                [--sample 0] [--resamples 1000] [--ablation configs/ablation --ablation-set oov]
//!                [--tune-json configs/tuning] [--out results.md] [--plots DIR]
//!                [--json-out results.json]
//! linkner dev report --frontier-only --tune-json configs/tuning [--out frontier.md]
//! ```
//!
//! A set whose config or data file is missing is listed as skipped, never silently dropped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use linkner::core::{LabelSchema, Sentence, WordSpan};
use linkner::scoring::local_spans;
use linkner::tune::{DeltaCi, paired_bootstrap};
use linkner::uncertainty::plot::{PlotSpec, Series, line_plot};
use linkner::{Annotation, LinkConfig, LinkScores, Provenance, RoutingPolicy, StatsSnapshot};
use serde::{Deserialize, Serialize};

use super::CliError;
use super::frontier::SetFrontier;
use super::link::{GoldSet, annotate_all, read_gold, runtime};
use super::llm_failures::{FailureArgs, FailureTally};
use super::pipeline_args::PipelineArgs;

/// Arguments of `linkner report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Flags that override every set's config (LLM URL and model, threads, device, …). The
    /// configs themselves come from `--configs`.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Folder of the tuned configs, one per set: `<set>.json` (conll03, typos, oov, wikigold,
    /// wnut17, twitterner); in a clone of the repository, `configs`. Required unless
    /// `--frontier-only`.
    #[arg(long, value_name = "DIR", required_unless_present = "frontier_only")]
    pub configs: Option<PathBuf>,
    /// Datasets folder with the layout of the README's "Data" section (`conll03/`, `wikigold/`,
    /// `wnut17/`, `twitterner/`). Required unless `--frontier-only`: no default folder is
    /// assumed.
    #[arg(long, value_name = "DIR", env = "LINKNER_DATA")]
    pub data_dir: Option<PathBuf>,
    /// Only these sets (comma-separated names).
    #[arg(long, value_name = "NAMES")]
    pub sets: Option<String>,
    /// Sentences per set (seeded sample; 0 = the whole set, as the published figures).
    #[arg(long, default_value_t = 0)]
    pub sample: usize,
    /// Seed of the sample and of the bootstrap.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Bootstrap resamples of the Δ confidence interval.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Sentences per pipeline call.
    #[arg(long, default_value_t = 64)]
    pub chunk: usize,
    /// Folder of ablation configs (`*.json`, one per technique), run on `--ablation-set`.
    #[arg(long, value_name = "DIR")]
    pub ablation: Option<PathBuf>,
    /// The set of the ablation table.
    #[arg(long, default_value = "oov")]
    pub ablation_set: String,
    /// Sentences of the ablation set (a seeded sample of whole documents, see `--seed`; 0 = the
    /// whole set). The ablation runs one LLM pass per prompt variant: on a 2-core CPU the whole
    /// OOV set takes hours.
    #[arg(long, default_value_t = 0)]
    pub ablation_sample: usize,
    /// Folder of `linkner tune --json-out` records named `<set>.json` (in a clone of the
    /// repository, `configs/tuning`): their dev F1-vs-threshold curves and cost–accuracy
    /// frontiers are plotted. Required with `--frontier-only`.
    #[arg(long, value_name = "DIR", required_if_eq("frontier_only", "true"))]
    pub tune_json: Option<PathBuf>,
    /// Only the cost–accuracy frontiers of the tuning records of `--tune-json` (all of them,
    /// or the `--sets` named): no tagger, LLM or data is used. `--out` defaults to
    /// `frontier.md`.
    #[arg(long)]
    pub frontier_only: bool,
    /// The Markdown report (default `results.md`, or `frontier.md` with `--frontier-only`, in
    /// the working folder; the repository's own report is `docs/results.md`).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "results.md",
        default_value_if("frontier_only", "true", "frontier.md")
    )]
    pub out: PathBuf,
    /// Folder of the PNG plots, linked from the report by a path relative to it (default:
    /// `plots/` beside `--out`).
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Also write every figure as JSON to this file (`--json` is a flag in every command; file
    /// outputs are `--…-out`).
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
    /// When the LLM side failed (counted over every LLM run of the report).
    #[command(flatten)]
    pub failures: FailureArgs,
}

impl ReportArgs {
    /// The plots folder: `--plots`, else `plots/` beside `--out`.
    pub(super) fn plots_dir(&self) -> PathBuf {
        match &self.plots {
            Some(dir) => dir.clone(),
            None => self.out.parent().unwrap_or(Path::new("")).join("plots"),
        }
    }

    /// `--configs`, which clap requires unless `--frontier-only`.
    fn configs_dir(&self) -> Result<&Path, CliError> {
        self.configs
            .as_deref()
            .ok_or_else(|| "--configs DIR is required (the folder of <set>.json configs)".into())
    }

    /// `--data-dir` or `LINKNER_DATA`: never a guessed folder.
    fn data_root(&self) -> Result<&Path, CliError> {
        self.data_dir.as_deref().ok_or_else(|| {
            "no datasets folder: pass --data-dir DIR or set LINKNER_DATA (the layout is in the \
             README, section \"Data\")"
                .into()
        })
    }
}

/// One evaluation set of the report.
struct SetSpec {
    name: &'static str,
    title: &'static str,
    file: &'static str,
}

const SETS: &[SetSpec] = &[
    SetSpec {
        name: "conll03",
        title: "CoNLL-03 test",
        // The 4-column release marks its documents (-DOCSTART-): document context.
        file: "conll03/conll_4col/test.txt",
    },
    SetSpec {
        name: "typos",
        title: "CoNLL-03 Typos",
        file: "conll03/robustness_conll/typos/test.txt",
    },
    SetSpec {
        name: "oov",
        title: "CoNLL-03 OOV",
        file: "conll03/robustness_conll/oov/test.txt",
    },
    SetSpec {
        name: "wikigold",
        title: "WikiGold (OOD)",
        file: "wikigold/wikigold.conll.txt",
    },
    SetSpec {
        name: "wnut17",
        title: "WNUT-17 test",
        file: "wnut17/emerging.test.annotated",
    },
    SetSpec {
        name: "twitterner",
        title: "TwitterNER test",
        file: "twitterner/test.txt",
    },
];

/// The display name of a set's dev split (`CoNLL-03` for `conll03`), else `name` itself.
pub(super) fn dev_title(name: &str) -> String {
    SETS.iter()
        .find(|s| s.name == name)
        .map_or(name, |s| s.title.trim_end_matches(" test"))
        .to_string()
}

/// How well the LLM did on the routed entities of a run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RoutedAccuracy {
    /// Routed entities that got an answer.
    pub answered: usize,
    /// Of those, the LLM's own answer was the gold class (a type, or "not an entity" for a
    /// span that is not a gold entity).
    pub llm_correct: usize,
    /// Of those, the merged decision was the gold class.
    pub merged_correct: usize,
    /// Of those, the local label was the gold class.
    pub local_correct: usize,
}

impl RoutedAccuracy {
    fn rate(n: usize, d: usize) -> f64 {
        if d == 0 { 0.0 } else { n as f64 / d as f64 }
    }
}

/// The figures of one run of one config on one set.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The config's name (file stem).
    pub config: String,
    /// Estimator, policy and merge of the config.
    pub setting: String,
    /// Local, linked and oracle scores.
    pub scores: LinkScores,
    /// Linked − local F1 with its bootstrap interval.
    pub delta: DeltaCi,
    /// The LLM on the routed entities.
    pub accuracy: RoutedAccuracy,
    /// The pipeline's counters.
    pub stats: StatsSnapshot,
    /// Wall seconds.
    pub wall_seconds: f64,
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
    /// Sentences evaluated.
    pub sentences: usize,
    /// Sentences in the file.
    pub sentences_in_file: usize,
    /// The tuned config's run.
    pub run: RunResult,
    /// The dev F1-vs-threshold plot, relative to the report.
    pub plot: Option<String>,
    /// The cost–accuracy frontier of the set's tuning record.
    pub frontier: Option<SetFrontier>,
}

/// Everything the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The LLM backend.
    pub llm: String,
    /// Sample size per set (0 = whole sets).
    pub sample: usize,
    /// Seed of the sample and the bootstrap.
    pub seed: u64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Per-set results.
    pub sets: Vec<SetResult>,
    /// The ablation runs.
    pub ablation: Vec<RunResult>,
    /// Sentences of the ablation runs, and of the ablation set's file.
    pub ablation_sentences: (usize, usize),
    /// Sets not run, and why.
    pub skipped: Vec<(String, String)>,
    /// The command line that produced it.
    pub command: String,
    /// Total wall seconds.
    pub wall_seconds: f64,
}

/// The gold class of each routed entity's span (0 when the span is not a gold entity).
fn gold_class(schema: &LabelSchema, gold: &[WordSpan], span: &WordSpan) -> usize {
    gold.iter()
        .find(|g| g.start == span.start && g.end == span.end)
        .and_then(|g| schema.class_of(&g.label))
        .unwrap_or(0)
}

fn routed_accuracy(
    schema: &LabelSchema,
    gold: &[Sentence],
    annotations: &[Annotation],
) -> RoutedAccuracy {
    let mut acc = RoutedAccuracy::default();
    for (g, a) in gold.iter().zip(annotations) {
        for (e, rejected) in a
            .entities
            .iter()
            .map(|e| (e, false))
            .chain(a.rejected.iter().map(|e| (e, true)))
        {
            let Some(v) = &e.llm else { continue };
            if !e.provenance.is_routed()
                || matches!(
                    e.provenance,
                    Provenance::LlmFailed { .. } | Provenance::Budget { .. }
                )
            {
                continue;
            }
            let want = gold_class(schema, &g.spans, &e.span);
            let merged = if rejected {
                0
            } else {
                schema.class_of(&e.entity.label).unwrap_or(0)
            };
            acc.answered += 1;
            acc.llm_correct += usize::from(v.class == want);
            acc.merged_correct += usize::from(merged == want);
            acc.local_correct += usize::from(schema.class_of(&e.local_label) == Some(want));
        }
    }
    acc
}

impl PipelineArgs {
    /// A config file with this command line's flags applied over it.
    fn config_from(&self, path: &Path) -> Result<LinkConfig, CliError> {
        let mut args = self.clone();
        args.config = Some(path.to_path_buf());
        args.link_config()
    }
}

/// Runs one config on `gold` and measures it.
fn run_config(
    args: &ReportArgs,
    path: &Path,
    gold_set: &GoldSet,
    label: &str,
    llm_name: &mut String,
    tally: &mut FailureTally,
) -> Result<RunResult, CliError> {
    let config = args.pipeline.config_from(path)?;
    let pipeline = args.pipeline.build(&config, None)?;
    if let Some(n) = pipeline.llm_name() {
        *llm_name = n;
    }
    let schema = pipeline.schema().clone();
    let gold = &gold_set.sentences;
    for s in gold {
        for span in &s.spans {
            if schema.class_of(&span.label).is_none() {
                return Err(format!(
                    "gold label `{}` is not a type of the tagger's schema `{}` (config {})",
                    span.label,
                    schema.name,
                    path.display()
                )
                .into());
            }
        }
    }
    let rt = runtime()?;
    let started = Instant::now();
    let before = pipeline.stats();
    let annotations = rt.block_on(annotate_all(
        &pipeline,
        &gold_set.documents,
        args.chunk,
        label,
    ))?;
    let stats = pipeline.stats().since(&before);
    let wall = started.elapsed();
    tally.add_run(&stats);
    let scores = linkner::score_annotations(gold, &annotations)?;
    let local: Vec<Vec<WordSpan>> = annotations.iter().map(local_spans).collect();
    let linked: Vec<Vec<WordSpan>> = annotations.iter().map(Annotation::spans).collect();
    let delta = paired_bootstrap(gold, &local, &linked, args.resamples, 0.95, args.seed)?;
    let accuracy = routed_accuracy(&schema, gold, &annotations);
    Ok(RunResult {
        config: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        setting: format!(
            "{} · {} · {}",
            pipeline.estimator_name(),
            pipeline.policy(),
            pipeline.merge_policy()
        ),
        scores,
        delta,
        accuracy,
        stats,
        wall_seconds: wall.as_secs_f64(),
    })
}

/// Runs `linkner report`.
pub fn run(args: ReportArgs) -> Result<(), CliError> {
    if args.frontier_only {
        return super::frontier::run_only(&args);
    }
    let started = Instant::now();
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
    let configs = args.configs_dir()?.to_path_buf();
    let data_root = args.data_root()?.to_path_buf();
    let plots = args.plots_dir();
    let sample = (args.sample > 0).then_some(args.sample);
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
        let config = configs.join(format!("{}.json", set.name));
        let file = data_root.join(set.file);
        if !config.is_file() {
            skipped.push((
                set.title.to_string(),
                format!("{} not found", config.display()),
            ));
            continue;
        }
        if !file.is_file() {
            skipped.push((
                set.title.to_string(),
                format!("{} not found", file.display()),
            ));
            continue;
        }
        eprintln!(
            "== {} ({}) with {} ==",
            set.title,
            file.display(),
            config.display()
        );
        let gold = read_gold(
            &file,
            &super::formats::DataArgs::default(),
            sample,
            args.seed,
        )?;
        let run = run_config(&args, &config, &gold, set.name, &mut llm_name, &mut tally)?;
        let plot = match &args.tune_json {
            Some(dir) => plot_tuning(&args, set, &dir.join(format!("{}.json", set.name)))?,
            None => None,
        };
        let frontier = match &args.tune_json {
            Some(dir) => super::frontier::for_set(
                set.name,
                &dir.join(format!("{}.json", set.name)),
                &plots,
                &args.out,
            )?,
            None => None,
        };
        results.push(SetResult {
            name: set.name.to_string(),
            title: set.title.to_string(),
            file,
            sentences: gold.sentences.len(),
            sentences_in_file: gold.total,
            run,
            plot,
            frontier,
        });
    }
    let mut ablation = Vec::new();
    let mut ablation_sentences = (0, 0);
    if let Some(dir) = &args.ablation {
        let set = SETS
            .iter()
            .find(|s| s.name == args.ablation_set)
            .ok_or_else(|| format!("unknown ablation set `{}`", args.ablation_set))?;
        let file = data_root.join(set.file);
        let gold = read_gold(
            &file,
            &super::formats::DataArgs::default(),
            (args.ablation_sample > 0).then_some(args.ablation_sample),
            args.seed,
        )?;
        ablation_sentences = (gold.sentences.len(), gold.total);
        let mut configs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        configs.sort();
        if configs.is_empty() {
            return Err(format!("{}: no *.json ablation configs", dir.display()).into());
        }
        for c in configs {
            eprintln!("== ablation {} on {} ==", c.display(), set.title);
            let label = format!(
                "ablation {}",
                c.file_stem().unwrap_or_default().to_string_lossy()
            );
            ablation.push(run_config(
                &args,
                &c,
                &gold,
                &label,
                &mut llm_name,
                &mut tally,
            )?);
        }
    }
    let report = Report {
        llm: llm_name,
        sample: args.sample,
        seed: args.seed,
        resamples: args.resamples,
        sets: results,
        ablation,
        ablation_sentences,
        skipped,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    if let Some(dir) = args.out.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, markdown(&report, &args))
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    eprintln!("report written to {}", args.out.display());
    tally.check(args.failures.llm_failure_limit)
}

/// The part of a `linkner tune --json` file the plots read.
#[derive(Debug, Deserialize)]
struct TuneFile {
    local_f1: f64,
    trials: Vec<TuneTrial>,
    best: TuneTrial,
}

#[derive(Debug, Deserialize)]
struct TuneTrial {
    prompt: String,
    estimator: String,
    calibrate: bool,
    policy: RoutingPolicy,
    merge: linkner::MergePolicy,
    f1: f64,
}

/// Dev F1 against the threshold, per estimator, at the tuned prompt, calibration and merge
/// (and with `replace`), from a tune JSON file.
fn plot_tuning(args: &ReportArgs, set: &SetSpec, path: &Path) -> Result<Option<String>, CliError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tune: TuneFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut curves: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for t in &tune.trials {
        let RoutingPolicy::Threshold { threshold } = t.policy else {
            continue;
        };
        if t.prompt != tune.best.prompt || t.calibrate != tune.best.calibrate {
            continue;
        }
        let name = if t.merge == tune.best.merge {
            format!("{} · {}", t.estimator, t.merge)
        } else if t.merge == linkner::MergePolicy::Replace {
            format!("{} · replace", t.estimator)
        } else {
            continue;
        };
        curves
            .entry(name)
            .or_default()
            .push((f64::from(threshold), 100.0 * t.f1));
    }
    if curves.is_empty() {
        return Ok(None);
    }
    let mut series: Vec<Series> = curves
        .into_iter()
        .map(|(name, mut pts)| {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series::new(name, pts)
        })
        .collect();
    series.push(Series::new(
        "local tagger only",
        vec![(0.0, 100.0 * tune.local_f1), (1.0, 100.0 * tune.local_f1)],
    ));
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), y| {
        (l.min(y), h.max(y))
    });
    let plots = args.plots_dir();
    std::fs::create_dir_all(&plots)?;
    let file = format!("results-{}-dev-f1-vs-threshold.png", set.name);
    let out = plots.join(&file);
    let spec = PlotSpec {
        title: format!(
            "{}: dev F1 vs routing threshold (prompt {}, calibration {})",
            set.title,
            tune.best.prompt,
            if tune.best.calibrate { "on" } else { "off" }
        ),
        x_label: "threshold (entities with uncertainty above it go to the LLM)".into(),
        y_label: "dev entity F1 (%)".into(),
        x_range: (0.0, 1.0),
        y_range: Some(((lo - 1.0).max(0.0), (hi + 1.0).min(100.0))),
        size: (900, 600),
    };
    line_plot(&out, &spec, &series)?;
    let base = args.out.parent().unwrap_or(Path::new(""));
    Ok(Some(
        out.strip_prefix(base)
            .unwrap_or(&out)
            .to_string_lossy()
            .into_owned(),
    ))
}

fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

fn ci(d: &DeltaCi) -> String {
    format!(
        "{:+.2} [{:+.2}, {:+.2}]",
        100.0 * d.delta,
        100.0 * d.low,
        100.0 * d.high
    )
}

fn run_row(name: &str, sentences: &str, r: &RunResult) -> String {
    let st = &r.stats;
    let a = &r.accuracy;
    format!(
        "| {name} | {sentences} | {} | **{}** | {} | {} | {} of {} ({:.1} %) | {:.3} / {:.3} / {:.3} | {} | {} / {} | {:.0} | {:.0} |",
        pct(r.scores.local.f1),
        pct(r.scores.linked.f1),
        ci(&r.delta),
        pct(r.scores.oracle.f1),
        st.routed,
        st.entities,
        100.0 * st.routed_fraction(),
        RoutedAccuracy::rate(a.local_correct, a.answered),
        RoutedAccuracy::rate(a.llm_correct, a.answered),
        RoutedAccuracy::rate(a.merged_correct, a.answered),
        st.llm_calls(),
        st.prompt_tokens,
        st.completion_tokens,
        st.llm_time.as_secs_f64(),
        r.wall_seconds
    )
}

const HEADER: &str = "| set | sentences | local F1 | linked F1 | Δ [95 % CI] | oracle ceiling | routed | accuracy on routed: local / LLM / merged | LLM calls | tokens prompt / completion | LLM time (s) | wall (s) |\n|---|---|---|---|---|---|---|---|---|---|---|---|";

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
        "LLM: `{}`. Every set runs with its own config from `{}` (written by `linkner tune` on a \
         **dev** split: see docs/benchmarks.md for the tuning commands), on {}. Δ is linked − \
         local F1 with a paired bootstrap 95 % interval ({} resamples of the sentences, seed {}). \
         Oracle = routed entities get their **gold** label: the ceiling of the routing, not an \
         LLM result. Accuracy on routed entities: the share whose local label / LLM answer / \
         merged decision is the gold class (\"not an entity\" for a span that is no gold entity). \
         Total time {:.0} s.\n",
        r.llm,
        args.configs.as_deref().unwrap_or(Path::new("")).display(),
        if r.sample == 0 {
            "the whole test set".to_string()
        } else {
            format!("a seeded sample of {} sentences", r.sample)
        },
        r.resamples,
        r.seed,
        r.wall_seconds
    );
    let _ = writeln!(md, "{HEADER}");
    for s in &r.sets {
        let n = if s.sentences == s.sentences_in_file {
            s.sentences.to_string()
        } else {
            format!("{} / {}", s.sentences, s.sentences_in_file)
        };
        let _ = writeln!(md, "{}", run_row(&s.title, &n, &s.run));
    }
    for (name, why) in &r.skipped {
        let _ = writeln!(md, "| {name} | skipped: {why} | | | | | | | | | | |");
    }
    let _ = writeln!(
        md,
        "\nFor scale: the LinkNER paper states that linking \"improves NER performance by 3.04 % \
         to 21.30 % F1\", with GPT-3.5 and Llama 2 as the LLMs; the Δ column is what the LLM \
         named above does here, and the oracle column is the most any LLM could add at the same \
         routing. The SpanNER BERT-large figures quoted as anchors in docs/benchmarks.md come \
         from MINER's Table 3."
    );
    let _ = writeln!(md, "\nSettings (estimator · policy · merge):\n");
    for s in &r.sets {
        let _ = writeln!(
            md,
            "- {}: `{}` (`{}`)",
            s.title, s.run.setting, s.run.config
        );
    }
    if !r.ablation.is_empty() {
        let _ = writeln!(
            md,
            "\n## Ablation on {} ({} of its {} sentences{})\n\nEach row is one config of `{}`: \
             linkner 0.1's linking (`plain`: paper's replace rule, label names, fixed capitalised \
             examples) with one technique added, and everything together.\n",
            args.ablation_set,
            r.ablation_sentences.0,
            r.ablation_sentences.1,
            if r.ablation_sentences.0 < r.ablation_sentences.1 {
                format!(": whole documents drawn with seed {}", r.seed)
            } else {
                String::new()
            },
            args.ablation
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        let _ = writeln!(md, "{}", HEADER.replacen("| set |", "| config |", 1));
        for a in &r.ablation {
            let _ = writeln!(md, "{}", run_row(&a.config, "", a));
        }
        let _ = writeln!(md, "\nSettings:\n");
        for a in &r.ablation {
            let _ = writeln!(md, "- `{}`: `{}`", a.config, a.setting);
        }
    }
    let plots: Vec<&SetResult> = r.sets.iter().filter(|s| s.plot.is_some()).collect();
    if !plots.is_empty() {
        let _ = writeln!(
            md,
            "\n## Dev F1 against the routing threshold (from the tuning runs)\n"
        );
        for s in plots {
            if let Some(p) = &s.plot {
                let _ = writeln!(md, "![{}]({p})\n", s.title);
            }
        }
    }
    let frontiers: Vec<&SetFrontier> = r.sets.iter().filter_map(|s| s.frontier.as_ref()).collect();
    if !frontiers.is_empty() {
        let _ = writeln!(md, "\n{}", super::frontier::section(&frontiers));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkner::core::Entity;
    use linkner::{LinkedEntity, LlmVerdict, MergePolicy};

    #[test]
    fn routed_accuracy_counts_llm_and_merged_decisions_against_gold() {
        let schema = LabelSchema::conll03();
        let mut gold = Sentence::from_words(&["Paris", "said", "Acme"]);
        gold.spans = vec![WordSpan::new(0, 1, "LOC"), WordSpan::new(2, 3, "ORG")];
        let plain = Sentence::from_words(&["Paris", "said", "Acme"]);
        let ent =
            |start: usize, final_label: &str, local: &str, llm: Option<usize>, p: Provenance| {
                let span = WordSpan::new(start, start + 1, final_label);
                LinkedEntity {
                    entity: Entity::from_word_span(&plain, &span).unwrap(),
                    span,
                    local_label: local.into(),
                    local_prob: 0.5,
                    uncertainty: 0.9,
                    provenance: p,
                    local_probs: vec![],
                    llm: llm.map(|c| LlmVerdict {
                        class: c,
                        label: schema.class(c).unwrap().name.clone(),
                        confidence: None,
                        distribution: None,
                        merged: None,
                        merge: MergePolicy::Replace,
                        cached: false,
                    }),
                }
            };
        let a = Annotation {
            sentence: plain.clone(),
            // Paris: local PER, LLM LOC (right), merged LOC. Acme: local ORG, LLM PER (wrong),
            // merged ORG (right, fuse kept it).
            entities: vec![
                ent(
                    0,
                    "LOC",
                    "PER",
                    Some(2),
                    Provenance::LlmRelabelled { from: "PER".into() },
                ),
                ent(2, "ORG", "ORG", Some(1), Provenance::LlmConfirmed),
            ],
            // "said": local MISC, LLM says O (right), rejected.
            rejected: vec![ent(1, "MISC", "MISC", Some(0), Provenance::LlmRejected)],
            timings: None,
        };
        let acc = routed_accuracy(&schema, &[gold], &[a]);
        assert_eq!(acc.answered, 3);
        assert_eq!(acc.llm_correct, 2);
        assert_eq!(acc.merged_correct, 3);
        assert_eq!(acc.local_correct, 1);
    }
}
