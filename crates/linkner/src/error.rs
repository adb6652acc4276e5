//! The one error type of `linkner`.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = LinkError> = std::result::Result<T, E>;

/// Every failure of the linker. LLM failures are **not** errors of the pipeline: they end in
/// [`Provenance::LlmFailed`](crate::Provenance::LlmFailed) with the local label kept. What is
/// left here is what makes a document impossible to annotate (the local tagger failed, the
/// estimator rejected a candidate) and configuration mistakes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The builder lacks a component, or a component does not fit the others.
    #[error("pipeline: {0}")]
    Build(String),
    /// A routing policy with parameters out of range (or naming types the schema lacks).
    #[error("routing policy: {0}")]
    Policy(String),
    /// The local tagger failed.
    #[error("local tagger: {0}")]
    Tagger(#[from] linkner_core::TaggerError),
    /// The local tagger returned something that breaks its contract (a wrong number of
    /// sentences, a changed text, an offset outside the text, a class outside the schema).
    #[error("local tagger output: {0}")]
    TaggerOutput(String),
    /// The uncertainty estimator failed on a candidate (e.g. an evidential estimator on a tagger
    /// that gives no Dirichlet parameters).
    #[error("uncertainty estimator: {0}")]
    Estimator(#[from] linkner_uncertainty::UncertaintyError),
    /// The uncertainty estimator returned a score outside `[0, 1]` or not a number.
    #[error("uncertainty estimator `{estimator}` returned {score}, expected a score in [0, 1]")]
    InvalidScore {
        /// Estimator name.
        estimator: String,
        /// The score it returned.
        score: f32,
    },
    /// The uncertainty estimator returned a wrong number of scores from `score_batch`.
    #[error("uncertainty estimator output: {0}")]
    EstimatorOutput(String),
    /// Building the LLM backend failed.
    #[error("LLM backend: {0}")]
    Llm(#[from] linkner_llm::LlmError),
    /// A worker task panicked or was cancelled (the tagger runs on tokio's blocking pool).
    #[error("worker task: {0}")]
    Task(String),
    /// The configuration file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid JSON of the expected shape.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The configuration is well-formed but a value is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// An error of `linkner-core`.
    #[error(transparent)]
    Core(#[from] linkner_core::CoreError),
}
