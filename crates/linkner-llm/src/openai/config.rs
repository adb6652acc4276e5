//! The backend's settings: [`OpenAiConfig`] (serialisable), [`AnswerMode`], [`ApiKey`], and
//! [`LlmConfig`]: a backend's settings with those of the layers around it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{LlmError, Result};
use crate::layer::{ReliabilityConfig, at_least_one, positive_secs};
use crate::prompt::PromptTemplate;
use crate::request::Example;

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

/// Serialisable settings of the OpenAI-compatible backend itself: transport, sampling, prompt
/// and calibration. The layers around it (retries, deadline, in-flight bound, breaker, answer
/// cache) are a [`ReliabilityConfig`]; the two together are an [`LlmConfig`], the `llm`
/// section of the linker's config file. The key itself is never part of it: only the name of
/// the variable that holds it. Missing fields take their defaults; unknown fields are refused,
/// so a misspelt field (`"url"` for `"base_url"`) is an error rather than a silent default.
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
    /// Largest response body read, bytes; a longer one is abandoned with
    /// [`LlmError::ResponseTooLarge`].
    pub max_response_bytes: u64,
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
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            template: PromptTemplate::default(),
            calibrate: false,
            examples: Vec::new(),
            extra_body: serde_json::Map::new(),
        }
    }
}

/// The settings of an LLM: its backend and the layers around it — the `llm` section of the
/// linker's config file. In JSON the backend's fields sit at the top level next to a
/// `reliability` object:
///
/// ```
/// # use linkner_llm::LlmConfig;
/// let c: LlmConfig = serde_json::from_str(
///     r#"{"base_url": "http://127.0.0.1:8080/v1", "model": "m",
///         "reliability": {"max_retries": 1, "max_in_flight": 8}}"#,
/// )?;
/// assert_eq!((c.backend.model.as_str(), c.reliability.max_in_flight), ("m", 8));
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// A file with the layers' fields at the top level (the layout of earlier files) reads the
/// same; giving one both ways is an error naming it. A backend of your own gets its layers
/// from the same section: [`ReliabilityConfig::build`] on `reliability`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LlmConfigFile")]
pub struct LlmConfig {
    /// The OpenAI-compatible backend's own settings.
    #[serde(flatten)]
    pub backend: OpenAiConfig,
    /// The layers around it: deadline, retries, in-flight bound, circuit breaker and answer
    /// cache.
    pub reliability: ReliabilityConfig,
}

impl From<OpenAiConfig> for LlmConfig {
    /// `backend` with the layers' defaults.
    fn from(backend: OpenAiConfig) -> Self {
        LlmConfig {
            backend,
            reliability: ReliabilityConfig::default(),
        }
    }
}

impl LlmConfig {
    /// Checks every value of the backend and of the layers; the error names the field
    /// ([`LlmError::InvalidSetting`], or [`LlmError::Config`] for the base URL and the
    /// template).
    pub fn validate(&self) -> Result<()> {
        self.backend.validate_transport()?;
        self.reliability.validate()?;
        self.backend.validate_answer()
    }
}

/// How an [`LlmConfig`] is read: the backend's own fields, the layers' settings as a
/// `reliability` object, or (the layout of earlier files) the same settings at the top level.
/// Giving one both ways is an error naming it.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LlmConfigFile {
    base_url: String,
    model: String,
    api_key_env: Option<String>,
    mode: AnswerMode,
    temperature: f32,
    seed: Option<u64>,
    max_tokens: Option<u32>,
    timeout_s: f64,
    connect_timeout_s: f64,
    max_response_bytes: u64,
    template: PromptTemplate,
    calibrate: bool,
    examples: Vec<Example>,
    extra_body: serde_json::Map<String, Value>,
    reliability: Option<ReliabilityConfig>,
    #[serde(default, deserialize_with = "present")]
    deadline_s: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    max_retries: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    backoff_base_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    backoff_max_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    max_retry_after_s: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    max_in_flight: Option<usize>,
    #[serde(default, deserialize_with = "present")]
    breaker_threshold: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    breaker_cooldown_s: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    breaker_max_cooldown_s: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    cache: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    cache_capacity: Option<usize>,
    #[serde(default, deserialize_with = "present")]
    cache_path: Option<Option<PathBuf>>,
    #[serde(default, deserialize_with = "present")]
    cache_redis_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    cache_redis_ttl_s: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    cache_redis_timeout_ms: Option<u64>,
}

impl Default for LlmConfigFile {
    fn default() -> Self {
        let d = OpenAiConfig::default();
        LlmConfigFile {
            base_url: d.base_url,
            model: d.model,
            api_key_env: d.api_key_env,
            mode: d.mode,
            temperature: d.temperature,
            seed: d.seed,
            max_tokens: d.max_tokens,
            timeout_s: d.timeout_s,
            connect_timeout_s: d.connect_timeout_s,
            max_response_bytes: d.max_response_bytes,
            template: d.template,
            calibrate: d.calibrate,
            examples: d.examples,
            extra_body: d.extra_body,
            reliability: None,
            deadline_s: None,
            max_retries: None,
            backoff_base_ms: None,
            backoff_max_ms: None,
            max_retry_after_s: None,
            max_in_flight: None,
            breaker_threshold: None,
            breaker_cooldown_s: None,
            breaker_max_cooldown_s: None,
            cache: None,
            cache_capacity: None,
            cache_path: None,
            cache_redis_url: None,
            cache_redis_ttl_s: None,
            cache_redis_timeout_ms: None,
        }
    }
}

/// `Some(x)` for a field that is present (`x` may be `null`), `None` for an absent one.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl TryFrom<LlmConfigFile> for LlmConfig {
    type Error = String;

    fn try_from(f: LlmConfigFile) -> std::result::Result<Self, String> {
        let given = f.reliability.is_some();
        let mut reliability = f.reliability.unwrap_or_default();
        // The layers' settings given at the top level (earlier files) over `reliability`;
        // `first` names the first of them, for the error when both layouts are used.
        let mut first: Option<&'static str> = None;
        macro_rules! take_flat {
            ($($field:ident),*) => {$(
                if let Some(v) = f.$field {
                    first = first.or(Some(stringify!($field)));
                    reliability.$field = v;
                }
            )*};
        }
        take_flat!(
            deadline_s,
            max_retries,
            backoff_base_ms,
            backoff_max_ms,
            max_retry_after_s,
            max_in_flight,
            breaker_threshold,
            breaker_cooldown_s,
            breaker_max_cooldown_s,
            cache,
            cache_capacity,
            cache_path,
            cache_redis_url,
            cache_redis_ttl_s,
            cache_redis_timeout_ms
        );
        if let (Some(name), true) = (first, given) {
            return Err(format!(
                "`{name}` is given both at the top level and in `reliability`: keep the one in \
                 `reliability`"
            ));
        }
        let backend = OpenAiConfig {
            base_url: f.base_url,
            model: f.model,
            api_key_env: f.api_key_env,
            mode: f.mode,
            temperature: f.temperature,
            seed: f.seed,
            max_tokens: f.max_tokens,
            timeout_s: f.timeout_s,
            connect_timeout_s: f.connect_timeout_s,
            max_response_bytes: f.max_response_bytes,
            template: f.template,
            calibrate: f.calibrate,
            examples: f.examples,
            extra_body: f.extra_body,
        };
        Ok(LlmConfig {
            backend,
            reliability,
        })
    }
}

impl OpenAiConfig {
    /// Checks every value; the error names the field ([`LlmError::InvalidSetting`], or
    /// [`LlmError::Config`] for the base URL and the template).
    pub fn validate(&self) -> Result<()> {
        self.validate_transport()?;
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
}
