//! A new uncertainty estimator in under 50 lines, plugged into the pipeline.
//!
//! `cargo run -p linkner --example custom_estimator`
//!
//! Runs offline: the trained tagger and the LLM are replaced by stand-ins from
//! `examples/common` (a lexicon tagger with fixed label distributions, and an LLM that confirms
//! the local label). The estimator itself needs only the `UncertaintyEstimator` trait.

mod common;

use std::sync::Arc;

use linkner::core::Candidate;
use linkner::uncertainty::{Result, UncertaintyEstimator, conformance, dist};
use linkner::{Pipeline, RoutingPolicy};

// ---- the estimator: 1 − (p_top1 − p_top2), the margin between the two best classes ----
struct Margin;

impl UncertaintyEstimator for Margin {
    fn name(&self) -> &str {
        "margin"
    }

    fn score(&self, candidate: &Candidate) -> Result<f32> {
        // Validated, numerically safe class probabilities (errors on empty / non-finite input).
        let mut p = dist::class_probs(candidate)?;
        p.sort_by(|a, b| b.total_cmp(a));
        let second = p.get(1).copied().unwrap_or(0.0);
        Ok(dist::unit(1.0 - (p[0] - second)))
    }

    // Equal probabilities give the highest score: let the conformance suite check it.
    fn uniform_is_max(&self) -> bool {
        true
    }
}
// ---- end of the estimator ----

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // The same suite the built-ins pass: range, NaN safety, determinism, uniform is maximal.
    let violations = conformance::check(&Margin);
    if !violations.is_empty() {
        return Err(format!("margin fails conformance: {violations:?}").into());
    }

    let pipeline = Pipeline::builder()
        .tagger(Arc::new(common::demo_tagger()))
        .estimator(Arc::new(Margin))
        .llm(Arc::new(common::ConfirmLocal))
        .policy(RoutingPolicy::threshold(0.6))
        .build()?;
    for doc in pipeline.annotate_batch(common::TEXTS).await? {
        println!("{}", doc.text());
        for e in &doc.entities {
            println!(
                "  [{:>2}, {:>2}) {:<15} {:<5} margin-uncertainty {:.3} -> {}",
                e.entity.start,
                e.entity.end,
                e.entity.text,
                e.entity.label,
                e.uncertainty,
                e.provenance.name()
            );
        }
    }
    println!("{}", serde_json::to_string_pretty(&pipeline.stats())?);
    Ok(())
}

// `cargo test` runs the example too (`test = true` in the crate's manifest).
#[test]
fn example_runs() {
    main().expect("the example runs");
}
