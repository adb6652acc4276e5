//! What a local tagger hands to uncertainty estimators and to the linker: a candidate entity
//! with the model's full label distribution.

use serde::{Deserialize, Serialize};

use crate::entity::{Entity, WordSpan};

/// One candidate entity predicted by a local tagger.
///
/// Class indices follow [`crate::LabelSchema`]: `0` is the non-entity class, `1..` the types in
/// schema order. `logits` and `probs` have `schema.num_classes()` entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The span in words of its sentence; `label` is the predicted type.
    pub span: WordSpan,
    /// The same entity with char offsets into the original text; `score` is the predicted
    /// class's probability.
    pub entity: Entity,
    /// Predicted class index (never 0 for an entity that is returned as such).
    pub class: usize,
    /// Raw scores of the span classifier over all classes (deterministic pass).
    pub logits: Vec<f32>,
    /// Softmax of `logits`.
    pub probs: Vec<f32>,
    /// Class probabilities of each stochastic (dropout-on) forward pass, when they were asked
    /// for (Monte-Carlo dropout); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mc_probs: Vec<Vec<f32>>,
    /// Dirichlet concentration parameters (evidence + 1) when the tagger was trained with the
    /// evidential loss; `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<Vec<f32>>,
}
