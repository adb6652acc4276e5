//! A misbehaving LLM server through the whole pipeline (the OpenAI-compatible backend against
//! `crates/linkner-llm/tests/support/fake_server.rs`): bodies cut short are retried and nothing
//! fails; a hung server ends the run within about one timeout per in-flight slot, the circuit
//! breaker failing the rest fast; a dead server fails every routed entity with its local label
//! kept. Every failure keeps the entity and says what kind of failure it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../crates/linkner-llm/tests/support/fake_server.rs"]
mod fake_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ScriptedTagger, entry};
use fake_server::{FakeServer, Fault, Script, ok};
use linkner::llm::{AnswerMode, FailureKind, LlmClassifier, OpenAiBuilder, OpenAiClassifier};
use linkner::uncertainty::builtins::Confidence;
use linkner::{Pipeline, Provenance, RoutingPolicy};

/// 30 documents, each with two routed entities (Rome, Acme) and one local one (Alice).
fn docs() -> Vec<String> {
    (0..30)
        .map(|i| format!("Doc {i} : Alice went to Rome for Acme ."))
        .collect()
}

fn pipeline(llm: OpenAiClassifier) -> (Pipeline, Arc<OpenAiClassifier>) {
    let llm = Arc::new(llm);
    let p = Pipeline::builder()
        .tagger(Arc::new(ScriptedTagger::new(vec![
            entry("Alice", "PER", 0.1),
            entry("Rome", "LOC", 0.7),
            entry("Acme", "ORG", 0.7),
        ])))
        .estimator(Arc::new(Confidence::new()))
        .llm(llm.clone())
        .policy(RoutingPolicy::threshold(0.4))
        .build()
        .unwrap();
    (p, llm)
}

fn backend(url: &str) -> OpenAiBuilder {
    OpenAiClassifier::builder()
        .base_url(url)
        .model("fake")
        .mode(AnswerMode::FreeText)
        .cache(false)
}

#[tokio::test]
async fn bodies_cut_short_on_every_first_attempt_cost_no_entity() {
    let s = FakeServer::start(Script::first_attempt(Fault::cut_short(), ok("location"))).await;
    let (p, llm) = pipeline(
        backend(&s.url)
            .backoff(Duration::from_millis(10), Duration::from_millis(40))
            .build()
            .unwrap(),
    );
    let out = p.annotate_batch(&docs()).await.unwrap();
    let st = p.stats();
    assert_eq!(st.routed, 60);
    assert_eq!(st.failures, 0, "{st:?}");
    for a in &out {
        assert_eq!(a.entities.len(), 3);
        let rome = a.entities.iter().find(|e| e.entity.text == "Rome").unwrap();
        assert_eq!(rome.provenance, Provenance::LlmConfirmed);
    }
    assert_eq!(s.hits(), 120);
    assert_eq!(llm.stats().unwrap().retries, 60);
}

#[tokio::test]
async fn a_hung_server_ends_the_run_within_a_bound_and_reports_the_breaker() {
    // Default settings but a 1 s timeout: one round of 4 timeouts, then the breaker.
    let s = FakeServer::start(Script::always(Fault::Hang)).await;
    let (p, llm) = pipeline(
        backend(&s.url)
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap(),
    );
    let t = Instant::now();
    let out = p.annotate_batch(&docs()).await.unwrap();
    let el = t.elapsed();
    assert!(el < Duration::from_secs(5), "{el:?}");
    assert_eq!(s.hits(), 4);
    assert_eq!(p.stats().failures, 60);
    for a in &out {
        // Every entity is kept, with its local label, and says why the LLM failed.
        assert_eq!(a.entities.len(), 3);
        for e in a.entities.iter().filter(|e| e.entity.text != "Alice") {
            assert_eq!(e.entity.label, e.local_label);
            match &e.provenance {
                Provenance::LlmFailed { error, .. } => {
                    assert!(error.contains("circuit breaker open"), "{error}")
                }
                other => panic!("{other:?}"),
            }
        }
    }
    let ls = p.llm_stats().unwrap();
    assert_eq!(ls.breaker_trips, 1);
    assert_eq!(
        ls.failures_by_kind.get(&FailureKind::CircuitOpen),
        Some(&60)
    );
    assert_eq!(ls, llm.stats().unwrap());
}

#[tokio::test]
async fn a_dead_server_fails_every_routed_entity_and_keeps_every_local_label() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (p, _) = pipeline(
        backend(&format!("http://127.0.0.1:{port}/v1"))
            .backoff(Duration::from_millis(5), Duration::from_millis(10))
            .build()
            .unwrap(),
    );
    let out = p.annotate_batch(&docs()).await.unwrap();
    let st = p.stats();
    assert_eq!((st.routed, st.failures), (60, 60));
    assert_eq!(out.iter().map(|a| a.entities.len()).sum::<usize>(), 90);
    let ls = p.llm_stats().unwrap();
    let total: u64 = ls.failures_by_kind.values().sum();
    assert_eq!(total, 60);
    // Refused connections open the breaker after 8 in a row; the rest fail fast, and their
    // error still says what the server did.
    assert!(ls.breaker_trips >= 1, "{ls:?}");
    for a in &out {
        for e in &a.entities {
            if let Provenance::LlmFailed { error, .. } = &e.provenance {
                assert!(error.contains("connection failed"), "{error}");
            }
        }
    }
}
