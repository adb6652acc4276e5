//! [`CircuitBreaker`]: stop waiting on a server that does not answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::classifier::LlmClassifier;
use crate::error::{FailureKind, LlmError, Result};
use crate::request::{Answer, ClassifyRequest};
use crate::stats::Stats;

use super::{Metered, Wrap};

/// When a [`CircuitBreaker`] opens and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerPolicy {
    /// Failure points in a row that open the breaker (0: never opens). A connection failure
    /// counts 1 point, a timeout 2 (it cost a whole timeout): the default 8 opens after one
    /// round of 4 timeouts (the default 4 in flight), or 8 refused connections, while a
    /// server that fails a fraction of requests at random (30 % in the fault tests) almost
    /// never gets there.
    pub threshold: u32,
    /// How long it stays open before letting one probe through.
    pub cooldown: Duration,
    /// Each failed probe doubles the cool-down, up to this.
    pub max_cooldown: Duration,
}

impl Default for BreakerPolicy {
    /// 8 points (4 timeouts or 8 connection failures in a row), 30 s cool-down doubling up
    /// to 5 min.
    fn default() -> Self {
        BreakerPolicy {
            threshold: 8,
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(300),
        }
    }
}

impl BreakerPolicy {
    /// A breaker that never opens.
    pub fn disabled() -> Self {
        BreakerPolicy {
            threshold: 0,
            ..BreakerPolicy::default()
        }
    }

    /// Sets the threshold.
    pub fn threshold(mut self, n: u32) -> Self {
        self.threshold = n;
        self
    }

    /// Sets the cool-down and its largest value.
    pub fn cooldown(mut self, first: Duration, max: Duration) -> Self {
        self.cooldown = first;
        self.max_cooldown = max.max(first);
        self
    }
}

/// The state of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast until the cool-down ends.
    Open,
    /// The cool-down has ended: the next call is a probe (others fail fast while it runs).
    HalfOpen,
}

#[derive(Debug)]
struct State {
    /// Consecutive transport failures.
    failures: u32,
    /// Their points (a timeout counts 2).
    points: u32,
    /// The last of them, as text.
    last_error: String,
    /// Set while open (and half-open, when it has passed).
    open_until: Option<Instant>,
    /// The cool-down of the next opening.
    cooldown: Duration,
    /// A probe is in flight.
    probing: bool,
}

/// After consecutive timeouts and connection failures
/// ([`FailureKind::is_transport`](crate::FailureKind::is_transport)) of the inner classifier
/// worth `threshold` points (a timeout 2, a connection failure 1), every call fails at once with [`LlmError::CircuitOpen`] for a cool-down; then one call is let
/// through as a probe: its success closes the breaker, its failure opens it again for twice the
/// cool-down (up to `max_cooldown`). Any answer, or any failure that proves the server is there
/// (an HTTP error, a label outside the schema), resets the count. So a server that hangs costs
/// about one timeout per in-flight slot, not one per entity.
pub type CircuitBreaker<S> = Metered<Breaker, S>;

/// The [`Wrap`] of [`CircuitBreaker`]: the policy, the state and the openings so far.
#[derive(Debug)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: Mutex<State>,
    trips: AtomicU64,
}

/// Marks the end of a probe, also when the call is cancelled (a deadline, a dropped future):
/// the next call may then probe again.
struct ProbeGuard<'a>(Option<&'a Mutex<State>>);

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if let Some(m) = self.0 {
            m.lock().unwrap_or_else(PoisonError::into_inner).probing = false;
        }
    }
}

impl<S> CircuitBreaker<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, policy: BreakerPolicy) -> Self {
        let cooldown = policy.cooldown;
        Metered::wrapping(
            inner,
            Breaker {
                policy,
                state: Mutex::new(State {
                    failures: 0,
                    points: 0,
                    last_error: String::new(),
                    open_until: None,
                    cooldown,
                    probing: false,
                }),
                trips: AtomicU64::new(0),
            },
        )
    }

    /// The policy.
    pub fn policy(&self) -> &BreakerPolicy {
        &self.wrap.policy
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        self.wrap.state()
    }

    /// Times the breaker opened so far.
    pub fn trips(&self) -> u64 {
        self.wrap.trips.load(Ordering::Relaxed)
    }
}

impl Breaker {
    /// The state now.
    fn state(&self) -> BreakerState {
        let s = self.lock();
        match s.open_until {
            None => BreakerState::Closed,
            Some(t) if Instant::now() < t => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides whether a call may go through: `Ok(true)` for a probe, `Ok(false)` for a plain
    /// call, or the error to fail fast with.
    fn admit(&self) -> Result<bool> {
        let mut s = self.lock();
        let Some(until) = s.open_until else {
            return Ok(false);
        };
        let now = Instant::now();
        if now < until || s.probing {
            return Err(LlmError::CircuitOpen {
                failures: s.failures,
                last_error: s.last_error.clone(),
                retry_in: until.saturating_duration_since(now),
            });
        }
        s.probing = true;
        Ok(true)
    }

    fn outcome(&self, probe: bool, result: &Result<Answer>) {
        let kind = result.as_ref().err().map(LlmError::kind);
        let points = match kind {
            Some(FailureKind::Timeout) => 2,
            Some(k) if k.is_transport() => 1,
            _ => 0,
        };
        let mut s = self.lock();
        if points == 0 {
            // The server answered: close.
            if s.open_until.is_some() {
                tracing::info!("LLM server answers again; circuit breaker closed");
            }
            s.failures = 0;
            s.points = 0;
            s.open_until = None;
            s.cooldown = self.policy.cooldown;
            return;
        }
        s.failures = s.failures.saturating_add(1);
        s.points = s.points.saturating_add(points);
        if let Err(e) = result {
            s.last_error = e.to_string();
        }
        let opens = probe || (s.open_until.is_none() && s.points >= self.policy.threshold);
        if opens {
            let cooldown = s.cooldown;
            s.open_until = Some(Instant::now() + cooldown);
            // A failed probe (or a later opening before any success) waits twice as long.
            s.cooldown = (cooldown * 2).min(self.policy.max_cooldown);
            self.trips.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                consecutive_failures = s.failures,
                ?cooldown,
                error = %s.last_error,
                "LLM server failing; circuit breaker open: calls fail fast until the cool-down ends"
            );
        }
    }
}

#[async_trait]
impl<S: LlmClassifier> Wrap<S> for Breaker {
    async fn call(&self, inner: &S, request: &ClassifyRequest) -> Result<Answer> {
        if self.policy.threshold == 0 {
            return inner.classify(request).await;
        }
        let probe = self.admit()?;
        let _guard = ProbeGuard(probe.then_some(&self.state));
        let r = inner.classify(request).await;
        self.outcome(probe, &r);
        r
    }

    fn add_stats(&self, s: &mut Stats) {
        s.breaker_trips += self.trips.load(Ordering::Relaxed);
        s.breaker_state = Some(self.state());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::super::LlmClassifierExt;
    use super::super::test_support::*;
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy::default()
            .threshold(5)
            .cooldown(Duration::from_millis(300), Duration::from_millis(3000))
    }

    #[tokio::test]
    async fn opens_after_consecutive_transport_failures_then_probes() {
        let b = Scripted::new(vec![
            Step::Err(timeout, Duration::ZERO),
            Step::Err(reset, Duration::ZERO),
            Step::Err(timeout, Duration::ZERO),
            // The probe after the cool-down fails too…
            Step::Err(timeout, Duration::ZERO),
            // …the next one succeeds.
            Step::Ok(2, Duration::ZERO),
        ]);
        let cb = b.circuit_breaker(policy());
        for _ in 0..3 {
            assert!(cb.classify(&req("Smith")).await.is_err());
        }
        assert_eq!(cb.state(), BreakerState::Open);
        // Open: fail fast, the backend is not called.
        let e = cb.classify(&req("Smith")).await.unwrap_err();
        assert_eq!(e.kind(), FailureKind::CircuitOpen, "{e:?}");
        assert!(!e.is_retryable());
        assert_eq!(cb.get_ref().calls.load(Ordering::SeqCst), 3);
        // After the cool-down (300 ms): one probe, which fails: open again for 600 ms.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(cb.state(), BreakerState::HalfOpen);
        assert_eq!(
            cb.classify(&req("Smith")).await.unwrap_err().kind(),
            FailureKind::Timeout
        );
        assert_eq!(cb.state(), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(
            cb.state(),
            BreakerState::Open,
            "the cool-down did not double"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The second probe succeeds and closes the breaker.
        assert_eq!(cb.classify(&req("Smith")).await.unwrap().class, 2);
        assert_eq!(cb.state(), BreakerState::Closed);
        assert_eq!(cb.trips(), 2);
        let s = cb.stats().unwrap();
        assert_eq!(s.breaker_trips, 2);
        assert_eq!(s.failures_by_kind.get(&FailureKind::CircuitOpen), Some(&1));
    }

    #[tokio::test]
    async fn answers_and_non_transport_failures_reset_the_count() {
        let b = Scripted::new(vec![
            Step::Err(timeout, Duration::ZERO),
            Step::Err(timeout, Duration::ZERO),
            Step::Err(server_error, Duration::ZERO),
            Step::Err(timeout, Duration::ZERO),
            Step::Err(timeout, Duration::ZERO),
            Step::Ok(1, Duration::ZERO),
            Step::Err(timeout, Duration::ZERO),
            Step::Err(timeout, Duration::ZERO),
        ]);
        let cb = b.circuit_breaker(policy());
        for _ in 0..8 {
            let _ = cb.classify(&req("Smith")).await;
        }
        assert_eq!(cb.state(), BreakerState::Closed);
        assert_eq!(cb.trips(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_probe_lets_the_next_call_probe() {
        let b = Scripted::new(vec![
            Step::Err(timeout, Duration::ZERO),
            Step::Ok(1, Duration::from_secs(30)),
            Step::Ok(1, Duration::ZERO),
        ]);
        let cb = b.circuit_breaker(policy().threshold(1));
        assert!(cb.classify(&req("Smith")).await.is_err());
        tokio::time::sleep(Duration::from_millis(350)).await;
        // The probe hangs and is cancelled by a timeout around it.
        let r = tokio::time::timeout(Duration::from_millis(50), cb.classify(&req("Smith"))).await;
        assert!(r.is_err());
        // The next call probes (and succeeds) instead of failing fast forever.
        assert_eq!(cb.classify(&req("Smith")).await.unwrap().class, 1);
        assert_eq!(cb.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn by_default_four_timeouts_or_eight_connection_failures_open_it() {
        let cb = Scripted::new(vec![Step::Err(timeout, Duration::ZERO)])
            .circuit_breaker(BreakerPolicy::default());
        for _ in 0..3 {
            let _ = cb.classify(&req("Smith")).await;
        }
        assert_eq!(cb.state(), BreakerState::Closed);
        let _ = cb.classify(&req("Smith")).await;
        assert_eq!(cb.state(), BreakerState::Open);

        let cb = Scripted::new(vec![Step::Err(reset, Duration::ZERO)])
            .circuit_breaker(BreakerPolicy::default());
        for _ in 0..7 {
            let _ = cb.classify(&req("Smith")).await;
        }
        assert_eq!(cb.state(), BreakerState::Closed);
        let _ = cb.classify(&req("Smith")).await;
        assert_eq!(cb.state(), BreakerState::Open);
        let e = cb.classify(&req("Smith")).await.unwrap_err();
        assert!(e.to_string().contains("after 8 consecutive"), "{e}");
    }

    #[tokio::test]
    async fn a_zero_threshold_never_opens() {
        let cb = Scripted::new(vec![Step::Err(timeout, Duration::ZERO)])
            .circuit_breaker(BreakerPolicy::disabled());
        for _ in 0..20 {
            assert_eq!(
                cb.classify(&req("Smith")).await.unwrap_err().kind(),
                FailureKind::Timeout
            );
        }
        assert_eq!(cb.state(), BreakerState::Closed);
    }
}
