//! The [`LlmClassifier`] trait every LLM backend implements.

use async_trait::async_trait;

use crate::error::Result;
use crate::request::{Answer, ClassifyRequest};
use crate::stats::Stats;

/// Classifies one entity in its sentence into a type of the request's schema or "not an entity".
///
/// A backend outside this crate needs only this trait (and [`Answer::for_class`]; a
/// [`ClassifyRequest`] is valid by construction, so there is nothing to check); see `docs/llm.md` and the gazetteer backend in the crate's tests.
/// Retries, an answer cache, an in-flight bound, a deadline and a circuit breaker come from
/// the [layers](crate::layer) (`backend.reliable(Reliability::default())`).
/// Implementations must be usable from many tasks at once and must return a typed
/// [`crate::LlmError`] for every failure — never panic — so the linker can keep the local label.
#[async_trait]
pub trait LlmClassifier: Send + Sync {
    /// A short name for logs and reports (`openai:qwen2.5-1.5b`, `gazetteer`, …). An owned
    /// `String`, as for every trait of linkner (`UncertaintyEstimator::name`,
    /// `ExampleRetriever::name`), so that a layer can build its name from the backend's.
    fn name(&self) -> String;

    /// Classifies one request. The answer's class must be inside the request's schema.
    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer>;

    /// Classifies many requests; the i-th result answers the i-th request. The default runs
    /// them **concurrently** (all at once, on the calling task); bound the calls in flight with
    /// a [`ConcurrencyLimit`](crate::layer::ConcurrencyLimit) layer.
    async fn classify_batch(&self, requests: &[ClassifyRequest]) -> Vec<Result<Answer>> {
        futures_util::future::join_all(requests.iter().map(|r| self.classify(r))).await
    }

    /// Counters of the calls made so far, when the backend keeps them.
    fn stats(&self) -> Option<Stats> {
        None
    }
}

/// Forwards every method of [`LlmClassifier`] through a smart pointer (`Arc`, `Box`), so that a
/// shared or boxed backend is a backend and keeps the inner one's overrides.
macro_rules! forward_llm_classifier {
    ($($pointer:ident)::+) => {
        #[async_trait]
        impl<T: LlmClassifier + ?Sized> LlmClassifier for $($pointer)::+<T> {
            fn name(&self) -> String {
                (**self).name()
            }

            async fn classify(&self, request: &ClassifyRequest) -> Result<Answer> {
                (**self).classify(request).await
            }

            async fn classify_batch(&self, requests: &[ClassifyRequest]) -> Vec<Result<Answer>> {
                (**self).classify_batch(requests).await
            }

            fn stats(&self) -> Option<Stats> {
                (**self).stats()
            }
        }
    };
}

forward_llm_classifier!(std::sync::Arc);
forward_llm_classifier!(Box);
