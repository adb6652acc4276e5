//! The [`LocalTagger`] trait: what any local NER model gives the linker, with no ML dependency.
//!
//! The built-in implementations live in `linkner-tagger` (a burn SpanNER model, a Hugging Face
//! token-classification model); a program that brings its own tagger implements this trait and
//! needs nothing heavier than this crate.

use std::path::PathBuf;

use crate::candidate::Candidate;
use crate::error::CoreError;
use crate::schema::LabelSchema;
use crate::text::{Document, Sentence};
use crate::words::sentence_from_text;

/// Result alias of taggers.
pub type Result<T, E = TaggerError> = std::result::Result<T, E>;

pub use crate::error::BoxError;

/// How a tagger turns span scores into candidates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictOptions {
    /// Number of stochastic (dropout-on) passes for Monte-Carlo dropout; 0 for none. Each
    /// candidate then carries one probability vector per pass in `mc_probs`.
    pub mc_samples: usize,
    /// Also run the encoder with dropout in the stochastic passes (slower: one encoder pass per
    /// sample); by default only the classifier is stochastic.
    pub mc_encoder: bool,
    /// Return every span classified as an entity, overlaps included, instead of the greedy
    /// non-overlapping selection.
    pub overlapping: bool,
    /// Sentences per forward pass (an encoder window counts the sentences whose spans it
    /// owns: one, or several with document context).
    pub batch_size: usize,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            mc_samples: 0,
            mc_encoder: false,
            overlapping: false,
            batch_size: 32,
        }
    }
}

/// A local NER model: sentences in, candidate entities with their full label distributions out.
///
/// Class indices follow the tagger's [`LabelSchema`]: 0 is the non-entity class. Candidates
/// carry char offsets into each sentence's text and a probability for every class, which is what
/// the uncertainty estimators and the linker's merge policies read.
///
/// ```
/// use linkner_core::tagger::{LocalTagger, PredictOptions, Result};
/// use linkner_core::{Candidate, LabelSchema, Sentence};
///
/// /// Tags nothing: the smallest valid tagger.
/// struct Nothing(LabelSchema);
///
/// impl LocalTagger for Nothing {
///     fn schema(&self) -> &LabelSchema {
///         &self.0
///     }
///     fn tag_sentences(&self, s: &[Sentence], _: &PredictOptions) -> Result<Vec<Vec<Candidate>>> {
///         Ok(vec![Vec::new(); s.len()])
///     }
/// }
///
/// let t = Nothing(LabelSchema::conll03());
/// let out = t.tag_texts(&["Zoë lives in Köln."], &PredictOptions::default()).unwrap();
/// assert_eq!(out[0].0.text, "Zoë lives in Köln.");
/// ```
pub trait LocalTagger {
    /// The label schema of the model's classes.
    fn schema(&self) -> &LabelSchema;

    /// Candidates of each sentence (words and char offsets are those of the sentence), in order
    /// of their first word. The i-th result answers the i-th sentence.
    fn tag_sentences(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>>;

    /// Splits raw texts into words (see [`crate::words`]) and tags them; char offsets point
    /// into the given texts.
    fn tag_texts(
        &self,
        texts: &[&str],
        options: &PredictOptions,
    ) -> Result<Vec<(Sentence, Vec<Candidate>)>> {
        let sentences: Vec<Sentence> = texts.iter().map(|t| sentence_from_text(t)).collect();
        let cands = self.tag_sentences(&sentences, options)?;
        Ok(sentences.into_iter().zip(cands).collect())
    }

    /// Candidates of each sentence of each document: the result answers
    /// `documents[d].sentences[i]` at `[d][i]`. A tagger that uses document context (the
    /// SpanNER tagger of `linkner-tagger` with a `DocumentContext`) reads the sentences of a
    /// document together; the default tags all the sentences with
    /// [`LocalTagger::tag_sentences`] in one call and regroups them by document.
    fn tag_documents(
        &self,
        documents: &[Document],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Vec<Candidate>>>> {
        let flat: Vec<Sentence> = documents
            .iter()
            .flat_map(|d| d.sentences.iter().cloned())
            .collect();
        let mut cands = self.tag_sentences(&flat, options)?.into_iter();
        Ok(documents
            .iter()
            .map(|d| cands.by_ref().take(d.sentences.len()).collect())
            .collect())
    }
}

/// Forwards every method of [`LocalTagger`] through a smart pointer (`Box`, `Arc`), so that a
/// boxed or shared tagger is a tagger and keeps the inner one's overrides.
macro_rules! forward_local_tagger {
    ($($pointer:ident)::+) => {
        impl<T: LocalTagger + ?Sized> LocalTagger for $($pointer)::+<T> {
            fn schema(&self) -> &LabelSchema {
                (**self).schema()
            }

            fn tag_sentences(
                &self,
                sentences: &[Sentence],
                options: &PredictOptions,
            ) -> Result<Vec<Vec<Candidate>>> {
                (**self).tag_sentences(sentences, options)
            }

            fn tag_texts(
                &self,
                texts: &[&str],
                options: &PredictOptions,
            ) -> Result<Vec<(Sentence, Vec<Candidate>)>> {
                (**self).tag_texts(texts, options)
            }

            fn tag_documents(
                &self,
                documents: &[Document],
                options: &PredictOptions,
            ) -> Result<Vec<Vec<Vec<Candidate>>>> {
                (**self).tag_documents(documents, options)
            }
        }
    };
}

forward_local_tagger!(Box);
forward_local_tagger!(std::sync::Arc);

/// Every failure of a local tagger. Bad input (a missing file, a config the encoder cannot run,
/// an unknown label, a checkpoint without some weights) is reported here, never by a panic. A
/// tagger written outside linkner reports its own failures as [`TaggerError::Backend`].
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
    /// The encoder's `config.json` describes something the tagger cannot run.
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
    Core(#[from] CoreError),
    /// A failure of a tagger written outside linkner: its own message, and its error when it
    /// has one.
    #[error("{message}")]
    Backend {
        /// What went wrong, for people.
        message: String,
        /// The tagger's own error.
        #[source]
        source: Option<BoxError>,
    },
}

impl TaggerError {
    /// An [`TaggerError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TaggerError::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`TaggerError::Tensor`] from any displayable error.
    pub fn tensor(e: impl std::fmt::Display) -> Self {
        TaggerError::Tensor(e.to_string())
    }

    /// A [`TaggerError::Backend`] from a custom tagger's own error.
    pub fn backend(error: impl Into<BoxError>) -> Self {
        let source: BoxError = error.into();
        TaggerError::Backend {
            message: source.to_string(),
            source: Some(source),
        }
    }
}
