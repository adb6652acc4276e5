//! [`LinkConfig`]: one JSON file that builds the whole pipeline (tagger folder and device,
//! estimator, routing policy, LLM backend) — the same file the CLI takes.
//!
//! JSON, because every other config of linkner (estimators, tagger checkpoints) is JSON and it
//! needs no extra dependency. The reference with every field is `docs/configuration.md`; a
//! complete file:
//!
//! ```json
//! {
//!   "tagger": { "model": "models/conll03-minilm", "device": "cpu", "batch_size": 32 },
//!   "estimator": { "type": "entropy" },
//!   "policy": { "type": "threshold", "threshold": 0.4 },
//!   "llm": {
//!     "base_url": "http://127.0.0.1:8080/v1",
//!     "model": "qwen2.5-coder-1.5b-instruct",
//!     "mode": { "type": "logprobs", "top_logprobs": 20 },
//!     "max_in_flight": 4
//!   },
//!   "merge": { "type": "fuse", "weight": 0.5 },
//!   "examples": { "from": "../shared/data/conll03/train.txt", "per_class": 2, "seed": 42,
//!                 "negatives": "varied", "retrieve": 4 },
//!   "pipeline": { "local_top_k": 3, "stream_chunk_size": 32, "stream_chunks_in_flight": 2,
//!                 "stream_max_wait_ms": 10, "stream_order": "input" },
//!   "budget": { "max_in_flight": 4, "latency_ms": 2000 }
//! }
//! ```
//!
//! Relative paths are resolved against the folder of the config file. Paths may start with
//! `${LINKNER_DATA}` or `${LINKNER_CACHE}` (or any `${VAR}`): the variable's value is put in
//! when the file is read (`LINKNER_CACHE` defaults to `~/.cache/linkner`), so a config can name
//! the datasets and cached models of whatever machine it runs on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use linkner_core::LabelSchema;
use linkner_core::io::{DataFormat, read_dataset, sentences};
use linkner_core::tagger::{LocalTagger, PredictOptions};
use linkner_llm::{ExamplePool, LlmConfig, NegativeExamples, OpenAiBuilder};
use linkner_tagger::{AnyTagger, DeviceSpec, Precision, TaggerKind};
use linkner_uncertainty::EstimatorConfig;
use serde::{Deserialize, Serialize};

use crate::budget::RoutingBudget;
use crate::error::{LinkError, Result};
use crate::knn::{KnnOptions, KnnRetriever};
use crate::merge::MergePolicy;
use crate::pipeline::{Pipeline, PipelineBuilder};
use crate::policy::RoutingPolicy;
use crate::stream::{StreamOptions, StreamOrder};

fn default_device() -> String {
    "cpu".into()
}

fn default_batch_size() -> usize {
    PredictOptions::default().batch_size
}

/// The local tagger: a checkpoint folder (written by `linkner train`, or a Hugging Face
/// token-classification folder) and where it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaggerSection {
    /// Checkpoint folder: a SpanNER checkpoint (`model.safetensors`, `tagger.json`,
    /// `tokenizer.json`) or a Hugging Face `*ForTokenClassification` folder (`config.json` with
    /// `id2label`, `model.safetensors`, `tokenizer.json`).
    pub model: PathBuf,
    /// `span` or `token_classification`; detected from the folder when absent.
    #[serde(default)]
    pub kind: Option<TaggerKind>,
    /// A label schema (a built-in name or a JSON/TOML schema file) whose wording — LLM names,
    /// descriptions — replaces the checkpoint's; it must have exactly the model's types. When
    /// absent, the schema stored in the checkpoint is used.
    #[serde(default)]
    pub schema: Option<String>,
    /// `cpu` (LibTorch; default), `cuda`, `cuda:N`, or `flex` (pure Rust).
    #[serde(default = "default_device")]
    pub device: String,
    /// Encoder windows per forward pass (default 32).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Return overlapping candidates instead of the greedy non-overlapping selection.
    #[serde(default)]
    pub overlapping: bool,
    /// Run the encoder with dropout too in Monte-Carlo passes (slower).
    #[serde(default)]
    pub mc_encoder: bool,
    /// Float precision of the forward pass: `f32` (default) or `bf16` (faster on CPUs with
    /// AVX512-BF16/AMX and on GPUs; F1 within ~0.1 of f32 in our measurements).
    #[serde(default)]
    pub precision: Precision,
    /// Let concurrent calls run the tagger at the same time. Off by default: one call already
    /// keeps every core busy (one stream per core, `streams`), so concurrent passes only
    /// oversubscribe the CPU; calls then take turns in the tagger (and overlap in the LLM).
    /// Worth trying on a GPU.
    #[serde(default)]
    pub concurrent: bool,
    /// Concurrent CPU streams of a SpanNER pass (`SpanTagger::with_streams`): `0` (default)
    /// is one single-threaded stream per LibTorch thread, `1` every batch in turn on all the
    /// threads. Ignored for token-classification checkpoints, CUDA and Monte-Carlo passes.
    #[serde(default)]
    pub streams: usize,
}

impl TaggerSection {
    /// The section for the checkpoint folder `model` with every other field at its default
    /// (the same defaults a config file gets for the fields it leaves out).
    pub fn new(model: impl Into<PathBuf>) -> TaggerSection {
        TaggerSection {
            model: model.into(),
            kind: None,
            schema: None,
            device: default_device(),
            batch_size: default_batch_size(),
            overlapping: false,
            mc_encoder: false,
            precision: Precision::default(),
            concurrent: false,
            streams: 0,
        }
    }

    /// The parsed device.
    pub fn device(&self) -> Result<DeviceSpec> {
        self.device
            .parse()
            .map_err(|e: linkner_core::TaggerError| LinkError::Config(e.to_string()))
    }

    /// Makes a relative `schema` file path relative to `base` (the config file's folder) when a
    /// file is there; a built-in name is left as it is.
    pub fn resolve_schema_path(&mut self, base: &Path) {
        if let Some(spec) = &mut self.schema
            && Path::new(spec.as_str()).is_relative()
        {
            let candidate = base.join(spec.as_str());
            if candidate.is_file() {
                *spec = candidate.to_string_lossy().into_owned();
            }
        }
    }

    /// The `schema` field resolved ([`LabelSchema::resolve`]), if given.
    pub fn label_schema(&self) -> Result<Option<LabelSchema>> {
        self.schema
            .as_deref()
            .map(|s| LabelSchema::resolve(s).map_err(LinkError::from))
            .transpose()
    }

    /// Loads the checkpoint (of the configured or detected kind) on the device, at the
    /// configured precision and stream count, with the `schema` wording when one is given.
    pub fn load(&self) -> Result<AnyTagger> {
        let schema = self.label_schema()?;
        let mut tagger = AnyTagger::load(&self.model, self.kind, &self.device()?)?;
        if let Some(schema) = &schema {
            tagger = tagger.with_schema(schema)?;
        }
        Ok(tagger
            .with_precision(self.precision)?
            .with_streams(self.streams))
    }

    /// The tagger options (`mc_samples` is set from the estimator by the pipeline).
    pub fn predict_options(&self) -> PredictOptions {
        PredictOptions {
            batch_size: self.batch_size,
            overlapping: self.overlapping,
            mc_encoder: self.mc_encoder,
            ..PredictOptions::default()
        }
    }
}

fn default_per_class() -> usize {
    2
}

fn default_seed() -> u64 {
    42
}

/// Few-shot examples for the LLM prompt from a labelled file: a fixed set drawn once (seeded),
/// which keeps the prompt prefix the same for every entity so the server's prompt cache reuses
/// it, and optionally the `retrieve` most similar labelled spans per entity (k-NN over the
/// tagger's own span embeddings), sent after the prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExamplesSection {
    /// A labelled dataset (CoNLL, spanner JSON or JSONL).
    pub from: PathBuf,
    /// Its format (guessed from the content when absent).
    #[serde(default)]
    pub format: Option<DataFormat>,
    /// Examples per class, the non-entity class included (default 2).
    #[serde(default = "default_per_class")]
    pub per_class: usize,
    /// Seed of the draw (default 42).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Which non-entity examples are used (default `varied`; `capitalised` is linkner 0.1's).
    #[serde(default)]
    pub negatives: NegativeExamples,
    /// Examples retrieved per routed entity (its nearest labelled spans); 0 (default) = none.
    #[serde(default)]
    pub retrieve: usize,
}

impl ExamplesSection {
    /// A section drawing `per_class` examples (seed 42, varied non-entities, no retrieval) from
    /// the labelled file `from`.
    pub fn new(from: impl Into<PathBuf>) -> ExamplesSection {
        ExamplesSection {
            from: from.into(),
            format: None,
            per_class: default_per_class(),
            seed: default_seed(),
            negatives: NegativeExamples::default(),
            retrieve: 0,
        }
    }
}

fn default_top_k() -> usize {
    3
}

/// Pipeline-level knobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Local classes (with probabilities) shown in each LLM request (default 3).
    #[serde(default = "default_top_k")]
    pub local_top_k: usize,
    /// Documents per chunk of a stream (default 32).
    #[serde(default = "default_chunk")]
    pub stream_chunk_size: usize,
    /// Chunks of a stream in flight at once (default 2).
    #[serde(default = "default_in_flight")]
    pub stream_chunks_in_flight: usize,
    /// How long a stream's tagger batch waits for more documents after its first, in
    /// milliseconds (default 10).
    #[serde(default = "default_max_wait_ms")]
    pub stream_max_wait_ms: u64,
    /// Most documents of a stream read and not yet written (default 512): its memory bound.
    #[serde(default = "default_max_pending")]
    pub stream_max_pending: usize,
    /// `input` (default) or `completed`: the order of a stream's output.
    #[serde(default)]
    pub stream_order: StreamOrder,
}

fn default_max_wait_ms() -> u64 {
    u64::try_from(StreamOptions::default().max_wait.as_millis()).unwrap_or(10)
}

fn default_max_pending() -> usize {
    StreamOptions::default().max_pending
}

fn default_chunk() -> usize {
    StreamOptions::default().chunk_size
}

fn default_in_flight() -> usize {
    StreamOptions::default().chunks_in_flight
}

impl PipelineSection {
    /// The stream options of this section.
    pub fn stream_options(&self) -> StreamOptions {
        StreamOptions {
            chunk_size: self.stream_chunk_size,
            chunks_in_flight: self.stream_chunks_in_flight,
            max_wait: std::time::Duration::from_millis(self.stream_max_wait_ms),
            max_pending: self.stream_max_pending,
            order: self.stream_order,
            ..StreamOptions::default()
        }
    }
}

impl Default for PipelineSection {
    fn default() -> Self {
        PipelineSection {
            local_top_k: default_top_k(),
            stream_chunk_size: default_chunk(),
            stream_chunks_in_flight: default_in_flight(),
            stream_max_wait_ms: default_max_wait_ms(),
            stream_max_pending: default_max_pending(),
            stream_order: StreamOrder::default(),
        }
    }
}

/// Everything that builds a [`Pipeline`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// The local tagger.
    pub tagger: TaggerSection,
    /// The uncertainty estimator (default `{"type": "confidence"}`: [`LinkConfig::new`]).
    #[serde(default = "default_estimator")]
    pub estimator: EstimatorConfig,
    /// The routing policy (default `{"type": "threshold", "threshold": 0.05}`).
    #[serde(default = "default_policy")]
    pub policy: RoutingPolicy,
    /// How the LLM's answer and the local distribution are merged (default
    /// `{"type": "fuse", "weight": 0.3, "temperature": 4, "doubt": true}`).
    #[serde(default = "default_merge")]
    pub merge: MergePolicy,
    /// The LLM ([`LlmConfig`]): its `backend` — the OpenAI-compatible one, whose fields
    /// (`base_url`, `model`, `api_key_env`, `mode`, timeouts, template, …) sit at the top of
    /// the section — and the `reliability` of the layers around it (deadline, retries,
    /// `max_in_flight`, breaker, answer cache). Required unless the policy is `never`; a
    /// backend of your own ([`LinkConfig::builder_without_llm`]) can take its layers from
    /// `reliability` too.
    #[serde(default)]
    pub llm: Option<LlmConfig>,
    /// Few-shot examples drawn from a labelled file (optional; `llm.examples` lists them
    /// explicitly instead).
    #[serde(default)]
    pub examples: Option<ExamplesSection>,
    /// Pipeline-level knobs.
    #[serde(default)]
    pub pipeline: PipelineSection,
    /// The routing budget: LLM capacity and per-document latency (none by default: every
    /// routed entity is sent and waited for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<RoutingBudget>,
    /// Free text the pipeline ignores: `linkner tune` writes where the config came from and
    /// its guard's verdict there (e.g. why it routes nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why a config whose policy can route needs an `llm` section.
const ROUTES_WITHOUT_LLM: &str = "the policy routes entities to an LLM but the config has no \
     `llm` section (add one, or use {\"type\": \"never\"} for the local tagger alone)";

/// The default estimator of a config: `confidence`, the winner of the tuning runs on four of
/// the six sets (docs/results.md).
fn default_estimator() -> EstimatorConfig {
    EstimatorConfig::Confidence {}
}

/// The default routing of a config: threshold 0.05 for `confidence` — with
/// [`default_merge`], the generic setting whose smallest dev gain over the three dev tuning
/// records (CoNLL-03, WNUT-17, TwitterNER: +0.45, +0.86, +1.07 F1) is the largest of every
/// global-threshold setting tried (docs/benchmarks.md, "Generic defaults").
fn default_policy() -> RoutingPolicy {
    RoutingPolicy::threshold(0.05)
}

/// The default merge of a config: `fuse` with weight 0.3 on the local model, the LLM's
/// distribution at temperature 4 and mixed toward uniform by its doubt (see
/// [`default_policy`] for the evidence; `replace`, the paper's rule, loses with the 1.5B model).
fn default_merge() -> MergePolicy {
    MergePolicy::Fuse {
        weight: 0.3,
        temperature: 4.0,
        doubt: true,
    }
}

impl LinkConfig {
    /// A config for the tagger checkpoint `model` with every other section at its default
    /// — the best generic setting measured (docs/benchmarks.md, "Generic defaults"):
    /// `confidence`, threshold 0.05, `fuse:0.3,t=4,doubt`, no LLM — what `{"tagger": {"model": …}}` parses to. (The types' own
    /// defaults stay the paper's: entropy, threshold 0.4, replace.)
    pub fn new(model: impl Into<PathBuf>) -> LinkConfig {
        LinkConfig {
            tagger: TaggerSection::new(model),
            estimator: default_estimator(),
            policy: default_policy(),
            merge: default_merge(),
            llm: None,
            examples: None,
            pipeline: PipelineSection::default(),
            budget: None,
            note: None,
        }
    }

    /// Parses a config from JSON text; relative paths stay as written.
    pub fn from_json(text: &str) -> Result<LinkConfig> {
        Self::parse(text, Path::new("<memory>"))
    }

    /// Parses JSON text read from `path` (used in error messages). Unknown fields are refused
    /// everywhere, the `llm` section included (`LlmConfig` denies them itself).
    fn parse(text: &str, path: &Path) -> Result<LinkConfig> {
        let mut de = serde_json::Deserializer::from_str(text);
        let config: LinkConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = e.path().to_string();
            let source = e.into_inner();
            LinkError::Json {
                path: path.to_path_buf(),
                field,
                line: source.line(),
                column: source.column(),
                source,
            }
        })?;
        // Trailing characters after the object are an error too, as with `from_str`.
        de.end().map_err(|source| LinkError::Json {
            path: path.to_path_buf(),
            field: String::new(),
            line: source.line(),
            column: source.column(),
            source,
        })?;
        Ok(config)
    }

    /// Reads a config file; relative paths in it (tagger model, examples file, LLM cache file)
    /// are resolved against the file's folder.
    pub fn from_path(path: impl AsRef<Path>) -> Result<LinkConfig> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LinkError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new(""));
        config.resolve_paths(base).map_err(|e| match e {
            LinkError::Config(m) => LinkError::Config(format!("{}: {m}", path.display())),
            e => e,
        })?;
        Ok(config)
    }

    /// Expands `${VAR}` in the config's paths, then makes the relative ones relative to
    /// `base`. An unset variable is an error naming it and the field.
    pub fn resolve_paths(&mut self, base: &Path) -> Result<()> {
        let fix = |p: &mut PathBuf, field: &str| -> Result<()> {
            let expanded = expand_vars(p, field)?;
            *p = if expanded.is_relative() {
                base.join(expanded)
            } else {
                expanded
            };
            Ok(())
        };
        fix(&mut self.tagger.model, "tagger.model")?;
        self.tagger.resolve_schema_path(base);
        if let Some(e) = &mut self.examples {
            fix(&mut e.from, "examples.from")?;
        }
        if let Some(llm) = &mut self.llm
            && let Some(p) = &mut llm.reliability.cache_path
        {
            fix(p, "llm.reliability.cache_path")?;
        }
        Ok(())
    }

    /// Checks what can be checked without loading anything: the device name, the estimator and
    /// policy parameters, and that an LLM is configured when the policy routes.
    pub fn validate(&self) -> Result<()> {
        self.validate_local()?;
        if self.policy.may_route() && self.llm.is_none() {
            return Err(LinkError::Config(ROUTES_WITHOUT_LLM.into()));
        }
        Ok(())
    }

    /// [`LinkConfig::validate`] without the LLM check.
    fn validate_local(&self) -> Result<()> {
        self.tagger.device()?;
        self.estimator.build()?;
        self.policy.validate(None)?;
        self.merge.validate()?;
        if self.tagger.batch_size == 0 {
            return Err(LinkError::Config(
                "tagger.batch_size must be at least 1".into(),
            ));
        }
        self.pipeline
            .stream_options()
            .validate()
            .map_err(|e| LinkError::Config(format!("pipeline: {e}")))?;
        if let Some(b) = &self.budget {
            b.validate()?;
        }
        Ok(())
    }

    /// A builder with everything but the tagger: estimator, policy, LLM backend (with the
    /// few-shot examples drawn for `schema`) and pipeline knobs. Give it any
    /// [`LocalTagger`] and build.
    pub fn builder(&self, schema: &LabelSchema) -> Result<PipelineBuilder> {
        self.validate()?;
        let mut builder = self.builder_without_llm()?;
        if let Some(llm) = self.llm_config(schema)? {
            let backend = OpenAiBuilder::from_config(llm).build()?;
            builder = builder.llm(Arc::new(backend));
        }
        Ok(builder)
    }

    /// A builder with the estimator, policy and pipeline knobs of the config but **no LLM
    /// backend** (the `llm` section is ignored): give it an
    /// [`LlmClassifier`](linkner_llm::LlmClassifier) of your own — one backend shared by many
    /// pipelines, a [`GoldOracle`](crate::GoldOracle), a test double — and a tagger.
    pub fn builder_without_llm(&self) -> Result<PipelineBuilder> {
        self.validate_local()?;
        let estimator = self.estimator.build()?;
        let builder = Pipeline::builder()
            .estimator(Arc::from(estimator))
            .policy(self.policy.clone())
            .merge(self.merge.clone())
            .predict_options(self.tagger.predict_options())
            .local_top_k(self.pipeline.local_top_k)
            .stream_options(self.pipeline.stream_options());
        Ok(match &self.budget {
            Some(b) => builder.budget(b.clone()),
            None => builder,
        })
    }

    /// The LLM backend's settings with the few-shot examples of the `examples` section drawn
    /// for `schema` (`None` when the config has no `llm` section).
    pub fn llm_config(&self, schema: &LabelSchema) -> Result<Option<LlmConfig>> {
        let Some(llm) = &self.llm else {
            return Ok(None);
        };
        let mut llm = llm.clone();
        if let Some(ex) = &self.examples {
            if !llm.backend.examples.is_empty() {
                return Err(LinkError::Config(
                    "both `examples` and `llm.examples` are given; keep one".into(),
                ));
            }
            let docs = read_dataset(&ex.from, ex.format, Some(schema.clone()))?;
            let pool = ExamplePool::from_sentences_with(&sentences(docs), schema, ex.negatives);
            llm.backend.examples = pool.draw(schema.num_classes(), ex.per_class, ex.seed);
        }
        Ok(Some(llm))
    }

    /// The k-NN retriever of the `examples` section (`None` when it retrieves nothing), with
    /// its index cached next to the tagger checkpoint.
    pub fn retriever(&self, tagger: &AnyTagger) -> Result<Option<KnnRetriever>> {
        let Some(ex) = self.examples.as_ref().filter(|e| e.retrieve > 0) else {
            return Ok(None);
        };
        let AnyTagger::Span(tagger) = tagger else {
            return Err(LinkError::Config(
                "examples.retrieve needs a span tagger (it embeds spans with the tagger's own \
                 encoder); set it to 0 for a token-classification checkpoint"
                    .into(),
            ));
        };
        let schema = tagger.config().schema.clone();
        let docs = read_dataset(&ex.from, ex.format, Some(schema))?;
        let labelled = sentences(docs);
        let options = KnnOptions {
            negatives: ex.negatives,
            seed: ex.seed,
            ..KnnOptions::default()
        };
        Ok(Some(KnnRetriever::load_or_build(
            tagger.clone(),
            &self.tagger.model,
            &ex.from,
            &labelled,
            ex.retrieve,
            &options,
        )?))
    }

    /// Loads the tagger checkpoint on its device, builds the LLM backend (and the k-NN
    /// retriever when the `examples` section asks for one) and returns the pipeline.
    pub fn build(&self) -> Result<Pipeline> {
        self.validate()?;
        let tagger = self.tagger.load()?;
        let schema = tagger.schema().clone();
        let mut builder = self.builder(&schema)?;
        if self.llm.is_some()
            && let Some(r) = self.retriever(&tagger)?
        {
            builder = builder.retriever(std::sync::Arc::new(r));
        }
        let builder = if self.tagger.concurrent {
            builder.tagger(Arc::new(tagger))
        } else {
            builder.exclusive_tagger(tagger)
        };
        builder.build()
    }
}

/// Replaces every `${NAME}` in `path` by the environment variable's value (`LINKNER_CACHE`
/// defaults to `~/.cache/linkner`).
fn expand_vars(path: &Path, field: &str) -> Result<PathBuf> {
    let text = path.to_string_lossy();
    if !text.contains("${") {
        return Ok(path.to_path_buf());
    }
    let mut out = String::new();
    let mut rest: &str = &text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| LinkError::Config(format!("{field}: unterminated `${{` in `{text}`")))?;
        let name = &after[..end];
        let value = match std::env::var(name) {
            Ok(v) if !v.is_empty() => v,
            _ if name == "LINKNER_CACHE" => std::env::var("HOME")
                .map(|h| format!("{h}/.cache/linkner"))
                .map_err(|_| {
                    LinkError::Config(format!("{field}: neither LINKNER_CACHE nor HOME is set"))
                })?,
            _ => {
                let hint = if name == "LINKNER_DATA" {
                    ": export LINKNER_DATA=<your datasets folder> (`source scripts/env.sh` in a \
                     clone sets it to ../shared/data next to the clone)"
                } else {
                    ""
                };
                return Err(LinkError::Config(format!(
                    "{field}: `{text}` uses ${{{name}}}, which is not set in the environment{hint}"
                )));
            }
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(PathBuf::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_expand_variables_and_name_unset_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.json");
        std::fs::write(
            &file,
            r#"{"tagger": {"model": "${LINKNER_TEST_CFG_ROOT}/m"},
                "examples": {"from": "rel/train.txt"}}"#,
        )
        .unwrap();
        let err = LinkConfig::from_path(&file).unwrap_err().to_string();
        assert!(
            err.contains("LINKNER_TEST_CFG_ROOT")
                && err.contains("tagger.model")
                && err.contains("c.json"),
            "{err}"
        );
        assert!(
            expand_vars(Path::new("${HOME}/x"), "f")
                .unwrap()
                .ends_with("x")
        );
        assert!(
            expand_vars(Path::new("${LINKNER_CACHE}/m"), "f")
                .unwrap()
                .is_absolute()
        );
        let cfg = r#"{"tagger": {"model": "m"}, "examples": {"from": "rel/train.txt"}}"#;
        std::fs::write(&file, cfg).unwrap();
        let c = LinkConfig::from_path(&file).unwrap();
        assert_eq!(c.examples.unwrap().from, dir.path().join("rel/train.txt"));
    }

    #[test]
    fn a_relative_schema_file_is_found_next_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.toml"), "[[types]]\nname = \"X\"\n").unwrap();
        let path = dir.path().join("link.json");
        std::fs::write(&path, r#"{"tagger": {"model": "m", "schema": "s.toml"}}"#).unwrap();
        let c = LinkConfig::from_path(&path).unwrap();
        assert_eq!(
            c.tagger.label_schema().unwrap().unwrap().type_names(),
            ["X"]
        );
        std::fs::write(&path, r#"{"tagger": {"model": "m", "schema": "wnut17"}}"#).unwrap();
        let c = LinkConfig::from_path(&path).unwrap();
        assert_eq!(c.tagger.schema.as_deref(), Some("wnut17"));
    }

    #[test]
    fn new_equals_a_file_that_names_only_the_model() {
        let parsed = LinkConfig::from_json(r#"{"tagger": {"model": "m"}}"#).unwrap();
        assert_eq!(LinkConfig::new("m"), parsed);
    }
}
