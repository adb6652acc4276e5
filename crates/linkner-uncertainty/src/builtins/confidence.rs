use linkner_core::Candidate;

use crate::dist;
use crate::error::Result;
use crate::estimator::UncertaintyEstimator;

/// `1 − max_k p_k`: one minus the probability of the most likely class.
///
/// Range `[0, 1 − 1/K]` for `K` classes; highest at the uniform distribution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confidence;

impl Confidence {
    /// The estimator (it has no parameters).
    pub fn new() -> Self {
        Confidence
    }
}

impl UncertaintyEstimator for Confidence {
    fn name(&self) -> String {
        "confidence".into()
    }

    fn score(&self, candidate: &Candidate) -> Result<f32> {
        let p = dist::class_probs(candidate)?;
        let max = p.iter().copied().fold(0.0, f64::max);
        Ok(dist::unit(1.0 - max))
    }

    fn uniform_is_max(&self) -> bool {
        true
    }
}
