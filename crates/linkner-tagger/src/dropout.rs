//! Dropout with an explicit switch.
//!
//! burn's `nn::Dropout` is a no-op unless the tensor lives on an autodiff device, which makes
//! Monte-Carlo dropout at inference impossible with it. Every dropout in this crate goes through
//! [`dropout`], whose `active` argument alone decides: on during training and during the
//! stochastic passes of Monte-Carlo dropout, off in the deterministic pass.

use burn::tensor::{Distribution, Tensor};

/// Zeroes each element with probability `p` and scales the rest by `1 / (1 - p)` when `active`;
/// returns `x` unchanged otherwise (or when `p <= 0`).
pub fn dropout<const D: usize>(x: Tensor<D>, p: f64, active: bool) -> Tensor<D> {
    if !active || p <= 0.0 {
        return x;
    }
    let keep = (1.0 - p).max(1e-6);
    let mask = x.random_like(Distribution::Bernoulli(keep));
    x * mask.div_scalar(keep)
}
