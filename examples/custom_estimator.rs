//! A new uncertainty estimator in the pipeline: `cargo run -p linkner --example custom_estimator`.
//! Offline: tagger and LLM are stand-ins from `examples/common` (the LLM confirms the local label).
mod common;
use linkner::uncertainty::{Result, UncertaintyEstimator, conformance, dist};
use linkner::{Pipeline, RoutingPolicy, core::Candidate};
use std::sync::Arc;

/// 1 − (p_top1 − p_top2) over `dist::class_probs` (validated, numerically safe probabilities).
struct Margin;

impl UncertaintyEstimator for Margin {
    fn name(&self) -> String {
        "margin".into()
    }
    fn score(&self, candidate: &Candidate) -> Result<f32> {
        let mut p = dist::class_probs(candidate)?;
        p.sort_by(|a, b| b.total_cmp(a));
        Ok(dist::unit(1.0 - (p[0] - p.get(1).copied().unwrap_or(0.0))))
    }
    fn uniform_is_max(&self) -> bool {
        true // equal probabilities score highest: the conformance suite checks it
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let v = conformance::check(&Margin); // range, NaN safety, determinism, uniform is maximal
    assert!(v.is_empty(), "margin fails conformance: {v:?}");
    let pipeline = Pipeline::builder()
        .tagger(Arc::new(common::demo_tagger()))
        .estimator(Arc::new(Margin))
        .llm(Arc::new(common::ConfirmLocal))
        .policy(RoutingPolicy::threshold(0.6))
        .build()?;
    for doc in pipeline.annotate_batch(common::TEXTS).await? {
        for e in &doc.entities {
            let (t, l) = (&e.entity.text, &e.entity.label);
            let (u, how) = (e.uncertainty, e.provenance.name());
            println!("{t:<15} {l:<5} margin-uncertainty {u:.3} -> {how}");
        }
    }
    println!("{}", serde_json::to_string_pretty(&pipeline.stats())?);
    Ok(())
}

#[test] // `cargo test` runs the example (`test = true` in the manifest)
fn example_runs() {
    main().expect("the example runs");
}
