//! A custom estimator written against the public API only — the margin between the two most
//! probable classes — run through the same conformance suite as the built-ins. This is the
//! linker's `custom_estimator` example.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use linkner_core::Candidate;
use linkner_uncertainty::{Result, UncertaintyEstimator, conformance, dist};

/// Uncertainty = 1 − (p_top1 − p_top2): close probabilities of the two best classes mean the
/// tagger hesitates between them.
struct Margin;

impl UncertaintyEstimator for Margin {
    fn name(&self) -> String {
        "margin".into()
    }

    fn score(&self, candidate: &Candidate) -> Result<f32> {
        // Validated, numerically safe class probabilities (errors on empty / non-finite input).
        let mut p = dist::class_probs(candidate)?;
        p.sort_by(|a, b| b.total_cmp(a));
        let second = p.get(1).copied().unwrap_or(0.0);
        Ok(dist::unit(1.0 - (p[0] - second)))
    }

    // Equal probabilities give margin 0, the highest score: let the suite check it.
    fn uniform_is_max(&self) -> bool {
        true
    }
}

#[test]
fn margin_estimator_conforms() {
    conformance::assert_conforms(&Margin);
}

#[test]
fn margin_ranks_hesitation_above_confidence() {
    let sure = conformance::candidate(&[0.0, 8.0, 0.0], Default::default(), 0);
    let torn = conformance::candidate(&[0.0, 4.0, 3.9], Default::default(), 0);
    assert!(Margin.score(&torn).unwrap() > Margin.score(&sure).unwrap());
}
