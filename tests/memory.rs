//! Bounded memory in a long-running service: 100,000 documents through one pipeline (a
//! stand-in tagger, a stand-in LLM wrapped in the reusable layers with an answer cache capped
//! at 2,000 answers) must leave resident memory flat. Nothing the pipeline or the layers keep
//! may grow with the number of documents: not the latency figures (a fixed-size histogram),
//! not the answer cache (an LRU with a cap), not the run statistics (counters).
//!
//! Resident memory (`VmRSS` of `/proc/self/status`) is read after a warm-up of 20,000
//! documents (the cache full, the allocator's pools grown) and at the end; the growth over the
//! last 80,000 documents must stay under 16 MiB. Keeping ~200 bytes per routed entity (as an
//! uncapped cache of these answers does) grows it by well over that.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{ScriptedTagger, entry};
use linkner::async_trait;
use linkner::llm::layer::{LlmClassifierExt, Reliability};
use linkner::llm::{Answer, AnswerCache, ClassifyRequest, LlmClassifier, LlmError};
use linkner::uncertainty::builtins::Confidence;
use linkner::{Pipeline, RoutingPolicy, StreamOptions};

const DOCS: usize = 100_000;
const WARM_UP: usize = 20_000;
const CACHE_CAPACITY: usize = 2_000;
const MAX_GROWTH: u64 = 16 << 20;

/// Confirms the local label, with a raw text like a chatty model's (kept, cut, by the cache).
struct EchoLlm;

#[async_trait]
impl LlmClassifier for EchoLlm {
    fn name(&self) -> String {
        "echo".into()
    }

    async fn classify(&self, r: &ClassifyRequest) -> Result<Answer, LlmError> {
        let class = r.local_top().first().map_or(0, |l| l.class);
        let mut a = Answer::for_class(r.schema(), class)?;
        a.confidence = Some(0.9);
        a.raw = format!(
            "The span {} in {} is of type {}",
            r.entity(),
            r.sentence(),
            a.label
        );
        Ok(a)
    }
}

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// Document `i`: unique text (so every routed entity is a new cache key), ~150 chars.
fn doc(i: usize) -> String {
    format!(
        "Report {i:06} of the series : Alice went to Rome with people from Acme , and the weather \
         there was as usual for the season , number {i} ."
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_stays_flat_over_100_000_annotations() {
    let tagger = ScriptedTagger::new(vec![
        entry("Alice", "PER", 0.1),
        entry("Rome", "LOC", 0.7),
        entry("Acme", "ORG", 0.7),
    ]);
    let cache = Arc::new(AnswerCache::with_capacity(CACHE_CAPACITY));
    let llm = EchoLlm.reliable(Reliability::default().shared_cache(cache.clone()));
    let llm: Arc<dyn LlmClassifier> = Arc::new(llm);
    let pipeline = Pipeline::builder()
        .tagger(Arc::new(tagger))
        .estimator(Arc::new(Confidence::new()))
        .llm(llm.clone())
        .policy(RoutingPolicy::threshold(0.4))
        .stream_options(StreamOptions {
            chunk_size: 64,
            ..StreamOptions::default()
        })
        .build()
        .unwrap();

    let run = |range: std::ops::Range<usize>| {
        let p = pipeline.clone();
        async move {
            let mut stream = p.annotate_stream(range.clone().map(doc)).unwrap();
            let mut n = 0usize;
            while let Some(a) = stream.next().await {
                let a = a.unwrap();
                assert_eq!(a.entities.len(), 3, "{}", a.text());
                n += 1;
            }
            assert_eq!(n, range.len());
        }
    };

    run(0..WARM_UP).await;
    let after_warm_up = rss();
    run(WARM_UP..DOCS).await;
    let at_end = rss();

    let s = pipeline.stats();
    assert_eq!(s.documents, DOCS as u64);
    assert_eq!(s.routed, 2 * DOCS as u64);
    assert_eq!(s.failures, 0);
    let ls = llm.stats().unwrap();
    assert_eq!(ls.calls, 2 * DOCS as u64);
    assert!(ls.latency_max > 0.0);
    assert_eq!(cache.len(), CACHE_CAPACITY);

    let growth = at_end.saturating_sub(after_warm_up);
    eprintln!(
        "VmRSS after {WARM_UP} documents: {} MiB; after {DOCS}: {} MiB (growth {} KiB)",
        after_warm_up >> 20,
        at_end >> 20,
        growth >> 10
    );
    assert!(
        growth < MAX_GROWTH,
        "resident memory grew by {} MiB over {} documents",
        growth >> 20,
        DOCS - WARM_UP
    );
}
