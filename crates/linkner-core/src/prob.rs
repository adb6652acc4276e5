//! Probability helpers shared by every crate of linkner (one implementation, so that the tagger,
//! the estimators and the merge of the linker agree to the last bit).

/// Softmax of `logits`, computed through log-sum-exp in `f64`: exact for finite logits of any
/// magnitude (±1e4 included). An empty input gives an empty output; a non-finite logit gives
/// `NaN`s (callers that take logits from users validate them first, as
/// `linkner_uncertainty::dist::class_probs` does).
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits
        .iter()
        .map(|&x| f64::from(x))
        .fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|&x| (f64::from(x) - max).exp()).collect();
    // The maximum contributes exp(0) = 1, so the sum is in [1, K]: no division by zero.
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::softmax;

    #[test]
    fn softmax_is_normalised_ordered_and_safe_at_extremes() {
        let p = softmax(&[1e4, -1e4, 0.0]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p[0] > 0.999 && p[1] >= 0.0 && p[1] < 1e-300_f64.max(p[2]));
        let q = softmax(&[1.0, 2.0, 3.0]);
        let z: f64 = [1.0f64, 2.0, 3.0].iter().map(|x| x.exp()).sum();
        for (i, x) in [1.0f64, 2.0, 3.0].iter().enumerate() {
            assert!((q[i] - x.exp() / z).abs() < 1e-12);
        }
        assert!(softmax(&[]).is_empty());
        assert!(softmax(&[f32::NAN, 1.0]).iter().all(|x| x.is_nan()));
    }
}
