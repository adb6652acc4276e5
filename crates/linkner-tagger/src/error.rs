//! The one error type of `linkner-tagger`.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = TaggerError> = std::result::Result<T, E>;

/// Every failure of `linkner-tagger`. Bad input (a missing file, a config the encoder cannot
/// run, an unknown label, an encoder checkpoint without some weights) is reported here, never
/// by a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaggerError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (config, label schema) is malformed.
    #[error("{}: JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The encoder's `config.json` describes something this crate cannot run.
    #[error("unsupported encoder config: {0}")]
    UnsupportedConfig(String),
    /// The tokenizer could not be loaded or failed on an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Reading or writing weights failed (safetensors, key remapping, shapes).
    #[error("weights {}: {message}", path.display())]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The checkpoint lacks encoder weights the model needs.
    #[error("weights {}: {} encoder tensor(s) missing: {}", path.display(), missing.len(), missing.join(", "))]
    MissingWeights {
        /// The weights file.
        path: PathBuf,
        /// Burn paths of the tensors the file did not provide.
        missing: Vec<String>,
    },
    /// A label that the model's schema does not know.
    #[error("label `{label}` is not in schema `{schema}` (expected one of: {expected})")]
    UnknownLabel {
        /// The label.
        label: String,
        /// Schema name.
        schema: String,
        /// Allowed labels.
        expected: String,
    },
    /// A checkpoint folder that cannot be used as it is (e.g. a token-classification
    /// `config.json` whose `id2label` is not a BIO/IOBES label set).
    #[error("{}: {message}", path.display())]
    Checkpoint {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
    /// An argument is out of its valid range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A device name could not be parsed or the device is not available in this build.
    #[error("device `{name}`: {message}")]
    Device {
        /// The name given.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor could not be read back from the device.
    #[error("tensor read-back: {0}")]
    Tensor(String),
    /// An error of `linkner-core` (readers, schemas, spans).
    #[error(transparent)]
    Core(#[from] linkner_core::CoreError),
}

impl TaggerError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TaggerError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn tensor(e: impl std::fmt::Display) -> Self {
        TaggerError::Tensor(e.to_string())
    }
}
