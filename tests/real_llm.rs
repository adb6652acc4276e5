//! The pipeline with the real OpenAI-compatible backend against a real local llama.cpp server
//! (the small model), then the same pipeline after the server is stopped mid-run.
//!
//! The test always runs its own server (`local_server::own_server`): it starts one with
//! `scripts/llm-server.sh start small PORT` (port `LINKNER_LINK_TEST_PORT`, default 18182) —
//! an exported `LINKNER_LLM_URL` is not used, and a stale server of ours left on the port by a
//! killed run is taken over — so the server-down step always runs: the test stops the server
//! mid-run and checks that every entity keeps its local label. Only when `llama-server` or the
//! small model is not installed (`scripts/setup-llm.sh` has not run) does the test SKIP, loudly;
//! with `LINKNER_REQUIRE_LLM=1` (scripts/test.sh, CI) that is a failure. A server that is
//! installed but does not start fails.
//!
//! The tagger is scripted (no trained checkpoint is needed): it proposes the listed phrases with
//! chosen labels and uncertainties. The 1.5B/0.5B model's accuracy is not asserted here (that is
//! the report's job); what is asserted is that every routed entity gets an answer inside the
//! schema with provenance and counters to match, that the cache answers repeats, and that a dead
//! server loses nothing.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ScriptedTagger, entry};
use linkner::llm::{AnswerMode, OpenAiClassifier};
use linkner::uncertainty::builtins::Confidence;
use linkner::{Pipeline, Provenance, RoutingPolicy};

#[path = "../crates/linkner-llm/tests/support/local_server.rs"]
mod local_server;

fn server() -> Option<local_server::Server> {
    local_server::own_server(
        "real_llm::real_llm_then_server_down",
        "LINKNER_LINK_TEST_PORT",
        "18182",
    )
}

const TEXTS: &[&str] = &[
    "Rome is the capital of Italy .",
    "Angela Merkel met Barack Obama in Berlin on Monday .",
    "Apple sells the iPhone in Zürich .",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_llm_then_server_down() {
    let Some(mut server) = server() else {
        return;
    };
    let tagger = ScriptedTagger::new(vec![
        entry("Rome", "LOC", 0.05),
        entry("Italy", "LOC", 0.6),
        entry("Angela Merkel", "PER", 0.6),
        entry("Barack Obama", "PER", 0.1),
        entry("Berlin", "LOC", 0.6),
        entry("Monday", "MISC", 0.6),
        entry("Apple", "PER", 0.7),
        entry("Zürich", "LOC", 0.6),
        entry("Paris", "LOC", 0.6),
        entry("France", "LOC", 0.6),
    ]);
    let llm = OpenAiClassifier::builder()
        .base_url(&server.url)
        .model(&server.model)
        .mode(AnswerMode::default())
        .cache(true)
        .timeout(Duration::from_secs(120))
        .max_retries(1)
        .backoff(Duration::from_millis(50), Duration::from_millis(100))
        .max_in_flight(4)
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .tagger(Arc::new(tagger))
        .estimator(Arc::new(Confidence::new()))
        .llm(Arc::new(llm))
        .policy(RoutingPolicy::threshold(0.4))
        .build()
        .unwrap();

    // 1. The server is up: every routed entity gets an LLM answer inside the schema.
    let docs = pipeline.annotate_batch(TEXTS).await.unwrap();
    let schema = linkner::core::LabelSchema::conll03();
    let mut routed = 0u64;
    for doc in &docs {
        for e in doc.entities.iter().chain(&doc.rejected) {
            eprintln!(
                "{:<14} local {:<4} -> {:<4} {:?}",
                e.entity.text, e.local_label, e.entity.label, e.provenance
            );
            match &e.provenance {
                Provenance::Local => assert!(e.uncertainty <= 0.4),
                Provenance::LlmFailed { error, .. } => {
                    panic!("LLM failed with the server up: {error}")
                }
                _ => {
                    routed += 1;
                    assert!(schema.class_of(&e.entity.label).is_some_and(|c| c > 0));
                }
            }
        }
    }
    let s1 = pipeline.stats();
    eprintln!("{s1:?}");
    assert_eq!(routed, 6);
    assert_eq!(s1.routed, 6);
    assert_eq!(s1.failures, 0);
    assert_eq!(s1.confirmed + s1.relabelled + s1.rejected, 6);
    assert!(s1.prompt_tokens > 0 && s1.completion_tokens > 0);
    assert!(s1.llm_time > Duration::ZERO);

    // 2. The same texts again: the backend's cache answers, no new tokens.
    let mut again = pipeline.annotate_batch(TEXTS).await.unwrap();
    // Every LLM verdict now says it came from the cache; otherwise the output is the same.
    for doc in &mut again {
        for e in doc.entities.iter_mut().chain(doc.rejected.iter_mut()) {
            if let Some(v) = e.llm.as_mut() {
                assert!(v.cached, "{}: not from the cache", e.entity.text);
                v.cached = false;
            }
        }
    }
    assert_eq!(again, docs);
    let s2 = pipeline.stats();
    assert_eq!(s2.cache_hits - s1.cache_hits, 6);
    assert_eq!(s2.prompt_tokens, s1.prompt_tokens);

    // 3. The server goes down mid-run (the test owns it: `own_server`).
    assert!(
        server.own_port.is_some(),
        "own_server always owns its server"
    );
    server.stop();
    let doc = pipeline.annotate("Paris is in France .").await.unwrap();
    assert_eq!(doc.entities.len(), 2);
    for e in &doc.entities {
        assert!(
            matches!(&e.provenance, Provenance::LlmFailed { .. }),
            "{:?}",
            e.provenance
        );
        assert_eq!(e.entity.label, "LOC");
    }
    let s3 = pipeline.stats();
    assert_eq!(s3.failures, 2);
    assert_eq!(s3.routed, 6 + 6 + 2);
    server.record_answer();
}
