//! Counters a backend keeps: calls, cache hits, retries, failures by kind, tokens, latency
//! percentiles — all in fixed-size memory, however long the process runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{FailureKind, LlmError};
use crate::request::{Answer, Usage};

/// A snapshot of a backend's counters.
///
/// With [layers](crate::layer), each field comes from the layer that knows it: `calls`,
/// `failures`, `failures_by_kind` and the latencies from the outermost layer (what the caller
/// saw), `cache_hits`, `cache_write_failures` and the `shared_cache_*` counters from
/// [`Cached`](crate::layer::Cached),
/// `retries` from [`Retry`](crate::layer::Retry), `breaker_trips` from
/// [`CircuitBreaker`](crate::layer::CircuitBreaker), `requests` and tokens from the backend
/// itself (or, when it counts none, the attempts [`Retry`](crate::layer::Retry) made).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// `classify` calls (a batch counts each request).
    pub calls: u64,
    /// Calls answered from the answer cache.
    pub cache_hits: u64,
    /// Requests sent to the server (first tries and retries).
    pub requests: u64,
    /// Retries (requests after the first one of a call).
    pub retries: u64,
    /// Calls that ended in an error.
    pub failures: u64,
    /// `failures` by [`FailureKind`] (kinds with no failure are left out).
    pub failures_by_kind: BTreeMap<FailureKind, u64>,
    /// Answers that could not be written to the cache file (the answers themselves were
    /// returned; see [`AnswerCache`](crate::AnswerCache)).
    pub cache_write_failures: u64,
    /// Calls answered from the shared answer store ([`crate::shared`]) after an in-memory
    /// miss (also counted in `cache_hits`).
    pub shared_cache_hits: u64,
    /// Reads of the shared answer store that gave no usable answer: nothing stored, or the
    /// read failed (`shared_cache_hits + shared_cache_misses` is the number of reads).
    pub shared_cache_misses: u64,
    /// Reads and writes of the shared answer store that failed: an error, a timeout, an
    /// undecodable value, or skipped during the cool-down after a failure (the calls
    /// themselves were answered by memory or the LLM).
    pub shared_cache_errors: u64,
    /// Times the circuit breaker opened.
    pub breaker_trips: u64,
    /// The circuit breaker's state when the snapshot was taken (absent without a breaker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker_state: Option<crate::layer::BreakerState>,
    /// Prompt tokens over all requests.
    pub prompt_tokens: u64,
    /// Completion tokens over all requests.
    pub completion_tokens: u64,
    /// Prompt tokens the server reported as reused from its prompt cache.
    pub cached_prompt_tokens: u64,
    /// Median latency of calls answered by the server (not the cache), in seconds
    /// (from a fixed-size histogram: within ~5 % of the exact value).
    pub latency_p50: f64,
    /// 90th percentile latency, in seconds.
    pub latency_p90: f64,
    /// 99th percentile latency, in seconds.
    pub latency_p99: f64,
    /// Largest latency, in seconds (exact).
    pub latency_max: f64,
}

/// Smallest latency the histogram resolves (smaller values fall in the first bucket).
const HIST_MIN_SECS: f64 = 1e-4;
/// Buckets per doubling: each bucket is 2^(1/16) ≈ 4.4 % wider than the previous one.
const HIST_PER_DOUBLING: f64 = 16.0;
/// Number of buckets: 100 µs · 2^(432/16) ≈ 3.7 hours; longer values fall in the last one.
const HIST_BUCKETS: usize = 432;

/// A latency histogram in fixed memory (log-scale buckets, 4.4 % wide, from 100 µs to hours):
/// recording is one atomic add, a percentile walks the buckets. Unlike a list of every
/// latency it neither grows nor needs sorting.
#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max_nanos: AtomicU64,
    min_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..HIST_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max_nanos: AtomicU64::new(0),
            min_nanos: AtomicU64::new(u64::MAX),
        }
    }
}

impl Histogram {
    fn bucket(secs: f64) -> usize {
        if secs <= HIST_MIN_SECS || !secs.is_finite() {
            return if secs.is_finite() {
                0
            } else {
                HIST_BUCKETS - 1
            };
        }
        let i = ((secs / HIST_MIN_SECS).log2() * HIST_PER_DOUBLING).floor();
        (i as usize).min(HIST_BUCKETS - 1)
    }

    /// The geometric middle of bucket `i`, in seconds.
    fn middle(i: usize) -> f64 {
        HIST_MIN_SECS * ((i as f64 + 0.5) / HIST_PER_DOUBLING).exp2()
    }

    /// Records one value.
    pub fn record(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(b) = self.buckets.get(Self::bucket(secs)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.max_nanos.fetch_max(nanos, Ordering::Relaxed);
        self.min_nanos.fetch_min(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The largest value, in seconds (0 when empty).
    pub fn max(&self) -> f64 {
        Duration::from_nanos(self.max_nanos.load(Ordering::Relaxed)).as_secs_f64()
    }

    /// The nearest-rank `q`-quantile (`q` in `[0, 1]`), in seconds, within one bucket's width
    /// (clamped to the smallest and largest value seen); 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        let min = Duration::from_nanos(self.min_nanos.load(Ordering::Relaxed)).as_secs_f64();
        let max = self.max();
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                // The last bucket holds everything above the range: its middle means nothing.
                if i == HIST_BUCKETS - 1 {
                    return max;
                }
                return Self::middle(i).clamp(min.min(max), max);
            }
        }
        max
    }
}

/// What every layer counts of the calls it sees: calls, failures by kind, and the latency of
/// answers that did not come from a cache. The outermost layer's meter is what
/// [`Stats`] reports for these fields.
#[derive(Debug, Default)]
pub struct CallMeter {
    calls: AtomicU64,
    failures: AtomicU64,
    by_kind: [AtomicU64; FailureKind::ALL.len()],
    latency: Histogram,
}

impl CallMeter {
    /// Counts one call's outcome; `elapsed` is its wall time.
    pub fn record(&self, result: &Result<Answer, LlmError>, elapsed: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(a) if !a.cached => self.latency.record(elapsed),
            Ok(_) => {}
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if let Some(c) = self.by_kind.get(e.kind().index()) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Writes this meter's fields into `stats` (overriding what inner layers counted).
    pub fn apply(&self, stats: &mut Stats) {
        stats.calls = self.calls.load(Ordering::Relaxed);
        stats.failures = self.failures.load(Ordering::Relaxed);
        stats.failures_by_kind = FailureKind::ALL
            .iter()
            .zip(&self.by_kind)
            .map(|(k, c)| (*k, c.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        if self.latency.count() > 0 {
            stats.latency_p50 = self.latency.quantile(0.50);
            stats.latency_p90 = self.latency.quantile(0.90);
            stats.latency_p99 = self.latency.quantile(0.99);
            stats.latency_max = self.latency.max();
        }
    }
}

/// Thread-safe counters of requests and tokens, for a backend that talks to a server.
#[derive(Debug, Default)]
pub struct Counters {
    requests: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    cached_prompt_tokens: AtomicU64,
    meter: CallMeter,
}

impl Counters {
    /// Counts a request sent to the server.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
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

    /// Counts one call's outcome (see [`CallMeter::record`]).
    pub fn record(&self, result: &Result<Answer, LlmError>, elapsed: Duration) {
        self.meter.record(result, elapsed);
    }

    /// A snapshot of the counters.
    pub fn snapshot(&self) -> Stats {
        let mut s = Stats {
            requests: self.requests.load(Ordering::Relaxed),
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: self.completion_tokens.load(Ordering::Relaxed),
            cached_prompt_tokens: self.cached_prompt_tokens.load(Ordering::Relaxed),
            ..Stats::default()
        };
        self.meter.apply(&mut s);
        s
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
    fn histogram_quantiles_are_within_a_bucket_of_the_exact_ones() {
        let h = Histogram::default();
        // 1 ms .. 10 s, spread over four orders of magnitude, in a shuffled order.
        let mut v: Vec<f64> = (1..=10_000).map(|i| f64::from(i) * 1e-3).collect();
        v.reverse();
        for x in &v {
            h.record(Duration::from_secs_f64(*x));
        }
        v.sort_by(f64::total_cmp);
        for q in [0.5, 0.9, 0.99] {
            let exact = percentile(&v, q);
            let approx = h.quantile(q);
            assert!(
                (approx - exact).abs() / exact < 0.045,
                "q {q}: {approx} vs {exact}"
            );
        }
        assert_eq!(h.max(), 10.0);
        assert_eq!(h.count(), 10_000);
        assert_eq!(Histogram::default().quantile(0.5), 0.0);
        // One value: every quantile is that value (clamped to min/max).
        let one = Histogram::default();
        one.record(Duration::from_millis(500));
        assert!((one.quantile(0.99) - 0.5).abs() < 1e-9);
        // Extremes land in the end buckets, not outside.
        let h = Histogram::default();
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(1_000_000));
        assert_eq!(h.quantile(1.0), 1_000_000.0);
    }

    #[test]
    fn histogram_memory_does_not_grow() {
        let h = Histogram::default();
        let before = std::mem::size_of_val(&*h.buckets);
        for i in 0..200_000u64 {
            h.record(Duration::from_micros(i * 37 % 5_000_000));
        }
        assert_eq!(std::mem::size_of_val(&*h.buckets), before);
        assert_eq!(h.count(), 200_000);
    }

    #[test]
    fn counters_add_up() {
        let c = Counters::default();
        let schema = linkner_core::LabelSchema::conll03();
        let ok = Answer::for_class(&schema, 1).unwrap();
        let mut hit = ok.clone();
        hit.cached = true;
        c.request();
        c.request();
        c.record(&Ok(ok), Duration::from_millis(500));
        c.record(&Ok(hit), Duration::from_millis(1));
        c.record(
            &Err(LlmError::Timeout(Duration::from_secs(1))),
            Duration::from_secs(1),
        );
        c.usage(&Usage {
            prompt_tokens: 10,
            completion_tokens: 2,
            cached_prompt_tokens: 7,
        });
        let s = c.snapshot();
        assert_eq!((s.calls, s.requests, s.failures), (3, 2, 1));
        assert_eq!(s.failures_by_kind.get(&FailureKind::Timeout), Some(&1));
        assert_eq!(s.failures_by_kind.len(), 1);
        assert_eq!(
            (s.prompt_tokens, s.completion_tokens, s.cached_prompt_tokens),
            (10, 2, 7)
        );
        // The cache hit's latency is not the server's.
        assert!((s.latency_p50 - 0.5).abs() < 1e-9, "{s:?}");
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            json.contains("\"failures_by_kind\":{\"timeout\":1}"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Stats>(&json).unwrap(), s);
    }
}
