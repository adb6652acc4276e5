//! # linkner-llm
//!
//! The LLM side of linkner: an LLM does not find entities, it classifies one uncertain entity in
//! its sentence into one of the schema's types or "not an entity".
//!
//! - [`LlmClassifier`]: the async trait every backend implements (`classify`, a default
//!   `classify_batch`, optional `stats`). A backend written outside this crate needs only it.
//! - [`OpenAiClassifier`]: the OpenAI-compatible backend (OpenAI, vLLM, llama.cpp's
//!   `llama-server`, Ollama) over reqwest with rustls, built with [`OpenAiBuilder`]; three
//!   [`AnswerMode`]s: constrained JSON schema, first-token log-probabilities, strict free text.
//! - [`prompt`]: a replaceable two-part [`PromptTemplate`] whose entity-independent prefix comes
//!   first (so servers reuse their prompt cache) and seeded few-shot [`ExamplePool`]s.
//! - [`layer`]: reliability as reusable layers around **any** backend, in the style of tower —
//!   [`Retry`](layer::Retry) (exponential backoff with jitter, `Retry-After` in seconds or as a
//!   date, capped), [`Cached`](layer::Cached) (a bounded LRU [`AnswerCache`], optionally on
//!   disk), [`ConcurrencyLimit`](layer::ConcurrencyLimit), a per-entity
//!   [`Deadline`](layer::Deadline) and a [`CircuitBreaker`](layer::CircuitBreaker); a custom
//!   backend gets them all with `backend.reliable(Reliability::default())`
//!   ([`LlmClassifierExt`]). Behind the in-memory cache, an optional [`shared`] tier
//!   ([`SharedStore`]; [`RedisStore`] with the `redis` feature) lets replicas and later runs
//!   reuse answers; it never fails a call. The OpenAI backend is its bare [`OpenAiTransport`]
//!   inside the same layers.
//! - Typed failures: every failure is an [`LlmError`] with a [`FailureKind`] (timeout,
//!   rate_limited, connection, malformed, out_of_schema, circuit_open, deadline, backend, …);
//!   the linker turns any of them into "keep the local label". [`Stats`] counts them by kind in
//!   fixed memory (latency percentiles from a histogram).
//! - [`conformance`]: the suite every backend must pass.
//!
//! ```no_run
//! use std::sync::Arc;
//! use linkner_core::LabelSchema;
//! use linkner_llm::{AnswerMode, ClassifyRequest, LlmClassifier, OpenAiClassifier};
//!
//! # async fn run() -> linkner_llm::Result<()> {
//! let llm = OpenAiClassifier::builder()
//!     .base_url("http://127.0.0.1:8080/v1")
//!     .model("qwen2.5-coder-1.5b-instruct")
//!     .mode(AnswerMode::Constrained)
//!     .build()?;
//! let schema = Arc::new(LabelSchema::conll03());
//! let req = ClassifyRequest::find("Rome is the capital of Italy .", "Rome", schema)?;
//! let answer = llm.classify(&req).await?;
//! println!("{} ({:?})", answer.label, answer.confidence);
//! # Ok(()) }
//! ```

pub mod cache;
pub mod calibrate;
pub mod classifier;
pub mod conformance;
pub mod error;
pub mod http;
pub mod layer;
#[cfg(feature = "openai")]
pub mod openai;
pub mod parse;
pub mod prompt;
#[cfg(feature = "redis")]
pub mod redis_store;
pub mod request;
pub mod shared;
pub mod stats;

pub use cache::{AnswerCache, CacheKey};
pub use calibrate::{Calibrated, Calibrator};
pub use classifier::LlmClassifier;
pub use error::{FailureKind, LlmError, Result};
pub use layer::{LlmClassifierExt, Reliability};
#[cfg(feature = "openai")]
pub use openai::{
    AnswerMode, ApiKey, LlmConfig, OpenAiBuilder, OpenAiClassifier, OpenAiConfig, OpenAiTransport,
};
pub use prompt::{
    AnswerKeys, AnswerVocabulary, ExamplePool, NegativeExamples, PromptTemplate, RenderedPrompt,
};
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;
pub use request::{Answer, ClassifyRequest, Example, LocalLabel, Usage};
pub use shared::{SharedStore, SharedTier, StoreError};
pub use stats::Stats;

/// Re-exported so backends written outside this crate need no direct dependency on it.
pub use async_trait::async_trait;
