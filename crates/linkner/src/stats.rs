//! Run statistics of a [`Pipeline`](crate::Pipeline): lock-free counters, read as a
//! [`StatsSnapshot`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use linkner_llm::FailureKind;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of failure kinds counted (every [`FailureKind`]).
const KINDS: usize = FailureKind::ALL.len();

/// Failure counts per [`FailureKind`]: a fixed array, so a [`StatsSnapshot`] stays `Copy` and
/// bounded. Serialised as a map from kind name to count (kinds with a zero count left out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureCounts([u64; KINDS]);

impl FailureCounts {
    fn index(kind: FailureKind) -> usize {
        FailureKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(KINDS - 1)
    }

    /// Adds `n` failures of `kind`.
    pub fn add(&mut self, kind: FailureKind, n: u64) {
        self.0[Self::index(kind)] += n;
    }

    /// The count of `kind`.
    pub fn get(&self, kind: FailureKind) -> u64 {
        self.0[Self::index(kind)]
    }

    /// The kinds with a non-zero count, in [`FailureKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (FailureKind, u64)> + '_ {
        FailureKind::ALL
            .iter()
            .zip(self.0.iter())
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (*k, *n))
    }

    /// The sum over all kinds.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl Serialize for FailureCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let map: BTreeMap<&str, u64> = self.iter().map(|(k, n)| (k.name(), n)).collect();
        map.serialize(s)
    }
}

impl<'de> Deserialize<'de> for FailureCounts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<FailureKind, u64>::deserialize(d)?;
        let mut out = FailureCounts::default();
        for (k, n) in map {
            out.add(k, n);
        }
        Ok(out)
    }
}

/// Counters shared by every task that uses one pipeline (atomics: no lock on the hot path).
#[derive(Debug, Default)]
pub struct RunStats {
    documents: AtomicU64,
    entities: AtomicU64,
    routed: AtomicU64,
    llm_requests: AtomicU64,
    cache_hits: AtomicU64,
    confirmed: AtomicU64,
    relabelled: AtomicU64,
    rejected: AtomicU64,
    failures: AtomicU64,
    failures_by_kind: [AtomicU64; KINDS],
    budget_skipped: AtomicU64,
    deadline_missed: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    cached_prompt_tokens: AtomicU64,
    tagger_nanos: AtomicU64,
    estimator_nanos: AtomicU64,
    llm_nanos: AtomicU64,
}

/// Adds to a counter.
fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl RunStats {
    /// Adds what one call counted (a snapshot used as a delta).
    pub(crate) fn record(&self, d: &StatsSnapshot) {
        add(&self.documents, d.documents);
        add(&self.entities, d.entities);
        add(&self.routed, d.routed);
        add(&self.llm_requests, d.llm_requests);
        add(&self.cache_hits, d.cache_hits);
        add(&self.confirmed, d.confirmed);
        add(&self.relabelled, d.relabelled);
        add(&self.rejected, d.rejected);
        add(&self.failures, d.failures);
        for (c, n) in self.failures_by_kind.iter().zip(d.failures_by_kind.0) {
            add(c, n);
        }
        add(&self.budget_skipped, d.budget_skipped);
        add(&self.deadline_missed, d.deadline_missed);
        add(&self.prompt_tokens, d.prompt_tokens);
        add(&self.completion_tokens, d.completion_tokens);
        add(&self.cached_prompt_tokens, d.cached_prompt_tokens);
        add(&self.tagger_nanos, nanos(d.tagger_time));
        add(&self.estimator_nanos, nanos(d.estimator_time));
        add(&self.llm_nanos, nanos(d.llm_time));
    }

    /// The counters now. Each counter is read atomically; under concurrent calls a snapshot
    /// may include part of a call that is still running.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            documents: get(&self.documents),
            entities: get(&self.entities),
            routed: get(&self.routed),
            llm_requests: get(&self.llm_requests),
            cache_hits: get(&self.cache_hits),
            confirmed: get(&self.confirmed),
            relabelled: get(&self.relabelled),
            rejected: get(&self.rejected),
            failures: get(&self.failures),
            failures_by_kind: FailureCounts(std::array::from_fn(
                |i| get(&self.failures_by_kind[i]),
            )),
            budget_skipped: get(&self.budget_skipped),
            deadline_missed: get(&self.deadline_missed),
            prompt_tokens: get(&self.prompt_tokens),
            completion_tokens: get(&self.completion_tokens),
            cached_prompt_tokens: get(&self.cached_prompt_tokens),
            tagger_time: Duration::from_nanos(get(&self.tagger_nanos)),
            estimator_time: Duration::from_nanos(get(&self.estimator_nanos)),
            llm_time: Duration::from_nanos(get(&self.llm_nanos)),
        }
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        for c in [
            &self.documents,
            &self.entities,
            &self.routed,
            &self.llm_requests,
            &self.cache_hits,
            &self.confirmed,
            &self.relabelled,
            &self.rejected,
            &self.failures,
            &self.budget_skipped,
            &self.deadline_missed,
            &self.prompt_tokens,
            &self.completion_tokens,
            &self.cached_prompt_tokens,
            &self.tagger_nanos,
            &self.estimator_nanos,
            &self.llm_nanos,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        for c in &self.failures_by_kind {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// A copy of a pipeline's counters at one moment (serialisable: durations in seconds).
///
/// Every routed entity ends in exactly one of `confirmed`, `relabelled`, `rejected`,
/// `failures`, `budget_skipped` or `deadline_missed`, so `routed == confirmed + relabelled +
/// rejected + failures + budget_skipped + deadline_missed` (the last two stay 0 without a
/// [`RoutingBudget`](crate::RoutingBudget)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Documents (texts or sentences) annotated.
    pub documents: u64,
    /// Candidate entities the local tagger found (kept, relabelled and rejected together).
    pub entities: u64,
    /// Entities the routing policy sent to the LLM.
    pub routed: u64,
    /// Requests handed to the LLM backend (equals `routed`).
    pub llm_requests: u64,
    /// Answers the backend served from its cache.
    pub cache_hits: u64,
    /// Routed entities whose local label the LLM confirmed.
    pub confirmed: u64,
    /// Routed entities the LLM gave another type.
    pub relabelled: u64,
    /// Routed entities the LLM answered "not an entity" (moved to the rejected lists).
    pub rejected: u64,
    /// Routed entities whose LLM call failed (local label kept).
    pub failures: u64,
    /// The same failures by kind (timeout, rate-limited, connection, out of schema, …).
    #[serde(default)]
    pub failures_by_kind: FailureCounts,
    /// Routed entities the routing budget never sent (the LLM was busy with more uncertain
    /// ones until the document's deadline): local label kept.
    #[serde(default)]
    pub budget_skipped: u64,
    /// Routed entities sent to the LLM whose answer missed the document's deadline: the
    /// answer was dropped, the local label kept.
    #[serde(default)]
    pub deadline_missed: u64,
    /// Prompt tokens the server counted.
    pub prompt_tokens: u64,
    /// Completion tokens the server counted.
    pub completion_tokens: u64,
    /// Prompt tokens the server reused from its prompt cache (when it reports them).
    pub cached_prompt_tokens: u64,
    /// Time in the local tagger, summed over calls (concurrent calls overlap).
    #[serde(with = "secs")]
    pub tagger_time: Duration,
    /// Time in the uncertainty estimator, summed over calls.
    #[serde(with = "secs")]
    pub estimator_time: Duration,
    /// Wall time waiting for the LLM, summed over calls (concurrent calls overlap).
    #[serde(with = "secs")]
    pub llm_time: Duration,
}

impl StatsSnapshot {
    /// Requests that reached the LLM server (not answered from cache): `llm_requests −
    /// cache_hits`.
    pub fn llm_calls(&self) -> u64 {
        self.llm_requests.saturating_sub(self.cache_hits)
    }

    /// The counts of what happened between `before` and this snapshot (both of one pipeline):
    /// `self − before`, field by field (saturating at 0, so snapshots taken around a
    /// [`crate::Pipeline::reset_stats`] give zeros rather than wrap).
    pub fn since(&self, before: &StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            documents: self.documents.saturating_sub(before.documents),
            entities: self.entities.saturating_sub(before.entities),
            routed: self.routed.saturating_sub(before.routed),
            llm_requests: self.llm_requests.saturating_sub(before.llm_requests),
            cache_hits: self.cache_hits.saturating_sub(before.cache_hits),
            confirmed: self.confirmed.saturating_sub(before.confirmed),
            relabelled: self.relabelled.saturating_sub(before.relabelled),
            rejected: self.rejected.saturating_sub(before.rejected),
            failures: self.failures.saturating_sub(before.failures),
            failures_by_kind: FailureCounts(std::array::from_fn(|i| {
                self.failures_by_kind.0[i].saturating_sub(before.failures_by_kind.0[i])
            })),
            budget_skipped: self.budget_skipped.saturating_sub(before.budget_skipped),
            deadline_missed: self.deadline_missed.saturating_sub(before.deadline_missed),
            prompt_tokens: self.prompt_tokens.saturating_sub(before.prompt_tokens),
            completion_tokens: self
                .completion_tokens
                .saturating_sub(before.completion_tokens),
            cached_prompt_tokens: self
                .cached_prompt_tokens
                .saturating_sub(before.cached_prompt_tokens),
            tagger_time: self.tagger_time.saturating_sub(before.tagger_time),
            estimator_time: self.estimator_time.saturating_sub(before.estimator_time),
            llm_time: self.llm_time.saturating_sub(before.llm_time),
        }
    }

    /// Adds every count and time of `other` to this snapshot.
    pub fn add(&mut self, other: &StatsSnapshot) {
        self.documents += other.documents;
        self.entities += other.entities;
        self.routed += other.routed;
        self.llm_requests += other.llm_requests;
        self.cache_hits += other.cache_hits;
        self.confirmed += other.confirmed;
        self.relabelled += other.relabelled;
        self.rejected += other.rejected;
        self.failures += other.failures;
        for (c, n) in self
            .failures_by_kind
            .0
            .iter_mut()
            .zip(other.failures_by_kind.0)
        {
            *c += n;
        }
        self.budget_skipped += other.budget_skipped;
        self.deadline_missed += other.deadline_missed;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cached_prompt_tokens += other.cached_prompt_tokens;
        self.tagger_time += other.tagger_time;
        self.estimator_time += other.estimator_time;
        self.llm_time += other.llm_time;
    }

    /// Fraction of the entities that were routed (0 when there was none).
    pub fn routed_fraction(&self) -> f64 {
        if self.entities == 0 {
            0.0
        } else {
            self.routed as f64 / self.entities as f64
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Ok(Duration::try_from_secs_f64(v).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_subtracts_every_field_and_saturates() {
        let before = StatsSnapshot {
            documents: 2,
            routed: 1,
            llm_time: Duration::from_secs(3),
            ..StatsSnapshot::default()
        };
        let after = StatsSnapshot {
            documents: 5,
            routed: 4,
            failures: 1,
            llm_time: Duration::from_secs(10),
            ..StatsSnapshot::default()
        };
        let d = after.since(&before);
        assert_eq!((d.documents, d.routed, d.failures), (3, 3, 1));
        assert_eq!(d.llm_time, Duration::from_secs(7));
        // After a reset the later snapshot is smaller: zeros, not a wrap-around.
        assert_eq!(before.since(&after).documents, 0);
        // `add` is the inverse of `since`.
        let mut sum = before;
        sum.add(&d);
        assert_eq!(sum, after);
    }
}
