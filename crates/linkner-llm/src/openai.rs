//! The OpenAI-compatible backend: `/v1/chat/completions` over reqwest (rustls), for OpenAI,
//! vLLM, llama.cpp's `llama-server`, Ollama and anything else that speaks the protocol.
//!
//! It is built from two parts: [`OpenAiTransport`], one HTTP attempt per call (request body,
//! per-attempt timeout, response body streamed under a size cap, answer decoding), and the
//! reusable [layers](crate::layer) around it — answer cache, in-flight bound, per-entity
//! deadline, retries, circuit breaker — exactly as a custom backend gets them
//! ([`Reliable`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use linkner_core::LabelSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cache::{AnswerCache, CacheKey};
use crate::calibrate::Calibrator;
use crate::classifier::LlmClassifier;
use crate::error::{LlmError, Result};
use crate::http::parse_retry_after;
use crate::layer::{BreakerPolicy, CacheKeyer, Layer, Reliability, Reliable, RetryPolicy};
use crate::parse::{logprob_distribution, parse_constrained, parse_free_text};
use crate::prompt::{AnswerVocabulary, PromptTemplate, RenderedPrompt};
use crate::redis_store::RedisStore;
use crate::request::{Answer, ClassifyRequest, Example, Usage};
use crate::shared::SharedTier;
use crate::stats::{Counters, Stats};
use linkner_core::error_chain;
use linkner_core::prob::argmax;
/// How the backend obtains the answer from the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnswerMode {
    /// `response_format` with a JSON schema whose `label` enum is exactly the schema's LLM names:
    /// the server cannot produce anything else.
    Constrained,
    /// One generated token; the `top_logprobs` of that first token are mapped onto the labels'
    /// first tokens and renormalised into a distribution (gives a confidence).
    Logprobs {
        /// How many alternatives the server returns for the first token (OpenAI allows ≤ 20).
        top_logprobs: u8,
    },
    /// Plain text, parsed strictly: anything outside the label set is an error.
    FreeText,
}

impl Default for AnswerMode {
    fn default() -> Self {
        AnswerMode::Logprobs { top_logprobs: 20 }
    }
}

impl AnswerMode {
    /// Parses `constrained`, `logprobs` or `free_text` (also `free-text`, `text`).
    pub fn parse(s: &str) -> Result<AnswerMode> {
        match s.to_ascii_lowercase().as_str() {
            "constrained" | "json" | "json_schema" => Ok(AnswerMode::Constrained),
            "logprobs" | "logprob" => Ok(AnswerMode::default()),
            "free_text" | "free-text" | "text" | "free" => Ok(AnswerMode::FreeText),
            _ => Err(LlmError::Config(format!(
                "unknown answer mode `{s}`; expected constrained, logprobs or free_text"
            ))),
        }
    }
}

/// An API key. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// Reads a key from an environment variable (`None` when unset or empty).
    pub fn from_env(var: &str) -> Option<Self> {
        std::env::var(var)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(ApiKey)
    }

    /// The key itself, to put in an `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The environment variable a backend with no `api_key_env` takes its key from, given a
/// way to read the environment: `LINKNER_LLM_API_KEY` when it is set (any server), else
/// `OPENAI_API_KEY` when `base_url`'s host is `api.openai.com` (the variable every OpenAI
/// client reads), else none. A key found this way is never sent to another host.
pub fn default_api_key_var(
    base_url: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Option<&'static str> {
    let set = |v: &str| lookup(v).is_some_and(|k| !k.trim().is_empty());
    if set("LINKNER_LLM_API_KEY") {
        return Some("LINKNER_LLM_API_KEY");
    }
    let host = base_url
        .split_once("://")
        .map_or(base_url, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("");
    let host = host.split(':').next().unwrap_or("").to_ascii_lowercase();
    (host == "api.openai.com" && set("OPENAI_API_KEY")).then_some("OPENAI_API_KEY")
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl std::fmt::Display for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Default cap on a response body: 4 MiB, far above any real answer (a few hundred bytes to a
/// few KiB with log-probabilities).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// Serialisable settings of the OpenAI-compatible backend (the linker's config file embeds
/// it). The key itself is never part of it: only the name of the variable that holds it.
/// Missing fields take their defaults; unknown fields are refused, so a misspelt field
/// (`"url"` for `"base_url"`) is an error rather than a silent default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    /// Base URL including the API prefix, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// Model name sent in requests.
    pub model: String,
    /// Environment variable holding the API key (none sent when it is unset or empty).
    ///
    /// When this is `None`, the key follows the ecosystem's conventions (see
    /// [`default_api_key_var`]): `LINKNER_LLM_API_KEY` whenever it is set, else
    /// `OPENAI_API_KEY` when `base_url` is OpenAI's own API (`api.openai.com`).
    pub api_key_env: Option<String>,
    /// Answer mode.
    pub mode: AnswerMode,
    /// Sampling temperature (0 = greedy).
    pub temperature: f32,
    /// Sampling seed sent to the server.
    pub seed: Option<u64>,
    /// Completion token limit; `None` picks one per mode (1 for log-probs, 64 constrained,
    /// 16 free text).
    pub max_tokens: Option<u32>,
    /// Per-attempt timeout (connect + response + body), seconds.
    pub timeout_s: f64,
    /// Connect timeout, seconds.
    pub connect_timeout_s: f64,
    /// Overall time for one entity across all its attempts and backoffs, seconds (`null`: no
    /// limit). Time spent waiting for an in-flight slot does not count.
    pub deadline_s: Option<f64>,
    /// Retries after the first attempt for retryable failures.
    pub max_retries: u32,
    /// First backoff delay, milliseconds (doubles every retry, with jitter).
    pub backoff_base_ms: u64,
    /// Largest backoff delay, milliseconds.
    pub backoff_max_ms: u64,
    /// Largest `Retry-After` honoured, seconds (longer requests are capped to this).
    pub max_retry_after_s: f64,
    /// Most entities in flight at once (each holds its slot across its retries, so this also
    /// bounds the HTTP requests in flight).
    pub max_in_flight: usize,
    /// Largest response body read, bytes; a longer one is abandoned with
    /// [`LlmError::ResponseTooLarge`].
    pub max_response_bytes: u64,
    /// Failure points in a row that open the circuit breaker (0: never): a timeout counts 2,
    /// a connection failure 1 (default 8: one round of 4 timeouts, or 8 refused connections).
    pub breaker_threshold: u32,
    /// How long the open breaker fails calls fast before probing the server, seconds.
    pub breaker_cooldown_s: f64,
    /// Each failed probe doubles the cool-down, up to this, seconds.
    pub breaker_max_cooldown_s: f64,
    /// Cache answers in memory.
    pub cache: bool,
    /// Most answers the cache keeps in memory (least recently used go first).
    pub cache_capacity: usize,
    /// Also keep the cache in this JSONL file (loaded at build, appended to).
    pub cache_path: Option<PathBuf>,
    /// Share answers through this Redis server (`redis://[:password@]host[:port][/db]`), behind
    /// the in-memory cache: replicas and later runs reuse each other's answers. Redis being
    /// unreachable or going away never fails an answer (it comes from the LLM; see
    /// [`crate::shared`]). Independent of `cache`, which is the in-memory tier only.
    pub cache_redis_url: Option<String>,
    /// How long an answer lives in Redis, seconds (`None`: until Redis evicts it).
    pub cache_redis_ttl_s: Option<u64>,
    /// Longest time one Redis read or write may take, milliseconds (past it: a miss, or an
    /// unwritten answer; Redis is then skipped for a second).
    pub cache_redis_timeout_ms: u64,
    /// The prompt template and its switches (span marking, local hint, answer keys).
    pub template: PromptTemplate,
    /// Contextual calibration of the label distributions (`logprobs` mode only): see
    /// [`crate::calibrate`].
    pub calibrate: bool,
    /// Fixed few-shot examples used when a request brings none (see
    /// [`crate::ExamplePool::draw`]).
    pub examples: Vec<Example>,
    /// Extra JSON fields merged into every request body (server-specific options).
    pub extra_body: serde_json::Map<String, Value>,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            base_url: "http://127.0.0.1:8080/v1".into(),
            model: "default".into(),
            api_key_env: None,
            mode: AnswerMode::default(),
            temperature: 0.0,
            seed: Some(42),
            max_tokens: None,
            timeout_s: 60.0,
            connect_timeout_s: 5.0,
            deadline_s: Some(120.0),
            max_retries: 3,
            backoff_base_ms: 250,
            backoff_max_ms: 8_000,
            max_retry_after_s: 30.0,
            max_in_flight: 4,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            breaker_threshold: 8,
            breaker_cooldown_s: 30.0,
            breaker_max_cooldown_s: 300.0,
            cache: true,
            cache_capacity: AnswerCache::DEFAULT_CAPACITY,
            cache_path: None,
            cache_redis_url: None,
            cache_redis_ttl_s: None,
            cache_redis_timeout_ms: SharedTier::DEFAULT_TIMEOUT.as_millis() as u64,
            template: PromptTemplate::default(),
            calibrate: false,
            examples: Vec::new(),
            extra_body: serde_json::Map::new(),
        }
    }
}

/// A positive number of seconds as a duration, or an error naming the field.
fn positive_secs(field: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| LlmError::InvalidSetting {
            field: field.into(),
            message: format!("must be a positive number of seconds, got {v}"),
        })
}

/// A number of seconds ≥ 0 as a duration, or an error naming the field.
fn non_negative_secs(field: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v).map_err(|_| LlmError::InvalidSetting {
        field: field.into(),
        message: format!("must be a number of seconds ≥ 0, got {v}"),
    })
}

impl OpenAiConfig {
    /// Checks every value; the error names the field ([`LlmError::InvalidSetting`], or
    /// [`LlmError::Config`] for the base URL and the template).
    pub fn validate(&self) -> Result<()> {
        let base = self.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(LlmError::InvalidSetting {
                field: "base_url".into(),
                message: format!("`{base}` must start with http:// or https://"),
            });
        }
        positive_secs("timeout_s", self.timeout_s)?;
        positive_secs("connect_timeout_s", self.connect_timeout_s)?;
        if let Some(d) = self.deadline_s {
            positive_secs("deadline_s", d)?;
        }
        non_negative_secs("max_retry_after_s", self.max_retry_after_s)?;
        if self.backoff_max_ms < self.backoff_base_ms {
            return Err(LlmError::InvalidSetting {
                field: "backoff_max_ms".into(),
                message: format!(
                    "must be ≥ backoff_base_ms ({}), got {}",
                    self.backoff_base_ms, self.backoff_max_ms
                ),
            });
        }
        let at_least_one = |field: &str, v: u64| {
            if v == 0 {
                Err(LlmError::InvalidSetting {
                    field: field.into(),
                    message: "must be at least 1".into(),
                })
            } else {
                Ok(())
            }
        };
        at_least_one("max_in_flight", self.max_in_flight as u64)?;
        at_least_one("max_response_bytes", self.max_response_bytes)?;
        at_least_one("cache_capacity", self.cache_capacity as u64)?;
        at_least_one("cache_redis_timeout_ms", self.cache_redis_timeout_ms)?;
        if let Some(ttl) = self.cache_redis_ttl_s {
            at_least_one("cache_redis_ttl_s", ttl)?;
        }
        if let Some(url) = &self.cache_redis_url {
            RedisStore::open(url).map_err(|e| LlmError::InvalidSetting {
                field: "cache_redis_url".into(),
                message: e.to_string(),
            })?;
        }
        if self.breaker_threshold > 0 {
            positive_secs("breaker_cooldown_s", self.breaker_cooldown_s)?;
            let max = positive_secs("breaker_max_cooldown_s", self.breaker_max_cooldown_s)?;
            if max < Duration::from_secs_f64(self.breaker_cooldown_s) {
                return Err(LlmError::InvalidSetting {
                    field: "breaker_max_cooldown_s".into(),
                    message: format!(
                        "must be ≥ breaker_cooldown_s ({}), got {}",
                        self.breaker_cooldown_s, self.breaker_max_cooldown_s
                    ),
                });
            }
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(LlmError::InvalidSetting {
                field: "temperature".into(),
                message: format!("must be ≥ 0, got {}", self.temperature),
            });
        }
        if let AnswerMode::Logprobs { top_logprobs } = self.mode
            && top_logprobs == 0
        {
            return Err(LlmError::InvalidSetting {
                field: "mode.top_logprobs".into(),
                message: "must be at least 1".into(),
            });
        }
        self.template.validate()?;
        if self.calibrate && !matches!(self.mode, AnswerMode::Logprobs { .. }) {
            return Err(LlmError::InvalidSetting {
                field: "calibrate".into(),
                message: "needs label distributions: use the `logprobs` answer mode".into(),
            });
        }
        Ok(())
    }

    /// The retry policy of these settings.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            max_retry_after: Duration::try_from_secs_f64(self.max_retry_after_s)
                .unwrap_or_default(),
        }
    }

    /// The circuit breaker policy of these settings.
    pub fn breaker_policy(&self) -> BreakerPolicy {
        let secs = |v: f64| Duration::try_from_secs_f64(v).unwrap_or_default();
        BreakerPolicy {
            threshold: self.breaker_threshold,
            cooldown: secs(self.breaker_cooldown_s),
            max_cooldown: secs(self.breaker_max_cooldown_s),
        }
    }

    /// The shared answer tier of these settings: a [`RedisStore`] on `cache_redis_url` with
    /// its expiry and timeout (`None` without a URL). Connects on first use.
    pub fn shared_tier(&self) -> Result<Option<SharedTier>> {
        let Some(url) = &self.cache_redis_url else {
            return Ok(None);
        };
        let store = RedisStore::open(url)
            .map_err(|e| LlmError::InvalidSetting {
                field: "cache_redis_url".into(),
                message: e.to_string(),
            })?
            .with_ttl(self.cache_redis_ttl_s.map(Duration::from_secs));
        Ok(Some(SharedTier::new(store).timeout(Duration::from_millis(
            self.cache_redis_timeout_ms,
        ))))
    }
}

/// Builder of an [`OpenAiClassifier`].
#[derive(Debug, Clone, Default)]
pub struct OpenAiBuilder {
    config: OpenAiConfig,
    api_key: Option<ApiKey>,
}

impl OpenAiBuilder {
    /// A builder with the defaults of [`OpenAiConfig`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder from a config.
    pub fn from_config(config: OpenAiConfig) -> Self {
        OpenAiBuilder {
            config,
            api_key: None,
        }
    }

    /// A builder from the environment: `LINKNER_LLM_URL` (base URL), `LINKNER_LLM_MODEL`, and
    /// the key from `LINKNER_LLM_API_KEY` or else `OPENAI_API_KEY`. Unset variables keep the
    /// defaults.
    pub fn from_env() -> Self {
        let mut b = Self::new();
        if let Ok(u) = std::env::var("LINKNER_LLM_URL") {
            b.config.base_url = u;
        }
        if let Ok(m) = std::env::var("LINKNER_LLM_MODEL") {
            b.config.model = m;
        }
        b.config.api_key_env = ["LINKNER_LLM_API_KEY", "OPENAI_API_KEY"]
            .into_iter()
            .find(|v| ApiKey::from_env(v).is_some())
            .map(String::from);
        b
    }

    /// Sets the base URL (`…/v1`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.config.base_url = url.into();
        self
    }

    /// Sets the model name.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.config.model = model.into();
        self
    }

    /// Uses this API key.
    pub fn api_key(mut self, key: ApiKey) -> Self {
        self.api_key = Some(key);
        self
    }

    /// Reads the API key from this environment variable when building.
    pub fn api_key_env(mut self, var: impl Into<String>) -> Self {
        self.config.api_key_env = Some(var.into());
        self
    }

    /// Sets the answer mode.
    pub fn mode(mut self, mode: AnswerMode) -> Self {
        self.config.mode = mode;
        self
    }

    /// Sets the temperature.
    pub fn temperature(mut self, t: f32) -> Self {
        self.config.temperature = t;
        self
    }

    /// Sets (or clears) the seed.
    pub fn seed(mut self, seed: Option<u64>) -> Self {
        self.config.seed = seed;
        self
    }

    /// Sets the completion token limit.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.config.max_tokens = Some(n);
        self
    }

    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.config.timeout_s = d.as_secs_f64();
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.connect_timeout_s = d.as_secs_f64();
        self
    }

    /// Sets (or removes, with `None`) the overall per-entity deadline across retries.
    pub fn deadline(mut self, d: Option<Duration>) -> Self {
        self.config.deadline_s = d.map(|d| d.as_secs_f64());
        self
    }

    /// Sets how many retries follow a retryable failure.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.config.max_retries = n;
        self
    }

    /// Sets the backoff range (first delay, largest delay).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.config.backoff_base_ms = base.as_millis() as u64;
        self.config.backoff_max_ms = max.as_millis() as u64;
        self
    }

    /// Sets the largest `Retry-After` honoured.
    pub fn max_retry_after(mut self, d: Duration) -> Self {
        self.config.max_retry_after_s = d.as_secs_f64();
        self
    }

    /// Sets the bound on entities (and so HTTP requests) in flight.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.max_in_flight = n;
        self
    }

    /// Sets the cap on response bodies, in bytes.
    pub fn max_response_bytes(mut self, n: u64) -> Self {
        self.config.max_response_bytes = n;
        self
    }

    /// Sets the circuit breaker: failures in a row worth `threshold` points (a timeout 2, a
    /// connection failure 1; 0: never) open it for `cooldown`, doubling after each failed probe
    /// up to `max_cooldown`.
    pub fn circuit_breaker(
        mut self,
        threshold: u32,
        cooldown: Duration,
        max_cooldown: Duration,
    ) -> Self {
        self.config.breaker_threshold = threshold;
        self.config.breaker_cooldown_s = cooldown.as_secs_f64();
        self.config.breaker_max_cooldown_s = max_cooldown.max(cooldown).as_secs_f64();
        self
    }

    /// Turns the in-memory answer cache on or off.
    pub fn cache(mut self, on: bool) -> Self {
        self.config.cache = on;
        self
    }

    /// Sets the most answers the cache keeps in memory.
    pub fn cache_capacity(mut self, n: usize) -> Self {
        self.config.cache_capacity = n;
        self
    }

    /// Keeps the answer cache in a JSONL file too (turns the cache on).
    pub fn cache_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.cache = true;
        self.config.cache_path = Some(path.into());
        self
    }

    /// Shares answers through the Redis server at `url` (see
    /// [`OpenAiConfig::cache_redis_url`]).
    pub fn cache_redis_url(mut self, url: impl Into<String>) -> Self {
        self.config.cache_redis_url = Some(url.into());
        self
    }

    /// Sets how long an answer lives in Redis, seconds (`None`: no expiry).
    pub fn cache_redis_ttl_s(mut self, ttl: Option<u64>) -> Self {
        self.config.cache_redis_ttl_s = ttl;
        self
    }

    /// Sets the longest time one Redis read or write may take, milliseconds.
    pub fn cache_redis_timeout_ms(mut self, ms: u64) -> Self {
        self.config.cache_redis_timeout_ms = ms;
        self
    }

    /// Replaces the prompt template.
    pub fn template(mut self, template: PromptTemplate) -> Self {
        self.config.template = template;
        self
    }

    /// Turns contextual calibration on or off (see [`crate::calibrate`]).
    pub fn calibrate(mut self, on: bool) -> Self {
        self.config.calibrate = on;
        self
    }

    /// Sets the fixed few-shot examples.
    pub fn examples(mut self, examples: Vec<Example>) -> Self {
        self.config.examples = examples;
        self
    }

    /// Adds a field to every request body (e.g. `cache_prompt` for llama.cpp).
    pub fn extra_body(mut self, key: impl Into<String>, value: Value) -> Self {
        self.config.extra_body.insert(key.into(), value);
        self
    }

    /// Checks the settings and builds the bare transport: one HTTP attempt per call, no
    /// retry, cache, in-flight bound, deadline or breaker. Wrap it in
    /// [layers](crate::layer) of your choice, or use [`OpenAiBuilder::build`].
    pub fn build_transport(self) -> Result<OpenAiTransport> {
        let c = self.config;
        c.validate()?;
        let base = c.base_url.trim_end_matches('/').to_string();
        let timeout = positive_secs("timeout_s", c.timeout_s)?;
        let connect_timeout = positive_secs("connect_timeout_s", c.connect_timeout_s)?;
        let api_key = match (self.api_key, &c.api_key_env) {
            (Some(k), _) => Some(k),
            (None, Some(var)) => ApiKey::from_env(var),
            (None, None) => {
                default_api_key_var(&base, |v| std::env::var(v).ok()).and_then(ApiKey::from_env)
            }
        };
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .build()
            .map_err(|e| LlmError::Config(format!("HTTP client: {e}")))?;
        Ok(OpenAiTransport {
            inner: Arc::new(Inner {
                url: format!("{base}/chat/completions"),
                timeout,
                max_response_bytes: c.max_response_bytes,
                config: c,
                api_key,
                http,
                counters: Counters::default(),
            }),
        })
    }

    /// Checks the settings and builds the backend: the [`OpenAiTransport`] inside the
    /// [`Reliable`] layers (answer cache, in-flight bound, deadline, retries, breaker).
    pub fn build(self) -> Result<OpenAiClassifier> {
        let transport = self.build_transport()?;
        let c = &transport.inner.config;
        let cache = match (&c.cache_path, c.cache) {
            (Some(p), _) => Some(Arc::new(AnswerCache::with_file_and_capacity(
                p,
                c.cache_capacity,
            )?)),
            (None, true) => Some(Arc::new(AnswerCache::with_capacity(c.cache_capacity))),
            (None, false) => None,
        };
        let settings = Reliability {
            retry: c.retry_policy(),
            max_in_flight: c.max_in_flight,
            deadline: c
                .deadline_s
                .and_then(|s| Duration::try_from_secs_f64(s).ok()),
            breaker: c.breaker_policy(),
            cache,
            shared: c.shared_tier()?,
        };
        let keyer: Arc<dyn CacheKeyer> = Arc::new(BodyKeyer(transport.inner.clone()));
        let stack: Reliable<OpenAiTransport> = settings.layer(transport.clone()).with_keyer(keyer);
        let calibrator = c.calibrate.then(|| Arc::new(Calibrator::new()));
        Ok(OpenAiClassifier {
            transport,
            stack: Arc::new(stack),
            calibrator,
        })
    }
}

/// Everything one HTTP attempt needs.
struct Inner {
    config: OpenAiConfig,
    api_key: Option<ApiKey>,
    url: String,
    http: reqwest::Client,
    timeout: Duration,
    max_response_bytes: u64,
    counters: Counters,
}

/// The bare OpenAI-compatible transport: each call renders the prompt, sends **one** HTTP
/// request (per-attempt timeout; the body streamed under the size cap) and decodes the answer.
/// No retry, cache, in-flight bound, deadline or breaker: [`OpenAiClassifier`] adds them as
/// [layers](crate::layer). Cheap to clone (clones share the HTTP client and counters).
#[derive(Clone)]
pub struct OpenAiTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OpenAiTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiTransport")
            .field("url", &self.inner.url)
            .field("model", &self.inner.config.model)
            .field("mode", &self.inner.config.mode)
            .field("api_key", &self.inner.api_key)
            .finish_non_exhaustive()
    }
}

impl OpenAiTransport {
    /// The settings in use.
    pub fn config(&self) -> &OpenAiConfig {
        &self.inner.config
    }
}

#[async_trait]
impl LlmClassifier for OpenAiTransport {
    fn name(&self) -> String {
        format!("openai:{}", self.inner.config.model)
    }

    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer> {
        let started = Instant::now();
        let r = self.inner.call(request).await;
        self.inner.counters.record(&r, started.elapsed());
        r
    }

    fn stats(&self) -> Option<Stats> {
        Some(self.inner.counters.snapshot())
    }
}

/// The OpenAI backend's cache key: a hash of the request body it would send (model, messages,
/// sampling settings, answer-mode fields, extra fields) — exactly what determines the answer.
struct BodyKeyer(Arc<Inner>);

impl CacheKeyer for BodyKeyer {
    fn key(&self, request: &ClassifyRequest) -> Result<CacheKey> {
        request.validate()?;
        let p = self
            .0
            .config
            .template
            .render(request, &self.0.config.examples)?;
        let vocab = self.0.config.template.vocabulary(&request.schema)?;
        let body = self.0.body(&p, &vocab);
        let bytes = serde_json::to_vec(&body).map_err(|e| LlmError::Config(e.to_string()))?;
        Ok(CacheKey::builder()
            .str("openai-body-v1")
            .bytes(&bytes)
            .finish())
    }
}

/// The OpenAI-compatible classifier: an [`OpenAiTransport`] inside the reusable
/// [layers](crate::layer) ([`Reliable`]). Cheap to clone (clones share the client, cache,
/// counters, in-flight bound and breaker).
#[derive(Clone)]
pub struct OpenAiClassifier {
    transport: OpenAiTransport,
    stack: Arc<Reliable<OpenAiTransport>>,
    /// Contextual calibration (the `calibrate` setting), shared by clones.
    calibrator: Option<Arc<Calibrator>>,
}

impl std::fmt::Debug for OpenAiClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiClassifier")
            .field("url", &self.transport.inner.url)
            .field("model", &self.transport.inner.config.model)
            .field("mode", &self.transport.inner.config.mode)
            .field("api_key", &self.transport.inner.api_key)
            .finish_non_exhaustive()
    }
}

impl OpenAiClassifier {
    /// A builder.
    pub fn builder() -> OpenAiBuilder {
        OpenAiBuilder::new()
    }

    /// The settings in use.
    pub fn config(&self) -> &OpenAiConfig {
        &self.transport.inner.config
    }

    /// The bare transport inside the layers (one HTTP attempt per call).
    pub fn transport(&self) -> &OpenAiTransport {
        &self.transport
    }

    /// The layers around the transport (their state: the breaker's, the cache's).
    pub fn layers(&self) -> &Reliable<OpenAiTransport> {
        &self.stack
    }

    /// The answer cache, when it is on.
    pub fn cache(&self) -> Option<&Arc<AnswerCache>> {
        self.stack.cache()
    }

    /// The shared answer tier (`cache_redis_url`), when there is one; its store's
    /// [`check`](crate::SharedStore::check) tells whether Redis answers (a readiness probe).
    pub fn shared(&self) -> Option<&SharedTier> {
        self.stack.shared()
    }

    /// The prompt that would be sent for a request.
    pub fn prompt(&self, request: &ClassifyRequest) -> Result<RenderedPrompt> {
        let c = &self.transport.inner.config;
        c.template.render(request, &c.examples)
    }

    /// The JSON body that would be sent for a request.
    pub fn request_body(&self, request: &ClassifyRequest) -> Result<Value> {
        let p = self.prompt(request)?;
        let vocab = self
            .transport
            .inner
            .config
            .template
            .vocabulary(&request.schema)?;
        Ok(self.transport.inner.body(&p, &vocab))
    }
}

#[async_trait]
impl LlmClassifier for OpenAiClassifier {
    fn name(&self) -> String {
        self.transport.name()
    }

    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer> {
        let Some(calibrator) = &self.calibrator else {
            return self.stack.classify(request).await;
        };
        // The content-free requests go through the same layers (cache, retries) as any other.
        let baseline = calibrator
            .baseline(
                &request.schema,
                |r| async move { self.stack.classify(&r).await },
            )
            .await?;
        let answer = self.stack.classify(request).await?;
        Ok(Calibrator::apply(&request.schema, &baseline, answer))
    }

    fn stats(&self) -> Option<Stats> {
        self.stack.stats()
    }
}

impl Inner {
    fn body(&self, p: &RenderedPrompt, vocab: &AnswerVocabulary) -> Value {
        let c = &self.config;
        let mut body = json!({
            "model": c.model,
            "messages": [
                {"role": "system", "content": p.system},
                {"role": "user", "content": p.user},
            ],
            "temperature": c.temperature,
            "stream": false,
        });
        if let Some(seed) = c.seed {
            body["seed"] = json!(seed);
        }
        match c.mode {
            AnswerMode::Constrained => {
                // Types in schema order, then the non-entity class (the prompt's order).
                let names: Vec<&str> = vocab.answers[1..]
                    .iter()
                    .chain(vocab.answers.first())
                    .map(String::as_str)
                    .collect();
                body["max_tokens"] = json!(c.max_tokens.unwrap_or(64));
                body["response_format"] = json!({
                    "type": "json_schema",
                    "json_schema": {
                        "name": "entity_label",
                        "strict": true,
                        "schema": {
                            "type": "object",
                            "properties": {"label": {"type": "string", "enum": names}},
                            "required": ["label"],
                            "additionalProperties": false,
                        },
                    },
                });
            }
            AnswerMode::Logprobs { top_logprobs } => {
                body["max_tokens"] = json!(c.max_tokens.unwrap_or(1));
                body["logprobs"] = json!(true);
                body["top_logprobs"] = json!(top_logprobs);
            }
            AnswerMode::FreeText => {
                body["max_tokens"] = json!(c.max_tokens.unwrap_or(16));
            }
        }
        if let Some(obj) = body.as_object_mut() {
            for (k, v) in &c.extra_body {
                obj.insert(k.clone(), v.clone());
            }
        }
        body
    }

    /// One HTTP attempt: the parsed response or a typed error. The body is read as a stream
    /// and abandoned past `max_response_bytes`; any failure while reading it (a connection
    /// cut before the announced length included) is a retryable [`LlmError::Connection`];
    /// only a complete body that does not parse is [`LlmError::MalformedResponse`].
    async fn attempt(&self, body: &Value) -> Result<ChatResponse> {
        let fut = async {
            let mut rb = self.http.post(&self.url).json(body).timeout(self.timeout);
            if let Some(k) = &self.api_key {
                rb = rb.bearer_auth(k.expose());
            }
            let resp = rb.send().await.map_err(|e| from_reqwest(e, self.timeout))?;
            let status = resp.status();
            if !status.is_success() {
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                // The start of the body is enough to say what went wrong; a body that breaks
                // off does not hide the status.
                let text = match read_body(resp, ERROR_BODY_BYTES, false, self.timeout).await {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).chars().take(300).collect(),
                    Err(e) => format!("<body unreadable: {e}>"),
                };
                return Err(LlmError::Http {
                    status: status.as_u16(),
                    body: text,
                    retry_after,
                });
            }
            let bytes = read_body(resp, self.max_response_bytes, true, self.timeout).await?;
            serde_json::from_slice::<ChatResponse>(&bytes).map_err(|e| {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(800)]);
                LlmError::MalformedResponse(format!(
                    "{e}; body starts {:?}",
                    text.chars().take(200).collect::<String>()
                ))
            })
        };
        // reqwest's timeout covers the whole exchange; this outer one is a second guard.
        match tokio::time::timeout(self.timeout + Duration::from_millis(50), fut).await {
            Ok(r) => r,
            Err(_) => Err(LlmError::Timeout(self.timeout)),
        }
    }

    /// One call: validate, render, one attempt, decode.
    async fn call(&self, request: &ClassifyRequest) -> Result<Answer> {
        request.validate()?;
        let started = Instant::now();
        let prompt = self
            .config
            .template
            .render(request, &self.config.examples)?;
        let schema = &request.schema;
        let vocab = self.config.template.vocabulary(schema)?;
        let body = self.body(&prompt, &vocab);
        self.counters.request();
        let resp = self.attempt(&body).await?;
        let usage = resp.usage();
        self.counters.usage(&usage);
        let d = decode(self.config.mode, schema, &vocab, resp)?;
        let mut a = Answer::for_class(schema, d.class)?;
        a.confidence = d.confidence;
        a.distribution = d.distribution;
        a.usage = usage;
        a.latency = started.elapsed();
        a.raw = d.raw;
        Ok(a)
    }
}

/// How much of an error response's body is read (for its message).
const ERROR_BODY_BYTES: u64 = 4096;

/// Reads a response body as a stream, at most `limit` bytes. Past the limit: with `strict`, a
/// [`LlmError::ResponseTooLarge`] (the rest is never read); without, the first `limit` bytes.
/// A `Content-Length` above the limit fails at once. Read errors are connection errors (or
/// timeouts).
async fn read_body(
    mut resp: reqwest::Response,
    limit: u64,
    strict: bool,
    timeout: Duration,
) -> Result<Vec<u8>> {
    let announced = resp.content_length();
    if strict && announced.is_some_and(|n| n > limit) {
        return Err(LlmError::ResponseTooLarge { limit });
    }
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut buf: Vec<u8> =
        Vec::with_capacity(announced.map_or(8192, |n| n as usize).min(cap).min(1 << 20));
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) if e.is_timeout() => return Err(LlmError::Timeout(timeout)),
            Err(e) => {
                return Err(LlmError::Connection(format!(
                    "reading the response body after {} bytes: {}",
                    buf.len(),
                    error_chain(&e)
                )));
            }
        };
        if buf.len() + chunk.len() > cap {
            if strict {
                return Err(LlmError::ResponseTooLarge { limit });
            }
            buf.extend_from_slice(&chunk[..cap - buf.len()]);
            break;
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// A reqwest error as a typed error: timeouts, then everything about reaching the server or
/// moving bytes (connect, request, body, decode of the transfer) is a retryable connection
/// error.
fn from_reqwest(e: reqwest::Error, timeout: Duration) -> LlmError {
    if e.is_timeout() {
        LlmError::Timeout(timeout)
    } else if e.is_connect() || e.is_request() || e.is_body() || e.is_decode() {
        LlmError::Connection(error_chain(&e))
    } else {
        LlmError::Transport(error_chain(&e))
    }
}

/// What answer decoding found in a response.
#[derive(Debug, Clone, PartialEq)]
struct Decoded {
    /// Class index.
    class: usize,
    /// Confidence, when the mode gives one.
    confidence: Option<f32>,
    /// Distribution over the classes, when the mode gives one.
    distribution: Option<Vec<f32>>,
    /// The model's text.
    raw: String,
}

/// Decodes the answer of a complete response in `mode` (strict: anything outside the schema's
/// labels is an error).
fn decode(
    mode: AnswerMode,
    schema: &LabelSchema,
    vocab: &AnswerVocabulary,
    resp: ChatResponse,
) -> Result<Decoded> {
    let choice = resp
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| LlmError::MalformedResponse("no choices in the response".into()))?;
    let content = choice.message.and_then(|m| m.content);
    // The text modes read the message: none (`"content": null`, no message) is a malformed
    // response, not an answer outside the labels.
    let text = || {
        content.as_deref().ok_or_else(|| {
            LlmError::MalformedResponse("the message has no content (null or missing)".into())
        })
    };
    let (class, confidence, distribution) = match mode {
        AnswerMode::Constrained => (parse_constrained(schema, vocab, text()?)?, None, None),
        AnswerMode::FreeText => (parse_free_text(schema, vocab, text()?)?, None, None),
        AnswerMode::Logprobs { .. } => {
            let first = choice
                .logprobs
                .and_then(|l| l.content)
                .and_then(|c| c.into_iter().next())
                .ok_or_else(|| {
                    LlmError::MalformedResponse(
                        "log-probability mode, but the response has no logprobs (does the \
                         server support `logprobs`/`top_logprobs`?)"
                            .into(),
                    )
                })?;
            let mut top: Vec<(String, f64)> = first
                .top_logprobs
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.token, t.logprob))
                .collect();
            if top.is_empty() {
                top.push((first.token, first.logprob));
            }
            let (dist, _mass) = logprob_distribution(vocab, &top)?;
            let class = argmax(&dist)
                .ok_or_else(|| LlmError::MalformedResponse("empty label distribution".into()))?;
            (class, Some(dist[class]), Some(dist))
        }
    };
    Ok(Decoded {
        class,
        confidence,
        distribution,
        raw: content.unwrap_or_default(),
    })
}

#[derive(Debug, Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<ChatChoice>,
    #[serde(default)]
    usage: Option<UsageJson>,
    #[serde(default)]
    timings: Option<TimingsJson>,
}

impl ChatResponse {
    fn usage(&self) -> Usage {
        let u = self.usage.as_ref();
        let cached = u
            .and_then(|u| u.prompt_tokens_details.as_ref())
            .and_then(|d| d.cached_tokens)
            .or_else(|| self.timings.as_ref().and_then(|t| t.cache_n))
            .unwrap_or(0);
        Usage {
            prompt_tokens: u.and_then(|u| u.prompt_tokens).unwrap_or(0),
            completion_tokens: u.and_then(|u| u.completion_tokens).unwrap_or(0),
            cached_prompt_tokens: cached,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ChatChoice {
    #[serde(default)]
    message: Option<ChatMessage>,
    #[serde(default)]
    logprobs: Option<LogprobsJson>,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LogprobsJson {
    #[serde(default)]
    content: Option<Vec<TokenLogprob>>,
}

#[derive(Debug, Deserialize)]
struct TokenLogprob {
    token: String,
    logprob: f64,
    #[serde(default)]
    top_logprobs: Option<Vec<TopLogprob>>,
}

#[derive(Debug, Deserialize)]
struct TopLogprob {
    token: String,
    logprob: f64,
}

#[derive(Debug, Deserialize)]
struct UsageJson {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Debug, Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct TimingsJson {
    #[serde(default)]
    cache_n: Option<u64>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_key_follows_the_conventions() {
        use super::default_api_key_var as var;
        let none = |_: &str| None::<String>;
        let openai = |v: &str| (v == "OPENAI_API_KEY").then(|| "sk-1".to_string());
        let both = |v: &str| Some(format!("key-{v}"));
        let blank = |_: &str| Some("  ".to_string());
        assert_eq!(var("https://api.openai.com/v1", none), None);
        assert_eq!(
            var("https://api.openai.com/v1", openai),
            Some("OPENAI_API_KEY")
        );
        assert_eq!(
            var("https://API.OpenAI.com:443/v1", openai),
            Some("OPENAI_API_KEY")
        );
        // The OpenAI key goes to OpenAI only.
        assert_eq!(var("http://127.0.0.1:8080/v1", openai), None);
        assert_eq!(var("https://api.openai.com.evil.example/v1", openai), None);
        assert_eq!(var("https://api.openai.com@evil.example/v1", openai), None);
        // LINKNER_LLM_API_KEY goes to whatever server is configured, and wins.
        assert_eq!(
            var("http://127.0.0.1:8080/v1", both),
            Some("LINKNER_LLM_API_KEY")
        );
        assert_eq!(
            var("https://api.openai.com/v1", both),
            Some("LINKNER_LLM_API_KEY")
        );
        assert_eq!(var("https://api.openai.com/v1", blank), None);
    }

    use super::*;

    fn req() -> ClassifyRequest {
        ClassifyRequest::find(
            "Rome is in Italy .",
            "Rome",
            Arc::new(LabelSchema::conll03()),
        )
        .unwrap()
    }

    #[test]
    fn config_fills_defaults_and_refuses_unknown_fields() {
        let c: OpenAiConfig =
            serde_json::from_str(r#"{"base_url": "http://127.0.0.1:9/v1"}"#).unwrap();
        assert_eq!(c.model, OpenAiConfig::default().model);
        let typo = serde_json::from_str::<OpenAiConfig>(r#"{"url": "http://127.0.0.1:9/v1"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            typo.contains("`url`") && typo.contains("base_url"),
            "{typo}"
        );
    }

    #[test]
    fn debug_redacts_the_api_key() {
        let secret = "sk-very-secret-123";
        let c = OpenAiClassifier::builder()
            .api_key(ApiKey::new(secret))
            .build()
            .unwrap();
        let b = OpenAiBuilder::new().api_key(ApiKey::new(secret));
        for s in [
            format!("{c:?}"),
            format!("{b:?}"),
            format!("{}", ApiKey::new(secret)),
        ] {
            assert!(!s.contains(secret), "{s}");
        }
        assert!(format!("{c:?}").contains("redacted"));
    }

    #[test]
    fn constrained_body_enumerates_exactly_the_schema_names() {
        let c = OpenAiClassifier::builder()
            .mode(AnswerMode::Constrained)
            .build()
            .unwrap();
        let body = c.request_body(&req()).unwrap();
        let e = &body["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"];
        assert_eq!(e, &json!(["A", "B", "C", "D", "E"]), "keys by default");
        let c = OpenAiClassifier::builder()
            .mode(AnswerMode::Constrained)
            .template(PromptTemplate::plain())
            .build()
            .unwrap();
        let body = c.request_body(&req()).unwrap();
        let e = &body["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"];
        let names: Vec<&str> = e
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "person",
                "location",
                "organization",
                "miscellaneous",
                "not an entity"
            ]
        );
        assert_eq!(body["temperature"], json!(0.0));
        assert_eq!(body["seed"], json!(42));
    }

    #[test]
    fn logprob_body_asks_one_token_with_alternatives() {
        let c = OpenAiClassifier::builder()
            .extra_body("cache_prompt", json!(true))
            .build()
            .unwrap();
        let body = c.request_body(&req()).unwrap();
        assert_eq!(body["max_tokens"], json!(1));
        assert_eq!(body["logprobs"], json!(true));
        assert_eq!(body["top_logprobs"], json!(20));
        assert_eq!(body["cache_prompt"], json!(true));
    }

    #[test]
    fn bad_settings_are_errors_naming_the_field() {
        for (b, field) in [
            (OpenAiBuilder::new().base_url("ftp://x"), "base_url"),
            (OpenAiBuilder::new().max_in_flight(0), "max_in_flight"),
            (OpenAiBuilder::new().timeout(Duration::ZERO), "timeout_s"),
            (
                OpenAiBuilder::new().deadline(Some(Duration::ZERO)),
                "deadline_s",
            ),
            (
                OpenAiBuilder::new().max_response_bytes(0),
                "max_response_bytes",
            ),
            (OpenAiBuilder::new().cache_capacity(0), "cache_capacity"),
            (OpenAiBuilder::new().temperature(-1.0), "temperature"),
            (
                OpenAiBuilder::new().mode(AnswerMode::Logprobs { top_logprobs: 0 }),
                "mode.top_logprobs",
            ),
        ] {
            match b.build() {
                Err(e @ LlmError::InvalidSetting { .. }) => {
                    assert_eq!(e.kind(), crate::FailureKind::Config);
                    assert!(e.to_string().starts_with(&format!("`{field}`")), "{e}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        let c: OpenAiConfig = serde_json::from_str(r#"{"timeout_s": 0}"#).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("timeout_s"));
        assert!(AnswerMode::parse("bogus").is_err());
        assert_eq!(
            AnswerMode::parse("Constrained").unwrap(),
            AnswerMode::Constrained
        );
    }

    #[test]
    fn settings_map_onto_the_layers() {
        let c = OpenAiClassifier::builder()
            .max_in_flight(7)
            .deadline(None)
            .circuit_breaker(9, Duration::from_secs(2), Duration::from_secs(1))
            .cache(false)
            .build()
            .unwrap();
        let limit = c.layers().get_ref();
        assert_eq!(limit.max_in_flight(), 7);
        let deadline = limit.get_ref();
        assert_eq!(deadline.limit(), None);
        let breaker = deadline.get_ref().get_ref();
        assert_eq!(breaker.policy().threshold, 9);
        // The largest cool-down is never below the first.
        assert_eq!(breaker.policy().max_cooldown, Duration::from_secs(2));
        assert!(c.cache().is_none());
        let d = OpenAiClassifier::builder().build().unwrap();
        assert_eq!(
            d.layers().get_ref().get_ref().limit(),
            Some(Duration::from_secs(120))
        );
        assert_eq!(d.cache().unwrap().capacity(), AnswerCache::DEFAULT_CAPACITY);
    }

    #[test]
    fn the_cache_key_is_the_body_hash() {
        let c = OpenAiClassifier::builder().build().unwrap();
        let k = BodyKeyer(c.transport.inner.clone());
        let a = k.key(&req()).unwrap();
        assert_eq!(a, k.key(&req()).unwrap());
        // Another seed changes the body, so the key.
        let c2 = OpenAiClassifier::builder().seed(Some(7)).build().unwrap();
        assert_ne!(
            a,
            BodyKeyer(c2.transport.inner.clone()).key(&req()).unwrap()
        );
        // Other local probabilities that the prompt does not show do not.
        let other = req().with_local_top(vec![crate::LocalLabel {
            class: 1,
            prob: 0.3,
        }]);
        let shown = c.prompt(&other).unwrap() != c.prompt(&req()).unwrap();
        assert_eq!(k.key(&other).unwrap() != a, shown);
    }

    #[test]
    fn config_round_trips_through_json() {
        let c = OpenAiConfig {
            mode: AnswerMode::FreeText,
            ..OpenAiConfig::default()
        };
        let s = serde_json::to_string(&c).unwrap();
        assert!(s.contains("\"type\":\"free_text\""));
        let back: OpenAiConfig = serde_json::from_str(&s).unwrap();
        assert_eq!(back, c);
        let partial: OpenAiConfig =
            serde_json::from_str(r#"{"model": "m", "mode": {"type": "constrained"}}"#).unwrap();
        assert_eq!(partial.model, "m");
        assert_eq!(partial.max_in_flight, 4);
    }
}
