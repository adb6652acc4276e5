//! The backend's settings: [`OpenAiConfig`] (serialisable), [`AnswerMode`], [`ApiKey`].

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cache::AnswerCache;
use crate::error::{LlmError, Result};
use crate::layer::{BreakerPolicy, RetryPolicy};
use crate::prompt::PromptTemplate;
use crate::redis_store::RedisStore;
use crate::request::Example;
use crate::shared::SharedTier;

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
pub(super) fn positive_secs(field: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| LlmError::InvalidSetting {
            field: field.into(),
            message: format!("must be a positive number of seconds, got {v}"),
        })
}

/// An error naming `field` when `v` is 0.
fn at_least_one(field: &str, v: u64) -> Result<()> {
    if v == 0 {
        return Err(LlmError::InvalidSetting {
            field: field.into(),
            message: "must be at least 1".into(),
        });
    }
    Ok(())
}

/// A number of seconds ≥ 0 as a duration, or an error naming the field.
pub(super) fn non_negative_secs(field: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v).map_err(|_| LlmError::InvalidSetting {
        field: field.into(),
        message: format!("must be a number of seconds ≥ 0, got {v}"),
    })
}

impl OpenAiConfig {
    /// Checks every value; the error names the field ([`LlmError::InvalidSetting`], or
    /// [`LlmError::Config`] for the base URL and the template).
    pub fn validate(&self) -> Result<()> {
        self.validate_transport()?;
        self.validate_reliability()?;
        self.validate_answer()
    }

    /// The URL, the per-attempt timeouts and the body cap.
    fn validate_transport(&self) -> Result<()> {
        let base = self.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(LlmError::InvalidSetting {
                field: "base_url".into(),
                message: format!("`{base}` must start with http:// or https://"),
            });
        }
        positive_secs("timeout_s", self.timeout_s)?;
        positive_secs("connect_timeout_s", self.connect_timeout_s)?;
        at_least_one("max_response_bytes", self.max_response_bytes)
    }

    /// The layers' settings: deadline, retries, in-flight bound, cache, breaker.
    fn validate_reliability(&self) -> Result<()> {
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
        at_least_one("max_in_flight", self.max_in_flight as u64)?;
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
        Ok(())
    }

    /// Sampling, answer mode, prompt template and calibration.
    fn validate_answer(&self) -> Result<()> {
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
