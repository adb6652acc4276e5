//! [`Cached`]: answers repeats from an [`AnswerCache`], and from a [`SharedTier`] behind it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::cache::{ANSWER_FORMAT_VERSION, AnswerCache, CacheKey, CachedAnswer};
use crate::classifier::LlmClassifier;
use crate::error::Result;
use crate::request::{Answer, ClassifyRequest};
use crate::shared::{SharedTier, StoreError};
use crate::stats::Stats;

use super::{Metered, Wrap};

/// Computes the cache key of a request: a hash of everything that determines the answer.
pub trait CacheKeyer: Send + Sync {
    /// The key of `request`; an error (e.g. an invalid request) is returned to the caller.
    fn key(&self, request: &ClassifyRequest) -> Result<CacheKey>;
}

impl<F> CacheKeyer for F
where
    F: Fn(&ClassifyRequest) -> Result<CacheKey> + Send + Sync,
{
    fn key(&self, request: &ClassifyRequest) -> Result<CacheKey> {
        self(request)
    }
}

/// The default key: a namespace (the backend's name, or anything that identifies its settings)
/// and every field of the request — sentence, span, entity, schema, local classes with their
/// probabilities, few-shot examples. A backend whose answer depends on less (the OpenAI
/// backend: only on the request body it sends) gives [`Cached`] its own [`CacheKeyer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKeyer {
    /// Separates backends (and settings) that share one cache.
    pub namespace: String,
}

impl CacheKeyer for RequestKeyer {
    fn key(&self, r: &ClassifyRequest) -> Result<CacheKey> {
        let schema = serde_json::to_vec(r.schema().as_ref()).unwrap_or_default();
        let mut k = CacheKey::builder()
            .str(&self.namespace)
            .str(r.sentence())
            .u64(r.start() as u64)
            .u64(r.end() as u64)
            .str(r.entity())
            .bytes(&schema)
            .u64(r.local_top().len() as u64);
        for l in r.local_top() {
            k = k.u64(l.class as u64).u64(u64::from(l.prob.to_bits()));
        }
        match r.examples() {
            None => k = k.u64(0),
            Some(ex) => {
                k = k.u64(1).u64(ex.len() as u64);
                for e in ex {
                    k = k.str(&e.sentence).str(&e.entity).u64(e.class as u64);
                }
            }
        }
        Ok(k.finish())
    }
}

/// The key under which [`Cached`] stores an answer: the keyer's key combined with
/// [`ANSWER_FORMAT_VERSION`], so a change to what an answer holds or how a response is parsed
/// (a new version) never reuses answers stored by an earlier one.
pub fn versioned_key(key: CacheKey) -> CacheKey {
    CacheKey::builder()
        .str("answer-format")
        .u64(u64::from(ANSWER_FORMAT_VERSION))
        .bytes(&key.0.to_le_bytes())
        .finish()
}

/// Answers a request from the cache when its key is there; otherwise asks the inner
/// classifier and stores its answer. Errors are never cached. A hit whose class does not fit
/// the request's schema is ignored (asked again). A failed write to the cache file never fails
/// the call: it is logged and counted (`cache_write_failures` in [`Stats`]).
///
/// With a [`SharedTier`] ([`Cached::with_shared`]), a request the in-memory cache misses is
/// looked up in the shared store (a hit there is copied into memory), and a fresh answer is
/// written to both. The shared tier never fails a call either: a read that fails, times out
/// or finds an undecodable value is a miss, a failed write is counted, and after a failure the
/// tier is skipped for its cool-down (see [`crate::shared`]).
pub type Cached<S> = Metered<Caching, S>;

/// The [`Wrap`] of [`Cached`]: the in-memory cache, the shared tier, the keyer and the hits.
pub struct Caching {
    cache: Option<Arc<AnswerCache>>,
    shared: Option<SharedState>,
    keyer: Arc<dyn CacheKeyer>,
    hits: AtomicU64,
}

impl std::fmt::Debug for Caching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caching")
            .field("cache", &self.cache)
            .field("shared", &self.shared.as_ref().map(|s| &s.tier))
            .finish_non_exhaustive()
    }
}

/// Longest cool-down applied (a longer one is cut to it, so the clock cannot overflow).
const MAX_COOLDOWN: Duration = Duration::from_secs(86_400);

/// The shared tier of one [`Cached`] layer: the store with its bounds, when it may be used
/// again after a failure, and its counters.
#[derive(Debug)]
struct SharedState {
    tier: SharedTier,
    /// Skip the store until then (set by a failure, cleared by a success).
    down_until: Mutex<Option<Instant>>,
    /// A failure has been logged as a warning since the last success.
    warned: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
}

impl SharedState {
    fn new(tier: SharedTier) -> Self {
        SharedState {
            tier,
            down_until: Mutex::new(None),
            warned: AtomicBool::new(false),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// Runs one store operation under the tier's timeout, unless the tier is cooling down
    /// after a failure; records the outcome (a failure starts a cool-down).
    async fn run<T>(
        &self,
        what: &str,
        op: impl Future<Output = std::result::Result<T, StoreError>>,
    ) -> Option<T> {
        let skip = {
            let down = self
                .down_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            down.is_some_and(|t| Instant::now() < t)
        };
        if skip {
            self.errors.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let r = match tokio::time::timeout(self.tier.timeout, op).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Timeout(self.tier.timeout)),
        };
        match r {
            Ok(v) => {
                if self.warned.swap(false, Ordering::Relaxed) {
                    tracing::info!(store = %self.tier.store.describe(),
                        "the shared answer cache answers again");
                }
                *self
                    .down_until
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                Some(v)
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.failed(what, &e);
                None
            }
        }
    }

    fn failed(&self, what: &str, e: &StoreError) {
        // An undecodable value says nothing about the store's health: no cool-down for it.
        if !matches!(e, StoreError::Invalid(_)) && self.tier.cooldown > Duration::ZERO {
            *self
                .down_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner) =
                Some(Instant::now() + self.tier.cooldown.min(MAX_COOLDOWN));
        }
        if matches!(e, StoreError::Invalid(_)) || self.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(store = %self.tier.store.describe(), error = %e,
                "shared answer cache {what} failed");
        } else {
            tracing::warn!(store = %self.tier.store.describe(), error = %e,
                cooldown = ?self.tier.cooldown,
                "shared answer cache {what} failed; answers come from memory or the LLM \
                 meanwhile (failures are counted in the backend's stats)");
        }
    }

    async fn get(&self, key: CacheKey) -> Option<CachedAnswer> {
        let found = self.run("read", self.tier.store.get(key)).await.flatten();
        if found.is_none() {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    async fn put(&self, key: CacheKey, answer: &CachedAnswer) {
        self.run("write", self.tier.store.put(key, answer)).await;
    }
}

impl<S: LlmClassifier> Cached<S> {
    /// Wraps `inner` with `cache`, keyed by [`RequestKeyer`] with the backend's name.
    pub fn new(inner: S, cache: Arc<AnswerCache>) -> Self {
        Self::optional(inner, Some(cache))
    }

    /// Wraps `inner` with `cache`, or passes calls through when `None`.
    pub fn optional(inner: S, cache: Option<Arc<AnswerCache>>) -> Self {
        let namespace = inner.name();
        Metered::wrapping(
            inner,
            Caching {
                cache,
                shared: None,
                keyer: Arc::new(RequestKeyer { namespace }),
                hits: AtomicU64::new(0),
            },
        )
    }
}

impl<S> Cached<S> {
    /// Uses `keyer` for the keys.
    pub fn with_keyer(mut self, keyer: Arc<dyn CacheKeyer>) -> Self {
        self.wrap.keyer = keyer;
        self
    }

    /// Consults `tier` after an in-memory miss and writes fresh answers to it (`None`: no
    /// shared tier). Works with or without an in-memory cache.
    pub fn with_shared(mut self, tier: Option<SharedTier>) -> Self {
        self.wrap.shared = tier.map(SharedState::new);
        self
    }

    /// The cache, when there is one.
    pub fn cache(&self) -> Option<&Arc<AnswerCache>> {
        self.wrap.cache.as_ref()
    }

    /// The shared tier, when there is one.
    pub fn shared(&self) -> Option<&SharedTier> {
        self.wrap.shared.as_ref().map(|s| &s.tier)
    }
}

impl Caching {
    async fn lookup_or_ask<S: LlmClassifier>(
        &self,
        inner: &S,
        request: &ClassifyRequest,
    ) -> Result<Answer> {
        let started = Instant::now();
        let key = versioned_key(self.keyer.key(request)?);
        let fits = |hit: &CachedAnswer| hit.class < request.schema().num_classes();
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(&key))
            && fits(&hit)
        {
            return self.hit(request, hit, started);
        }
        if let Some(shared) = &self.shared {
            match shared.get(key).await {
                Some(hit) if fits(&hit) => {
                    shared.hits.fetch_add(1, Ordering::Relaxed);
                    if let Some(c) = &self.cache {
                        c.put(key, hit.clone());
                    }
                    return self.hit(request, hit, started);
                }
                // Another schema's answer under this key cannot be (the key hashes the
                // schema), but if it is there it is not this request's answer.
                Some(_) => {
                    shared.misses.fetch_add(1, Ordering::Relaxed);
                }
                None => {}
            }
        }
        let a = inner.classify(request).await?;
        let answer = CachedAnswer {
            class: a.class,
            confidence: a.confidence,
            distribution: a.distribution.clone(),
            label_mass: a.label_mass,
            raw: a.raw.clone(),
        };
        if let Some(c) = &self.cache {
            c.put(key, answer.clone());
        }
        if let Some(shared) = &self.shared {
            shared.put(key, &answer).await;
        }
        Ok(a)
    }

    fn hit(
        &self,
        request: &ClassifyRequest,
        hit: CachedAnswer,
        started: Instant,
    ) -> Result<Answer> {
        self.hits.fetch_add(1, Ordering::Relaxed);
        let mut a = Answer::for_class(request.schema(), hit.class)?;
        a.confidence = hit.confidence;
        a.distribution = hit.distribution;
        a.label_mass = hit.label_mass;
        a.raw = hit.raw;
        a.cached = true;
        a.latency = started.elapsed();
        Ok(a)
    }
}

#[async_trait]
impl<S: LlmClassifier> Wrap<S> for Caching {
    async fn call(&self, inner: &S, request: &ClassifyRequest) -> Result<Answer> {
        if self.cache.is_none() && self.shared.is_none() {
            inner.classify(request).await
        } else {
            self.lookup_or_ask(inner, request).await
        }
    }

    fn add_stats(&self, s: &mut Stats) {
        s.cache_hits += self.hits.load(Ordering::Relaxed);
        if let Some(c) = &self.cache {
            s.cache_write_failures += c.write_failures();
        }
        if let Some(t) = &self.shared {
            s.shared_cache_hits += t.hits.load(Ordering::Relaxed);
            s.shared_cache_misses += t.misses.load(Ordering::Relaxed);
            s.shared_cache_errors += t.errors.load(Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::super::LlmClassifierExt;
    use super::super::test_support::*;
    use super::*;
    use crate::request::LocalLabel;

    #[tokio::test]
    async fn repeats_are_answered_from_the_cache_and_errors_are_not_cached() {
        let b = Scripted::new(vec![
            Step::Err(timeout, Duration::ZERO),
            Step::Ok(2, Duration::ZERO),
            Step::Ok(3, Duration::ZERO),
        ]);
        let c = b.cached(Arc::new(AnswerCache::in_memory()));
        assert!(c.classify(&req("Smith")).await.is_err());
        let a = c.classify(&req("Smith")).await.unwrap();
        let b2 = c.classify(&req("Smith")).await.unwrap();
        assert!(!a.cached && b2.cached);
        assert_eq!((a.class, b2.class), (2, 2));
        assert_eq!(c.get_ref().calls.load(Ordering::SeqCst), 2);
        // Another entity, or the same with other local probabilities, is another key.
        assert_eq!(c.classify(&req("Jones")).await.unwrap().class, 3);
        let other = req("Smith")
            .with_local_top(vec![LocalLabel {
                class: 1,
                prob: 0.7,
            }])
            .unwrap();
        assert!(!c.classify(&other).await.unwrap().cached);
        let s = c.stats().unwrap();
        assert_eq!((s.calls, s.cache_hits, s.failures), (5, 1, 1));
    }

    #[tokio::test]
    async fn a_custom_keyer_decides_what_is_the_same() {
        let by_entity = |r: &ClassifyRequest| Ok(CacheKey::builder().str(r.entity()).finish());
        let c = Scripted::new(vec![Step::Ok(2, Duration::ZERO)])
            .cached(Arc::new(AnswerCache::in_memory()))
            .with_keyer(Arc::new(by_entity));
        let first = ClassifyRequest::find(
            "Smith spoke .",
            "Smith",
            Arc::new(linkner_core::LabelSchema::conll03()),
        )
        .unwrap();
        c.classify(&first).await.unwrap();
        assert!(c.classify(&req("Smith")).await.unwrap().cached);
    }

    #[tokio::test]
    async fn answers_stored_by_another_answer_format_are_not_reused() {
        // An answer stored under the keyer's bare key (as a cache of format 1 did) is not an
        // answer of this version: the layer asks again and stores under the versioned key.
        let by_entity = |r: &ClassifyRequest| Ok(CacheKey::builder().str(r.entity()).finish());
        let cache = Arc::new(AnswerCache::in_memory());
        let bare = by_entity(&req("Smith")).unwrap();
        cache.put(
            bare,
            CachedAnswer {
                class: 4,
                confidence: None,
                distribution: None,
                label_mass: None,
                raw: "old".into(),
            },
        );
        let c = Scripted::new(vec![Step::Ok(2, Duration::ZERO)])
            .cached(cache.clone())
            .with_keyer(Arc::new(by_entity));
        let a = c.classify(&req("Smith")).await.unwrap();
        assert_eq!((a.class, a.cached), (2, false));
        assert_eq!(cache.get(&versioned_key(bare)).unwrap().class, 2);
        assert_ne!(versioned_key(bare), bare);
        let again = c.classify(&req("Smith")).await.unwrap();
        assert_eq!((again.class, again.cached), (2, true));
    }

    #[tokio::test]
    async fn the_label_mass_survives_the_cache() {
        struct WithMass;
        #[async_trait]
        impl LlmClassifier for WithMass {
            fn name(&self) -> String {
                "with-mass".into()
            }
            async fn classify(&self, r: &ClassifyRequest) -> Result<Answer> {
                let mut a = Answer::for_class(r.schema(), 2)?;
                a.distribution = Some(vec![0.1, 0.2, 0.5, 0.1, 0.1]);
                a.label_mass = Some(0.625);
                Ok(a)
            }
        }
        let c = Cached::new(WithMass, Arc::new(AnswerCache::in_memory()));
        assert_eq!(
            c.classify(&req("Smith")).await.unwrap().label_mass,
            Some(0.625)
        );
        let hit = c.classify(&req("Smith")).await.unwrap();
        assert!(hit.cached);
        assert_eq!(hit.label_mass, Some(0.625));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_failing_cache_file_never_fails_the_answer() {
        // /dev/full opens for appending, but every write fails (no space left on device).
        let cache = Arc::new(AnswerCache::with_file("/dev/full").unwrap());
        let c = Scripted::new(vec![Step::Ok(2, Duration::ZERO)]).cached(cache.clone());
        let a = c.classify(&req("Smith")).await.unwrap();
        assert_eq!(a.class, 2);
        assert!(c.classify(&req("Smith")).await.unwrap().cached);
        tokio::task::spawn_blocking(move || cache.flush())
            .await
            .unwrap();
        let s = c.stats().unwrap();
        assert_eq!((s.failures, s.cache_hits), (0, 1));
        assert!(s.cache_write_failures >= 1, "{s:?}");
    }
}
