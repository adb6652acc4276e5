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
use linkner::core::Sentence;
use linkner::llm::{
    AnswerKeys, AnswerMode, Calibrator, ClassifyRequest, LlmClassifier, NegativeExamples,
    OpenAiBuilder, PromptTemplate,
};
use linkner::tune::{Grid, SettingScore, search};
use linkner::uncertainty::EstimatorConfig;
use linkner::{Annotation, LinkConfig, MergePolicy, RoutingPolicy};
use serde::Serialize;

use super::CliError;
use super::link::{annotate_all, read_gold, runtime};
use super::pipeline_args::PipelineArgs;

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
    /// Do not search contextual calibration.
    #[arg(long, help_heading = SEARCH)]
    pub no_calibration: bool,
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
        llm.template = PromptTemplate {
            mark_span: self.mark,
            local_hint: self.hint,
            answer_keys: if self.keys {
                AnswerKeys::Letters
            } else {
                AnswerKeys::Names
            },
            ..llm.template.clone()
        };
        llm.calibrate = false;
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
    /// The chosen setting.
    pub best: Trial,
    /// Every setting, best first.
    pub trials: Vec<Trial>,
    /// LLM requests and calls (not from cache) per prompt variant.
    pub llm_calls: BTreeMap<String, (u64, u64)>,
    /// Wall seconds of the whole run.
    pub wall_seconds: f64,
    /// The config file written.
    pub config: PathBuf,
}

/// The calibrated copy of annotations: every verdict's distribution divided by the baseline.
fn calibrated(
    annotations: &[Annotation],
    schema: &linkner::core::LabelSchema,
    baseline: &[f32],
) -> Vec<Annotation> {
    let mut out = annotations.to_vec();
    for a in &mut out {
        for e in a.entities.iter_mut().chain(a.rejected.iter_mut()) {
            if let Some(v) = &mut e.llm {
                let answer = linkner::llm::Answer {
                    class: v.class,
                    label: v.label.clone(),
                    confidence: v.confidence,
                    distribution: v.distribution.clone(),
                    usage: Default::default(),
                    latency: Default::default(),
                    cached: v.cached,
                    raw: String::new(),
                };
                let answer = Calibrator::apply(schema, baseline, answer);
                v.class = answer.class;
                v.label = answer.label;
                v.confidence = answer.confidence;
                v.distribution = answer.distribution;
            }
        }
    }
    out
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
    let base = args.pipeline.link_config()?;
    if base.llm.is_none() {
        return Err("tuning needs an LLM: give --llm-url (or LINKNER_LLM_URL)".into());
    }
    if !(0.0..1.0).contains(&args.floor) || args.step.is_nan() || args.step <= 0.0 {
        return Err("--floor must be in [0, 1) and --step positive".into());
    }
    if let Some(n) = args.pipeline.threads {
        linkner::tagger::set_threads(n)?;
    }
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
    let tagger = Arc::new(base.tagger.load()?);
    let schema = linkner::LocalTagger::schema(tagger.as_ref()).clone();
    let gold_set = read_gold(&args.dev, &args.formats, Some(args.sample), args.seed)?;
    let (gold, total) = (&gold_set.sentences, gold_set.total);
    for s in gold {
        for span in &s.spans {
            if schema.class_of(&span.label).is_none() {
                return Err(format!(
                    "{}: gold label `{}` is not a type of the tagger's schema `{}`",
                    args.dev.display(),
                    span.label,
                    schema.name
                )
                .into());
            }
        }
    }
    let mut grid = Grid::standard(args.floor, args.step);
    grid.per_type = !args.no_per_type;
    let rt = runtime()?;
    let mut trials: Vec<Trial> = Vec::new();
    let mut calls = BTreeMap::new();
    let mut configs: BTreeMap<String, LinkConfig> = BTreeMap::new();
    let mut local_f1 = None;
    for (spec, variant) in &variants {
        let mut cfg = base.clone();
        variant.apply(&mut cfg, args.retrieve_k)?;
        let llm_cfg = cfg.llm_config(&schema)?.ok_or("no LLM")?;
        let logprobs = matches!(llm_cfg.mode, AnswerMode::Logprobs { .. });
        let backend = Arc::new(OpenAiBuilder::from_config(llm_cfg).build()?);
        let llm: Arc<dyn LlmClassifier> = backend.clone();
        let retriever = cfg.retriever(&tagger)?.map(Arc::new);
        let baseline = if logprobs && !args.no_calibration {
            let schema_arc = Arc::new(schema.clone());
            let calibrator = Calibrator::new();
            let b = rt.block_on(calibrator.baseline(&schema_arc, |r: ClassifyRequest| {
                let llm = llm.clone();
                async move { llm.classify(&r).await }
            }))?;
            Some(b)
        } else {
            None
        };
        let stats_before = backend.stats();
        for est in &estimators {
            let mut run_cfg = cfg.clone();
            run_cfg.estimator = est.clone();
            run_cfg.policy = RoutingPolicy::threshold(args.floor);
            run_cfg.merge = MergePolicy::Replace;
            let mut builder = run_cfg
                .builder_without_llm()?
                .llm(llm.clone())
                .tagger(tagger.clone());
            if let Some(r) = &retriever {
                builder = builder.retriever(r.clone());
            }
            let pipeline = builder.build()?;
            let label = format!("{spec} · {}", pipeline.estimator_name());
            let before = pipeline.stats();
            let annotations = rt.block_on(annotate_all(
                &pipeline,
                &gold_set.documents,
                args.chunk,
                &label,
            ))?;
            let run = pipeline.stats().since(&before);
            if run.failures > 0 && !args.allow_failures {
                let kinds: Vec<String> = run
                    .failures_by_kind
                    .iter()
                    .map(|(k, n)| format!("{} {n}", k.name()))
                    .collect();
                return Err(format!(
                    "{} of {} LLM calls failed ({}) with prompt `{spec}`: tuning on them would \
                     be biased. Rerun (with --llm-cache the answers received are kept; \
                     --llm-timeout for a slow server) or pass --allow-failures",
                    run.failures,
                    run.routed,
                    kinds.join(", ")
                )
                .into());
            }
            let estimator = pipeline.estimator_name().to_string();
            let mut versions = vec![(false, annotations.clone())];
            if let Some(b) = &baseline {
                versions.push((true, calibrated(&annotations, &schema, b)));
            }
            for (calibrate, anns) in versions {
                let found = search(gold, &anns, &schema, args.floor, &grid)?;
                if local_f1.is_none() {
                    local_f1 = found
                        .iter()
                        .find(|s| s.policy == RoutingPolicy::Never)
                        .map(|s| s.f1);
                }
                trials.extend(found.into_iter().map(|scored| Trial {
                    prompt: spec.clone(),
                    estimator: estimator.clone(),
                    calibrate,
                    scored,
                }));
            }
            configs.insert(format!("{spec}\u{1f}{estimator}"), run_cfg);
        }
        let after = backend.stats();
        if let (Some(b), Some(a)) = (stats_before, after) {
            calls.insert(
                spec.clone(),
                (
                    a.calls.saturating_sub(b.calls),
                    a.requests.saturating_sub(b.requests),
                ),
            );
        }
    }
    trials.sort_by(|a, b| {
        b.scored
            .f1
            .total_cmp(&a.scored.f1)
            .then(
                a.scored
                    .routed_fraction
                    .total_cmp(&b.scored.routed_fraction),
            )
            .then(a.calibrate.cmp(&b.calibrate))
    });
    let best = trials.first().cloned().ok_or("nothing was searched")?;
    let local_f1 = local_f1.unwrap_or(0.0);

    // The config of the best setting.
    let mut out = configs
        .get(&format!("{}\u{1f}{}", best.prompt, best.estimator))
        .cloned()
        .ok_or("internal: no config for the best setting")?;
    out.policy = best.scored.policy.clone();
    out.merge = best.scored.merge.clone();
    if let Some(llm) = out.llm.as_mut() {
        llm.calibrate = best.calibrate;
    }
    if best.scored.policy == RoutingPolicy::Never {
        // Routing nothing needs no LLM: keep the section (it documents the tuned prompt) but
        // nothing is sent.
    }
    out.tagger.model = portable(&out.tagger.model);
    if let Some(ex) = out.examples.as_mut() {
        ex.from = portable(&ex.from);
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&out)? + "\n")
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    let report = TuneReport {
        dev: args.dev.clone(),
        sentences: gold.len(),
        sentences_in_file: total,
        floor: args.floor,
        local_f1,
        best: best.clone(),
        trials,
        llm_calls: calls,
        wall_seconds: started.elapsed().as_secs_f64(),
        config: args.out.clone(),
    };
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    print!("{}", human(&report, gold));
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
