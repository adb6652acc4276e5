//! The OpenAI-compatible backend: `/v1/chat/completions` over reqwest (rustls), for OpenAI,
//! vLLM, llama.cpp's `llama-server`, Ollama and anything else that speaks the protocol.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::cache::{AnswerCache, CachedAnswer};
use crate::calibrate::Calibrator;
use crate::classifier::LlmClassifier;
use crate::error::{LlmError, Result};
use crate::parse::{argmax, logprob_distribution, parse_constrained, parse_free_text};
use crate::prompt::{AnswerVocabulary, PromptTemplate, RenderedPrompt};
use crate::request::{Answer, ClassifyRequest, Example, Usage};
use crate::stats::{Counters, Stats};

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
    /// Environment variable holding the API key (none sent when unset or empty).
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
    /// Retries after the first attempt for retryable failures.
    pub max_retries: u32,
    /// First backoff delay, milliseconds (doubles every retry, with jitter).
    pub backoff_base_ms: u64,
    /// Largest backoff delay, milliseconds.
    pub backoff_max_ms: u64,
    /// Largest `Retry-After` honoured, seconds (longer requests are capped to this).
    pub max_retry_after_s: f64,
    /// Most HTTP requests in flight at once.
    pub max_in_flight: usize,
    /// Cache answers in memory.
    pub cache: bool,
    /// Also keep the cache in this JSONL file (loaded at build, appended to).
    pub cache_path: Option<PathBuf>,
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
            max_retries: 3,
            backoff_base_ms: 250,
            backoff_max_ms: 8_000,
            max_retry_after_s: 30.0,
            max_in_flight: 4,
            cache: true,
            cache_path: None,
            template: PromptTemplate::default(),
            calibrate: false,
            examples: Vec::new(),
            extra_body: serde_json::Map::new(),
        }
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

    /// Sets the bound on requests in flight.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.max_in_flight = n;
        self
    }

    /// Turns the in-memory answer cache on or off.
    pub fn cache(mut self, on: bool) -> Self {
        self.config.cache = on;
        self
    }

    /// Keeps the answer cache in a JSONL file too (turns the cache on).
    pub fn cache_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.cache = true;
        self.config.cache_path = Some(path.into());
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

    /// Checks the settings and builds the backend.
    pub fn build(self) -> Result<OpenAiClassifier> {
        let c = self.config;
        let base = c.base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(LlmError::Config(format!(
                "base URL `{base}` must start with http:// or https://"
            )));
        }
        let secs = |name: &str, v: f64| {
            Duration::try_from_secs_f64(v)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    LlmError::Config(format!(
                        "{name} must be a positive number of seconds, got {v}"
                    ))
                })
        };
        let timeout = secs("timeout_s", c.timeout_s)?;
        let connect_timeout = secs("connect_timeout_s", c.connect_timeout_s)?;
        let max_retry_after = Duration::try_from_secs_f64(c.max_retry_after_s)
            .map_err(|_| LlmError::Config("max_retry_after_s must be ≥ 0".into()))?;
        if c.max_in_flight == 0 {
            return Err(LlmError::Config("max_in_flight must be at least 1".into()));
        }
        if !(c.temperature.is_finite() && c.temperature >= 0.0) {
            return Err(LlmError::Config("temperature must be ≥ 0".into()));
        }
        if let AnswerMode::Logprobs { top_logprobs } = c.mode
            && top_logprobs == 0
        {
            return Err(LlmError::Config("top_logprobs must be at least 1".into()));
        }
        c.template.validate()?;
        if c.calibrate && !matches!(c.mode, AnswerMode::Logprobs { .. }) {
            return Err(LlmError::Config(
                "calibrate needs label distributions: use the `logprobs` answer mode".into(),
            ));
        }
        let api_key = match (self.api_key, &c.api_key_env) {
            (Some(k), _) => Some(k),
            (None, Some(var)) => ApiKey::from_env(var),
            (None, None) => None,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .build()
            .map_err(|e| LlmError::Config(format!("HTTP client: {e}")))?;
        let cache = match (&c.cache_path, c.cache) {
            (Some(p), _) => Some(AnswerCache::with_file(p)?),
            (None, true) => Some(AnswerCache::in_memory()),
            (None, false) => None,
        };
        Ok(OpenAiClassifier {
            inner: Arc::new(Inner {
                url: format!("{base}/chat/completions"),
                sem: Semaphore::new(c.max_in_flight),
                timeout,
                max_retry_after,
                config: c,
                api_key,
                http,
                cache,
                calibrator: Calibrator::new(),
                counters: Counters::default(),
            }),
        })
    }
}

struct Inner {
    config: OpenAiConfig,
    api_key: Option<ApiKey>,
    url: String,
    http: reqwest::Client,
    sem: Semaphore,
    timeout: Duration,
    max_retry_after: Duration,
    cache: Option<AnswerCache>,
    calibrator: Calibrator,
    counters: Counters,
}

/// The OpenAI-compatible classifier. Cheap to clone (clones share the client, cache, counters
/// and in-flight bound).
#[derive(Clone)]
pub struct OpenAiClassifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OpenAiClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiClassifier")
            .field("url", &self.inner.url)
            .field("model", &self.inner.config.model)
            .field("mode", &self.inner.config.mode)
            .field("api_key", &self.inner.api_key)
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
        &self.inner.config
    }

    /// The prompt that would be sent for a request.
    pub fn prompt(&self, request: &ClassifyRequest) -> Result<RenderedPrompt> {
        self.inner
            .config
            .template
            .render(request, &self.inner.config.examples)
    }

    /// The JSON body that would be sent for a request.
    pub fn request_body(&self, request: &ClassifyRequest) -> Result<Value> {
        let p = self.prompt(request)?;
        let vocab = self.inner.config.template.vocabulary(&request.schema)?;
        Ok(self.inner.body(&p, &vocab))
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

    fn cache_key(&self, p: &RenderedPrompt) -> String {
        let mode = serde_json::to_string(&self.config.mode).unwrap_or_default();
        format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.config.model, mode, p.system, p.user
        )
    }

    /// One HTTP attempt: the parsed response or a typed error.
    async fn attempt(&self, body: &Value) -> Result<ChatResponse> {
        let _permit = self
            .sem
            .acquire()
            .await
            .map_err(|_| LlmError::Transport("in-flight semaphore closed".into()))?;
        let fut = async {
            let mut rb = self.http.post(&self.url).json(body).timeout(self.timeout);
            if let Some(k) = &self.api_key {
                rb = rb.bearer_auth(k.expose());
            }
            let resp = rb
                .send()
                .await
                .map_err(|e| LlmError::from_reqwest(e, self.timeout))?;
            let status = resp.status();
            let retry_after = parse_retry_after(resp.headers());
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| LlmError::from_reqwest(e, self.timeout))?;
            if !status.is_success() {
                let text = String::from_utf8_lossy(&bytes);
                return Err(LlmError::Http {
                    status: status.as_u16(),
                    body: text.chars().take(300).collect(),
                    retry_after,
                });
            }
            serde_json::from_slice::<ChatResponse>(&bytes).map_err(|e| {
                let text = String::from_utf8_lossy(&bytes);
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

    fn backoff(&self, retry: u32, err: &LlmError) -> Duration {
        if let LlmError::Http {
            retry_after: Some(d),
            ..
        } = err
        {
            return (*d).min(self.max_retry_after);
        }
        let base = self.config.backoff_base_ms as f64;
        let max = self.config.backoff_max_ms as f64;
        let exp = (base * 2f64.powi(retry.saturating_sub(1).min(30) as i32)).min(max);
        let jitter: f64 = rand::random_range(0.5..=1.0);
        Duration::from_millis((exp * jitter) as u64)
    }

    async fn call(&self, request: &ClassifyRequest) -> Result<Answer> {
        request.validate()?;
        let started = Instant::now();
        let prompt = self
            .config
            .template
            .render(request, &self.config.examples)?;
        let key = self.cache_key(&prompt);
        let schema = &request.schema;
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(&key))
            && hit.class < schema.num_classes()
        {
            self.counters.cache_hit();
            let mut a = Answer::for_class(schema, hit.class)?;
            a.confidence = hit.confidence;
            a.distribution = hit.distribution;
            a.raw = hit.raw;
            a.cached = true;
            a.latency = started.elapsed();
            return Ok(a);
        }
        let vocab = self.config.template.vocabulary(schema)?;
        let body = self.body(&prompt, &vocab);
        let mut attempt_no = 0u32;
        let resp = loop {
            self.counters.request(attempt_no > 0);
            match self.attempt(&body).await {
                Ok(r) => break r,
                Err(e) if e.is_retryable() && attempt_no < self.config.max_retries => {
                    attempt_no += 1;
                    let wait = self.backoff(attempt_no, &e);
                    tracing::debug!(error = %e, ?wait, attempt = attempt_no, "retrying LLM request");
                    tokio::time::sleep(wait).await;
                }
                Err(e) if attempt_no > 0 => {
                    return Err(LlmError::RetriesExhausted {
                        attempts: attempt_no + 1,
                        last: Box::new(e),
                    });
                }
                Err(e) => return Err(e),
            }
        };
        let usage = resp.usage();
        self.counters.usage(&usage);
        let latency = started.elapsed();
        self.counters.latency(latency);
        let choice = resp
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| LlmError::MalformedResponse("no choices in the response".into()))?;
        let content = choice.message.and_then(|m| m.content).unwrap_or_default();
        let (class, confidence, distribution) = match self.config.mode {
            AnswerMode::Constrained => (parse_constrained(schema, &vocab, &content)?, None, None),
            AnswerMode::FreeText => (parse_free_text(schema, &vocab, &content)?, None, None),
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
                let (dist, _mass) = logprob_distribution(&vocab, &top)?;
                let (class, p) = argmax(&dist).ok_or_else(|| {
                    LlmError::MalformedResponse("empty label distribution".into())
                })?;
                (class, Some(p), Some(dist))
            }
        };
        let mut a = Answer::for_class(schema, class)?;
        a.confidence = confidence;
        a.distribution = distribution;
        a.usage = usage;
        a.latency = latency;
        a.raw = content;
        if let Some(cache) = &self.cache {
            cache.put(
                key,
                CachedAnswer {
                    class,
                    confidence: a.confidence,
                    distribution: a.distribution.clone(),
                    raw: a.raw.clone(),
                },
            )?;
        }
        Ok(a)
    }
}

/// `Retry-After` as seconds (integer or decimal). HTTP dates are not honoured (the backoff
/// applies instead).
fn parse_retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = v.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

impl OpenAiClassifier {
    /// One call, calibrated when the config says so.
    async fn calibrated_call(&self, request: &ClassifyRequest) -> Result<Answer> {
        if !self.inner.config.calibrate {
            return self.inner.call(request).await;
        }
        let baseline = self
            .inner
            .calibrator
            .baseline(
                &request.schema,
                |r| async move { self.inner.call(&r).await },
            )
            .await?;
        let answer = self.inner.call(request).await?;
        Ok(Calibrator::apply(&request.schema, &baseline, answer))
    }
}

#[async_trait]
impl LlmClassifier for OpenAiClassifier {
    fn name(&self) -> String {
        format!("openai:{}", self.inner.config.model)
    }

    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer> {
        self.inner.counters.call();
        let r = self.calibrated_call(request).await;
        if r.is_err() {
            self.inner.counters.failure();
        }
        r
    }

    /// Runs the requests concurrently; the in-flight bound still applies.
    async fn classify_batch(&self, requests: &[ClassifyRequest]) -> Vec<Result<Answer>> {
        let mut set = tokio::task::JoinSet::new();
        for (i, r) in requests.iter().enumerate() {
            let me = self.clone();
            let r = r.clone();
            set.spawn(async move { (i, me.classify(&r).await) });
        }
        let mut out: Vec<Option<Result<Answer>>> = (0..requests.len()).map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            if let Ok((i, r)) = joined
                && let Some(slot) = out.get_mut(i)
            {
                *slot = Some(r);
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(LlmError::Transport("classification task failed".into())))
            })
            .collect()
    }

    fn stats(&self) -> Option<Stats> {
        Some(self.inner.counters.snapshot())
    }
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
    use super::*;
    use linkner_core::LabelSchema;

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
    fn bad_settings_are_config_errors() {
        for b in [
            OpenAiBuilder::new().base_url("ftp://x"),
            OpenAiBuilder::new().max_in_flight(0),
            OpenAiBuilder::new().timeout(Duration::ZERO),
            OpenAiBuilder::new().temperature(-1.0),
            OpenAiBuilder::new().mode(AnswerMode::Logprobs { top_logprobs: 0 }),
        ] {
            assert!(matches!(b.build(), Err(LlmError::Config(_))));
        }
        assert!(AnswerMode::parse("bogus").is_err());
        assert_eq!(
            AnswerMode::parse("Constrained").unwrap(),
            AnswerMode::Constrained
        );
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

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        let c = OpenAiClassifier::builder()
            .backoff(Duration::from_millis(100), Duration::from_millis(400))
            .max_retry_after(Duration::from_secs(2))
            .build()
            .unwrap();
        let e = LlmError::Timeout(Duration::from_secs(1));
        let d1 = c.inner.backoff(1, &e);
        let d3 = c.inner.backoff(3, &e);
        let d9 = c.inner.backoff(9, &e);
        assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
        assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
        assert!(d9 <= Duration::from_millis(400));
        let ra = |s| LlmError::Http {
            status: 429,
            body: String::new(),
            retry_after: Some(Duration::from_secs(s)),
        };
        assert_eq!(c.inner.backoff(1, &ra(1)), Duration::from_secs(1));
        assert_eq!(c.inner.backoff(1, &ra(100)), Duration::from_secs(2));
    }
}
