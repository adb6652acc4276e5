//! A backend written outside the crate with only its public API: a keyword gazetteer. It must
//! pass the same conformance suite as the OpenAI-compatible backend.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use linkner_core::LabelSchema;
use linkner_llm::conformance::{check_backend, default_probes};
use linkner_llm::{Answer, ClassifyRequest, LlmClassifier, LlmError, Stats, async_trait};

/// Looks the entity up in a word list; unknown entities are "not an entity".
struct Gazetteer {
    entries: HashMap<String, String>,
    calls: AtomicU64,
}

#[async_trait]
impl LlmClassifier for Gazetteer {
    fn name(&self) -> String {
        "gazetteer".into()
    }

    async fn classify(&self, request: &ClassifyRequest) -> linkner_llm::Result<Answer> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let class =
            match self.entries.get(&request.entity().to_lowercase()) {
                Some(label) => request.schema().class_of(label).ok_or_else(|| {
                    LlmError::LabelOutsideSchema {
                        answer: label.clone(),
                        expected: request.schema().type_names().join(", "),
                    }
                })?,
                None => 0,
            };
        let mut a = Answer::for_class(request.schema(), class)?;
        let mut dist = vec![0.0; request.schema().num_classes()];
        dist[class] = 1.0;
        a.distribution = Some(dist);
        a.confidence = Some(1.0);
        Ok(a)
    }

    fn stats(&self) -> Option<Stats> {
        Some(Stats {
            calls: self.calls.load(Ordering::Relaxed),
            ..Stats::default()
        })
    }
}

fn gazetteer() -> Gazetteer {
    let entries = [
        ("angela merkel", "PER"),
        ("tom", "PER"),
        ("paris", "LOC"),
        ("lyon", "LOC"),
        ("microsoft", "ORG"),
        ("banana republic", "ORG"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Gazetteer {
        entries,
        calls: AtomicU64::new(0),
    }
}

#[tokio::test]
async fn gazetteer_passes_the_conformance_suite() {
    let g = gazetteer();
    let schema = Arc::new(LabelSchema::conll03());
    let probes = default_probes(schema);
    assert!(probes.len() >= 5);
    let report = check_backend(&g, &probes).await.unwrap();
    assert!(report.passed.contains(&"batch_equals_singles"));
    assert!(report.passed.contains(&"invalid_requests"));
    let labels: Vec<&str> = report.answers.iter().map(|a| a.label.as_str()).collect();
    assert_eq!(labels, ["PER", "LOC", "ORG", "O", "LOC", "PER", "ORG"]);
    assert!(g.stats().unwrap().calls > probes.len() as u64);
}

#[tokio::test]
async fn a_shared_backend_works_through_arc_and_dyn() {
    let g: Arc<dyn LlmClassifier> = Arc::new(gazetteer());
    let schema = Arc::new(LabelSchema::conll03());
    let r = ClassifyRequest::find("I flew to Paris .", "Paris", schema).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (g, r) = (g.clone(), r.clone());
        tasks.push(tokio::spawn(async move { g.classify(&r).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().label, "LOC");
    }
}

/// A backend that violates the contract must be caught by the suite.
struct Broken;

#[async_trait]
impl LlmClassifier for Broken {
    fn name(&self) -> String {
        "broken".into()
    }

    async fn classify(&self, request: &ClassifyRequest) -> linkner_llm::Result<Answer> {
        // Skips validation and returns a label that does not match its class.
        let mut a = Answer::for_class(request.schema(), 1)?;
        a.label = "LOC".into();
        Ok(a)
    }
}

#[tokio::test]
async fn the_suite_rejects_a_backend_breaking_the_contract() {
    let probes = default_probes(Arc::new(LabelSchema::conll03()));
    let f = check_backend(&Broken, &probes).await.unwrap_err();
    assert_eq!(f.check, "answers");
}
