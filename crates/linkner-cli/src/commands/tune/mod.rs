//! `linkner tune`: one LLM pass per prompt variant on a dev split, then an offline search over
//! estimator × threshold (overall and per type) × merge policy × calibration, "route nothing"
//! included; writes the best setting as a pipeline config that `link`, `annotate`, `report`
//! and the library load.
//!
//! ```text
//! linkner tune --model DIR --dev dev.txt --examples-from train.txt --llm-url URL \
//!              [--prompts plain,full] [--estimators confidence,entropy,mc_dropout] \
//!              [--floor 0.05] [--sample N] --out configs/set.json [--json-out search.json]
//! ```
//!
//! Per prompt variant and estimator the pipeline runs once with every entity whose uncertainty
//! is above `--floor` routed (the answers of one variant are cached, so each entity is asked
//! once whatever the estimator); every setting at or above the floor is then replayed from those
//! annotations ([`linkner::tune`]). Contextual calibration only rescales the LLM's
//! distributions, so it is searched offline too (its content-free baseline costs three calls).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use linkner::core::{LabelSchema, Sentence};
use linkner::llm::{AnswerKeys, NegativeExamples, PromptTemplate};
use linkner::tune::{Grid, GuardVerdict, SettingScore};
use linkner::uncertainty::EstimatorConfig;
use linkner::{LinkConfig, RoutingPolicy};
use serde::Serialize;

use super::CliError;
use super::link::{read_gold, runtime};
use super::pipeline_args::PipelineArgs;
use super::provenance::Provenance;

mod choose;
mod search;

use choose::{PerTypeMergeCheck, guarded_best};

use search::{Pass, Searched, sort_trials};

/// The help heading of the research switches: what the search tries. Their defaults are the
/// measured ones; a user tuning a pipeline for their data needs none of them.
const SEARCH: &str = "Search space (research switches; the defaults are the measured ones)";

/// Arguments of `linkner tune`.
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// The pipeline to tune (tagger, LLM, `--examples-from`); its routing, merge and prompt
    /// switches are what the search replaces.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// The labelled dev split (never a test set).
    #[arg(long, value_name = "FILE")]
    pub dev: PathBuf,
    /// How `--dev` is read (format and reader options).
    #[command(flatten)]
    pub formats: super::formats::DataArgs,
    /// Tune on a seeded sample of N dev sentences (0 = all), to bound the LLM pass.
    #[arg(long, default_value_t = 0)]
    pub sample: usize,
    /// Seed of `--sample`.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Estimators searched (comma separated; see `linkner eval --estimator`).
    #[arg(long, help_heading = SEARCH, default_value = "confidence,entropy,mc_dropout")]
    pub estimators: String,
    /// Prompt variants, one LLM pass each (comma separated): `plain` (linkner 0.1's prompt:
    /// label names, no marks, no hint, fixed capitalised non-entity examples), `full` (letter
    /// keys, span marked, local hint, varied non-entity examples, retrieved examples), or either
    /// with `+TECHNIQUE` / `-TECHNIQUE` (keys, mark, hint, varied, retrieve).
    #[arg(long, help_heading = SEARCH, default_value = "plain,full")]
    pub prompts: String,
    /// Entities above this uncertainty are sent to the LLM in the tuning pass; thresholds below
    /// it are not searched.
    #[arg(long, help_heading = SEARCH, default_value_t = 0.05)]
    pub floor: f32,
    /// Step of the threshold grid.
    #[arg(long, help_heading = SEARCH, default_value_t = 0.05)]
    pub step: f32,
    /// Examples retrieved per entity by the variants with `retrieve`.
    #[arg(long, help_heading = SEARCH, default_value_t = 4)]
    pub retrieve_k: usize,
    /// Do not search per-type thresholds.
    #[arg(long, help_heading = SEARCH)]
    pub no_per_type: bool,
    /// Do not search one merge per type (a `fuse` weight, LLM temperature and doubt of each
    /// type's own, or another policy).
    #[arg(long, help_heading = SEARCH)]
    pub no_per_type_merge: bool,
    /// Do not search contextual calibration.
    #[arg(long, help_heading = SEARCH)]
    pub no_calibration: bool,
    /// Coverage of the guard's bootstrap interval: the tuned setting routes only when the lower
    /// end of its dev gain's interval (whole documents resampled when the dev file marks
    /// them) is above zero, and when the search, re-run on each half of the dev units, gains
    /// on the half it did not see (the selection check); otherwise the config routes nothing
    /// and says why.
    #[arg(long, help_heading = SEARCH, default_value_t = 0.95)]
    pub guard_level: f64,
    /// Write the best dev setting even when the guard finds its gain within noise (the
    /// record still holds the guard's verdict).
    #[arg(long, help_heading = SEARCH)]
    pub no_guard: bool,
    /// Tune even when some LLM calls failed (they count as "local label kept", which biases
    /// the search towards routing less); by default a failed call stops the run — rerun it
    /// with `--llm-cache`, answers already received are not asked again.
    #[arg(long)]
    pub allow_failures: bool,
    /// Sentences per pipeline call.
    #[arg(long, default_value_t = 64)]
    pub chunk: usize,
    /// Where to write the tuned pipeline config (JSON).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Also write every searched setting with its dev F1 to this JSON file (the tuning record
    /// that `report --tune-json` and `frontier` read).
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
}

/// The prompt techniques a variant switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Variant {
    /// Letter answer keys (else label names).
    pub keys: bool,
    /// Span marked in the sentence.
    pub mark: bool,
    /// Local model's guess shown.
    pub hint: bool,
    /// Varied non-entity examples (else capitalised words).
    pub varied: bool,
    /// Examples retrieved per entity.
    pub retrieve: bool,
}

impl Variant {
    /// Parses `plain`, `full`, and either with `+technique` / `-technique` suffixes.
    pub fn parse(spec: &str) -> Result<Variant, CliError> {
        let spec = spec.trim();
        let mut parts = spec.split(['+', '-']);
        let base = parts.next().unwrap_or_default().trim();
        let mut v = match base {
            "plain" => Variant {
                keys: false,
                mark: false,
                hint: false,
                varied: false,
                retrieve: false,
            },
            "full" => Variant {
                keys: true,
                mark: true,
                hint: true,
                varied: true,
                retrieve: true,
            },
            other => {
                return Err(format!(
                    "prompt variant `{spec}`: unknown base `{other}` (expected plain or full)"
                )
                .into());
            }
        };
        let mut rest = &spec[base.len()..];
        while let Some(sign) = rest.chars().next() {
            rest = &rest[1..];
            let end = rest.find(['+', '-']).unwrap_or(rest.len());
            let name = rest[..end].trim();
            rest = &rest[end..];
            let on = sign == '+';
            match name {
                "keys" => v.keys = on,
                "mark" => v.mark = on,
                "hint" => v.hint = on,
                "varied" => v.varied = on,
                "retrieve" => v.retrieve = on,
                other => {
                    return Err(format!(
                        "prompt variant `{spec}`: unknown technique `{other}` (expected keys, \
                         mark, hint, varied, retrieve)"
                    )
                    .into());
                }
            }
        }
        Ok(v)
    }

    /// Applies the variant to a config (which must have an `llm` section).
    pub fn apply(&self, config: &mut LinkConfig, retrieve_k: usize) -> Result<(), CliError> {
        let llm = config
            .llm
            .as_mut()
            .ok_or("tuning needs an LLM: give --llm-url (or LINKNER_LLM_URL)")?;
        llm.backend.template = PromptTemplate {
            mark_span: self.mark,
            local_hint: self.hint,
            answer_keys: if self.keys {
                AnswerKeys::Letters
            } else {
                AnswerKeys::Names
            },
            ..llm.backend.template.clone()
        };
        llm.backend.calibrate = false;
        match config.examples.as_mut() {
            Some(ex) => {
                ex.negatives = if self.varied {
                    NegativeExamples::Varied
                } else {
                    NegativeExamples::Capitalised
                };
                ex.retrieve = if self.retrieve { retrieve_k } else { 0 };
            }
            None if self.retrieve || self.varied => {
                return Err(
                    "prompt variants with `varied` or `retrieve` need labelled examples: \
                            give --examples-from FILE (e.g. the training split)"
                        .into(),
                );
            }
            None => {}
        }
        Ok(())
    }
}

/// One searched setting with where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    /// The prompt variant's spec.
    pub prompt: String,
    /// The estimator.
    pub estimator: String,
    /// Contextual calibration on.
    pub calibrate: bool,
    /// The setting and its dev F1.
    #[serde(flatten)]
    pub scored: SettingScore,
}

/// What `tune` found.
#[derive(Debug, Clone, Serialize)]
pub struct TuneReport {
    /// The dev file.
    pub dev: PathBuf,
    /// Dev sentences used.
    pub sentences: usize,
    /// Sentences in the file.
    pub sentences_in_file: usize,
    /// The floor of the tuning pass.
    pub floor: f32,
    /// F1 of the local tagger alone on the dev sentences.
    pub local_f1: f64,
    /// The setting written to the config: the best dev setting when the guard lets it route,
    /// else routing nothing.
    pub best: Trial,
    /// The guard's verdict on the best dev setting (absent when that setting routes nothing).
    pub guard: Option<GuardVerdict>,
    /// True when `--no-guard` wrote the best dev setting whatever the verdict.
    pub guard_overridden: bool,
    /// When the best dev setting had one merge per type: whether that out-did the best single
    /// merge on held-out halves (else the single merge was written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_type_merge: Option<PerTypeMergeCheck>,
    /// Every setting, best first.
    pub trials: Vec<Trial>,
    /// LLM requests and calls (not from cache) per prompt variant.
    pub llm_calls: BTreeMap<String, (u64, u64)>,
    /// Wall seconds of the whole run.
    pub wall_seconds: f64,
    /// The config file written.
    pub config: PathBuf,
    /// What produced this record: command line, version and commit, the LLM and its model
    /// file's hash, the dev and examples files' hashes, the answer cache.
    pub provenance: Provenance,
}

/// Writes `path` as `${VAR}/rest` when it lies under the folder of `LINKNER_DATA` or
/// `LINKNER_CACHE`, so the config works on other machines.
fn portable(path: &Path) -> PathBuf {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    for var in ["LINKNER_DATA", "LINKNER_CACHE"] {
        if let Some(root) = std::env::var_os(var) {
            let root = std::fs::canonicalize(&root).unwrap_or_else(|_| PathBuf::from(&root));
            if let Ok(rest) = abs.strip_prefix(&root) {
                return PathBuf::from(format!("${{{var}}}")).join(rest);
            }
        }
    }
    path.to_path_buf()
}

/// Runs `linkner tune`.
pub fn run(args: TuneArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let mut provenance = Provenance::of_this_run();
    let base = args.pipeline.link_config()?;
    if base.llm.is_none() {
        return Err("tuning needs an LLM: give --llm-url (or LINKNER_LLM_URL)".into());
    }
    if !(0.0..1.0).contains(&args.floor) || args.step.is_nan() || args.step <= 0.0 {
        return Err("--floor must be in [0, 1) and --step positive".into());
    }
    if !(0.0 < args.guard_level && args.guard_level < 1.0) {
        return Err("--guard-level must be in (0, 1), e.g. 0.95".into());
    }
    if let Some(n) = args.pipeline.threads {
        linkner::tagger::set_threads(n)?;
    }
    let (variants, estimators) = search_space(&args)?;
    let tagger = Arc::new(base.tagger.load()?);
    let schema = linkner::core::LocalTagger::schema(tagger.as_ref()).clone();
    let gold_set = read_gold(&args.dev, &args.formats, Some(args.sample), args.seed)?;
    let (gold, total) = (&gold_set.sentences, gold_set.total);
    check_gold_labels(&args.dev, gold, &schema)?;
    let mut grid = Grid::standard(args.floor, args.step);
    grid.per_type = !args.no_per_type;
    grid.per_type_merge = !args.no_per_type_merge;
    let pass = Pass {
        args: &args,
        tagger,
        schema,
        gold_set: &gold_set,
        grid,
        rt: runtime()?,
    };
    provenance.file("dev", &args.dev)?;
    provenance.llm_of(&base, &pass.rt)?;
    let mut found = Searched::default();
    for (spec, variant) in &variants {
        pass.run_variant(&base, spec, variant, &estimators, &mut found)?;
    }
    sort_trials(&mut found.trials);
    let (best, guard, per_type_merge) = guarded_best(&args, &pass, &found)?;
    let mut config = best_config(&found.configs, &best)?;
    config.note = Some(config_note(&args, gold.len(), guard.as_ref()));
    write_config(&args.out, &config)?;
    let report = TuneReport {
        dev: args.dev.clone(),
        sentences: gold.len(),
        sentences_in_file: total,
        floor: args.floor,
        local_f1: found.local_f1.unwrap_or(0.0),
        best,
        guard,
        guard_overridden: args.no_guard,
        per_type_merge,
        trials: found.trials,
        llm_calls: found.calls,
        wall_seconds: started.elapsed().as_secs_f64(),
        config: args.out.clone(),
        provenance,
    };
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    print!("{}", human(&report, gold));
    Ok(())
}

/// The note written into the tuned config: where it was tuned and the guard's verdict.
fn config_note(args: &TuneArgs, sentences: usize, guard: Option<&GuardVerdict>) -> String {
    let file = args
        .dev
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let verdict = match guard {
        None => "the best dev setting routes nothing".to_string(),
        Some(g) if g.routes => format!("guard: {}", g.reason),
        Some(g) if args.no_guard => format!("guard overridden (--no-guard): {}", g.reason),
        Some(g) => format!(
            "routes nothing — guard on the best dev setting ({}, {}): {}",
            g.setting.policy, g.setting.merge, g.reason
        ),
    };
    format!("written by `linkner tune` on {sentences} sentences of {file}; {verdict}")
}

/// The prompt variants of `--prompts` (with their specs) and the estimators of
/// `--estimators`; at least one of each.
fn search_space(args: &TuneArgs) -> Result<SearchSpace, CliError> {
    let variants: Vec<(String, Variant)> = args
        .prompts
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Variant::parse(s).map(|v| (s.to_string(), v)))
        .collect::<Result<_, _>>()?;
    let estimators: Vec<EstimatorConfig> = args
        .estimators
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<EstimatorConfig>())
        .collect::<Result<_, _>>()?;
    if variants.is_empty() || estimators.is_empty() {
        return Err("give at least one prompt variant and one estimator".into());
    }
    Ok((variants, estimators))
}

/// The prompt variants (spec, variant) and the estimators searched.
type SearchSpace = (Vec<(String, Variant)>, Vec<EstimatorConfig>);

/// An error naming the dev file when a gold label is not a type of the tagger's schema.
fn check_gold_labels(dev: &Path, gold: &[Sentence], schema: &LabelSchema) -> Result<(), CliError> {
    for s in gold {
        for span in &s.spans {
            if schema.class_of(&span.label).is_none() {
                return Err(format!(
                    "{}: gold label `{}` is not a type of the tagger's schema `{}`",
                    dev.display(),
                    span.label,
                    schema.name
                )
                .into());
            }
        }
    }
    Ok(())
}

/// The config of the best setting, its paths made portable.
fn best_config(
    configs: &BTreeMap<String, LinkConfig>,
    best: &Trial,
) -> Result<LinkConfig, CliError> {
    let mut out = configs
        .get(&format!("{}\u{1f}{}", best.prompt, best.estimator))
        .cloned()
        .ok_or("internal: no config for the best setting")?;
    out.policy = best.scored.policy.clone();
    out.merge = best.scored.merge.clone();
    if let Some(llm) = out.llm.as_mut() {
        llm.backend.calibrate = best.calibrate;
        // The tuning run's answer cache is a choice of that run (`--llm-cache`), not of the
        // pipeline: a machine's path in a config that other machines load would be wrong there.
        llm.reliability.cache_path = None;
    }
    if best.scored.policy == RoutingPolicy::Never {
        // Routing nothing needs no LLM: keep the section (it documents the tuned prompt) but
        // nothing is sent.
    }
    out.tagger.model = portable(&out.tagger.model);
    if let Some(ex) = out.examples.as_mut() {
        ex.from = portable(&ex.from);
    }
    Ok(out)
}

/// Writes the tuned config (its folder created), pretty JSON ending in a newline.
fn write_config(path: &Path, config: &LinkConfig) -> Result<(), CliError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(config)? + "\n")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

fn human(r: &TuneReport, gold: &[Sentence]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "tuned on {} of {} dev sentences of {} ({} gold entities), floor {}, in {:.0} s",
        r.sentences,
        r.sentences_in_file,
        r.dev.display(),
        gold.iter().map(|g| g.spans.len()).sum::<usize>(),
        r.floor,
        r.wall_seconds
    );
    for (variant, (calls, requests)) in &r.llm_calls {
        let _ = writeln!(
            s,
            "  prompt {variant}: {calls} LLM requests, {requests} HTTP requests"
        );
    }
    let _ = writeln!(s, "\nbest settings (dev F1):");
    let _ = writeln!(
        s,
        "  {:<8} {:<28} {:<6} {:<40} {:<10} routed",
        "F1", "prompt · estimator", "calib", "policy", "merge"
    );
    let mut seen = std::collections::BTreeSet::new();
    for t in r
        .trials
        .iter()
        .filter(|t| seen.insert((t.prompt.clone(), t.estimator.clone(), t.calibrate)))
        .take(12)
    {
        let _ = writeln!(
            s,
            "  {:<8.2} {:<28} {:<6} {:<40} {:<10} {:.1} %",
            100.0 * t.scored.f1,
            format!("{} · {}", t.prompt, t.estimator),
            if t.calibrate { "yes" } else { "no" },
            t.scored.policy.to_string(),
            t.scored.merge.to_string(),
            100.0 * t.scored.routed_fraction
        );
    }
    let _ = writeln!(
        s,
        "\nlocal dev F1 {:.2} → tuned dev F1 {:.2} ({:+.2}) with prompt `{}`, estimator `{}`, calibration {}, policy `{}`, merge `{}`",
        100.0 * r.local_f1,
        100.0 * r.best.scored.f1,
        100.0 * (r.best.scored.f1 - r.local_f1),
        r.best.prompt,
        r.best.estimator,
        if r.best.calibrate { "on" } else { "off" },
        r.best.scored.policy,
        r.best.scored.merge
    );
    if let Some(c) = &r.per_type_merge {
        let _ = writeln!(
            s,
            "per-type merges: cross-fitted gain {:+.2} F1 with them, {:+.2} without: {}",
            100.0 * c.with.delta,
            100.0 * c.without.delta,
            if c.kept {
                "kept"
            } else {
                "not kept (the best single merge is written)"
            }
        );
    }
    if let Some(g) = &r.guard {
        let verdict = match (g.routes, r.guard_overridden) {
            (true, _) => "routes",
            (false, true) => "would route nothing; --no-guard wrote the best setting anyway",
            (false, false) => "routes nothing",
        };
        let _ = writeln!(
            s,
            "guard on the best dev setting (`{}`, `{}`): {}; {verdict}",
            g.setting.policy, g.setting.merge, g.reason
        );
    }
    let _ = writeln!(s, "config written to {}", r.config.display());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse() {
        let p = Variant::parse("plain").unwrap();
        assert!(!p.keys && !p.mark && !p.hint && !p.varied && !p.retrieve);
        let f = Variant::parse("full-retrieve").unwrap();
        assert!(f.keys && f.mark && f.hint && f.varied && !f.retrieve);
        let k = Variant::parse("plain+keys+mark").unwrap();
        assert!(k.keys && k.mark && !k.hint);
        assert!(Variant::parse("fancy").is_err());
        assert!(Variant::parse("plain+colour").is_err());
    }
}
