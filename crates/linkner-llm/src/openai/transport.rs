//! The transport: one HTTP attempt per call (request body, per-attempt timeout, body read
//! under the size cap) and the cache key of a request.

use super::{config::*, wire::*};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::cache::CacheKey;
use crate::classifier::LlmClassifier;
use crate::error::{LlmError, Result};
use crate::http::parse_retry_after;
use crate::layer::CacheKeyer;
use crate::prompt::{AnswerVocabulary, RenderedPrompt};
use crate::request::{Answer, ClassifyRequest};
use crate::stats::{Counters, Stats};
use linkner_core::error_chain;

/// Everything one HTTP attempt needs.
pub(super) struct Inner {
    pub(super) config: OpenAiConfig,
    pub(super) api_key: Option<ApiKey>,
    pub(super) url: String,
    pub(super) http: reqwest::Client,
    pub(super) timeout: Duration,
    pub(super) max_response_bytes: u64,
    pub(super) counters: Counters,
}

/// The bare OpenAI-compatible transport: each call renders the prompt, sends **one** HTTP
/// request (per-attempt timeout; the body streamed under the size cap) and decodes the answer.
/// No retry, cache, in-flight bound, deadline or breaker: [`OpenAiClassifier`](super::OpenAiClassifier) adds them as
/// [layers](crate::layer). Cheap to clone (clones share the HTTP client and counters).
#[derive(Clone)]
pub struct OpenAiTransport {
    pub(super) inner: Arc<Inner>,
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
pub(super) struct BodyKeyer(pub(super) Arc<Inner>);

impl CacheKeyer for BodyKeyer {
    fn key(&self, request: &ClassifyRequest) -> Result<CacheKey> {
        let p = self
            .0
            .config
            .template
            .render(request, &self.0.config.examples)?;
        let vocab = self.0.config.template.vocabulary(request.schema())?;
        let body = self.0.body(&p, &vocab);
        let bytes = serde_json::to_vec(&body).map_err(|e| LlmError::Config(e.to_string()))?;
        Ok(CacheKey::builder()
            .str("openai-body-v1")
            .bytes(&bytes)
            .finish())
    }
}

impl Inner {
    pub(super) fn body(&self, p: &RenderedPrompt, vocab: &AnswerVocabulary) -> Value {
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
    pub(super) async fn attempt(&self, body: &Value) -> Result<ChatResponse> {
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
    pub(super) async fn call(&self, request: &ClassifyRequest) -> Result<Answer> {
        let started = Instant::now();
        let prompt = self
            .config
            .template
            .render(request, &self.config.examples)?;
        let schema = &request.schema();
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
        a.label_mass = d.label_mass;
        a.usage = usage;
        a.latency = started.elapsed();
        a.raw = d.raw;
        Ok(a)
    }
}

/// How much of an error response's body is read (for its message).
pub(super) const ERROR_BODY_BYTES: u64 = 4096;

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
pub(super) fn from_reqwest(e: reqwest::Error, timeout: Duration) -> LlmError {
    if e.is_timeout() {
        LlmError::Timeout(timeout)
    } else if e.is_connect() || e.is_request() || e.is_body() || e.is_decode() {
        LlmError::Connection(error_chain(&e))
    } else {
        LlmError::Transport(error_chain(&e))
    }
}
