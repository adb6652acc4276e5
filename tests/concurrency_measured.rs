//! Concurrency that is measured, not assumed: fakes record the largest number of calls that
//! overlapped in time, and the tests assert that it is above 1 (no pipeline-wide lock) and at
//! most the configured bound, strictly below the number of calls — for the tagger (a `Sync`
//! tagger given with `.tagger(..)`, and an exclusive one that must never overlap while the LLM
//! side goes on around it) and for the LLM (the OpenAI-compatible backend against a fake server
//! with `max_in_flight`, answering per entity with delays so that answers come back out of
//! order and a mix-up would show; a routing budget's `max_in_flight`). Each test also times the
//! run against the sum of the fakes' delays: a pipeline that ran the calls one at a time would
//! take that sum, the tests allow 60 % of it, and the bound gives the least time the run can
//! take (so the timing is not vacuous either). Public API only: `Pipeline::builder`,
//! `annotate*`, `stats`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/fake_openai.rs"]
mod fake_openai;
#[path = "common/overlap.rs"]
mod overlap;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{ScriptedTagger, entry};
use linkner::llm::{AnswerMode, OpenAiClassifier};
use linkner::uncertainty::builtins::Confidence;
use linkner::{Pipeline, Provenance, RoutingBudget, RoutingPolicy, StreamOptions};
use overlap::{ConfirmFirst, ObservedLlm, Overlap, SlowTagger};

/// How long each tagger call of [`slow_tagger`] takes.
const TAGGER_DELAY: Duration = Duration::from_millis(60);
/// How long each call of the observed LLM of the exclusive-tagger stream takes.
const LLM_DELAY: Duration = Duration::from_millis(60);

/// A `Sync` tagger whose calls take [`TAGGER_DELAY`] (a blocking sleep, like a real forward
/// pass) and are counted by `overlap`; it finds "Alice" (PER) with `uncertainty`.
fn slow_tagger_with(overlap: &Arc<Overlap>, uncertainty: f32) -> SlowTagger<ScriptedTagger> {
    SlowTagger::new(
        ScriptedTagger::new(vec![entry("Alice", "PER", uncertainty)]),
        TAGGER_DELAY,
        overlap,
    )
}

fn slow_tagger(overlap: &Arc<Overlap>) -> SlowTagger<ScriptedTagger> {
    slow_tagger_with(overlap, 0.1)
}

/// Checks that `elapsed` is well under `sequential` (the sum of the fakes' delays: what a run
/// that made the calls one at a time would take) and at least `least` (what the configured
/// bound allows at best).
#[track_caller]
fn assert_timing(what: &str, elapsed: Duration, sequential: Duration, least: Duration) {
    eprintln!(
        "{what}: {elapsed:?} (one at a time: {sequential:?}, at least {least:?} under the bound)"
    );
    assert!(
        elapsed < sequential.mul_f64(0.6),
        "{what} took {elapsed:?}, not well under the {sequential:?} of calls made one at a time"
    );
    assert!(
        elapsed >= least,
        "{what} took {elapsed:?}, less than the {least:?} the bound allows"
    );
}

fn docs(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("doc {i} : Alice was here ."))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_tagger_runs_chunks_in_parallel_up_to_chunks_in_flight() {
    let overlap = Arc::new(Overlap::default());
    let pipeline = Pipeline::builder()
        .tagger(Arc::new(slow_tagger(&overlap)))
        .estimator(Arc::new(Confidence::new()))
        .policy(RoutingPolicy::Never)
        .stream_options(StreamOptions {
            chunk_size: 2,
            chunks_in_flight: 3,
            channel_capacity: 64,
            ..Default::default()
        })
        .build()
        .unwrap();
    let started = Instant::now();
    let mut stream = pipeline.annotate_stream(docs(24)).unwrap();
    let mut n = 0;
    while let Some(a) = stream.next().await {
        assert_eq!(a.unwrap().entities.len(), 1);
        n += 1;
    }
    let elapsed = started.elapsed();
    assert_eq!(n, 24);
    let max = overlap.max();
    eprintln!(
        "shared tagger: {} calls, at most {max} at once",
        overlap.calls()
    );
    // 24 documents in chunks of 2: 12 calls, of which at most 3 at once.
    assert_eq!(overlap.calls(), 12);
    assert!(
        max >= 2,
        "tagger calls never overlapped: a lock serialises them"
    );
    assert!(
        max <= 3,
        "{max} tagger calls at once with chunks_in_flight = 3"
    );
    assert_timing(
        "12 chunks of a stream",
        elapsed,
        TAGGER_DELAY * 12,
        TAGGER_DELAY * 12 / 3,
    );
}

#[test]
fn a_shared_tagger_called_from_many_tasks_overlaps_up_to_the_blocking_pool() {
    // The tagger runs on tokio's blocking pool: a runtime with 3 blocking threads bounds it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(3)
        .enable_all()
        .build()
        .unwrap();
    let overlap = Arc::new(Overlap::default());
    let pipeline = Pipeline::builder()
        .tagger(Arc::new(slow_tagger(&overlap)))
        .estimator(Arc::new(Confidence::new()))
        .policy(RoutingPolicy::Never)
        .build()
        .unwrap();
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for text in docs(12) {
            let p = pipeline.clone();
            tasks.push(tokio::spawn(async move { p.annotate(&text).await }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().entities.len(), 1);
        }
    });
    let elapsed = started.elapsed();
    let max = overlap.max();
    assert_eq!(overlap.calls(), 12);
    assert!(max >= 2, "tagger calls from 12 tasks never overlapped");
    assert!(
        max <= 3,
        "{max} tagger calls at once with 3 blocking threads"
    );
    assert_timing(
        "12 tagger calls from 12 tasks",
        elapsed,
        TAGGER_DELAY * 12,
        TAGGER_DELAY * 12 / 3,
    );
}

/// The exclusive tagger takes the stream's chunks in turn, but only the tagger does: the LLM
/// calls of tagged documents run meanwhile. A stream that tagged a chunk and then finished its
/// documents before the next chunk (or a pipeline that held one lock over everything) would
/// pass the "never overlaps" check alone; it fails the overlap with the LLM and the timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_tagger_never_overlaps_while_the_llm_side_runs_beside_it() {
    let tagger = Overlap::new();
    let llm = Overlap::new();
    let pipeline = Pipeline::builder()
        .exclusive_tagger(slow_tagger_with(&tagger, 0.7).beside(&llm))
        .estimator(Arc::new(Confidence::new()))
        .llm(Arc::new(
            ObservedLlm::new(ConfirmFirst, &llm)
                .with_delay(LLM_DELAY)
                .beside(&tagger),
        ))
        .policy(RoutingPolicy::threshold(0.4))
        .stream_options(StreamOptions {
            chunk_size: 2,
            chunks_in_flight: 3,
            channel_capacity: 64,
            ..Default::default()
        })
        .build()
        .unwrap();
    let started = Instant::now();
    let mut stream = pipeline.annotate_stream(docs(12)).unwrap();
    while let Some(a) = stream.next().await {
        assert_eq!(a.unwrap().entities[0].provenance, Provenance::LlmConfirmed);
    }
    let elapsed = started.elapsed();
    eprintln!(
        "exclusive tagger: {} calls, at most {} at once; {} LLM calls, at most {} at once, {} \
         started beside a call of the other",
        tagger.calls(),
        tagger.max(),
        llm.calls(),
        llm.max(),
        tagger.met() + llm.met()
    );
    assert_eq!(tagger.calls(), 6);
    assert_eq!(llm.calls(), 12);
    assert_eq!(
        tagger.max(),
        1,
        "an exclusive tagger was called concurrently"
    );
    assert!(
        tagger.met() + llm.met() > 0,
        "no LLM call ran while the exclusive tagger tagged the next chunk: the stream is not \
         pipelined"
    );
    assert!(
        llm.max() >= 2,
        "the LLM calls of the stream's documents never overlapped"
    );
    // One at a time: 6 tagger turns and 12 LLM calls. At best: the 6 turns in a row (they
    // never overlap), then the last chunk's LLM calls.
    assert_timing(
        "a stream of 12 documents through an exclusive tagger",
        elapsed,
        TAGGER_DELAY * 6 + LLM_DELAY * 12,
        TAGGER_DELAY * 6 + LLM_DELAY,
    );
}

/// A pipeline whose tagger finds "Alice" (PER, uncertain enough to be routed) in every
/// document and whose LLM confirms it after `call`, each call counted by `overlap`; under
/// `budget` when one is given.
fn routing_alice(
    overlap: &Arc<Overlap>,
    call: Duration,
    budget: Option<RoutingBudget>,
) -> Pipeline {
    let mut builder = Pipeline::builder()
        .tagger(Arc::new(ScriptedTagger::new(vec![entry(
            "Alice", "PER", 0.7,
        )])))
        .estimator(Arc::new(Confidence::new()))
        .llm(Arc::new(
            ObservedLlm::new(ConfirmFirst, overlap).with_delay(call),
        ))
        .policy(RoutingPolicy::threshold(0.4));
    if let Some(b) = budget {
        builder = builder.budget(b);
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_calls_of_concurrent_documents_overlap() {
    const CALL: Duration = Duration::from_millis(200);
    let overlap = Overlap::new();
    let pipeline = routing_alice(&overlap, CALL, None);
    let started = Instant::now();
    let tasks: Vec<_> = docs(8)
        .into_iter()
        .map(|text| {
            let p = pipeline.clone();
            tokio::spawn(async move { p.annotate(&text).await })
        })
        .collect();
    for t in tasks {
        let a = t.await.unwrap().unwrap();
        assert_eq!(a.entities[0].provenance, Provenance::LlmConfirmed);
    }
    let elapsed = started.elapsed();
    let max = overlap.max();
    eprintln!(
        "8 documents: {} LLM calls, at most {max} at once",
        overlap.calls()
    );
    assert_eq!(pipeline.stats().routed, 8);
    assert_eq!(overlap.calls(), 8);
    // Nothing bounds these calls (no budget, a backend without a limit): all 8 normally run
    // at once; half of them is enough to tell them from calls made one at a time.
    assert!(
        max >= 4,
        "at most {max} LLM calls of 8 concurrent documents overlapped"
    );
    assert_timing("8 concurrent documents", elapsed, CALL * 8, CALL);
}

/// A routing budget bounds the LLM calls of one call: 12 routed entities, at most 3 in flight
/// and at least 2 (the budget's queue sends them together, up to its bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_runs_one_calls_llm_requests_in_parallel_up_to_its_max_in_flight() {
    const CALL: Duration = Duration::from_millis(100);
    let overlap = Overlap::new();
    let pipeline = routing_alice(&overlap, CALL, Some(RoutingBudget::new().max_in_flight(3)));
    let started = Instant::now();
    let annotations = pipeline.annotate_batch(&docs(12)).await.unwrap();
    let elapsed = started.elapsed();
    for a in &annotations {
        assert_eq!(a.entities[0].provenance, Provenance::LlmConfirmed);
    }
    let max = overlap.max();
    eprintln!(
        "budget: {} LLM calls, at most {max} at once",
        overlap.calls()
    );
    assert_eq!(overlap.calls(), 12);
    assert!(max >= 2, "the budgeted requests were sent one by one");
    assert!(max <= 3, "{max} LLM calls at once under a budget of 3");
    assert_timing("12 budgeted LLM calls", elapsed, CALL * 12, CALL * 12 / 3);
}

/// Twelve one-entity documents; entity `i` is `NAMES[i]`.
const NAMES: &[&str] = &[
    "Albizzi", "Borromeo", "Capponi", "Doria", "Este", "Farnese", "Gonzaga", "Medici", "Orsini",
    "Pazzi", "Sforza", "Visconti",
];

/// The fake server's answer for entity `i`: a label that depends on `i` (the local label is
/// PER, so most answers relabel) and a delay that makes later requests finish first.
fn answer_for(i: usize) -> (&'static str, Duration) {
    let label = ["location", "organization", "person", "miscellaneous"][i % 4];
    (
        label,
        Duration::from_millis(20 + 35 * ((NAMES.len() - i) % 5) as u64),
    )
}

/// The sum of the fake server's delays over the twelve entities (1,045 ms): how long the
/// requests take one at a time.
fn server_delays() -> Duration {
    (0..NAMES.len()).map(|i| answer_for(i).1).sum()
}

fn expected_label(i: usize) -> &'static str {
    ["LOC", "ORG", "PER", "MISC"][i % 4]
}

async fn per_entity_server() -> fake_openai::FakeOpenAi {
    fake_openai::start(Arc::new(|body: &str| {
        let hits: Vec<usize> = (0..NAMES.len())
            .filter(|&i| body.contains(NAMES[i]))
            .collect();
        assert_eq!(hits.len(), 1, "one entity per request: {body}");
        let (label, delay) = answer_for(hits[0]);
        (label.to_string(), delay)
    }))
    .await
}

fn openai_pipeline(url: &str, max_in_flight: usize) -> Pipeline {
    let llm = OpenAiClassifier::builder()
        .base_url(url)
        .model("fake")
        .mode(AnswerMode::FreeText)
        .cache(false)
        .timeout(Duration::from_secs(10))
        .max_retries(0)
        .max_in_flight(max_in_flight)
        .build()
        .unwrap();
    Pipeline::builder()
        .tagger(Arc::new(ScriptedTagger::new(
            NAMES.iter().map(|n| entry(n, "PER", 0.7)).collect(),
        )))
        .estimator(Arc::new(Confidence::new()))
        .llm(Arc::new(llm))
        .policy(RoutingPolicy::threshold(0.4))
        .build()
        .unwrap()
}

fn texts() -> Vec<String> {
    NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| format!("Report {i} : {n} arrived late ."))
        .collect()
}

fn check_answers(annotations: &[linkner::Annotation]) {
    assert_eq!(annotations.len(), NAMES.len());
    for (i, a) in annotations.iter().enumerate() {
        assert_eq!(a.entities.len(), 1, "{}", a.text());
        let e = &a.entities[0];
        assert_eq!(e.entity.text, NAMES[i]);
        assert_eq!(
            e.entity.label,
            expected_label(i),
            "{}: the answer of another entity was attached",
            NAMES[i]
        );
        let want = if expected_label(i) == "PER" {
            Provenance::LlmConfirmed
        } else {
            Provenance::LlmRelabelled { from: "PER".into() }
        };
        assert_eq!(e.provenance, want, "{}", NAMES[i]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_runs_llm_requests_in_parallel_up_to_max_in_flight_in_order() {
    let server = per_entity_server().await;
    let pipeline = openai_pipeline(&server.url, 3);
    let started = Instant::now();
    let annotations = pipeline.annotate_batch(&texts()).await.unwrap();
    let elapsed = started.elapsed();
    check_answers(&annotations);
    let max = server.max_concurrent.load(Ordering::SeqCst);
    eprintln!(
        "one batch: {} requests, at most {max} at once",
        server.hits.load(Ordering::SeqCst)
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), NAMES.len());
    assert!(max >= 2, "the batch's requests were sent one by one");
    assert!(max <= 3, "{max} requests in flight with max_in_flight = 3");
    assert_timing(
        "one batch of 12 requests",
        elapsed,
        server_delays(),
        server_delays() / 3,
    );
    let s = pipeline.stats();
    assert_eq!((s.routed, s.failures), (NAMES.len() as u64, 0));
    assert_eq!(s.confirmed + s.relabelled, NAMES.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_documents_share_the_backends_bound_and_keep_their_answers() {
    let server = per_entity_server().await;
    let pipeline = openai_pipeline(&server.url, 3);
    let started = Instant::now();
    let tasks: Vec<_> = texts()
        .into_iter()
        .map(|t| {
            let p = pipeline.clone();
            tokio::spawn(async move { p.annotate(&t).await.unwrap() })
        })
        .collect();
    let mut annotations = Vec::new();
    for t in tasks {
        annotations.push(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    check_answers(&annotations);
    let max = server.max_concurrent.load(Ordering::SeqCst);
    eprintln!(
        "12 documents: {} requests, at most {max} at once",
        server.hits.load(Ordering::SeqCst)
    );
    assert!(
        max >= 2,
        "requests of concurrent documents never overlapped"
    );
    assert!(max <= 3, "{max} requests in flight with max_in_flight = 3");
    assert_timing(
        "12 concurrent documents",
        elapsed,
        server_delays(),
        server_delays() / 3,
    );
}
