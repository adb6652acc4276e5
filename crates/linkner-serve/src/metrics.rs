//! The Prometheus metrics of `GET /metrics` (the `metrics` facade with its Prometheus
//! exporter, installed once per process as the global recorder).
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `linkner_http_requests_total` | counter | `route`, `status` | requests answered |
//! | `linkner_http_request_duration_seconds` | histogram | `route` | request latency |
//! | `linkner_http_requests_in_flight` | gauge | | requests being served |
//! | `linkner_http_rejected_total` | counter | `reason` | refused by a limit (`overloaded`, `payload_too_large`, …) |
//! | `linkner_document_duration_seconds` | histogram | | arrival to annotation, per document |
//! | `linkner_tagger_batch_size` | histogram | | documents in the tagger batch of each document |
//! | `linkner_documents_total` | counter | | documents annotated |
//! | `linkner_entities_total` | counter | | entities found by the tagger |
//! | `linkner_routed_total` | counter | | entities the policy routed |
//! | `linkner_llm_requests_total` | counter | | classify requests sent to the LLM side |
//! | `linkner_llm_failures_total` | counter | | LLM failures (local label kept) |
//! | `linkner_llm_cache_hits_total` | counter | | answers from the answer cache |
//! | `linkner_budget_skipped_total` | counter | | routed entities kept local by the budget |
//! | `linkner_deadline_missed_total` | counter | | LLM answers that came after the deadline |
//! | `linkner_llm_in_flight` / `linkner_llm_queued` | gauge | | LLM calls running / waiting under the budget |
//! | `linkner_llm_shared_cache_hits_total` / `_misses_total` / `_errors_total` | counter | | reads of the shared (Redis) answer store that answered / found nothing; reads and writes that failed |
//! | `linkner_llm_breaker_trips_total` | counter | | times the circuit breaker opened |
//! | `linkner_llm_breaker_state` | gauge | `state` (`closed`, `open`, `half_open`) | 1 for the circuit breaker's current state, 0 for the others |
//!
//! With several servers in one process (tests) the recorder is shared: counters add up.

use std::sync::OnceLock;

use linkner::{Annotation, Pipeline};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets, seconds: 1 ms to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];
/// Batch-size buckets.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Installs the Prometheus recorder (once per process). When the embedding program installed
/// another recorder first, the metrics go to that one and `/metrics` says so.
pub(crate) fn install() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("linkner_tagger_batch_size".into()),
                    BATCH_BUCKETS,
                )
            });
        match builder.and_then(|b| b.install_recorder()) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!("the Prometheus recorder is not installed ({e}); /metrics is empty");
                None
            }
        }
    });
}

/// Records a request answered.
pub(crate) fn request(route: &str, status: u16, seconds: f64) {
    let route = route.to_string();
    metrics::counter!("linkner_http_requests_total", "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("linkner_http_request_duration_seconds", "route" => route).record(seconds);
}

/// Requests in flight, up or down.
pub(crate) fn in_flight(delta: f64) {
    metrics::gauge!("linkner_http_requests_in_flight").increment(delta);
}

/// A request refused by a limit.
pub(crate) fn rejected(reason: &'static str) {
    metrics::counter!("linkner_http_rejected_total", "reason" => reason).increment(1);
}

/// One document annotated by the shared stream.
pub(crate) fn document_done(a: &Annotation) {
    if let Some(t) = &a.timings {
        metrics::histogram!("linkner_document_duration_seconds").record(t.total_ms / 1000.0);
        metrics::histogram!("linkner_tagger_batch_size").record(t.batch_size as f64);
    }
}

/// The Prometheus text: the pipeline's counters brought up to date, then everything.
pub(crate) fn render(pipeline: &Pipeline) -> Option<String> {
    let handle = HANDLE.get()?.as_ref()?;
    let s = pipeline.stats();
    let set = |name: &'static str, v: u64| metrics::counter!(name).absolute(v);
    set("linkner_documents_total", s.documents);
    set("linkner_entities_total", s.entities);
    set("linkner_routed_total", s.routed);
    set("linkner_llm_requests_total", s.llm_requests);
    set("linkner_llm_failures_total", s.failures);
    set("linkner_budget_skipped_total", s.budget_skipped);
    set("linkner_deadline_missed_total", s.deadline_missed);
    let (running, queued) = pipeline.llm_load();
    metrics::gauge!("linkner_llm_in_flight").set(running as f64);
    metrics::gauge!("linkner_llm_queued").set(queued as f64);
    if let Some(llm) = pipeline.llm_stats() {
        set("linkner_llm_cache_hits_total", llm.cache_hits);
        set("linkner_llm_shared_cache_hits_total", llm.shared_cache_hits);
        set(
            "linkner_llm_shared_cache_misses_total",
            llm.shared_cache_misses,
        );
        set(
            "linkner_llm_shared_cache_errors_total",
            llm.shared_cache_errors,
        );
        set("linkner_llm_breaker_trips_total", llm.breaker_trips);
        if let Some(state) = llm.breaker_state {
            use linkner::llm::layer::BreakerState;
            for (name, st) in [
                ("closed", BreakerState::Closed),
                ("open", BreakerState::Open),
                ("half_open", BreakerState::HalfOpen),
            ] {
                let on = if state == st { 1.0 } else { 0.0 };
                metrics::gauge!("linkner_llm_breaker_state", "state" => name).set(on);
            }
        }
    }
    Some(handle.render())
}
