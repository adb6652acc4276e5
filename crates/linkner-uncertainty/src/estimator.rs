//! The [`UncertaintyEstimator`] trait and what an estimator needs from the tagger
//! ([`Requirements`]).

use std::sync::Arc;

use linkner_core::Candidate;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// What an estimator needs the tagger to put into each [`Candidate`] besides the deterministic
/// logits and probabilities.
///
/// ```
/// use linkner_uncertainty::Requirements;
/// let r = Requirements::none().with_mc_samples(10).with_alpha();
/// assert_eq!(r.mc_samples, 10);
/// assert!(r.needs_alpha);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Requirements {
    /// Number of stochastic (dropout-on) forward passes whose probabilities must be in
    /// [`Candidate::mc_probs`]; `0` when none are needed.
    pub mc_samples: usize,
    /// Whether [`Candidate::alpha`] (Dirichlet parameters of an evidential-trained tagger) must be
    /// present.
    pub needs_alpha: bool,
}

impl Requirements {
    /// Nothing beyond the deterministic pass.
    pub fn none() -> Self {
        Requirements::default()
    }

    /// Also asks for `n` Monte-Carlo samples.
    pub fn with_mc_samples(mut self, n: usize) -> Self {
        self.mc_samples = n;
        self
    }

    /// Also asks for Dirichlet parameters.
    pub fn with_alpha(mut self) -> Self {
        self.needs_alpha = true;
        self
    }

    /// What a tagger must produce to serve both `self` and `other` (the larger sample count,
    /// alpha if either needs it).
    pub fn union(self, other: Requirements) -> Requirements {
        Requirements {
            mc_samples: self.mc_samples.max(other.mc_samples),
            needs_alpha: self.needs_alpha || other.needs_alpha,
        }
    }
}

/// Scores how unsure the tagger is about one candidate entity.
///
/// The score is in `[0, 1]`; **higher means less sure**. The linker routes candidates whose
/// score is above its threshold to the LLM.
///
/// Implementations must never panic on bad input: a candidate that lacks what
/// [`requirements`](UncertaintyEstimator::requirements) declares, or that has non-finite or
/// empty distributions, gets an [`UncertaintyError`](crate::UncertaintyError). Check a new
/// estimator with [`conformance::check`](crate::conformance::check).
///
/// A complete custom estimator (the margin between the two most probable classes):
///
/// ```
/// use linkner_core::Candidate;
/// use linkner_uncertainty::{dist, Result, UncertaintyEstimator};
///
/// struct Margin;
///
/// impl UncertaintyEstimator for Margin {
///     fn name(&self) -> String {
///         "margin".into()
///     }
///     fn score(&self, candidate: &Candidate) -> Result<f32> {
///         let mut p = dist::class_probs(candidate)?;
///         p.sort_by(|a, b| b.total_cmp(a));
///         let margin = p[0] - p.get(1).copied().unwrap_or(0.0);
///         Ok(dist::unit(1.0 - margin))
///     }
///     fn uniform_is_max(&self) -> bool {
///         true
///     }
/// }
///
/// linkner_uncertainty::conformance::assert_conforms(&Margin);
/// ```
pub trait UncertaintyEstimator: Send + Sync {
    /// A short, unique name (used in reports and on the command line). Every trait of linkner
    /// names its implementations the same way (`LlmClassifier::name`, `ExampleRetriever::name`):
    /// an owned `String`, so that a wrapper can build its name from what it wraps.
    fn name(&self) -> String;

    /// What the tagger must provide in each candidate. Default: nothing beyond the
    /// deterministic logits and probabilities.
    fn requirements(&self) -> Requirements {
        Requirements::none()
    }

    /// The uncertainty of `candidate`, in `[0, 1]`, higher = less sure.
    fn score(&self, candidate: &Candidate) -> Result<f32>;

    /// Scores many candidates; stops at the first error.
    fn score_batch(&self, candidates: &[Candidate]) -> Result<Vec<f32>> {
        candidates.iter().map(|c| self.score(c)).collect()
    }

    /// Declares that the score depends only on the class distribution and is highest at the
    /// uniform one (all logits equal, all Monte-Carlo samples uniform, all Dirichlet parameters
    /// 1). The conformance suite checks it when `true`. Default: `false`.
    fn uniform_is_max(&self) -> bool {
        false
    }

    /// Declares that the same candidate always gets the same score (no sampling inside the
    /// estimator). The conformance suite checks it when `true`. Default: `true`.
    fn is_deterministic(&self) -> bool {
        true
    }
}

macro_rules! forward_estimator {
    ($ty:ty) => {
        impl<T: UncertaintyEstimator + ?Sized> UncertaintyEstimator for $ty {
            fn name(&self) -> String {
                (**self).name()
            }
            fn requirements(&self) -> Requirements {
                (**self).requirements()
            }
            fn score(&self, candidate: &Candidate) -> Result<f32> {
                (**self).score(candidate)
            }
            fn score_batch(&self, candidates: &[Candidate]) -> Result<Vec<f32>> {
                (**self).score_batch(candidates)
            }
            fn uniform_is_max(&self) -> bool {
                (**self).uniform_is_max()
            }
            fn is_deterministic(&self) -> bool {
                (**self).is_deterministic()
            }
        }
    };
}

forward_estimator!(Box<T>);
forward_estimator!(Arc<T>);
forward_estimator!(&T);
