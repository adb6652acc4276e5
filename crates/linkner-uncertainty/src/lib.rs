//! # linkner-uncertainty
//!
//! Scores how unsure the local tagger is about each candidate entity, so that the linker sends
//! only uncertain entities to the LLM.
//!
//! - [`UncertaintyEstimator`]: the trait (a name, [`Requirements`] on what the tagger must
//!   provide, a score in `[0, 1]` where higher = less sure).
//! - [`builtins`]: [`Confidence`](builtins::Confidence), [`Entropy`](builtins::Entropy),
//!   [`McDropout`](builtins::McDropout) and [`Evidential`](builtins::Evidential), built from a
//!   config file through the serde-tagged [`EstimatorConfig`] (`{"type": "entropy"}`).
//! - [`dist`]: numerically safe helpers (softmax, entropies) for writing estimators.
//! - [`metrics`]: AUROC, AURC, ECE and the routed-fraction → F1 coverage curve;
//!   [`evaluate_estimators`] puts them into a JSON-serialisable [`EstimatorReport`].
//! - [`conformance`]: the suite every estimator, built-in or yours, must pass.
//! - `plot` (feature `plot`): PNG risk–coverage and other curve plots.
//!
//! ```
//! use linkner_uncertainty::{EstimatorConfig, conformance};
//!
//! let estimator = EstimatorConfig::Entropy {}.build().unwrap();
//! conformance::assert_conforms(estimator.as_ref());
//! ```

pub mod builtins;
pub mod config;
pub mod conformance;
pub mod dist;
pub mod error;
pub mod estimator;
pub mod metrics;
#[cfg(feature = "plot")]
pub mod plot;
pub mod report;

pub use config::EstimatorConfig;
pub use error::{Result, UncertaintyError};
pub use estimator::{Requirements, UncertaintyEstimator};
pub use metrics::{CurvePoint, Outcome, RiskCoverage, Scored};
pub use report::{EstimatorReport, evaluate_estimators, judge_sentence};
