//! The OpenAI-compatible backend: `/v1/chat/completions` over reqwest (rustls), for OpenAI,
//! vLLM, llama.cpp's `llama-server`, Ollama and anything else that speaks the protocol.
//!
//! It is built from two parts: [`OpenAiTransport`], one HTTP attempt per call (request body,
//! per-attempt timeout, response body streamed under a size cap, answer decoding), and the
//! reusable [layers](crate::layer) around it — answer cache, in-flight bound, per-entity
//! deadline, retries, circuit breaker — exactly as a custom backend gets them
//! ([`Reliable`]).

mod builder;
mod config;
mod server_info;
#[cfg(test)]
mod tests;
mod transport;
mod wire;

pub use builder::OpenAiBuilder;
pub use config::{
    AnswerMode, ApiKey, DEFAULT_MAX_RESPONSE_BYTES, LlmConfig, OpenAiConfig, default_api_key_var,
};
pub use server_info::ServerInfo;
pub use transport::OpenAiTransport;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::cache::AnswerCache;
use crate::calibrate::Calibrated;
use crate::classifier::LlmClassifier;
use crate::error::Result;
use crate::layer::Reliable;
use crate::prompt::RenderedPrompt;
use crate::request::{Answer, ClassifyRequest};
use crate::shared::SharedTier;
use crate::stats::Stats;

/// The OpenAI-compatible classifier: an [`OpenAiTransport`] inside the reusable
/// [layers](crate::layer) ([`Reliable`]). Cheap to clone (clones share the client, cache,
/// counters, in-flight bound and breaker).
#[derive(Clone)]
pub struct OpenAiClassifier {
    transport: OpenAiTransport,
    stack: Arc<Reliable<OpenAiTransport>>,
    /// The stack inside contextual calibration (the `calibrate` setting), shared by clones.
    calibrated: Option<Arc<Calibrated<Arc<Reliable<OpenAiTransport>>>>>,
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
            .vocabulary(request.schema())?;
        Ok(self.transport.inner.body(&p, &vocab))
    }
}

#[async_trait]
impl LlmClassifier for OpenAiClassifier {
    fn name(&self) -> String {
        self.transport.name()
    }

    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer> {
        match &self.calibrated {
            Some(calibrated) => calibrated.classify(request).await,
            None => self.stack.classify(request).await,
        }
    }

    fn stats(&self) -> Option<Stats> {
        self.stack.stats()
    }
}
