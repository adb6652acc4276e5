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

/// [`softmax`] rounded to `f32`.
pub fn softmax_f32(logits: &[f32]) -> Vec<f32> {
    softmax(logits).into_iter().map(|p| p as f32).collect()
}

/// Index of the largest entry, the first one on ties; `None` for an empty slice. A `NaN` entry
/// is never chosen over an earlier number.
pub fn argmax(v: &[f32]) -> Option<usize> {
    argmax_from(v, 0)
}

/// Index of the largest entry at or after `from` (e.g. `1` to skip "not an entity"), the
/// first one on ties; `None` when there is no entry from there.
pub fn argmax_from(v: &[f32], from: usize) -> Option<usize> {
    (from..v.len()).fold(None, |best, i| match best {
        Some(b) if v[i] > v[b] => Some(i),
        Some(b) => Some(b),
        None => Some(i),
    })
}

/// `ln(Σ exp(x))` of `xs`, shifted by their maximum so that it is exact at any finite
/// magnitude; `-inf` for no entries (or all `-inf`), `+inf` / `NaN` when an entry is.
pub fn log_sum_exp(xs: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = xs.clone().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + xs.map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Log-softmax of `xs` (`x − log_sum_exp(xs)`), in `f64`.
pub fn log_softmax(xs: impl Iterator<Item = f64> + Clone) -> Vec<f64> {
    let lse = log_sum_exp(xs.clone());
    xs.map(|x| x - lse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_ties_and_skips_what_is_before_from() {
        assert_eq!(argmax(&[]), None);
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), Some(1));
        assert_eq!(argmax(&[0.9, 0.05, 0.05]), Some(0));
        assert_eq!(argmax_from(&[0.9, 0.05, 0.06], 1), Some(2));
        assert_eq!(argmax_from(&[0.9], 1), None);
        assert_eq!(argmax(&[0.2, f32::NAN, 0.1]), Some(0));
    }

    #[test]
    fn log_sum_exp_and_log_softmax_are_exact_at_extremes() {
        let xs = [1e4_f64, 1e4, -1e4];
        let lse = log_sum_exp(xs.iter().copied());
        assert!((lse - (1e4 + 2f64.ln())).abs() < 1e-9, "{lse}");
        let ls = log_softmax(xs.iter().copied());
        assert!((ls[0] + 2f64.ln()).abs() < 1e-12 && ls[2] < -1e4);
        let total: f64 = log_softmax([0.5, -1.0, 2.0].into_iter())
            .iter()
            .map(|l| l.exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert_eq!(log_sum_exp(std::iter::empty()), f64::NEG_INFINITY);
    }

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
