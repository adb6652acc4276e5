//! A new LLM backend (a keyword gazetteer) with retry + cache + limit + deadline + breaker in one
//! line. Offline (`examples/common` tagger): `cargo run -p linkner --example custom_llm_backend`.
mod common;

use linkner::llm::{Answer, AnswerCache, ClassifyRequest, LlmClassifier, LlmError, Reliability};
use linkner::{Pipeline, RoutingPolicy, async_trait, llm::LlmClassifierExt as _};
use std::{collections::HashMap, sync::Arc};

struct Gazetteer(HashMap<&'static str, &'static str>); // lower-cased name -> type, else no entity

#[async_trait]
impl LlmClassifier for Gazetteer {
    fn name(&self) -> String {
        format!("gazetteer({} entries)", self.0.len())
    }
    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer, LlmError> {
        let known = self.0.get(request.entity().to_lowercase().as_str()); // None: not an entity
        let class = known.map_or(Some(0), |t| request.schema().class_of(t));
        let class = class.ok_or(LlmError::backend("a type outside the schema"))?;
        Answer::for_class(request.schema(), class)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let entries = "liverpool:ORG,anfield:LOC,premier league:MISC".split(',');
    let gazetteer = Gazetteer(entries.filter_map(|e| e.split_once(':')).collect());
    let cached = Reliability::default().cache(AnswerCache::in_memory());
    let pipeline = Pipeline::builder()
        .tagger(Arc::new(common::demo_tagger()))
        .estimator(Arc::new(linkner::uncertainty::builtins::Confidence))
        .llm(Arc::new(gazetteer.reliable(cached))) // the one line
        .policy(RoutingPolicy::threshold(0.35))
        .build()?;
    for doc in pipeline.annotate_batch(common::TEXTS).await? {
        for e in doc.entities.iter().chain(&doc.rejected) {
            let (t, l, how) = (&e.entity.text, &e.entity.label, &e.provenance);
            println!("{t:<15} {l:<5} -> {how:?}");
        }
    }
    println!("{:?}", pipeline.stats());
    Ok(())
}

#[test] // `cargo test` runs the example (`test = true` in the manifest)
fn example_runs() {
    main().expect("the example runs");
}
