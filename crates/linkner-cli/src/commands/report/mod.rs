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

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use linkner::tune::DeltaCi;
use linkner::{LinkScores, StatsSnapshot};
use serde::Serialize;

use super::CliError;
use super::frontier::SetFrontier;
use super::link::{GoldSet, read_gold};
use super::llm_failures::{FailureArgs, FailureTally};
use super::pipeline_args::PipelineArgs;
use super::provenance::Provenance;

mod fresh;
mod markdown;
mod plots;

pub use fresh::FreshSpread;
mod run;

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
    /// A folder of fresh (uncached) runs of one sample written by `scripts/fresh-runs.sh`
    /// (`run1.json`, `run2.json`, …; repeatable): the report states their run-to-run spread
    /// next to the tables, which replay cached answers.
    #[arg(long = "fresh-runs", value_name = "DIR")]
    pub fresh_runs: Vec<PathBuf>,
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
    /// The config's note (`linkner tune` writes the guard's verdict there).
    pub note: Option<String>,
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
    /// The spread of fresh runs of `--fresh-runs`.
    pub fresh_runs: Vec<FreshSpread>,
    /// The command line that produced it.
    pub command: String,
    /// What produced it: version and commit, the LLM and its model file's hash, the data
    /// files' hashes, the answer cache.
    pub provenance: Provenance,
    /// Total wall seconds.
    pub wall_seconds: f64,
}

/// Runs `linkner report`.
pub fn run(args: ReportArgs) -> Result<(), CliError> {
    if args.frontier_only {
        return super::frontier::run_only(&args);
    }
    let started = Instant::now();
    let fresh_runs = fresh::read_all(&args.fresh_runs)?;
    let mut provenance = Provenance::of_this_run();
    if let Some(n) = args.pipeline.threads {
        linkner::tagger::set_threads(n)?;
    }
    let wanted = wanted_sets(&args)?;
    let configs = args.configs_dir()?.to_path_buf();
    let data_root = args.data_root()?.to_path_buf();
    let mut llm_name = String::new();
    let mut tally = FailureTally::default();
    let (results, skipped) = run_sets(
        &args,
        wanted.as_deref(),
        &configs,
        &data_root,
        &mut llm_name,
        &mut tally,
        &mut provenance,
    )?;
    let (ablation, ablation_sentences) = match &args.ablation {
        Some(dir) => run_ablation(&args, dir, &data_root, &mut llm_name, &mut tally)?,
        None => (Vec::new(), (0, 0)),
    };
    let report = Report {
        llm: llm_name,
        sample: args.sample,
        seed: args.seed,
        resamples: args.resamples,
        sets: results,
        ablation,
        ablation_sentences,
        skipped,
        fresh_runs,
        command: provenance.command_line.join(" "),
        provenance,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    write_report(&report, &args)?;
    tally.check(args.failures.llm_failure_limit)
}

/// The sets of `--sets` (all when not given); an error naming an unknown one.
fn wanted_sets(args: &ReportArgs) -> Result<Option<Vec<String>>, CliError> {
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
    Ok(wanted)
}

/// Sets not run: (title, why).
type SkippedSets = Vec<(String, String)>;

/// Every wanted set with its tuned config: the results, and the sets skipped with why.
fn run_sets(
    args: &ReportArgs,
    wanted: Option<&[String]>,
    configs: &Path,
    data_root: &Path,
    llm_name: &mut String,
    tally: &mut FailureTally,
    provenance: &mut Provenance,
) -> Result<(Vec<SetResult>, SkippedSets), CliError> {
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    for set in SETS {
        if let Some(w) = wanted
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
        provenance.file(&format!("data:{}", set.name), &file)?;
        if provenance.llm.is_none() {
            record_llm(args, &config, provenance)?;
        }
        results.push(run_set(args, set, &config, file, llm_name, tally)?);
    }
    Ok((results, skipped))
}

/// Records the LLM (and examples file, answer cache) of the first set's config in the
/// provenance.
fn record_llm(args: &ReportArgs, config: &Path, p: &mut Provenance) -> Result<(), CliError> {
    let cfg = args.pipeline.config_from(config)?;
    p.llm_of(&cfg, &super::link::runtime()?)
}

/// One set: its tuned config on its data, and the plots of its tuning record.
fn run_set(
    args: &ReportArgs,
    set: &SetSpec,
    config: &Path,
    file: PathBuf,
    llm_name: &mut String,
    tally: &mut FailureTally,
) -> Result<SetResult, CliError> {
    eprintln!(
        "== {} ({}) with {} ==",
        set.title,
        file.display(),
        config.display()
    );
    let sample = (args.sample > 0).then_some(args.sample);
    let gold = read_gold(
        &file,
        &super::formats::DataArgs::default(),
        sample,
        args.seed,
    )?;
    let run = run::run_config(args, config, &gold, set.name, llm_name, tally)?;
    let plot = match &args.tune_json {
        Some(dir) => plots::plot_tuning(args, set, &dir.join(format!("{}.json", set.name)))?,
        None => None,
    };
    let frontier = match &args.tune_json {
        Some(dir) => super::frontier::for_set(
            set.name,
            &dir.join(format!("{}.json", set.name)),
            &args.plots_dir(),
            &args.out,
        )?,
        None => None,
    };
    Ok(SetResult {
        name: set.name.to_string(),
        title: set.title.to_string(),
        file,
        sentences: gold.sentences.len(),
        sentences_in_file: gold.total,
        run,
        plot,
        frontier,
    })
}

/// The ablation configs of `dir` on `--ablation-set`: their runs, and the sentences run and in
/// the file.
fn run_ablation(
    args: &ReportArgs,
    dir: &Path,
    data_root: &Path,
    llm_name: &mut String,
    tally: &mut FailureTally,
) -> Result<(Vec<RunResult>, (usize, usize)), CliError> {
    let set = SETS
        .iter()
        .find(|s| s.name == args.ablation_set)
        .ok_or_else(|| format!("unknown ablation set `{}`", args.ablation_set))?;
    let file = data_root.join(set.file);
    let gold: GoldSet = read_gold(
        &file,
        &super::formats::DataArgs::default(),
        (args.ablation_sample > 0).then_some(args.ablation_sample),
        args.seed,
    )?;
    let ablation_sentences = (gold.sentences.len(), gold.total);
    let mut configs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    configs.sort();
    if configs.is_empty() {
        return Err(format!("{}: no *.json ablation configs", dir.display()).into());
    }
    let mut ablation = Vec::new();
    for c in configs {
        eprintln!("== ablation {} on {} ==", c.display(), set.title);
        let label = format!(
            "ablation {}",
            c.file_stem().unwrap_or_default().to_string_lossy()
        );
        ablation.push(run::run_config(args, &c, &gold, &label, llm_name, tally)?);
    }
    Ok((ablation, ablation_sentences))
}

/// Writes the Markdown report and, with `--json-out`, the JSON one.
fn write_report(report: &Report, args: &ReportArgs) -> Result<(), CliError> {
    if let Some(dir) = args.out.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, markdown::markdown(report, args))
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(report)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    eprintln!("report written to {}", args.out.display());
    Ok(())
}
