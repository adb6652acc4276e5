//! Reusable layers around **any** [`LlmClassifier`], in the style of tower: each layer is an
//! `LlmClassifier` that wraps another one and adds one concern.
//!
//! | layer | what it adds |
//! |---|---|
//! | [`Cached`] | answers from a bounded [`AnswerCache`] (LRU, optional JSONL file), then from an optional [`SharedTier`] (e.g. Redis, shared by replicas) |
//! | [`ConcurrencyLimit`] | at most N calls in flight (a fair semaphore) |
//! | [`Deadline`] | one overall time limit per call, across every retry and backoff |
//! | [`Retry`] | retries of retryable failures, exponential backoff with jitter, `Retry-After` |
//! | [`CircuitBreaker`] | after N consecutive timeouts/connection failures, fail fast for a cool-down, then probe |
//!
//! A backend gets all of them in one line, in the recommended order, with
//! [`LlmClassifierExt::reliable`]:
//!
//! ```
//! use std::sync::Arc;
//! use linkner_llm::layer::{LlmClassifierExt, Reliability};
//! use linkner_llm::{async_trait, Answer, AnswerCache, ClassifyRequest, LlmClassifier, LlmError};
//!
//! struct AlwaysPerson;
//!
//! #[async_trait]
//! impl LlmClassifier for AlwaysPerson {
//!     fn name(&self) -> String { "always-person".into() }
//!     async fn classify(&self, r: &ClassifyRequest) -> Result<Answer, LlmError> {
//!         Answer::for_class(r.schema(), 1)
//!     }
//! }
//!
//! // Retry + cache + in-flight bound (+ deadline and breaker) in one line:
//! let llm = AlwaysPerson.reliable(Reliability::default().max_in_flight(8).cache(AnswerCache::in_memory()));
//! // …or layer by layer, innermost first:
//! let llm2 = AlwaysPerson
//!     .retry(Default::default())
//!     .concurrency_limit(8)
//!     .cached(Arc::new(AnswerCache::in_memory()));
//! # let _ = (llm, llm2);
//! ```
//!
//! **Order** (outermost first) of [`Reliable`]: `Cached` → `ConcurrencyLimit` → `Deadline` →
//! `Retry` → `CircuitBreaker` → the backend. A cache hit costs nothing else; the in-flight
//! bound holds across a call's retries (so a `Retry-After` wait keeps its slot, and queueing
//! for a slot does not eat the deadline); the breaker sits under the retries so each attempt
//! is checked, and a call that finds it open fails at once with
//! [`LlmError::CircuitOpen`](crate::LlmError::CircuitOpen) (not retried).
//!
//! **Statistics.** Every layer's [`stats`](LlmClassifier::stats) is its inner backend's with
//! its own counters written over it; see [`Stats`](crate::Stats) for which layer fills which
//! field.

mod breaker;
mod cached;
mod config;
mod deadline;
mod limit;
mod metered;
mod retry;

use std::sync::Arc;
use std::time::Duration;

pub use breaker::{Breaker, BreakerPolicy, BreakerState, CircuitBreaker};
pub use cached::{CacheKeyer, Cached, Caching, RequestKeyer, versioned_key};
pub use config::ReliabilityConfig;
#[cfg(feature = "openai")]
pub(crate) use config::{at_least_one, positive_secs};
pub use deadline::{Deadline, TimeLimit};
pub use limit::{ConcurrencyLimit, Limit};
pub use metered::{Metered, Wrap};
pub use retry::{Retry, RetryPolicy, Retrying};

use crate::cache::AnswerCache;
use crate::classifier::LlmClassifier;
use crate::shared::SharedTier;

/// Wraps a classifier into another (tower's `Layer`).
pub trait Layer<S> {
    /// The wrapped classifier.
    type Service;

    /// Wraps `inner`.
    fn layer(&self, inner: S) -> Self::Service;
}

/// The full stack [`LlmClassifierExt::reliable`] builds.
pub type Reliable<S> = Cached<ConcurrencyLimit<Deadline<Retry<CircuitBreaker<S>>>>>;

/// Settings of the full stack ([`Reliable`]): retries, in-flight bound, deadline, circuit
/// breaker, an optional answer cache and an optional shared tier behind it. The defaults are
/// those of the OpenAI backend.
#[derive(Debug, Clone)]
pub struct Reliability {
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Most calls in flight at once (at least 1).
    pub max_in_flight: usize,
    /// Overall time per call, across retries (`None`: no limit).
    pub deadline: Option<Duration>,
    /// Circuit breaker policy.
    pub breaker: BreakerPolicy,
    /// Answer cache (`None`: no cache).
    pub cache: Option<Arc<AnswerCache>>,
    /// Shared answer store consulted after an in-memory miss (`None`: none); see
    /// [`crate::shared`].
    pub shared: Option<SharedTier>,
}

impl Default for Reliability {
    fn default() -> Self {
        Reliability {
            retry: RetryPolicy::default(),
            max_in_flight: 4,
            deadline: Some(Duration::from_secs(120)),
            breaker: BreakerPolicy::default(),
            cache: None,
            shared: None,
        }
    }
}

impl Reliability {
    /// Sets the retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Sets the in-flight bound.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Sets (or removes) the per-call deadline.
    pub fn deadline(mut self, d: Option<Duration>) -> Self {
        self.deadline = d;
        self
    }

    /// Sets the circuit breaker policy.
    pub fn breaker(mut self, policy: BreakerPolicy) -> Self {
        self.breaker = policy;
        self
    }

    /// Caches answers in `cache`.
    pub fn cache(mut self, cache: AnswerCache) -> Self {
        self.cache = Some(Arc::new(cache));
        self
    }

    /// Caches answers in a cache shared with other backends.
    pub fn shared_cache(mut self, cache: Arc<AnswerCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Shares answers with other processes through `tier` (any [`SharedStore`], e.g. a
    /// [`RedisStore`](crate::RedisStore)): looked up after an in-memory miss, written after
    /// each fresh answer, never a failure ([`crate::shared`]).
    ///
    /// [`SharedStore`]: crate::SharedStore
    pub fn shared_store(mut self, tier: SharedTier) -> Self {
        self.shared = Some(tier);
        self
    }
}

impl<S: LlmClassifier> Layer<S> for Reliability {
    type Service = Reliable<S>;

    fn layer(&self, inner: S) -> Reliable<S> {
        let s = CircuitBreaker::new(inner, self.breaker.clone());
        let s = Retry::new(s, self.retry.clone());
        let s = Deadline::new(s, self.deadline);
        let s = ConcurrencyLimit::new(s, self.max_in_flight);
        Cached::optional(s, self.cache.clone()).with_shared(self.shared.clone())
    }
}

/// Layers as methods of every [`LlmClassifier`] (`backend.retry(..).cached(..)`).
pub trait LlmClassifierExt: LlmClassifier + Sized {
    /// Wraps `self` in `layer`.
    fn with_layer<L: Layer<Self>>(self, layer: L) -> L::Service {
        layer.layer(self)
    }

    /// Retries retryable failures ([`Retry`]).
    fn retry(self, policy: RetryPolicy) -> Retry<Self> {
        Retry::new(self, policy)
    }

    /// Answers repeats from `cache` ([`Cached`], keyed by the backend's name and the request).
    fn cached(self, cache: Arc<AnswerCache>) -> Cached<Self> {
        Cached::new(self, cache)
    }

    /// At most `n` calls in flight ([`ConcurrencyLimit`]).
    fn concurrency_limit(self, n: usize) -> ConcurrencyLimit<Self> {
        ConcurrencyLimit::new(self, n)
    }

    /// An overall time limit per call ([`Deadline`]).
    fn deadline(self, limit: Duration) -> Deadline<Self> {
        Deadline::new(self, Some(limit))
    }

    /// Fails fast after consecutive transport failures ([`CircuitBreaker`]).
    fn circuit_breaker(self, policy: BreakerPolicy) -> CircuitBreaker<Self> {
        CircuitBreaker::new(self, policy)
    }

    /// The full stack ([`Reliable`]): cache, in-flight bound, deadline, retries, breaker.
    fn reliable(self, settings: Reliability) -> Reliable<Self> {
        settings.layer(self)
    }
}

impl<T: LlmClassifier> LlmClassifierExt for T {}

#[cfg(test)]
pub(crate) mod test_support {
    //! A scripted backend for the layers' unit tests.

    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;

    use crate::classifier::LlmClassifier;
    use crate::error::{LlmError, Result};
    use crate::request::{Answer, ClassifyRequest};

    /// One scripted outcome.
    #[derive(Clone, Copy)]
    pub enum Step {
        /// Answer this class after this delay.
        Ok(usize, Duration),
        /// Fail with this error after this delay.
        Err(fn() -> LlmError, Duration),
    }

    /// Plays `script` in order (the last step repeats); counts calls and the most in flight.
    pub struct Scripted {
        pub script: Mutex<VecDeque<Step>>,
        pub last: Mutex<Option<Step>>,
        pub calls: AtomicUsize,
        pub in_flight: AtomicUsize,
        pub max_in_flight: AtomicUsize,
    }

    impl Scripted {
        pub fn new(script: Vec<Step>) -> Self {
            Scripted {
                script: Mutex::new(script.into()),
                last: Mutex::new(None),
                calls: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
            }
        }

        fn next(&self) -> Step {
            let mut s = self.script.lock().unwrap();
            let mut last = self.last.lock().unwrap();
            let step = s
                .pop_front()
                .or(*last)
                .unwrap_or(Step::Ok(1, Duration::ZERO));
            *last = Some(step);
            step
        }
    }

    #[async_trait]
    impl LlmClassifier for Scripted {
        fn name(&self) -> String {
            "scripted".into()
        }

        async fn classify(&self, request: &ClassifyRequest) -> Result<Answer> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let step = self.next();
            let delay = match step {
                Step::Ok(_, d) | Step::Err(_, d) => d,
            };
            tokio::time::sleep(delay).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            match step {
                Step::Ok(c, _) => Answer::for_class(request.schema(), c),
                Step::Err(f, _) => Err(f()),
            }
        }
    }

    pub fn req(entity: &str) -> ClassifyRequest {
        ClassifyRequest::find(
            format!("Yesterday {entity} spoke in Rome ."),
            entity,
            std::sync::Arc::new(linkner_core::LabelSchema::conll03()),
        )
        .unwrap()
    }

    pub fn timeout() -> LlmError {
        LlmError::Timeout(Duration::from_millis(10))
    }

    pub fn reset() -> LlmError {
        LlmError::Connection("reset by peer".into())
    }

    pub fn bad_label() -> LlmError {
        LlmError::LabelOutsideSchema {
            answer: "banana".into(),
            expected: "person, …".into(),
        }
    }

    pub fn server_error() -> LlmError {
        LlmError::Http {
            status: 503,
            body: "busy".into(),
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    use super::test_support::*;
    use super::*;
    use crate::conformance::{check_backend, default_probes};
    use crate::error::Result;
    use crate::request::Answer;

    fn probes() -> Vec<crate::ClassifyRequest> {
        default_probes(Arc::new(linkner_core::LabelSchema::conll03()))
    }

    /// A simple well-behaved backend: a deterministic class from the entity text.
    struct ByLength;

    #[async_trait::async_trait]
    impl LlmClassifier for ByLength {
        fn name(&self) -> String {
            "by-length".into()
        }

        async fn classify(&self, r: &crate::ClassifyRequest) -> Result<Answer> {
            let class = r.entity().chars().count() % r.schema().num_classes();
            let mut a = Answer::for_class(r.schema(), class)?;
            let mut d = vec![0.0; r.schema().num_classes()];
            d[class] = 1.0;
            a.distribution = Some(d);
            a.confidence = Some(1.0);
            Ok(a)
        }
    }

    // One conformance run per layer, and one for the whole stack.
    #[tokio::test]
    async fn every_layer_passes_the_conformance_suite() {
        let p = probes();
        check_backend(&ByLength.retry(RetryPolicy::default()), &p)
            .await
            .unwrap();
        check_backend(&ByLength.cached(Arc::new(AnswerCache::in_memory())), &p)
            .await
            .unwrap();
        check_backend(&ByLength.concurrency_limit(2), &p)
            .await
            .unwrap();
        check_backend(&ByLength.deadline(Duration::from_secs(5)), &p)
            .await
            .unwrap();
        check_backend(&ByLength.circuit_breaker(BreakerPolicy::default()), &p)
            .await
            .unwrap();
        let report = check_backend(
            &ByLength.reliable(Reliability::default().cache(AnswerCache::in_memory())),
            &p,
        )
        .await
        .unwrap();
        assert!(report.passed.contains(&"invalid_requests"));
    }

    #[tokio::test]
    async fn the_default_batch_runs_requests_concurrently() {
        let b = Scripted::new(vec![Step::Ok(1, Duration::from_millis(100))]);
        let reqs: Vec<_> = (0..10).map(|i| req(&format!("Smith{i}"))).collect();
        let t = Instant::now();
        let out = b.classify_batch(&reqs).await;
        assert_eq!(out.len(), 10);
        assert!(out.iter().all(|r| r.as_ref().is_ok_and(|a| a.class == 1)));
        // One by one would take 1 s.
        assert!(
            t.elapsed() < Duration::from_millis(600),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(b.max_in_flight.load(Ordering::SeqCst), 10);
    }

    #[tokio::test]
    async fn the_stack_reports_calls_failures_by_kind_hits_and_retries() {
        let b = Scripted::new(vec![
            Step::Err(reset, Duration::ZERO),
            Step::Ok(1, Duration::ZERO),
            Step::Err(bad_label, Duration::ZERO),
        ]);
        let s = b.reliable(
            Reliability::default()
                .retry(
                    RetryPolicy::default()
                        .backoff(Duration::from_millis(1), Duration::from_millis(2)),
                )
                .cache(AnswerCache::in_memory()),
        );
        let a = s.classify(&req("Smith")).await.unwrap();
        assert!(!a.cached);
        assert!(s.classify(&req("Smith")).await.unwrap().cached);
        let e = s.classify(&req("Jones")).await.unwrap_err();
        assert_eq!(e.kind(), crate::FailureKind::OutOfSchema);
        let st = s.stats().unwrap();
        assert_eq!(
            (st.calls, st.cache_hits, st.retries, st.failures),
            (3, 1, 1, 1)
        );
        // The backend counts no requests: the attempts stand in for them.
        assert_eq!(st.requests, 3);
        assert_eq!(
            st.failures_by_kind.get(&crate::FailureKind::OutOfSchema),
            Some(&1)
        );
        assert_eq!(st.failures_by_kind.len(), 1);
    }
}
