use linkner_core::Candidate;
use serde::{Deserialize, Serialize};

use crate::dist;
use crate::error::{Result, UncertaintyError};
use crate::estimator::{Requirements, UncertaintyEstimator};

/// What [`McDropout`] measures over the `S` stochastic passes `p_1 … p_S` (mean `p̄`, `K`
/// classes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum McMeasure {
    /// Predictive entropy `H(p̄) / ln K`: total uncertainty.
    #[default]
    PredictiveEntropy,
    /// Mutual information (BALD) `(H(p̄) − mean_s H(p_s)) / ln min(K, S)`: the disagreement
    /// between passes (epistemic uncertainty). `ln min(K, S)` is its largest possible value, so
    /// the score reaches 1; it is 0 when `min(K, S) = 1`.
    MutualInformation,
    /// Total variance `Σ_k Var_s(p_sk) / (1 − 1/K)` (population variance over the passes).
    /// `1 − 1/K` bounds the total variance of probability vectors; 0 when `K = 1`.
    Variance,
}

impl McMeasure {
    /// The snake_case name used in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            McMeasure::PredictiveEntropy => "predictive_entropy",
            McMeasure::MutualInformation => "mutual_information",
            McMeasure::Variance => "variance",
        }
    }
}

/// Monte-Carlo dropout (Gal & Ghahramani 2016): scores the spread of `S` stochastic
/// forward passes, from [`Candidate::mc_probs`].
///
/// Declares `Requirements::mc_samples = S`; a candidate with fewer samples is an error, one
/// with more uses all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McDropout {
    samples: usize,
    measure: McMeasure,
    name: String,
}

impl McDropout {
    /// Number of passes used when a config does not say.
    pub const DEFAULT_SAMPLES: usize = 10;

    /// An estimator asking for `samples` passes (at least 1) and scoring `measure`.
    pub fn new(samples: usize, measure: McMeasure) -> Result<Self> {
        if samples == 0 {
            return Err(UncertaintyError::InvalidConfig(
                "mc_dropout needs at least 1 sample".into(),
            ));
        }
        Ok(McDropout {
            samples,
            measure,
            name: format!("mc_dropout:{}", measure.as_str()),
        })
    }

    /// Number of passes it asks for.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// What it measures.
    pub fn measure(&self) -> McMeasure {
        self.measure
    }
}

impl UncertaintyEstimator for McDropout {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn requirements(&self) -> Requirements {
        Requirements::none().with_mc_samples(self.samples)
    }

    fn score(&self, candidate: &Candidate) -> Result<f32> {
        let found = candidate.mc_probs.len();
        if found < self.samples {
            return Err(UncertaintyError::MissingSamples {
                estimator: self.name.clone(),
                needed: self.samples,
                found,
            });
        }
        let passes = candidate
            .mc_probs
            .iter()
            .enumerate()
            .map(|(i, p)| dist::probabilities(p, &format!("mc_probs[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        let k = passes[0].len();
        if let Some(i) = passes.iter().position(|p| p.len() != k) {
            return Err(UncertaintyError::InvalidCandidate(format!(
                "mc_probs[{i}] has {} classes, mc_probs[0] has {k}",
                passes[i].len()
            )));
        }
        let s = passes.len() as f64;
        let mean: Vec<f64> = (0..k)
            .map(|c| passes.iter().map(|p| p[c]).sum::<f64>() / s)
            .collect();
        let value = match self.measure {
            McMeasure::PredictiveEntropy => dist::normalized_entropy(&mean),
            McMeasure::MutualInformation => {
                let bound = dist::max_entropy(k.min(passes.len()));
                if bound <= 0.0 {
                    0.0
                } else {
                    let expected = passes.iter().map(|p| dist::entropy(p)).sum::<f64>() / s;
                    ((dist::entropy(&mean) - expected) / bound).max(0.0)
                }
            }
            McMeasure::Variance => {
                if k <= 1 {
                    0.0
                } else {
                    let total: f64 = (0..k)
                        .map(|c| passes.iter().map(|p| (p[c] - mean[c]).powi(2)).sum::<f64>() / s)
                        .sum();
                    total / (1.0 - 1.0 / k as f64)
                }
            }
        };
        Ok(dist::unit(value))
    }

    fn uniform_is_max(&self) -> bool {
        // Uniform passes have the largest predictive entropy, but no disagreement.
        self.measure == McMeasure::PredictiveEntropy
    }
}
