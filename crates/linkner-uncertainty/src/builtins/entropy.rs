use linkner_core::Candidate;

use crate::dist;
use crate::error::Result;
use crate::estimator::UncertaintyEstimator;

/// Normalised Shannon entropy of the class distribution: `−Σ p_k ln p_k / ln K`.
///
/// Range `[0, 1]`: `1` exactly at the uniform distribution, `0` for a one-hot one (and for a
/// single class).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entropy;

impl Entropy {
    /// The estimator (it has no parameters).
    pub fn new() -> Self {
        Entropy
    }
}

impl UncertaintyEstimator for Entropy {
    fn name(&self) -> String {
        "entropy".into()
    }

    fn score(&self, candidate: &Candidate) -> Result<f32> {
        let p = dist::class_probs(candidate)?;
        Ok(dist::unit(dist::normalized_entropy(&p)))
    }

    fn uniform_is_max(&self) -> bool {
        true
    }
}
