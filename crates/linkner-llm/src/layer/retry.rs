//! [`Retry`]: retries retryable failures with exponential backoff and jitter, honouring the
//! server's `Retry-After` up to a cap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::classifier::LlmClassifier;
use crate::error::{LlmError, Result};
use crate::request::{Answer, ClassifyRequest};
use crate::stats::Stats;

use super::{Metered, Wrap};

/// When and how long [`Retry`] waits before trying again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: no retry).
    pub max_retries: u32,
    /// First backoff delay; it doubles every retry.
    pub backoff_base: Duration,
    /// Largest backoff delay.
    pub backoff_max: Duration,
    /// Largest `Retry-After` honoured (longer requests are capped to it).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Sets the number of retries.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the backoff range (first delay, largest delay).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// Sets the largest `Retry-After` honoured.
    pub fn max_retry_after(mut self, d: Duration) -> Self {
        self.max_retry_after = d;
        self
    }

    /// The wait before retry number `retry` (1 for the first retry) after `err`: the server's
    /// `Retry-After` capped to `max_retry_after` when it gave one, else
    /// `min(base · 2^(retry−1), max)` times a random factor in `[0.5, 1]`.
    pub fn backoff_for(&self, retry: u32, err: &LlmError) -> Duration {
        if let Some(d) = err.retry_after() {
            return d.min(self.max_retry_after);
        }
        let base = self.backoff_base.as_secs_f64();
        let max = self.backoff_max.as_secs_f64();
        let exp = (base * 2f64.powi(retry.saturating_sub(1).min(30) as i32)).min(max);
        let jitter: f64 = rand::random_range(0.5..=1.0);
        Duration::try_from_secs_f64(exp * jitter).unwrap_or(self.backoff_max)
    }
}

/// Retries the inner classifier's retryable failures ([`LlmError::is_retryable`]): timeouts,
/// broken connections and HTTP 408/425/429/5xx. Anything else returns at once. After the last
/// attempt the error is [`LlmError::RetriesExhausted`] (or the first error itself when no
/// retry was made).
pub type Retry<S> = Metered<Retrying, S>;

/// The [`Wrap`] of [`Retry`]: the policy and the attempts made.
#[derive(Debug)]
pub struct Retrying {
    policy: RetryPolicy,
    attempts: AtomicU64,
    retries: AtomicU64,
}

impl<S> Retry<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Metered::wrapping(
            inner,
            Retrying {
                policy,
                attempts: AtomicU64::new(0),
                retries: AtomicU64::new(0),
            },
        )
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.wrap.policy
    }
}

#[async_trait]
impl<S: LlmClassifier> Wrap<S> for Retrying {
    async fn call(&self, inner: &S, request: &ClassifyRequest) -> Result<Answer> {
        let mut retry = 0u32;
        loop {
            self.attempts.fetch_add(1, Ordering::Relaxed);
            match inner.classify(request).await {
                Ok(a) => return Ok(a),
                Err(e) if e.is_retryable() && retry < self.policy.max_retries => {
                    retry += 1;
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = self.policy.backoff_for(retry, &e);
                    tracing::debug!(error = %e, ?wait, retry, "retrying LLM request");
                    tokio::time::sleep(wait).await;
                }
                Err(e) if retry > 0 => {
                    return Err(LlmError::RetriesExhausted {
                        attempts: retry + 1,
                        last: Box::new(e),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn add_stats(&self, s: &mut Stats) {
        s.retries += self.retries.load(Ordering::Relaxed);
        if s.requests == 0 {
            s.requests = self.attempts.load(Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::LlmClassifierExt;
    use super::super::test_support::*;
    use super::*;

    fn fast() -> RetryPolicy {
        RetryPolicy::default().backoff(Duration::from_millis(5), Duration::from_millis(10))
    }

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        let p = RetryPolicy::default()
            .backoff(Duration::from_millis(100), Duration::from_millis(400))
            .max_retry_after(Duration::from_secs(2));
        let e = LlmError::Timeout(Duration::from_secs(1));
        for _ in 0..50 {
            let d1 = p.backoff_for(1, &e);
            let d3 = p.backoff_for(3, &e);
            let d9 = p.backoff_for(9, &e);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            assert!(d9 >= Duration::from_millis(200) && d9 <= Duration::from_millis(400));
        }
        let ra = |s| LlmError::Http {
            status: 429,
            body: String::new(),
            retry_after: Some(Duration::from_secs(s)),
        };
        assert_eq!(p.backoff_for(1, &ra(1)), Duration::from_secs(1));
        assert_eq!(p.backoff_for(1, &ra(100)), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_until_success() {
        let b = Scripted::new(vec![
            Step::Err(timeout, Duration::ZERO),
            Step::Err(server_error, Duration::ZERO),
            Step::Ok(2, Duration::ZERO),
        ]);
        let r = b.retry(fast());
        let a = r.classify(&req("Smith")).await.unwrap();
        assert_eq!(a.class, 2);
        assert_eq!(r.get_ref().calls.load(Ordering::SeqCst), 3);
        let s = r.stats().unwrap();
        assert_eq!((s.calls, s.retries, s.requests, s.failures), (1, 2, 3, 0));
    }

    #[tokio::test]
    async fn other_failures_are_not_retried() {
        let r = Scripted::new(vec![Step::Err(bad_label, Duration::ZERO)]).retry(fast());
        let e = r.classify(&req("Smith")).await.unwrap_err();
        assert!(matches!(e, LlmError::LabelOutsideSchema { .. }), "{e:?}");
        assert_eq!(r.get_ref().calls.load(Ordering::SeqCst), 1);
        // A request the backend refuses neither.
        let refused = || LlmError::InvalidRequest("refused".into());
        let r = Scripted::new(vec![Step::Err(refused, Duration::ZERO)]).retry(fast());
        let e = r.classify(&req("Smith")).await.unwrap_err();
        assert!(matches!(e, LlmError::InvalidRequest(_)), "{e:?}");
        assert_eq!(r.get_ref().calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retries_end_in_retries_exhausted_with_the_last_error() {
        let r = Scripted::new(vec![Step::Err(reset, Duration::ZERO)]).retry(fast().max_retries(2));
        let e = r.classify(&req("Smith")).await.unwrap_err();
        assert!(
            matches!(&e, LlmError::RetriesExhausted { attempts: 3, last } if matches!(**last, LlmError::Connection(_))),
            "{e:?}"
        );
        assert_eq!(e.kind(), crate::FailureKind::Connection);
        assert_eq!(r.get_ref().calls.load(Ordering::SeqCst), 3);
    }
}
