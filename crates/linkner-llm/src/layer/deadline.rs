//! [`Deadline`]: one overall time limit per call, across retries and backoffs.

use std::time::Duration;

use async_trait::async_trait;

use super::{Metered, Wrap};
use crate::classifier::LlmClassifier;
use crate::error::{LlmError, Result};
use crate::request::{Answer, ClassifyRequest};

/// Fails a call with [`LlmError::DeadlineExceeded`] when the inner classifier has not answered
/// within `limit` (the inner call is cancelled). Wrapped around [`Retry`](super::Retry), the
/// limit spans every attempt and every backoff of one entity. `None` is no limit.
pub type Deadline<S> = Metered<TimeLimit, S>;

/// The [`Wrap`] of [`Deadline`]: the limit.
#[derive(Debug, Clone, Copy)]
pub struct TimeLimit(Option<Duration>);

impl<S> Deadline<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, limit: Option<Duration>) -> Self {
        Metered::wrapping(inner, TimeLimit(limit))
    }

    /// The limit.
    pub fn limit(&self) -> Option<Duration> {
        self.wrap.0
    }
}

#[async_trait]
impl<S: LlmClassifier> Wrap<S> for TimeLimit {
    async fn call(&self, inner: &S, request: &ClassifyRequest) -> Result<Answer> {
        match self.0 {
            None => inner.classify(request).await,
            Some(limit) => tokio::time::timeout(limit, inner.classify(request))
                .await
                .unwrap_or(Err(LlmError::DeadlineExceeded(limit))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::test_support::*;
    use super::super::{LlmClassifierExt, RetryPolicy};
    use crate::{FailureKind, LlmClassifier};

    #[tokio::test]
    async fn the_deadline_spans_every_retry() {
        // Each attempt times out after 100 ms; 10 retries would take > 1 s.
        let b = Scripted::new(vec![Step::Err(timeout, Duration::from_millis(100))]);
        let d = b
            .retry(
                RetryPolicy::default()
                    .max_retries(10)
                    .backoff(Duration::from_millis(10), Duration::from_millis(10)),
            )
            .deadline(Duration::from_millis(350));
        let t = Instant::now();
        let e = d.classify(&req("Smith")).await.unwrap_err();
        let el = t.elapsed();
        assert_eq!(e.kind(), FailureKind::Deadline, "{e:?}");
        assert!(
            el >= Duration::from_millis(340) && el < Duration::from_millis(900),
            "{el:?}"
        );
        let s = d.stats().unwrap();
        assert_eq!(s.failures_by_kind.get(&FailureKind::Deadline), Some(&1));
        assert!(s.retries >= 2 && s.retries <= 4, "{s:?}");
    }

    #[tokio::test]
    async fn fast_answers_pass() {
        let d = Scripted::new(vec![Step::Ok(3, Duration::from_millis(5))])
            .deadline(Duration::from_secs(5));
        assert_eq!(d.classify(&req("Smith")).await.unwrap().class, 3);
        let none = super::Deadline::new(Scripted::new(vec![]), None);
        assert_eq!(none.limit(), None);
        assert!(none.classify(&req("Smith")).await.is_ok());
    }
}
