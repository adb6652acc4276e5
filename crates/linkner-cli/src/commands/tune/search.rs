//! The LLM passes of `linkner tune` (one per prompt variant and estimator) and the offline
//! search over their annotations.

use std::collections::BTreeMap;
use std::sync::Arc;

use linkner::core::LabelSchema;
use linkner::knn::KnnRetriever;
use linkner::llm::{AnswerMode, Calibrator, ClassifyRequest, LlmClassifier, OpenAiBuilder};
use linkner::tagger::AnyTagger;
use linkner::tune::{Grid, search};
use linkner::uncertainty::EstimatorConfig;
use linkner::{Annotation, LinkConfig, MergePolicy, RoutingPolicy, StatsSnapshot};

use super::{Trial, TuneArgs, Variant};
use crate::commands::CliError;
use crate::commands::link::{GoldSet, annotate_all};

/// What every run of the search shares.
pub(super) struct Pass<'a> {
    /// The command line.
    pub(super) args: &'a TuneArgs,
    /// The tagger, loaded once.
    pub(super) tagger: Arc<AnyTagger>,
    /// Its label schema.
    pub(super) schema: LabelSchema,
    /// The dev sentences and documents.
    pub(super) gold_set: &'a GoldSet,
    /// The thresholds searched.
    pub(super) grid: Grid,
    /// The runtime of the pipeline runs.
    pub(super) rt: tokio::runtime::Runtime,
}

/// One prompt variant's LLM side, shared by its estimators.
struct VariantRun<'a> {
    spec: &'a str,
    cfg: LinkConfig,
    llm: Arc<dyn LlmClassifier>,
    retriever: Option<Arc<KnnRetriever>>,
    /// The content-free baseline of contextual calibration (logprobs mode only).
    baseline: Option<Arc<Vec<f32>>>,
}

/// What the runs found so far.
#[derive(Default)]
pub(super) struct Searched {
    /// Every setting searched.
    pub(super) trials: Vec<Trial>,
    /// LLM requests and HTTP requests per prompt variant.
    pub(super) calls: BTreeMap<String, (u64, u64)>,
    /// The config of each (prompt, estimator), keyed `prompt\u{1f}estimator`.
    pub(super) configs: BTreeMap<String, LinkConfig>,
    /// F1 of routing nothing (the local tagger alone).
    pub(super) local_f1: Option<f64>,
    /// The annotations each setting was replayed from, keyed by (prompt, estimator,
    /// calibrated): the guard judges the best setting on its own.
    pub(super) annotations: BTreeMap<(String, String, bool), Vec<Annotation>>,
}

impl Searched {
    /// The annotations `trial` was scored on.
    pub(super) fn annotations_of(&self, trial: &Trial) -> Option<&[Annotation]> {
        self.annotations
            .get(&(
                trial.prompt.clone(),
                trial.estimator.clone(),
                trial.calibrate,
            ))
            .map(Vec::as_slice)
    }
}

impl Pass<'_> {
    /// One prompt variant: its LLM (and calibration baseline), then one run per estimator.
    pub(super) fn run_variant(
        &self,
        base: &LinkConfig,
        spec: &str,
        variant: &Variant,
        estimators: &[EstimatorConfig],
        found: &mut Searched,
    ) -> Result<(), CliError> {
        let mut cfg = base.clone();
        variant.apply(&mut cfg, self.args.retrieve_k)?;
        let llm_cfg = cfg.llm_config(&self.schema)?.ok_or("no LLM")?;
        let logprobs = matches!(llm_cfg.backend.mode, AnswerMode::Logprobs { .. });
        let backend = Arc::new(OpenAiBuilder::from_config(llm_cfg).build()?);
        let llm: Arc<dyn LlmClassifier> = backend.clone();
        let retriever = cfg.retriever(&self.tagger)?.map(Arc::new);
        let baseline = if logprobs && !self.args.no_calibration {
            let schema_arc = Arc::new(self.schema.clone());
            let calibrator = Calibrator::new();
            let b = self
                .rt
                .block_on(calibrator.baseline(&schema_arc, |r: ClassifyRequest| {
                    let llm = llm.clone();
                    async move { llm.classify(&r).await }
                }))?;
            Some(b)
        } else {
            None
        };
        let stats_before = backend.stats();
        let run = VariantRun {
            spec,
            cfg,
            llm,
            retriever,
            baseline,
        };
        for est in estimators {
            self.run_estimator(&run, est, found)?;
        }
        let after = backend.stats();
        if let (Some(b), Some(a)) = (stats_before, after) {
            found.calls.insert(
                spec.to_string(),
                (
                    a.calls.saturating_sub(b.calls),
                    a.requests.saturating_sub(b.requests),
                ),
            );
        }
        Ok(())
    }

    /// One estimator under one prompt variant: the pipeline with every entity above the floor
    /// routed, then the offline search over its annotations (and their calibrated copy).
    fn run_estimator(
        &self,
        v: &VariantRun<'_>,
        est: &EstimatorConfig,
        found: &mut Searched,
    ) -> Result<(), CliError> {
        let spec = v.spec;
        let mut run_cfg = v.cfg.clone();
        run_cfg.estimator = est.clone();
        run_cfg.policy = RoutingPolicy::threshold(self.args.floor);
        run_cfg.merge = MergePolicy::Replace;
        let mut builder = run_cfg
            .builder_without_llm()?
            .llm(v.llm.clone())
            .tagger(self.tagger.clone());
        if let Some(r) = &v.retriever {
            builder = builder.retriever(r.clone());
        }
        let pipeline = builder.build()?;
        let label = format!("{spec} · {}", pipeline.estimator_name());
        let before = pipeline.stats();
        let annotations = self.rt.block_on(annotate_all(
            &pipeline,
            &self.gold_set.documents,
            self.args.chunk,
            &label,
        ))?;
        let run = pipeline.stats().since(&before);
        if run.failures > 0 && !self.args.allow_failures {
            return Err(failures_error(&run, spec));
        }
        let estimator = pipeline.estimator_name().to_string();
        let mut versions = vec![(false, annotations.clone())];
        if let Some(b) = &v.baseline {
            versions.push((true, calibrated(&annotations, &self.schema, b)));
        }
        let gold = &self.gold_set.sentences;
        for (calibrate, anns) in versions {
            let scored = search(gold, &anns, &self.schema, self.args.floor, &self.grid)?;
            if found.local_f1.is_none() {
                found.local_f1 = scored
                    .iter()
                    .find(|s| s.policy == RoutingPolicy::Never)
                    .map(|s| s.f1);
            }
            found.trials.extend(scored.into_iter().map(|scored| Trial {
                prompt: spec.to_string(),
                estimator: estimator.clone(),
                calibrate,
                scored,
            }));
            found
                .annotations
                .insert((spec.to_string(), estimator.clone(), calibrate), anns);
        }
        found
            .configs
            .insert(format!("{spec}\u{1f}{estimator}"), run_cfg);
        Ok(())
    }
}

/// The refusal to tune on a run with failed LLM calls.
fn failures_error(run: &StatsSnapshot, spec: &str) -> CliError {
    let kinds: Vec<String> = run
        .failures_by_kind
        .iter()
        .map(|(k, n)| format!("{} {n}", k.name()))
        .collect();
    format!(
        "{} of {} LLM calls failed ({}) with prompt `{spec}`: tuning on them would \
         be biased. Rerun (with --llm-cache the answers received are kept; \
         --llm-timeout for a slow server) or pass --allow-failures",
        run.failures,
        run.routed,
        kinds.join(", ")
    )
    .into()
}

/// Best first: highest F1, then fewest routed, then uncalibrated before calibrated.
pub(super) fn sort_trials(trials: &mut [Trial]) {
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
                    label_mass: v.label_mass,
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
