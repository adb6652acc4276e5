//! [`Metered`]: the one place where a layer's calls are counted. Each layer of this module is
//! a [`Wrap`] — what it does around the inner call — inside a `Metered`, which turns it into
//! an [`LlmClassifier`] and meters every call the same way.

use std::time::Instant;

use async_trait::async_trait;

use crate::classifier::LlmClassifier;
use crate::error::Result;
use crate::request::{Answer, ClassifyRequest};
use crate::stats::{CallMeter, Stats};

/// What one layer does around its inner classifier's call: retry it, bound it, time it out,
/// guard it with a breaker, answer it from a cache. [`Metered`] makes an [`LlmClassifier`] of
/// it, counting calls, failures by kind and latency for every layer alike; a layer of your
/// own implements only this.
#[async_trait]
pub trait Wrap<S: LlmClassifier>: Send + Sync {
    /// One call through this layer; `inner` is the classifier it wraps.
    async fn call(&self, inner: &S, request: &ClassifyRequest) -> Result<Answer>;

    /// Adds this layer's own counters to `stats` (which holds the inner classifier's); the
    /// meter's fields are written after it. The default adds nothing.
    fn add_stats(&self, _stats: &mut Stats) {}
}

/// An inner classifier `S` with one layer `W` around it, metered: the layer's
/// [`stats`](LlmClassifier::stats) are its inner classifier's, plus what the layer adds
/// ([`Wrap::add_stats`]), with calls, failures by kind and latency as this layer saw them
/// written over them. [`Retry`](super::Retry), [`Cached`](super::Cached) and the other
/// layers of this module are `Metered` with their own `Wrap`.
#[derive(Debug)]
pub struct Metered<W, S> {
    pub(super) inner: S,
    pub(super) wrap: W,
    meter: CallMeter,
}

impl<W, S> Metered<W, S> {
    /// `inner` with the layer `wrap` around it.
    pub fn wrapping(inner: S, wrap: W) -> Self {
        Metered {
            inner,
            wrap,
            meter: CallMeter::default(),
        }
    }

    /// The wrapped classifier.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The layer.
    pub fn layer_ref(&self) -> &W {
        &self.wrap
    }
}

#[async_trait]
impl<W: Wrap<S>, S: LlmClassifier> LlmClassifier for Metered<W, S> {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer> {
        let started = Instant::now();
        let mut r = self.wrap.call(&self.inner, request).await;
        let elapsed = started.elapsed();
        // An answer that did not come from a cache took the call's wall time as this layer
        // saw it.
        if let Ok(a) = &mut r
            && !a.cached
        {
            a.latency = elapsed;
        }
        self.meter.record(&r, elapsed);
        r
    }

    fn stats(&self) -> Option<Stats> {
        let mut s = self.inner.stats().unwrap_or_default();
        self.wrap.add_stats(&mut s);
        self.meter.apply(&mut s);
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;

    use super::super::test_support::*;
    use super::*;
    use crate::error::FailureKind;

    /// A layer of one's own: asks twice, keeps the second answer, counts its extra calls.
    struct AskTwice(AtomicU64);

    #[async_trait]
    impl<S: LlmClassifier> Wrap<S> for AskTwice {
        async fn call(&self, inner: &S, request: &ClassifyRequest) -> Result<Answer> {
            let _ = inner.classify(request).await;
            self.0.fetch_add(1, Ordering::Relaxed);
            inner.classify(request).await
        }

        fn add_stats(&self, s: &mut Stats) {
            s.retries += self.0.load(Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn a_custom_wrap_is_metered_like_the_built_in_layers() {
        let inner = Scripted::new(vec![
            Step::Ok(1, Duration::from_millis(20)),
            Step::Ok(2, Duration::from_millis(20)),
            Step::Ok(3, Duration::ZERO),
            Step::Err(timeout, Duration::ZERO),
        ]);
        let m = Metered::wrapping(inner, AskTwice(AtomicU64::new(0)));
        let a = m.classify(&req("Smith")).await.unwrap();
        // The second answer, timed over both inner calls.
        assert_eq!(a.class, 2);
        assert!(a.latency >= Duration::from_millis(40), "{:?}", a.latency);
        assert!(m.classify(&req("Smith")).await.is_err());
        assert_eq!(m.get_ref().calls.load(Ordering::SeqCst), 4);
        assert_eq!(m.layer_ref().0.load(Ordering::Relaxed), 2);
        let s = m.stats().unwrap();
        // Calls and failures as this layer saw them, the layer's own counter added.
        assert_eq!((s.calls, s.failures, s.retries), (2, 1, 2));
        assert_eq!(s.failures_by_kind.get(&FailureKind::Timeout), Some(&1));
        assert!(s.latency_max >= 0.04, "{s:?}");
    }
}
