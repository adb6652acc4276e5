//! Training losses over span logits: weighted cross-entropy and the evidential (E-NER) loss.

use burn::tensor::activation::{log_softmax, softplus};
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::span::Evidence;

/// The training objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum LossConfig {
    /// Cross-entropy over spans.
    Ce,
    /// Evidential deep learning as in E-NER (Zhang et al. 2023): Dirichlet `alpha = e(logits)
    /// + 1`, the digamma (Bayes) risk of the one-hot target, a KL term to the uniform Dirichlet on
    /// misleading evidence annealed over `anneal_epochs`, and an uncertainty-aware term that
    /// pushes vacuity up on wrong predictions and down on right ones (weight `uncertainty_weight`).
    Evidential {
        /// Evidence function.
        evidence: Evidence,
        /// Epochs over which the KL weight grows linearly from 0 to 1.
        anneal_epochs: f64,
        /// Weight of the uncertainty-aware term.
        uncertainty_weight: f64,
    },
}

impl LossConfig {
    /// Evidential loss with default settings: `exp` evidence, KL weight `min(1, epoch / 10)` as
    /// in Sensoy et al. (2018), uncertainty weight 0.1.
    pub fn evidential() -> Self {
        LossConfig::Evidential {
            evidence: Evidence::Exp,
            anneal_epochs: 10.0,
            uncertainty_weight: 0.1,
        }
    }
}

/// Digamma function, element-wise, for `x > 0` (recurrence to `x + 6`, then the asymptotic
/// series); differentiable through tensor ops.
pub fn digamma<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let mut acc = x.zeros_like();
    let mut z = x;
    for _ in 0..6 {
        acc = acc - z.clone().recip();
        z = z + 1.0;
    }
    let inv = z.clone().recip();
    let inv2 = inv.clone() * inv.clone();
    // ln z - 1/(2z) - 1/(12 z^2) + 1/(120 z^4) - 1/(252 z^6)
    let series =
        inv2.clone() * (inv2.clone() * (inv2.clone() * (-1.0 / 252.0) + 1.0 / 120.0) - 1.0 / 12.0);
    acc + z.log() - inv * 0.5 + series
}

/// Log-gamma function, element-wise, for `x > 0` (recurrence to `x + 6`, then Stirling).
pub fn lgamma<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let mut shift = x.zeros_like();
    let mut z = x;
    for _ in 0..6 {
        shift = shift + z.clone().log();
        z = z + 1.0;
    }
    let inv = z.clone().recip();
    let inv2 = inv.clone() * inv.clone();
    let half_ln_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    // (z - 1/2) ln z - z + ln(2 pi)/2 + 1/(12 z) - 1/(360 z^3) + 1/(1260 z^5)
    let series = inv * (inv2.clone() * (inv2 * (1.0 / 1260.0) - 1.0 / 360.0) + 1.0 / 12.0);
    (z.clone() - 0.5) * z.clone().log() - z + half_ln_2pi + series - shift
}

/// Evidence tensor `e(logits)`.
pub fn evidence(logits: Tensor<2>, kind: Evidence) -> Tensor<2> {
    match kind {
        Evidence::Exp => logits.clamp(-10.0, 10.0).exp(),
        Evidence::Softplus => softplus(logits, 1.0),
    }
}

/// Weighted mean cross-entropy: `sum_i w_i * -log p_i(y_i) / sum_i w_i`.
pub fn weighted_cross_entropy(
    logits: Tensor<2>,
    targets: Tensor<1, Int>,
    weights: Tensor<1>,
) -> Tensor<1> {
    let [n, _] = logits.dims();
    let logp = log_softmax(logits, 1).gather(1, targets.reshape([n, 1]));
    let nll = logp.reshape([n]).neg();
    (nll * weights.clone()).sum() / weights.sum().clamp_min(1e-12)
}

/// The evidential loss (see [`LossConfig::Evidential`]); `progress` is the fractional epoch
/// (for the annealing), `one_hot` the targets `[spans, classes]`.
pub fn evidential_loss(
    logits: Tensor<2>,
    one_hot: Tensor<2>,
    weights: Tensor<1>,
    kind: Evidence,
    kl_weight: f64,
    uncertainty_weight: f64,
) -> Tensor<1> {
    let [n, c] = logits.dims();
    let alpha = evidence(logits, kind) + 1.0;
    let strength = alpha.clone().sum_dim(1); // [n, 1]
    // Bayes risk of cross-entropy: sum_j y_j (psi(S) - psi(alpha_j)).
    let risk = (one_hot.clone() * (digamma(strength.clone()) - digamma(alpha.clone())))
        .sum_dim(1)
        .reshape([n]);
    // KL(Dir(alpha_tilde) || Dir(1)) with the target's evidence removed.
    let alpha_t = one_hot.clone() + (one_hot.clone().neg() + 1.0) * alpha.clone();
    let s_t = alpha_t.clone().sum_dim(1);
    let lgamma_c = lgamma_f64(c as f64);
    let kl = lgamma(s_t.clone()).reshape([n]) - lgamma(alpha_t.clone()).sum_dim(1).reshape([n])
        + ((alpha_t.clone() - 1.0) * (digamma(alpha_t) - digamma(s_t)))
            .sum_dim(1)
            .reshape([n])
        - lgamma_c;
    // Uncertainty-aware term: vacuity u = C / S should be high when the prediction is wrong.
    let u = (strength.recip() * c as f64)
        .reshape([n])
        .clamp(1e-6, 1.0 - 1e-6);
    let pred = alpha.argmax(1); // [n, 1]
    let correct = one_hot.gather(1, pred).reshape([n]); // 1 when argmax is the target
    let unc =
        (correct.clone() * (u.clone().neg() + 1.0).log() + (correct.neg() + 1.0) * u.log()).neg();
    let per_span = risk + kl * kl_weight + unc * uncertainty_weight;
    (per_span * weights.clone()).sum() / weights.sum().clamp_min(1e-12)
}

/// `ln Γ(x)` on the host (same series as [`lgamma`]).
pub fn lgamma_f64(x: f64) -> f64 {
    let mut shift = 0.0;
    let mut z = x;
    for _ in 0..6 {
        shift += z.ln();
        z += 1.0;
    }
    let inv = 1.0 / z;
    let inv2 = inv * inv;
    (z - 0.5) * z.ln() - z
        + 0.5 * (2.0 * std::f64::consts::PI).ln()
        + inv * (1.0 / 12.0 + inv2 * (-1.0 / 360.0 + inv2 / 1260.0))
        - shift
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn t(v: &[f32]) -> Tensor<1> {
        Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &Device::flex())
    }

    #[test]
    fn digamma_and_lgamma_match_known_values() {
        let x = [0.5f32, 1.0, 2.5, 10.0, 123.0];
        // Reference values (torch.digamma / math.lgamma).
        let psi: [f32; 5] = [
            -1.963_51,
            -0.577_215_7,
            0.703_156_6,
            2.251_752_6,
            4.808_118_3,
        ];
        let lg: [f32; 5] = [0.572_364_9, 0.0, 0.284_682_9, 12.801_827, 467.412_2];
        let d: Vec<f32> = digamma(t(&x)).try_into_vec_as::<f32>().unwrap();
        let l: Vec<f32> = lgamma(t(&x)).try_into_vec_as::<f32>().unwrap();
        for i in 0..x.len() {
            assert!(
                (d[i] - psi[i]).abs() < 1e-4,
                "psi({}) = {} != {}",
                x[i],
                d[i],
                psi[i]
            );
            let tol = 1e-4 * lg[i].abs().max(1.0);
            assert!(
                (l[i] - lg[i]).abs() < tol,
                "lgamma({}) = {} != {}",
                x[i],
                l[i],
                lg[i]
            );
            assert!((lgamma_f64(f64::from(x[i])) as f32 - lg[i]).abs() < tol);
        }
    }

    #[test]
    fn cross_entropy_weights_spans() {
        let dev = Device::flex();
        let logits =
            Tensor::<2>::from_data(TensorData::new(vec![2.0f32, 0.0, 0.0, 2.0], [2, 2]), &dev);
        let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 0], [2]), &dev);
        let w = |a: f32, b: f32| Tensor::<1>::from_data(TensorData::new(vec![a, b], [2]), &dev);
        let good = (1.0f32 + (-2.0f32).exp()).ln();
        let bad = (1.0f32 + 2.0f32.exp()).ln();
        let only_first: f32 = weighted_cross_entropy(logits.clone(), targets.clone(), w(1.0, 0.0))
            .try_into_scalar::<f32>()
            .unwrap();
        assert!((only_first - good).abs() < 1e-5);
        let both: f32 = weighted_cross_entropy(logits, targets, w(1.0, 1.0))
            .try_into_scalar::<f32>()
            .unwrap();
        assert!((both - (good + bad) / 2.0).abs() < 1e-5);
    }

    #[test]
    fn evidential_loss_prefers_confident_right_answers() {
        let dev = Device::flex();
        let one_hot = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0], [1, 3]), &dev);
        let w = Tensor::<1>::from_data(TensorData::new(vec![1.0f32], [1]), &dev);
        let loss = |l: [f32; 3]| -> f32 {
            let logits = Tensor::<2>::from_data(TensorData::new(l.to_vec(), [1, 3]), &dev);
            evidential_loss(logits, one_hot.clone(), w.clone(), Evidence::Exp, 1.0, 0.1)
                .try_into_scalar::<f32>()
                .unwrap()
        };
        let right = loss([5.0, -2.0, -2.0]);
        let unsure = loss([0.0, 0.0, 0.0]);
        let wrong = loss([-2.0, 5.0, -2.0]);
        assert!(right < unsure && unsure < wrong, "{right} {unsure} {wrong}");
        assert!(right.is_finite() && wrong.is_finite());
        // Extreme logits stay finite.
        assert!(loss([1e4, -1e4, 0.0]).is_finite());
    }
}
