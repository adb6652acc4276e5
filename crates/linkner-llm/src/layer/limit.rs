//! [`ConcurrencyLimit`]: at most N calls in flight.

use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use crate::classifier::LlmClassifier;
use crate::error::{LlmError, Result};
use crate::request::{Answer, ClassifyRequest};
use crate::stats::{CallMeter, Stats};

/// Lets at most `max_in_flight` calls into the inner classifier at once; the others wait their
/// turn, first come first served. Wrapped around [`Retry`](super::Retry), a call keeps its slot
/// across its retries and backoffs, so the bound is also a bound on requests to the server.
#[derive(Debug)]
pub struct ConcurrencyLimit<S> {
    inner: S,
    max_in_flight: usize,
    sem: Semaphore,
    meter: CallMeter,
}

impl<S> ConcurrencyLimit<S> {
    /// Wraps `inner`; `max_in_flight` is raised to 1 when 0.
    pub fn new(inner: S, max_in_flight: usize) -> Self {
        let n = max_in_flight.max(1);
        ConcurrencyLimit {
            inner,
            max_in_flight: n,
            sem: Semaphore::new(n),
            meter: CallMeter::default(),
        }
    }

    /// The bound.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// The wrapped classifier.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: LlmClassifier> LlmClassifier for ConcurrencyLimit<S> {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer> {
        let started = Instant::now();
        let r = match self.sem.acquire().await {
            Ok(_permit) => self.inner.classify(request).await,
            Err(_) => Err(LlmError::backend("the in-flight semaphore was closed")),
        };
        super::finish(&self.meter, started, r)
    }

    fn stats(&self) -> Option<Stats> {
        let mut s = self.inner.stats().unwrap_or_default();
        self.meter.apply(&mut s);
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::super::LlmClassifierExt;
    use super::super::test_support::*;

    #[tokio::test]
    async fn no_more_than_the_bound_runs_at_once() {
        let b = Scripted::new(vec![Step::Ok(1, Duration::from_millis(60))]);
        let l = b.concurrency_limit(3);
        let reqs: Vec<_> = (0..10).map(|i| req(&format!("Smith{i}"))).collect();
        let t = std::time::Instant::now();
        let out = crate::LlmClassifier::classify_batch(&l, &reqs).await;
        assert!(out.iter().all(|r| r.is_ok()));
        assert_eq!(l.get_ref().max_in_flight.load(Ordering::SeqCst), 3);
        // 10 calls, 3 at a time, 60 ms each: at least 4 rounds.
        assert!(
            t.elapsed() >= Duration::from_millis(230),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(super::ConcurrencyLimit::new((), 0).max_in_flight(), 1);
    }
}
