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
    Build(#[from] BuildError),
    /// A routing policy with parameters out of range (or naming types the schema lacks).
    #[error("routing policy: {0}")]
    Policy(String),
    /// The local tagger failed.
    #[error("local tagger: {0}")]
    Tagger(#[from] linkner_core::TaggerError),
    /// The local tagger returned something that breaks its contract: a wrong number of
    /// results, a changed text, an offset outside the text, a class outside the schema.
    #[error(
        "local tagger output, document {document}{}: {violation}",
        candidate.as_ref().map(|c| format!(", candidate {c:?}")).unwrap_or_default()
    )]
    TaggerContract {
        /// Index of the document (text, sentence or document) in the call.
        document: usize,
        /// The offending candidate's text, when one candidate broke it.
        candidate: Option<String>,
        /// What was broken.
        violation: TaggerViolation,
    },
    /// The uncertainty estimator failed on a candidate (e.g. an evidential estimator on a tagger
    /// that gives no Dirichlet parameters).
    #[error("uncertainty estimator: {0}")]
    Estimator(#[from] linkner_uncertainty::UncertaintyError),
    /// The uncertainty estimator returned something that breaks its contract: a score outside
    /// `[0, 1]` or not a number, or a wrong number of scores from `score_batch`.
    #[error("uncertainty estimator `{estimator}`: {violation}")]
    EstimatorContract {
        /// Estimator name.
        estimator: String,
        /// What was broken.
        violation: EstimatorViolation,
    },
    /// Annotations scored against gold sentences that are not theirs: another number of
    /// sentences, or a sentence with another number of words.
    #[error("{}", gold_mismatch(*.gold, *.annotations, *.sentence))]
    GoldMismatch {
        /// Gold sentences (or, with `sentence`, words of that gold sentence).
        gold: usize,
        /// Annotations (or, with `sentence`, words of its annotation).
        annotations: usize,
        /// The sentence whose words differ, when the counts of sentences agree.
        sentence: Option<usize>,
    },
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
    /// The configuration file is not valid JSON of the expected shape: the file, the line and
    /// column, and the field (`llm.timeout_s`) where reading stopped.
    #[error(
        "{}:{line}:{column}: {}{}",
        path.display(),
        if field.is_empty() || field == "." { String::new() } else { format!("`{field}`: ") },
        without_position(source)
    )]
    Json {
        /// The file (`<memory>` for [`LinkConfig::from_json`](crate::LinkConfig::from_json)).
        path: PathBuf,
        /// The field's path, dotted (`llm.timeout_s`, `policy.thresholds.LOC`); empty or `.`
        /// when the error is at the top level.
        field: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
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

impl LinkError {
    /// No annotation came back for document `document` of a call.
    pub(crate) fn missing(document: usize) -> LinkError {
        LinkError::TaggerContract {
            document,
            candidate: None,
            violation: TaggerViolation::Missing,
        }
    }
}

/// serde_json's message without its " at line L column C" (the variant shows them first).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_string()
}

fn gold_mismatch(gold: usize, annotations: usize, sentence: Option<usize>) -> String {
    match sentence {
        None => format!("{annotations} annotations for {gold} gold sentences"),
        Some(i) => format!("annotation {i} has {annotations} words, its gold sentence {gold}"),
    }
}

/// Why [`PipelineBuilder::build`](crate::PipelineBuilder::build) (or a stream's options)
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No local tagger was given.
    #[error("no local tagger given")]
    NoTagger,
    /// No uncertainty estimator was given.
    #[error("no uncertainty estimator given")]
    NoEstimator,
    /// The tagger's schema has no entity types.
    #[error("the tagger's schema `{schema}` has no entity types")]
    EmptySchema {
        /// The schema's name.
        schema: String,
    },
    /// The routing policy can send entities to an LLM but none was given.
    #[error(
        "the routing policy sends entities to an LLM but no LLM classifier was given (give \
         one, or use the `never` policy for the local tagger alone)"
    )]
    RoutesWithoutLlm,
    /// Stream options out of range.
    #[error("stream options: {0}")]
    StreamOptions(String),
}

/// What part of its contract a tagger's output broke (see [`LinkError::TaggerContract`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaggerViolation {
    /// Another number of results than inputs (or, in a document, of sentences).
    #[error("{got} results for {expected} inputs")]
    Count {
        /// Inputs given.
        expected: usize,
        /// Results returned.
        got: usize,
    },
    /// The tagger changed the text, so offsets would not point into the caller's string.
    #[error("the tagger changed the text; offsets must point into the caller's original string")]
    TextChanged,
    /// No annotation came back for the document.
    #[error("no annotation for the document")]
    Missing,
    /// A class outside the schema's entity types.
    #[error("class {class}, expected 1..{classes} (schema `{schema}`)")]
    Class {
        /// The class returned.
        class: usize,
        /// Classes of the schema (0 is "not an entity").
        classes: usize,
        /// The schema's name.
        schema: String,
    },
    /// Char offsets that do not match the text.
    #[error("chars [{start}, {end}) do not match the text")]
    Offsets {
        /// Start char.
        start: usize,
        /// End char.
        end: usize,
    },
    /// A word span outside the sentence.
    #[error("word span [{start}, {end}) in a sentence of {words} words")]
    WordSpan {
        /// First word.
        start: usize,
        /// One past the last word.
        end: usize,
        /// Words of the sentence.
        words: usize,
    },
    /// Class probabilities of another length than the schema's classes.
    #[error("{got} class probabilities, schema `{schema}` has {classes} classes")]
    Probabilities {
        /// Probabilities returned.
        got: usize,
        /// Classes of the schema.
        classes: usize,
        /// The schema's name.
        schema: String,
    },
}

/// What part of its contract an estimator's output broke (see
/// [`LinkError::EstimatorContract`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EstimatorViolation {
    /// A score outside `[0, 1]` or not a number.
    #[error("returned {score}, expected a score in [0, 1]")]
    Score {
        /// The score returned.
        score: f32,
    },
    /// Another number of scores than candidates from `score_batch`.
    #[error("returned {got} scores for {expected} candidates")]
    Count {
        /// Candidates given.
        expected: usize,
        /// Scores returned.
        got: usize,
    },
}
