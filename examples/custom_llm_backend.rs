//! A new LLM backend in under 50 lines — a keyword gazetteer — plugged into the pipeline.
//!
//! `cargo run -p linkner --example custom_llm_backend`
//!
//! Runs offline: the trained tagger is replaced by a stand-in from `examples/common` (a lexicon
//! tagger with fixed label distributions). The backend itself needs only the `LlmClassifier`
//! trait; any failure it returns keeps the local label (provenance `llm_failed`).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use linkner::llm::{Answer, AnswerCache, ClassifyRequest, LlmClassifier, LlmError};
use linkner::llm::{LlmClassifierExt, Reliability};
use linkner::uncertainty::EstimatorConfig;
use linkner::{Pipeline, RoutingPolicy, async_trait};

// ---- the backend: known names get their gazetteer type, anything else is not an entity ----
struct Gazetteer {
    entries: HashMap<String, String>, // lower-cased entity text -> type name (schema `name`)
}

#[async_trait]
impl LlmClassifier for Gazetteer {
    fn name(&self) -> String {
        format!("gazetteer({} entries)", self.entries.len())
    }

    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer, LlmError> {
        request.validate()?; // span inside the sentence, classes inside the schema
        let class = match self.entries.get(&request.entity.to_lowercase()) {
            Some(label) => request.schema.class_of(label).ok_or_else(|| {
                LlmError::backend(format!("gazetteer type `{label}` is not in the schema"))
            })?,
            None => 0, // "not an entity": the pipeline moves it to the rejected list
        };
        let mut answer = Answer::for_class(&request.schema, class)?;
        answer.confidence = Some(1.0);
        answer.raw = format!("gazetteer:{}", answer.label);
        Ok(answer)
    }
}
// ---- end of the backend ----

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let entries = [
        ("liverpool", "ORG"),
        ("anfield", "LOC"),
        ("premier league", "MISC"),
    ];
    let gazetteer = Gazetteer {
        entries: entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let pipeline = Pipeline::builder()
        .tagger(Arc::new(common::demo_tagger()))
        .estimator(Arc::from(EstimatorConfig::Confidence {}.build()?))
        // Retries, an answer cache, an in-flight bound, a deadline and a circuit breaker: one line.
        .llm(Arc::new(gazetteer.reliable(
            Reliability::default().cache(AnswerCache::in_memory()),
        )))
        .policy(RoutingPolicy::threshold(0.35))
        .build()?;
    for doc in pipeline.annotate_batch(common::TEXTS).await? {
        println!("{}", doc.text());
        for e in doc.entities.iter().chain(&doc.rejected) {
            println!(
                "  [{:>2}, {:>2}) {:<15} {:<5} uncertainty {:.2} -> {:?}",
                e.entity.start,
                e.entity.end,
                e.entity.text,
                e.entity.label,
                e.uncertainty,
                e.provenance
            );
        }
    }
    let s = pipeline.stats();
    println!(
        "{} entities, {} routed: {} confirmed, {} relabelled, {} rejected, {} failed",
        s.entities, s.routed, s.confirmed, s.relabelled, s.rejected, s.failures
    );
    Ok(())
}

// `cargo test` runs the example too (`test = true` in the crate's manifest).
#[test]
fn example_runs() {
    main().expect("the example runs");
}
