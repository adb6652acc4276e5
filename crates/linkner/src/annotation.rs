//! What the pipeline returns: entities with their [`Provenance`], per document.

use linkner_core::{Entity, Sentence, WordSpan};
use serde::{Deserialize, Serialize};

/// Where an output entity's label came from.
///
/// Serialised tagged by `source`: `{"source": "llm_relabelled", "from": "ORG"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Provenance {
    /// Not routed: the local tagger's label.
    Local,
    /// Routed, and the LLM answered the local label.
    LlmConfirmed,
    /// Routed, and the LLM answered another type; `from` is the local label.
    LlmRelabelled {
        /// The local tagger's label.
        from: String,
    },
    /// Routed, and the LLM answered "not an entity": the entity is dropped from
    /// [`Annotation::entities`] and kept in [`Annotation::rejected`] with its local label.
    LlmRejected,
    /// Routed, but the LLM call failed: the local label is kept and the error recorded.
    LlmFailed {
        /// The backend's error, as text.
        error: String,
    },
}

impl Provenance {
    /// True when the entity was sent to the LLM (every variant but [`Provenance::Local`]).
    pub fn is_routed(&self) -> bool {
        !matches!(self, Provenance::Local)
    }

    /// A short name: `local`, `llm_confirmed`, `llm_relabelled`, `llm_rejected`, `llm_failed`.
    pub fn name(&self) -> &'static str {
        match self {
            Provenance::Local => "local",
            Provenance::LlmConfirmed => "llm_confirmed",
            Provenance::LlmRelabelled { .. } => "llm_relabelled",
            Provenance::LlmRejected => "llm_rejected",
            Provenance::LlmFailed { .. } => "llm_failed",
        }
    }
}

/// One entity of the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkedEntity {
    /// The entity with **char offsets into the caller's original string** and its final label.
    /// `score` is the confidence of that label from whoever decided it: the local tagger's
    /// probability for [`Provenance::Local`] and [`Provenance::LlmFailed`], the LLM's
    /// confidence (when the backend gives one) for the LLM outcomes. For a rejected entity
    /// `label` is the local label that was rejected.
    pub entity: Entity,
    /// The same entity as a word span of [`Annotation::sentence`] (label as in `entity`).
    pub span: WordSpan,
    /// The local tagger's label.
    pub local_label: String,
    /// The local tagger's probability for its label.
    pub local_prob: f32,
    /// The estimator's uncertainty, in `[0, 1]`, higher = less sure.
    pub uncertainty: f32,
    /// Where the label came from.
    pub provenance: Provenance,
}

/// The result for one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// The document: its original text and its words with char offsets.
    pub sentence: Sentence,
    /// The entities, in text order.
    pub entities: Vec<LinkedEntity>,
    /// Entities the LLM rejected as non-entities, in text order (provenance
    /// [`Provenance::LlmRejected`], local label kept).
    pub rejected: Vec<LinkedEntity>,
}

impl Annotation {
    /// The original text.
    pub fn text(&self) -> &str {
        &self.sentence.text
    }

    /// The entities as word spans with their final labels (what a scorer compares with gold).
    pub fn spans(&self) -> Vec<WordSpan> {
        self.entities.iter().map(|e| e.span.clone()).collect()
    }
}
