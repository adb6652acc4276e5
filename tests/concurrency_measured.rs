//! Concurrency that is measured, not assumed: fakes record the largest number of calls that
//! overlapped in time, and the tests assert that it is above 1 (no pipeline-wide lock) and at
//! most the configured bound — for the tagger (a `Sync` tagger given with `.tagger(..)`, and an
//! exclusive one that must never overlap) and for the LLM (the OpenAI-compatible backend against
//! a fake server with `max_in_flight`, answering per entity with delays so that answers come
//! back out of order and a mix-up would show). Public API only: `Pipeline::builder`,
//! `annotate*`, `stats`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/fake_openai.rs"]
mod fake_openai;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{ScriptedTagger, entry};
use linkner::async_trait;
use linkner::core::{Candidate, LabelSchema, Sentence};
use linkner::llm::{
    Answer, AnswerMode, ClassifyRequest, LlmClassifier, LlmError, OpenAiClassifier,
};
use linkner::tagger::{LocalTagger, PredictOptions, TaggerError};
use linkner::uncertainty::builtins::Confidence;
use linkner::{Pipeline, Provenance, RoutingPolicy, StreamOptions};

/// Counts calls in progress and keeps the maximum.
#[derive(Default)]
struct Overlap {
    now: AtomicUsize,
    max: AtomicUsize,
    calls: AtomicUsize,
}

impl Overlap {
    fn enter(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

/// A `Sync` tagger whose calls take `delay` (a blocking sleep, like a real forward pass) and
/// are counted by `overlap`.
struct SlowTagger {
    inner: ScriptedTagger,
    delay: Duration,
    overlap: Arc<Overlap>,
}

impl LocalTagger for SlowTagger {
    fn schema(&self) -> &LabelSchema {
        self.inner.schema()
    }
    fn tag_sentences(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>, TaggerError> {
        self.overlap.enter();
        std::thread::sleep(self.delay);
        let out = self.inner.tag_sentences(sentences, options);
        self.overlap.leave();
        out
    }
}

fn slow_tagger(overlap: &Arc<Overlap>) -> SlowTagger {
    SlowTagger {
        inner: ScriptedTagger::new(vec![entry("Alice", "PER", 0.1)]),
        delay: Duration::from_millis(60),
        overlap: overlap.clone(),
    }
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
    let mut stream = pipeline.annotate_stream(docs(24)).unwrap();
    let mut n = 0;
    while let Some(a) = stream.next().await {
        assert_eq!(a.unwrap().entities.len(), 1);
        n += 1;
    }
    assert_eq!(n, 24);
    let max = overlap.max();
    eprintln!(
        "shared tagger: {} calls, at most {max} at once",
        overlap.calls.load(Ordering::SeqCst)
    );
    assert!(
        max > 1,
        "tagger calls never overlapped: a lock serialises them"
    );
    assert!(
        max <= 3,
        "{max} tagger calls at once with chunks_in_flight = 3"
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
    let max = overlap.max();
    assert_eq!(overlap.calls.load(Ordering::SeqCst), 12);
    assert!(max > 1, "tagger calls from 12 tasks never overlapped");
    assert!(
        max <= 3,
        "{max} tagger calls at once with 3 blocking threads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_tagger_never_overlaps() {
    let overlap = Arc::new(Overlap::default());
    let pipeline = Pipeline::builder()
        .exclusive_tagger(slow_tagger(&overlap))
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
    let mut stream = pipeline.annotate_stream(docs(12)).unwrap();
    while let Some(a) = stream.next().await {
        a.unwrap();
    }
    assert_eq!(overlap.calls.load(Ordering::SeqCst), 6);
    assert_eq!(
        overlap.max(),
        1,
        "an exclusive tagger was called concurrently"
    );
}

/// An LLM whose calls take 40 ms and are counted (the trait's own `classify_batch`).
struct SlowLlm {
    overlap: Arc<Overlap>,
}

#[async_trait]
impl LlmClassifier for SlowLlm {
    fn name(&self) -> String {
        "slow".into()
    }
    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer, LlmError> {
        self.overlap.enter();
        tokio::time::sleep(Duration::from_millis(40)).await;
        self.overlap.leave();
        Answer::for_class(&request.schema, 1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_calls_of_concurrent_documents_overlap() {
    let overlap = Arc::new(Overlap::default());
    let pipeline = Pipeline::builder()
        .tagger(Arc::new(ScriptedTagger::new(vec![entry(
            "Alice", "PER", 0.7,
        )])))
        .estimator(Arc::new(Confidence::new()))
        .llm(Arc::new(SlowLlm {
            overlap: overlap.clone(),
        }))
        .policy(RoutingPolicy::threshold(0.4))
        .build()
        .unwrap();
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
    let max = overlap.max();
    assert_eq!(pipeline.stats().routed, 8);
    assert!(
        max > 1,
        "LLM calls of 8 concurrent documents never overlapped"
    );
    assert!(max <= 8, "{max} calls at once for 8 requests");
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
    let annotations = pipeline.annotate_batch(&texts()).await.unwrap();
    check_answers(&annotations);
    let max = server.max_concurrent.load(Ordering::SeqCst);
    eprintln!(
        "one batch: {} requests, at most {max} at once",
        server.hits.load(Ordering::SeqCst)
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), NAMES.len());
    assert!(max > 1, "the batch's requests were sent one by one");
    assert!(max <= 3, "{max} requests in flight with max_in_flight = 3");
    let s = pipeline.stats();
    assert_eq!((s.routed, s.failures), (NAMES.len() as u64, 0));
    assert_eq!(s.confirmed + s.relabelled, NAMES.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_documents_share_the_backends_bound_and_keep_their_answers() {
    let server = per_entity_server().await;
    let pipeline = openai_pipeline(&server.url, 3);
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
    check_answers(&annotations);
    let max = server.max_concurrent.load(Ordering::SeqCst);
    assert!(max > 1, "requests of concurrent documents never overlapped");
    assert!(max <= 3, "{max} requests in flight with max_in_flight = 3");
}
