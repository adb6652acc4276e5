use linkner_core::Candidate;
use serde::{Deserialize, Serialize};

use crate::dist;
use crate::error::{Result, UncertaintyError};
use crate::estimator::{Requirements, UncertaintyEstimator};

/// What [`Evidential`] measures from the Dirichlet `α` (`K` classes, strength `S = Σ α_k`,
/// beliefs `b_k = (α_k − 1) / S`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidentialMeasure {
    /// Vacuity `u = K / S`: lack of evidence. 1 when there is no evidence (`α = 1`).
    #[default]
    Vacuity,
    /// Dissonance (Jøsang et al. 2018, as in E-NER): conflict between strong pieces of evidence,
    /// `Σ_k b_k · Σ_{j≠k} b_j Bal(b_j, b_k) / Σ_{j≠k} b_j` with
    /// `Bal(x, y) = 1 − |x − y| / (x + y)` (0 when either is 0). In `[0, 1 − u]`.
    Dissonance,
}

impl EvidentialMeasure {
    /// The snake_case name used in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            EvidentialMeasure::Vacuity => "vacuity",
            EvidentialMeasure::Dissonance => "dissonance",
        }
    }
}

/// Evidential uncertainty from the Dirichlet parameters [`Candidate::alpha`] of a tagger
/// trained with the evidential (E-NER) loss. Each `α_k` must be finite and `≥ 1`
/// (evidence + 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidential {
    measure: EvidentialMeasure,
    name: String,
}

impl Evidential {
    /// An estimator scoring `measure`.
    pub fn new(measure: EvidentialMeasure) -> Self {
        Evidential {
            measure,
            name: format!("evidential:{}", measure.as_str()),
        }
    }

    /// What it measures.
    pub fn measure(&self) -> EvidentialMeasure {
        self.measure
    }
}

impl Default for Evidential {
    fn default() -> Self {
        Evidential::new(EvidentialMeasure::default())
    }
}

/// Tolerance below 1 accepted for `α_k` (rounding of `softplus(x) + 1`).
const ALPHA_TOLERANCE: f32 = 1e-4;

impl UncertaintyEstimator for Evidential {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn requirements(&self) -> Requirements {
        Requirements::none().with_alpha()
    }

    fn score(&self, candidate: &Candidate) -> Result<f32> {
        let alpha = candidate
            .alpha
            .as_ref()
            .ok_or_else(|| UncertaintyError::MissingAlpha {
                estimator: self.name.clone(),
            })?;
        if alpha.is_empty() {
            return Err(UncertaintyError::InvalidCandidate("alpha is empty".into()));
        }
        if let Some(i) = alpha
            .iter()
            .position(|a| !a.is_finite() || *a < 1.0 - ALPHA_TOLERANCE)
        {
            return Err(UncertaintyError::InvalidCandidate(format!(
                "alpha[{i}] is {} (Dirichlet parameters must be finite and >= 1)",
                alpha[i]
            )));
        }
        let alpha: Vec<f64> = alpha.iter().map(|&a| f64::from(a).max(1.0)).collect();
        let k = alpha.len() as f64;
        let strength: f64 = alpha.iter().sum();
        let value = match self.measure {
            EvidentialMeasure::Vacuity => k / strength,
            EvidentialMeasure::Dissonance => {
                let belief: Vec<f64> = alpha.iter().map(|a| (a - 1.0) / strength).collect();
                dissonance(&belief)
            }
        };
        Ok(dist::unit(value))
    }

    fn uniform_is_max(&self) -> bool {
        // No evidence (α = 1) is the most vacuous, but it has no conflicting evidence.
        self.measure == EvidentialMeasure::Vacuity
    }
}

fn balance(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        1.0 - (x - y).abs() / (x + y)
    } else {
        0.0
    }
}

fn dissonance(belief: &[f64]) -> f64 {
    let mut total = 0.0;
    for (k, &bk) in belief.iter().enumerate() {
        let (mut num, mut den) = (0.0, 0.0);
        for (j, &bj) in belief.iter().enumerate() {
            if j != k {
                num += bj * balance(bj, bk);
                den += bj;
            }
        }
        if den > 0.0 {
            total += bk * num / den;
        }
    }
    total
}
