//! Numerically safe helpers over class distributions, public so that custom estimators can use
//! them: probabilities from logits through log-sum-exp in `f64`, validation of probability
//! vectors, entropies.

use linkner_core::Candidate;

use crate::error::{Result, UncertaintyError};

/// Tolerance on `Σp = 1` for probability vectors given by a tagger.
pub const SUM_TOLERANCE: f64 = 1e-3;

/// Softmax of `logits` in `f64` through log-sum-exp: exact for logits of any finite magnitude
/// (±1e4 included). Errors on an empty vector or a non-finite logit; the arithmetic is
/// [`linkner_core::prob::softmax`], the one softmax of linkner.
pub fn softmax(logits: &[f32]) -> Result<Vec<f64>> {
    if logits.is_empty() {
        return Err(UncertaintyError::InvalidCandidate("empty logits".into()));
    }
    if let Some(i) = logits.iter().position(|x| !x.is_finite()) {
        return Err(UncertaintyError::InvalidCandidate(format!(
            "logit {i} is {} (logits must be finite)",
            logits[i]
        )));
    }
    Ok(linkner_core::prob::softmax(logits))
}

/// Checks that `probs` is a probability vector (non-empty, finite, non-negative, summing to 1
/// within [`SUM_TOLERANCE`]) and returns it renormalised in `f64`. `what` names the vector in
/// the error message.
pub fn probabilities(probs: &[f32], what: &str) -> Result<Vec<f64>> {
    if probs.is_empty() {
        return Err(UncertaintyError::InvalidCandidate(format!(
            "{what} is empty"
        )));
    }
    if let Some(i) = probs.iter().position(|p| !p.is_finite() || *p < 0.0) {
        return Err(UncertaintyError::InvalidCandidate(format!(
            "{what}[{i}] is {} (probabilities must be finite and non-negative)",
            probs[i]
        )));
    }
    let sum: f64 = probs.iter().map(|&p| f64::from(p)).sum();
    if (sum - 1.0).abs() > SUM_TOLERANCE {
        return Err(UncertaintyError::InvalidCandidate(format!(
            "{what} sums to {sum}, expected 1"
        )));
    }
    Ok(probs.iter().map(|&p| f64::from(p) / sum).collect())
}

/// The candidate's class distribution (non-entity + types) in `f64`: the softmax of
/// [`Candidate::logits`] when present (more accurate at extreme logits), else
/// [`Candidate::probs`] validated by [`probabilities`].
pub fn class_probs(candidate: &Candidate) -> Result<Vec<f64>> {
    if !candidate.logits.is_empty() {
        softmax(&candidate.logits)
    } else if !candidate.probs.is_empty() {
        probabilities(&candidate.probs, "probs")
    } else {
        Err(UncertaintyError::InvalidCandidate(
            "candidate has neither logits nor probs".into(),
        ))
    }
}

/// Shannon entropy in nats, `-Σ p ln p` (terms with `p = 0` are 0).
pub fn entropy(probs: &[f64]) -> f64 {
    probs
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| -p * p.ln())
        .sum::<f64>()
        .max(0.0)
}

/// `ln K` for `K` classes: the largest entropy of a `K`-class distribution.
pub fn max_entropy(num_classes: usize) -> f64 {
    (num_classes.max(1) as f64).ln()
}

/// Entropy divided by `ln K`, in `[0, 1]`; `0` when there is a single class (nothing to be
/// unsure about).
pub fn normalized_entropy(probs: &[f64]) -> f64 {
    let max = max_entropy(probs.len());
    if max <= 0.0 {
        return 0.0;
    }
    (entropy(probs) / max).clamp(0.0, 1.0)
}

/// Clamps `x` into `[0, 1]` and converts it to `f32` (a NaN becomes `1`, the most uncertain
/// value, so that a buggy computation never silently looks confident).
pub fn unit(x: f64) -> f32 {
    if x.is_nan() {
        1.0
    } else {
        x.clamp(0.0, 1.0) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_of_extreme_logits_is_finite_and_normalised() {
        let p = softmax(&[1e4, -1e4, 0.0]).unwrap();
        assert!(p.iter().all(|x| x.is_finite()));
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(p[0], 1.0);
    }

    #[test]
    fn probabilities_reject_bad_vectors() {
        assert!(probabilities(&[], "p").is_err());
        assert!(probabilities(&[0.5, f32::NAN], "p").is_err());
        assert!(probabilities(&[1.5, -0.5], "p").is_err());
        assert!(probabilities(&[0.2, 0.2], "p").is_err());
        let p = probabilities(&[0.25, 0.75], "p").unwrap();
        assert!((p[1] - 0.75).abs() < 1e-12);
    }

    #[test]
    fn entropy_of_uniform_is_ln_k() {
        let p = vec![0.25; 4];
        assert!((entropy(&p) - 4f64.ln()).abs() < 1e-12);
        assert!((normalized_entropy(&p) - 1.0).abs() < 1e-12);
        assert_eq!(normalized_entropy(&[1.0]), 0.0);
        assert_eq!(unit(f64::NAN), 1.0);
        assert_eq!(unit(1.5), 1.0);
    }
}
