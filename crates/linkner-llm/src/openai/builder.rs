//! [`OpenAiBuilder`]: settings in code, then the transport or the layered classifier.

use super::{OpenAiClassifier, config::*, transport::*};
use crate::layer::positive_secs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::calibrate::Calibrated;
use crate::error::{LlmError, Result};
use crate::layer::{CacheKeyer, Layer, ReliabilityConfig, Reliable};
use crate::prompt::PromptTemplate;
use crate::request::Example;
use crate::stats::Counters;

/// Builder of an [`OpenAiClassifier`].
#[derive(Debug, Clone, Default)]
pub struct OpenAiBuilder {
    config: LlmConfig,
    api_key: Option<ApiKey>,
}

impl OpenAiBuilder {
    /// A builder with the defaults of [`OpenAiConfig`] and [`ReliabilityConfig`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder from a config: an [`LlmConfig`] (backend and layers), or an
    /// [`OpenAiConfig`] alone (the layers at their defaults).
    pub fn from_config(config: impl Into<LlmConfig>) -> Self {
        OpenAiBuilder {
            config: config.into(),
            api_key: None,
        }
    }

    /// Sets the layers' settings all at once.
    pub fn reliability(mut self, settings: ReliabilityConfig) -> Self {
        self.config.reliability = settings;
        self
    }

    /// A builder from the environment: `LINKNER_LLM_URL` (base URL), `LINKNER_LLM_MODEL`, and
    /// the key from `LINKNER_LLM_API_KEY` or else `OPENAI_API_KEY`. Unset variables keep the
    /// defaults.
    pub fn from_env() -> Self {
        let mut b = Self::new();
        if let Ok(u) = std::env::var("LINKNER_LLM_URL") {
            b.config.backend.base_url = u;
        }
        if let Ok(m) = std::env::var("LINKNER_LLM_MODEL") {
            b.config.backend.model = m;
        }
        b.config.backend.api_key_env = ["LINKNER_LLM_API_KEY", "OPENAI_API_KEY"]
            .into_iter()
            .find(|v| ApiKey::from_env(v).is_some())
            .map(String::from);
        b
    }

    /// Sets the base URL (`…/v1`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.config.backend.base_url = url.into();
        self
    }

    /// Sets the model name.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.config.backend.model = model.into();
        self
    }

    /// Uses this API key.
    pub fn api_key(mut self, key: ApiKey) -> Self {
        self.api_key = Some(key);
        self
    }

    /// Reads the API key from this environment variable when building.
    pub fn api_key_env(mut self, var: impl Into<String>) -> Self {
        self.config.backend.api_key_env = Some(var.into());
        self
    }

    /// Sets the answer mode.
    pub fn mode(mut self, mode: AnswerMode) -> Self {
        self.config.backend.mode = mode;
        self
    }

    /// Sets the temperature.
    pub fn temperature(mut self, t: f32) -> Self {
        self.config.backend.temperature = t;
        self
    }

    /// Sets (or clears) the seed.
    pub fn seed(mut self, seed: Option<u64>) -> Self {
        self.config.backend.seed = seed;
        self
    }

    /// Sets the completion token limit.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.config.backend.max_tokens = Some(n);
        self
    }

    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.config.backend.timeout_s = d.as_secs_f64();
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.backend.connect_timeout_s = d.as_secs_f64();
        self
    }

    /// Sets (or removes, with `None`) the overall per-entity deadline across retries.
    pub fn deadline(mut self, d: Option<Duration>) -> Self {
        self.config.reliability.deadline_s = d.map(|d| d.as_secs_f64());
        self
    }

    /// Sets how many retries follow a retryable failure.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.config.reliability.max_retries = n;
        self
    }

    /// Sets the backoff range (first delay, largest delay).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.config.reliability.backoff_base_ms = base.as_millis() as u64;
        self.config.reliability.backoff_max_ms = max.as_millis() as u64;
        self
    }

    /// Sets the largest `Retry-After` honoured.
    pub fn max_retry_after(mut self, d: Duration) -> Self {
        self.config.reliability.max_retry_after_s = d.as_secs_f64();
        self
    }

    /// Sets the bound on entities (and so HTTP requests) in flight.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.reliability.max_in_flight = n;
        self
    }

    /// Sets the cap on response bodies, in bytes.
    pub fn max_response_bytes(mut self, n: u64) -> Self {
        self.config.backend.max_response_bytes = n;
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
        self.config.reliability.breaker_threshold = threshold;
        self.config.reliability.breaker_cooldown_s = cooldown.as_secs_f64();
        self.config.reliability.breaker_max_cooldown_s = max_cooldown.max(cooldown).as_secs_f64();
        self
    }

    /// Turns the in-memory answer cache on or off.
    pub fn cache(mut self, on: bool) -> Self {
        self.config.reliability.cache = on;
        self
    }

    /// Sets the most answers the cache keeps in memory.
    pub fn cache_capacity(mut self, n: usize) -> Self {
        self.config.reliability.cache_capacity = n;
        self
    }

    /// Keeps the answer cache in a JSONL file too (turns the cache on).
    pub fn cache_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.reliability.cache = true;
        self.config.reliability.cache_path = Some(path.into());
        self
    }

    /// Shares answers through the Redis server at `url` (see
    /// [`ReliabilityConfig::cache_redis_url`](crate::layer::ReliabilityConfig::cache_redis_url)).
    pub fn cache_redis_url(mut self, url: impl Into<String>) -> Self {
        self.config.reliability.cache_redis_url = Some(url.into());
        self
    }

    /// Sets how long an answer lives in Redis, seconds (`None`: no expiry).
    pub fn cache_redis_ttl_s(mut self, ttl: Option<u64>) -> Self {
        self.config.reliability.cache_redis_ttl_s = ttl;
        self
    }

    /// Sets the longest time one Redis read or write may take, milliseconds.
    pub fn cache_redis_timeout_ms(mut self, ms: u64) -> Self {
        self.config.reliability.cache_redis_timeout_ms = ms;
        self
    }

    /// Replaces the prompt template.
    pub fn template(mut self, template: PromptTemplate) -> Self {
        self.config.backend.template = template;
        self
    }

    /// Turns contextual calibration on or off (see [`crate::calibrate`]).
    pub fn calibrate(mut self, on: bool) -> Self {
        self.config.backend.calibrate = on;
        self
    }

    /// Sets the fixed few-shot examples.
    pub fn examples(mut self, examples: Vec<Example>) -> Self {
        self.config.backend.examples = examples;
        self
    }

    /// Adds a field to every request body (e.g. `cache_prompt` for llama.cpp).
    pub fn extra_body(mut self, key: impl Into<String>, value: Value) -> Self {
        self.config.backend.extra_body.insert(key.into(), value);
        self
    }

    /// Checks the settings and builds the bare transport: one HTTP attempt per call, no
    /// retry, cache, in-flight bound, deadline or breaker. Wrap it in
    /// [layers](crate::layer) of your choice, or use [`OpenAiBuilder::build`].
    pub fn build_transport(self) -> Result<OpenAiTransport> {
        self.config.validate()?;
        Self::transport(self.config.backend, self.api_key)
    }

    /// The transport of settings already checked.
    fn transport(c: OpenAiConfig, api_key: Option<ApiKey>) -> Result<OpenAiTransport> {
        let base = c.base_url.trim_end_matches('/').to_string();
        let timeout = positive_secs("timeout_s", c.timeout_s)?;
        let connect_timeout = positive_secs("connect_timeout_s", c.connect_timeout_s)?;
        let api_key = match (api_key, &c.api_key_env) {
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
        self.config.validate()?;
        let LlmConfig {
            backend,
            reliability,
        } = self.config;
        let transport = Self::transport(backend, self.api_key)?;
        let c = &transport.inner.config;
        let settings = reliability.layers()?;
        let keyer: Arc<dyn CacheKeyer> = Arc::new(BodyKeyer(transport.inner.clone()));
        let stack: Reliable<OpenAiTransport> = settings.layer(transport.clone()).with_keyer(keyer);
        let stack = Arc::new(stack);
        // Contextual calibration is the `Calibrated` layer, over the same stack (so the
        // content-free requests go through the cache and retries like any other).
        let calibrated = c
            .calibrate
            .then(|| Arc::new(Calibrated::new(Arc::clone(&stack))));
        Ok(OpenAiClassifier {
            transport,
            stack,
            calibrated,
        })
    }
}
