//! The built-in estimators: [`Confidence`], [`Entropy`], [`McDropout`] and [`Evidential`].
//! Build them directly or from an [`EstimatorConfig`](crate::EstimatorConfig).

mod confidence;
mod entropy;
mod evidential;
mod mc_dropout;

pub use confidence::Confidence;
pub use entropy::Entropy;
pub use evidential::{Evidential, EvidentialMeasure};
pub use mc_dropout::{McDropout, McMeasure};
