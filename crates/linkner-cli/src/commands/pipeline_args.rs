//! The pipeline options shared by `linkner link`, `linkner annotate` and `linkner report`: a
//! config file ([`LinkConfig`], `docs/configuration.md`) and/or flags that override it.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use linkner::llm::{AnswerMode, LlmClassifier, LlmConfig};
use linkner::tagger::Precision;
use linkner::uncertainty::EstimatorConfig;
use linkner::{ExamplesSection, LinkConfig, MergePolicy, Pipeline, RoutingPolicy};

use super::CliError;

/// Builds a pipeline from `--config` and/or flags (flags win).
#[derive(Debug, Clone, Args)]
pub struct PipelineArgs {
    /// Pipeline config file (JSON, see docs/configuration.md); the flags below override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Tagger folder (from `linkner train`, or a Hugging Face token-classification folder);
    /// required without `--config`.
    #[arg(long, value_name = "DIR", env = "LINKNER_MODEL")]
    pub model: Option<PathBuf>,
    /// The tagger folder's kind (`span` or `token_classification`); detected by default.
    #[arg(long, value_name = "KIND", value_parser = kind_parser())]
    pub tagger_kind: Option<linkner::tagger::TaggerKind>,
    /// A label schema (built-in name or JSON/TOML file) with the model's types: its LLM names
    /// and descriptions are what the LLM sees (default: the schema stored in the checkpoint).
    #[arg(long, value_name = "NAME|FILE")]
    pub schema: Option<String>,
    /// Device of the tagger: cpu (LibTorch), cuda, cuda:N, flex.
    #[arg(long)]
    pub device: Option<String>,
    /// LibTorch CPU threads (1 is often fastest on a busy machine).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Float precision of the tagger: f32 or bf16.
    #[arg(long, value_parser = precision_parser())]
    pub precision: Option<Precision>,
    /// Concurrent CPU streams of the tagger (0: one single-threaded stream per thread; 1:
    /// every batch in turn on all the threads).
    #[arg(long)]
    pub streams: Option<usize>,
    /// Uncertainty estimator: confidence (default), entropy, `mc_dropout[@N]`, evidential, or
    /// JSON.
    #[arg(long, value_name = "NAME")]
    pub estimator: Option<String>,
    /// Routing policy: a threshold (default `0.05`; LinkNER's is `0.4`), `budget:10%`,
    /// `per_type:MISC=0.2,default=0.4`, `never` (local tagger only), `always`, or JSON.
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<String>,
    /// OpenAI-compatible base URL (`http://127.0.0.1:8080/v1`: llama.cpp, vLLM, Ollama,
    /// OpenAI).
    #[arg(long, value_name = "URL", env = "LINKNER_LLM_URL")]
    pub llm_url: Option<String>,
    /// Model name sent to the server.
    #[arg(long, value_name = "NAME", env = "LINKNER_LLM_MODEL")]
    pub llm_model: Option<String>,
    /// Answer mode: logprobs (default), constrained, free_text.
    #[arg(long, value_name = "MODE", value_parser = mode_parser())]
    pub llm_mode: Option<String>,
    /// Environment variable holding the API key (none sent when unset). Without it (and
    /// without `api_key_env` in the config) the key is `LINKNER_LLM_API_KEY` when set, else
    /// `OPENAI_API_KEY` when the URL is OpenAI's (`api.openai.com`).
    #[arg(long, value_name = "VAR")]
    pub llm_api_key_env: Option<String>,
    /// Most LLM requests in flight at once.
    #[arg(long, value_name = "N")]
    pub llm_in_flight: Option<usize>,
    /// Per-attempt timeout of LLM requests, seconds (a slow server on a busy CPU needs more
    /// than the default 60).
    #[arg(long, value_name = "SECONDS")]
    pub llm_timeout: Option<f64>,
    /// Keep the LLM answer cache in this JSONL file (reused across runs).
    #[arg(long, value_name = "FILE")]
    pub llm_cache: Option<PathBuf>,
    /// Draw few-shot examples for the prompt from this labelled file (e.g. the training set;
    /// 2 per class, seeded).
    #[arg(long, value_name = "FILE")]
    pub examples_from: Option<PathBuf>,
    /// Also retrieve this many examples per routed entity from the `--examples-from` file (its
    /// nearest labelled spans by the tagger's span embeddings; 0 = none).
    #[arg(long, value_name = "K")]
    pub retrieve: Option<usize>,
    /// How the LLM's answer is merged with the local distribution: fuse:WEIGHT (log-linear
    /// pooling, weight of the local model; default fuse:0.3,t=4,doubt; options `,t=TEMPERATURE`,
    /// `,doubt`), replace (the paper's rule), rerank:K, or JSON.
    #[arg(long, value_name = "POLICY")]
    pub merge: Option<String>,
    /// LLM capacity under a routing budget: `N` calls in flight, or
    /// `in_flight=N,calls=R/s,tokens=R/s` (any subset). Routed entities then wait for the LLM
    /// most uncertain first; see --latency-budget-ms.
    #[arg(long, value_name = "SPEC")]
    pub llm_budget: Option<String>,
    /// Per-document latency budget in milliseconds: an entity the LLM cannot answer in time
    /// keeps its local label (provenance `budget`); implies a routing budget (4 calls in flight
    /// unless --llm-budget says otherwise).
    #[arg(long, value_name = "MS")]
    pub latency_budget_ms: Option<u64>,
}

/// Parses `f32` / `bf16`.
/// The parser of `--precision`: its choices listed by `--help` (aliases accepted).
pub fn precision_parser() -> impl clap::builder::TypedValueParser<Value = Precision> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new([
        PossibleValue::new("f32").aliases(["fp32", "float32"]),
        PossibleValue::new("bf16").alias("bfloat16"),
    ])
    .try_map(|s| parse_precision(&s))
}

/// The parser of `--tagger-kind`: its choices listed by `--help` (aliases accepted).
pub fn kind_parser() -> impl clap::builder::TypedValueParser<Value = linkner::tagger::TaggerKind> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new([
        PossibleValue::new("span").alias("spanner"),
        PossibleValue::new("token_classification").aliases([
            "token",
            "tokens",
            "token-classification",
        ]),
    ])
    .try_map(|s| super::tagger_common::parse_kind(&s))
}

/// The parser of `--llm-mode`: its choices listed by `--help` (aliases accepted).
fn mode_parser() -> impl clap::builder::TypedValueParser<Value = String> {
    use clap::builder::{PossibleValue, PossibleValuesParser};
    PossibleValuesParser::new([
        PossibleValue::new("logprobs").alias("logprob"),
        PossibleValue::new("constrained").aliases(["json", "json_schema"]),
        PossibleValue::new("free_text").aliases(["free-text", "text", "free"]),
    ])
}

/// Parses a precision name.
pub fn parse_precision(s: &str) -> Result<Precision, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "fp32" | "float32" => Ok(Precision::F32),
        "bf16" | "bfloat16" => Ok(Precision::Bf16),
        other => Err(format!("unknown precision `{other}`; expected f32 or bf16")),
    }
}

/// Says on stderr when an environment variable (not a flag) replaces a value of the config
/// file: a variable exported long ago should not change a run silently.
fn env_notice(var: &str, value: &str, field: &str, file_value: &str) {
    let from_env = std::env::var(var).is_ok_and(|v| v.trim() == value.trim());
    if from_env && !super::quiet() {
        eprintln!(
            "linkner: note: {var}={value:?} (environment) replaces the config's {field} \
             {file_value:?}; unset {var} to use the file's value"
        );
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl PipelineArgs {
    /// The config: the file (when given) with every flag applied over it.
    pub fn link_config(&self) -> Result<LinkConfig, CliError> {
        let mut config = self.base_config()?;
        self.apply_tagger_flags(&mut config);
        self.apply_routing_flags(&mut config)?;
        self.apply_llm_flags(&mut config)?;
        self.apply_example_flags(&mut config)?;
        self.apply_budget_flags(&mut config)?;
        Ok(config)
    }

    /// The config file, or a default config of `--model`.
    fn base_config(&self) -> Result<LinkConfig, CliError> {
        Ok(match &self.config {
            Some(path) => {
                let config = LinkConfig::from_path(path)?;
                super::input::check_config_values(path, &config)?;
                config
            }
            None => {
                let model = self.model.clone().ok_or(
                    "give --model DIR (a folder written by `linkner train`) or --config FILE",
                )?;
                LinkConfig::new(model)
            }
        })
    }

    /// `--model`, `--tagger-kind`, `--schema`, `--device`, `--streams`, `--precision`.
    fn apply_tagger_flags(&self, config: &mut LinkConfig) {
        if let Some(model) = &self.model {
            if self.config.is_some() && model != &config.tagger.model {
                env_notice(
                    "LINKNER_MODEL",
                    &model.display().to_string(),
                    "tagger.model",
                    &config.tagger.model.display().to_string(),
                );
            }
            config.tagger.model = model.clone();
        }
        if let Some(kind) = self.tagger_kind {
            config.tagger.kind = Some(kind);
        }
        if let Some(schema) = non_empty(&self.schema) {
            config.tagger.schema = Some(schema.to_string());
        }
        if let Some(device) = &self.device {
            config.tagger.device = device.clone();
        }
        if let Some(n) = self.streams {
            config.tagger.streams = n;
        }
        if let Some(p) = self.precision {
            config.tagger.precision = p;
        }
    }

    /// `--estimator`, `--policy`.
    fn apply_routing_flags(&self, config: &mut LinkConfig) -> Result<(), CliError> {
        if let Some(e) = non_empty(&self.estimator) {
            config.estimator = e.parse::<EstimatorConfig>()?;
        }
        if let Some(p) = non_empty(&self.policy) {
            config.policy = p.parse::<RoutingPolicy>()?;
        }
        Ok(())
    }

    /// The `--llm-…` flags, over the file's `llm` section (created when absent).
    fn apply_llm_flags(&self, config: &mut LinkConfig) -> Result<(), CliError> {
        let llm_flags = non_empty(&self.llm_url).is_some()
            || non_empty(&self.llm_model).is_some()
            || self.llm_mode.is_some()
            || self.llm_api_key_env.is_some()
            || self.llm_in_flight.is_some()
            || self.llm_timeout.is_some()
            || self.llm_cache.is_some();
        if llm_flags {
            if let (Some(file), Some(url)) = (&config.llm, non_empty(&self.llm_url))
                && url != file.backend.base_url
            {
                env_notice(
                    "LINKNER_LLM_URL",
                    url,
                    "llm.base_url",
                    &file.backend.base_url,
                );
            }
            if let (Some(file), Some(m)) = (&config.llm, non_empty(&self.llm_model))
                && m != file.backend.model
            {
                env_notice("LINKNER_LLM_MODEL", m, "llm.model", &file.backend.model);
            }
            let llm = config.llm.get_or_insert_with(LlmConfig::default);
            if let Some(url) = non_empty(&self.llm_url) {
                llm.backend.base_url = url.to_string();
            }
            if let Some(model) = non_empty(&self.llm_model) {
                llm.backend.model = model.to_string();
            }
            if let Some(mode) = non_empty(&self.llm_mode) {
                llm.backend.mode = AnswerMode::parse(mode)?;
            }
            if let Some(var) = non_empty(&self.llm_api_key_env) {
                llm.backend.api_key_env = Some(var.to_string());
            }
            if let Some(t) = self.llm_timeout {
                llm.backend.timeout_s = t;
            }
            if let Some(n) = self.llm_in_flight {
                llm.reliability.max_in_flight = n;
            }
            if let Some(path) = &self.llm_cache {
                llm.reliability.cache_path = Some(path.clone());
            }
        }
        Ok(())
    }

    /// `--examples-from`, `--retrieve`.
    fn apply_example_flags(&self, config: &mut LinkConfig) -> Result<(), CliError> {
        if let Some(from) = &self.examples_from {
            config.examples = Some(ExamplesSection::new(from.clone()));
        }
        if let Some(k) = self.retrieve {
            let ex = config.examples.as_mut().ok_or(
                "--retrieve needs labelled examples: give --examples-from FILE (or an `examples` \
                 section in --config)",
            )?;
            ex.retrieve = k;
        }
        Ok(())
    }

    /// `--merge`, `--llm-budget`, `--latency-budget-ms`.
    fn apply_budget_flags(&self, config: &mut LinkConfig) -> Result<(), CliError> {
        if let Some(m) = non_empty(&self.merge) {
            config.merge = m.parse::<MergePolicy>()?;
        }
        if let Some(spec) = non_empty(&self.llm_budget) {
            let mut budget = spec.parse::<linkner::RoutingBudget>()?;
            if budget.latency_ms.is_none() {
                budget.latency_ms = config.budget.as_ref().and_then(|b| b.latency_ms);
            }
            config.budget = Some(budget);
        }
        if let Some(ms) = self.latency_budget_ms {
            let budget = config
                .budget
                .get_or_insert_with(linkner::RoutingBudget::new);
            budget.latency_ms = Some(ms);
            budget.validate()?;
        }
        Ok(())
    }

    /// Loads the tagger and builds the pipeline. With `oracle`, the LLM of the config is
    /// replaced by it (no server is needed); without, a policy that routes needs an LLM.
    pub fn build(
        &self,
        config: &LinkConfig,
        oracle: Option<Arc<dyn LlmClassifier>>,
    ) -> Result<Pipeline, CliError> {
        if oracle.is_none() && config.policy.may_route() && config.llm.is_none() {
            return Err(format!(
                "the routing policy `{}` sends entities to an LLM, but no LLM is configured: \
                 give --llm-url URL (or LINKNER_LLM_URL, or an `llm` section in --config), \
                 or --policy never for the local tagger alone",
                config.policy
            )
            .into());
        }
        if let Some(n) = self.threads {
            linkner::tagger::set_threads(n)?;
        }
        let tagger = config.tagger.load()?;
        let schema = linkner::core::LocalTagger::schema(&tagger).clone();
        let builder = match oracle {
            Some(oracle) => config.builder_without_llm()?.llm(oracle),
            None => {
                let mut b = config.builder(&schema)?;
                if let Some(r) = config.retriever(&tagger)? {
                    b = b.retriever(Arc::new(r));
                }
                b
            }
        };
        let builder = if config.tagger.concurrent {
            builder.tagger(Arc::new(tagger))
        } else {
            builder.exclusive_tagger(tagger)
        };
        Ok(builder.build()?)
    }
}
