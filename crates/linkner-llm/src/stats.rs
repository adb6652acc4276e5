//! Counters a backend keeps: calls, cache hits, retries, failures, tokens, latency percentiles.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::request::Usage;

/// A snapshot of a backend's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// `classify` calls (a batch counts each request).
    pub calls: u64,
    /// Calls answered from the answer cache.
    pub cache_hits: u64,
    /// HTTP requests sent (first tries and retries).
    pub requests: u64,
    /// Retries (requests after the first one of a call).
    pub retries: u64,
    /// Calls that ended in an error.
    pub failures: u64,
    /// Prompt tokens over all requests.
    pub prompt_tokens: u64,
    /// Completion tokens over all requests.
    pub completion_tokens: u64,
    /// Prompt tokens the server reported as reused from its prompt cache.
    pub cached_prompt_tokens: u64,
    /// Median latency of calls that reached the server, in seconds.
    pub latency_p50: f64,
    /// 90th percentile latency, in seconds.
    pub latency_p90: f64,
    /// 99th percentile latency, in seconds.
    pub latency_p99: f64,
    /// Largest latency, in seconds.
    pub latency_max: f64,
}

/// Thread-safe counters behind [`Stats`].
#[derive(Debug, Default)]
pub struct Counters {
    calls: AtomicU64,
    cache_hits: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    failures: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    cached_prompt_tokens: AtomicU64,
    latencies: Mutex<Vec<f64>>,
}

impl Counters {
    /// Counts a call.
    pub fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a cache hit.
    pub fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an HTTP request; `retry` when it is not the call's first.
    pub fn request(&self, retry: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if retry {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a failed call.
    pub fn failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds token usage.
    pub fn usage(&self, u: &Usage) {
        self.prompt_tokens
            .fetch_add(u.prompt_tokens, Ordering::Relaxed);
        self.completion_tokens
            .fetch_add(u.completion_tokens, Ordering::Relaxed);
        self.cached_prompt_tokens
            .fetch_add(u.cached_prompt_tokens, Ordering::Relaxed);
    }

    /// Records the latency of a call that reached the server.
    pub fn latency(&self, d: Duration) {
        if let Ok(mut v) = self.latencies.lock() {
            v.push(d.as_secs_f64());
        }
    }

    /// A snapshot of the counters.
    pub fn snapshot(&self) -> Stats {
        let mut lat = self.latencies.lock().map(|v| v.clone()).unwrap_or_default();
        lat.sort_by(f64::total_cmp);
        Stats {
            calls: self.calls.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: self.completion_tokens.load(Ordering::Relaxed),
            cached_prompt_tokens: self.cached_prompt_tokens.load(Ordering::Relaxed),
            latency_p50: percentile(&lat, 0.50),
            latency_p90: percentile(&lat, 0.90),
            latency_p99: percentile(&lat, 0.99),
            latency_max: lat.last().copied().unwrap_or(0.0),
        }
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.9), 90.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
    }

    #[test]
    fn counters_add_up() {
        let c = Counters::default();
        c.call();
        c.call();
        c.cache_hit();
        c.request(false);
        c.request(true);
        c.failure();
        c.usage(&Usage {
            prompt_tokens: 10,
            completion_tokens: 2,
            cached_prompt_tokens: 7,
        });
        c.latency(Duration::from_millis(500));
        let s = c.snapshot();
        assert_eq!(
            (s.calls, s.cache_hits, s.requests, s.retries, s.failures),
            (2, 1, 2, 1, 1)
        );
        assert_eq!(
            (s.prompt_tokens, s.completion_tokens, s.cached_prompt_tokens),
            (10, 2, 7)
        );
        assert!((s.latency_p50 - 0.5).abs() < 1e-9);
    }
}
