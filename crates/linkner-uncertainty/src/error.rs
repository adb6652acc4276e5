//! The one error type of `linkner-uncertainty`.

use linkner_core::BoxError;

/// Result alias of this crate.
pub type Result<T, E = UncertaintyError> = std::result::Result<T, E>;

/// Every failure of `linkner-uncertainty`. Bad input (a candidate without what an estimator
/// needs, a non-finite logit, an empty metric set) is reported here, never by a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UncertaintyError {
    /// The candidate carries fewer Monte-Carlo samples than the estimator asked for.
    #[error(
        "estimator `{estimator}` needs {needed} Monte-Carlo samples per candidate, found {found}; \
         ask the tagger for that many stochastic passes (see `Requirements::mc_samples`)"
    )]
    MissingSamples {
        /// Name of the estimator.
        estimator: String,
        /// Samples it needs.
        needed: usize,
        /// Samples the candidate has.
        found: usize,
    },
    /// The candidate has no Dirichlet parameters but the estimator needs them.
    #[error(
        "estimator `{estimator}` needs Dirichlet parameters (`Candidate::alpha`); use a tagger \
         trained with the evidential loss"
    )]
    MissingAlpha {
        /// Name of the estimator.
        estimator: String,
    },
    /// The candidate's distribution is unusable (empty, non-finite, negative, not summing to 1,
    /// inconsistent lengths).
    #[error("invalid candidate: {0}")]
    InvalidCandidate(String),
    /// An estimator configuration that cannot be built.
    #[error("invalid estimator configuration: {0}")]
    InvalidConfig(String),
    /// Metric input that cannot be scored (empty, non-finite score, inconsistent counts).
    #[error("invalid metric input: {0}")]
    InvalidInput(String),
    /// A metric that is not defined on this input (e.g. AUROC when no prediction is wrong).
    #[error("{metric} is undefined: {reason}")]
    Undefined {
        /// Metric name.
        metric: &'static str,
        /// Why.
        reason: String,
    },
    /// An estimator failed while a report was being built.
    #[error("estimator `{estimator}` failed on candidate {index}: {source}")]
    Estimator {
        /// Name of the estimator.
        estimator: String,
        /// Index of the candidate in the input.
        index: usize,
        /// What went wrong.
        #[source]
        source: Box<UncertaintyError>,
    },
    /// Drawing a plot failed.
    #[error("plot {}: {message}", path.display())]
    Plot {
        /// File being written.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A failure of an estimator written outside linkner: its own message, and its error.
    #[error("{message}")]
    Backend {
        /// What went wrong, for people.
        message: String,
        /// The estimator's own error.
        #[source]
        source: Option<BoxError>,
    },
}

impl UncertaintyError {
    /// An estimator's own failure — the one constructor for errors of an
    /// [`UncertaintyEstimator`](crate::UncertaintyEstimator) written outside linkner, as
    /// `TaggerError::backend` and `LlmError::backend` are for the other two traits. `error` is
    /// any error (kept as the source) or a message; the error's text is the message.
    pub fn backend(error: impl Into<BoxError>) -> Self {
        let source: BoxError = error.into();
        UncertaintyError::Backend {
            message: source.to_string(),
            source: Some(source),
        }
    }
}
