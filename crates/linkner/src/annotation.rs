//! What the pipeline returns: entities with their [`Provenance`], per document.

use linkner_core::{Entity, Sentence, WordSpan};
use linkner_llm::FailureKind;
use serde::{Deserialize, Serialize};

use crate::budget::BudgetReason;
use crate::merge::MergePolicy;

/// Where an output entity's label came from.
///
/// Serialised tagged by `source`: `{"source": "llm_relabelled", "from": "ORG"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Provenance {
    /// Not routed: the local tagger's label.
    Local,
    /// Routed, and the merged decision (see [`crate::merge`]) is the local label.
    LlmConfirmed,
    /// Routed, and the merged decision is another type; `from` is the local label.
    LlmRelabelled {
        /// The local tagger's label.
        from: String,
    },
    /// Routed, and the merged decision is "not an entity": the entity is dropped from
    /// [`Annotation::entities`] and kept in [`Annotation::rejected`] with its local label.
    LlmRejected,
    /// Routed, but the LLM call failed: the local label is kept, and the failure recorded
    /// as its kind (timeout, rate-limited, connection, out of schema, …) and its message.
    LlmFailed {
        /// What kind of failure (`backend` for outputs written before kinds existed).
        #[serde(default = "unknown_kind")]
        kind: FailureKind,
        /// The backend's error, as text.
        error: String,
    },
    /// Routed, but the [`RoutingBudget`](crate::RoutingBudget) left it with its local label:
    /// never sent because more uncertain entities took the LLM until the document's deadline
    /// (`capacity`), or sent and answered too late (`deadline`, the answer dropped).
    Budget {
        /// Why.
        reason: BudgetReason,
    },
}

fn unknown_kind() -> FailureKind {
    FailureKind::Backend
}

impl Provenance {
    /// True when the routing policy sent the entity to the LLM (every variant but
    /// [`Provenance::Local`]; a [`Provenance::Budget`] entity was routed, then held back by the
    /// budget).
    pub fn is_routed(&self) -> bool {
        !matches!(self, Provenance::Local)
    }

    /// A short name: `local`, `llm_confirmed`, `llm_relabelled`, `llm_rejected`, `llm_failed`,
    /// `budget`.
    pub fn name(&self) -> &'static str {
        match self {
            Provenance::Local => "local",
            Provenance::LlmConfirmed => "llm_confirmed",
            Provenance::LlmRelabelled { .. } => "llm_relabelled",
            Provenance::LlmRejected => "llm_rejected",
            Provenance::LlmFailed { .. } => "llm_failed",
            Provenance::Budget { .. } => "budget",
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
    /// The local tagger's probability for every class of the schema (class 0 = non-entity), as
    /// the merge policies saw it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_probs: Vec<f32>,
    /// For a routed entity that got an answer: what the LLM said and how it was merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmVerdict>,
}

/// What the LLM answered for one routed entity and what the merge made of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmVerdict {
    /// The LLM's own answer (class index; 0 = not an entity).
    pub class: usize,
    /// Its data-file label (`O` for not an entity).
    pub label: String,
    /// The LLM's confidence in its answer, when the backend gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// The LLM's distribution over the schema's classes, when the backend gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Vec<f32>>,
    /// The mass the LLM put on the answer vocabulary before its distribution was renormalised
    /// (`1 −` it: the LLM's doubt), when the backend gives it
    /// ([`linkner_llm::Answer::label_mass`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_mass: Option<f32>,
    /// The merged distribution the final decision was taken from (absent for `replace`
    /// without an LLM distribution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<Vec<f32>>,
    /// The merge policy that decided.
    pub merge: MergePolicy,
    /// True when the answer came from the backend's answer cache.
    #[serde(default)]
    pub cached: bool,
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
    /// Where the document's time went, for a document annotated on a stream
    /// ([`Pipeline::stream`](crate::Pipeline::stream)); absent from the batch calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
}

/// Where one streamed document's time went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// From arrival (read from the input) to the start of its tagger batch: the micro-batch
    /// wait and the wait for the tagger.
    pub queued_ms: f64,
    /// The tagger batch it was in: tagging, estimator, routing (and example retrieval).
    pub tagging_ms: f64,
    /// Its LLM calls (waiting for a slot included); 0 when nothing was routed.
    pub llm_ms: f64,
    /// From arrival to the annotation being ready.
    pub total_ms: f64,
    /// Documents in its tagger batch (itself included): how much the micro-batcher shared.
    #[serde(default)]
    pub batch_size: usize,
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
