//! [`ConcurrencyLimit`]: at most N calls in flight.

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::{Metered, Wrap};
use crate::classifier::LlmClassifier;
use crate::error::{LlmError, Result};
use crate::request::{Answer, ClassifyRequest};

/// Lets at most `max_in_flight` calls into the inner classifier at once; the others wait their
/// turn, first come first served. Wrapped around [`Retry`](super::Retry), a call keeps its slot
/// across its retries and backoffs, so the bound is also a bound on requests to the server.
pub type ConcurrencyLimit<S> = Metered<Limit, S>;

/// The [`Wrap`] of [`ConcurrencyLimit`]: the bound and its semaphore.
#[derive(Debug)]
pub struct Limit {
    max_in_flight: usize,
    sem: Semaphore,
}

impl<S> ConcurrencyLimit<S> {
    /// Wraps `inner`; `max_in_flight` is raised to 1 when 0.
    pub fn new(inner: S, max_in_flight: usize) -> Self {
        let n = max_in_flight.max(1);
        Metered::wrapping(
            inner,
            Limit {
                max_in_flight: n,
                sem: Semaphore::new(n),
            },
        )
    }

    /// The bound.
    pub fn max_in_flight(&self) -> usize {
        self.wrap.max_in_flight
    }
}

#[async_trait]
impl<S: LlmClassifier> Wrap<S> for Limit {
    async fn call(&self, inner: &S, request: &ClassifyRequest) -> Result<Answer> {
        match self.sem.acquire().await {
            Ok(_permit) => inner.classify(request).await,
            Err(_) => Err(LlmError::backend("the in-flight semaphore was closed")),
        }
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
