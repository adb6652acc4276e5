//! Every outcome of the LLM step ends in the right provenance, the right lists and the right
//! counters; a failing LLM never loses an entity.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{
    BrokenLlm, COMPLETION_TOKENS, PROMPT_TOKENS, PanickingLlm, Reply, ScriptedLlm, ScriptedTagger,
    entry,
};
use linkner::uncertainty::builtins::Confidence;
use linkner::{Pipeline, Provenance, RoutingPolicy};

const TEXT: &str = "Alice saw Bob at Acme in Rome on Monday";

fn tagger() -> ScriptedTagger {
    ScriptedTagger::new(vec![
        entry("Alice", "PER", 0.1),   // local
        entry("Bob", "PER", 0.6),     // confirmed
        entry("Acme", "LOC", 0.6),    // relabelled LOC -> ORG
        entry("Rome", "LOC", 0.6),    // failed
        entry("Monday", "MISC", 0.6), // rejected
    ])
}

fn pipeline(llm: Arc<dyn linkner::llm::LlmClassifier>) -> Pipeline {
    Pipeline::builder()
        .tagger(Arc::new(tagger()))
        .estimator(Arc::new(Confidence::new()))
        .llm(llm)
        .policy(RoutingPolicy::threshold(0.4))
        .build()
        .unwrap()
}

#[tokio::test]
async fn each_outcome_has_its_provenance() {
    let llm = Arc::new(ScriptedLlm::new(&[
        ("Bob", Reply::Class(1)),
        ("Acme", Reply::Class(3)),
        ("Rome", Reply::Fail),
        ("Monday", Reply::Class(0)),
    ]));
    let p = pipeline(llm.clone());
    let doc = p.annotate(TEXT).await.unwrap();
    let got: Vec<(&str, &str, &str)> = doc
        .entities
        .iter()
        .map(|e| {
            (
                e.entity.text.as_str(),
                e.entity.label.as_str(),
                e.provenance.name(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("Alice", "PER", "local"),
            ("Bob", "PER", "llm_confirmed"),
            ("Acme", "ORG", "llm_relabelled"),
            ("Rome", "LOC", "llm_failed"),
        ]
    );
    assert_eq!(
        doc.entities[2].provenance,
        Provenance::LlmRelabelled { from: "LOC".into() }
    );
    assert_eq!(doc.entities[2].local_label, "LOC");
    assert_eq!(doc.entities[2].span.label, "ORG");
    match &doc.entities[3].provenance {
        Provenance::LlmFailed { error, .. } => {
            assert!(error.contains("scripted failure"), "{error}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // Local and failed entities keep the local probability; LLM outcomes carry its confidence.
    assert!((doc.entities[0].entity.score.unwrap() - 0.9).abs() < 1e-5);
    assert!((doc.entities[3].entity.score.unwrap() - 0.4).abs() < 1e-5);
    assert_eq!(doc.entities[1].entity.score, Some(0.75));

    // The rejected entity is kept aside with its local label.
    assert_eq!(doc.rejected.len(), 1);
    let r = &doc.rejected[0];
    assert_eq!(
        (r.entity.text.as_str(), r.entity.label.as_str()),
        ("Monday", "MISC")
    );
    assert_eq!(r.provenance, Provenance::LlmRejected);
    assert_eq!(doc.spans().len(), 4);

    let s = p.stats();
    assert_eq!(s.entities, 5);
    assert_eq!(s.routed, 4);
    assert_eq!(s.llm_requests, 4);
    assert_eq!(
        (s.confirmed, s.relabelled, s.rejected, s.failures),
        (1, 1, 1, 1)
    );
    assert_eq!(
        s.routed,
        s.confirmed + s.relabelled + s.rejected + s.failures
    );
    assert_eq!(s.prompt_tokens, 3 * PROMPT_TOKENS);
    assert_eq!(s.completion_tokens, 3 * COMPLETION_TOKENS);
    assert_eq!(s.cache_hits, 0);
    assert_eq!(llm.calls.load(Ordering::SeqCst), 4);

    // The same text again: the backend answers from its cache; the counters say so.
    p.annotate(TEXT).await.unwrap();
    let s = p.stats();
    assert_eq!(s.documents, 2);
    assert_eq!(s.cache_hits, 3);
    assert_eq!(s.llm_calls(), 8 - 3);
    assert_eq!(s.prompt_tokens, 3 * PROMPT_TOKENS);

    // The annotation serialises with tagged provenance.
    let json = serde_json::to_value(&doc).unwrap();
    assert_eq!(
        json["entities"][2]["provenance"]["source"],
        "llm_relabelled"
    );
    assert_eq!(json["entities"][2]["provenance"]["from"], "LOC");
}

#[tokio::test]
async fn a_dead_llm_keeps_every_entity_with_its_local_label() {
    let llm = Arc::new(ScriptedLlm::new(&[]).failing_after(0));
    let p = pipeline(llm.clone());
    let doc = p.annotate(TEXT).await.unwrap();
    assert_eq!(doc.entities.len(), 5);
    assert!(doc.rejected.is_empty());
    let labels: Vec<&str> = doc
        .entities
        .iter()
        .map(|e| e.entity.label.as_str())
        .collect();
    assert_eq!(labels, ["PER", "PER", "LOC", "LOC", "MISC"]);
    for e in &doc.entities[1..] {
        assert!(
            matches!(&e.provenance, Provenance::LlmFailed { error, .. } if error.contains("went away")),
            "{:?}",
            e.provenance
        );
        assert_eq!(e.entity.label, e.local_label);
    }
    let s = p.stats();
    assert_eq!((s.routed, s.failures), (4, 4));
}

#[tokio::test]
async fn an_llm_that_goes_down_mid_run_loses_nothing() {
    // The server answers 10 requests, then every call fails (the server went down).
    let llm = Arc::new(ScriptedLlm::new(&[]).failing_after(10));
    let p = pipeline(llm.clone());
    let texts: Vec<String> = (0..20).map(|i| format!("{TEXT} number {i}")).collect();
    let mut failed = 0;
    let mut confirmed = 0;
    let mut stream = p.annotate_stream(texts.clone()).unwrap();
    let mut n = 0;
    while let Some(doc) = stream.next().await {
        let doc = doc.unwrap();
        assert_eq!(doc.text(), texts[n]);
        n += 1;
        // All five scripted entities are there, local labels kept on failure.
        assert_eq!(doc.entities.len(), 5);
        for e in &doc.entities {
            match &e.provenance {
                Provenance::LlmFailed { .. } => {
                    failed += 1;
                    assert_eq!(e.entity.label, e.local_label);
                }
                Provenance::LlmConfirmed => confirmed += 1,
                Provenance::Local => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(n, 20);
    assert_eq!(confirmed, 10);
    assert_eq!(failed, 80 - 10);
    let s = p.stats();
    assert_eq!((s.documents, s.entities, s.routed), (20, 100, 80));
    assert_eq!(s.failures, 70);
    assert_eq!(s.confirmed, 10);
}

#[tokio::test]
async fn a_broken_backend_is_a_failure_not_a_loss() {
    for short_batch in [false, true] {
        let p = pipeline(Arc::new(BrokenLlm { short_batch }));
        let doc = p.annotate(TEXT).await.unwrap();
        assert_eq!(doc.entities.len(), 5);
        assert!(doc.rejected.is_empty());
        assert_eq!(doc.entities[0].provenance, Provenance::Local);
        for e in &doc.entities[1..] {
            let Provenance::LlmFailed { error, .. } = &e.provenance else {
                panic!("expected a failure, got {:?}", e.provenance);
            };
            let expected = if short_batch {
                "returned 3 answers for 4 requests"
            } else {
                "outside schema"
            };
            assert!(error.contains(expected), "{error}");
            assert_eq!(e.entity.label, e.local_label);
        }
        assert_eq!(p.stats().failures, 4);
    }
}

#[tokio::test]
async fn a_panicking_backend_fails_its_requests_not_the_caller() {
    let p = pipeline(Arc::new(PanickingLlm));
    for _ in 0..2 {
        let doc = p.annotate(TEXT).await.unwrap();
        assert_eq!(doc.entities.len(), 5);
        for e in &doc.entities[1..] {
            let Provenance::LlmFailed { error, .. } = &e.provenance else {
                panic!("expected a failure, got {:?}", e.provenance);
            };
            assert!(error.contains("panicked"), "{error}");
            assert_eq!(e.entity.label, e.local_label);
        }
    }
    assert_eq!(p.stats().failures, 8);
}
