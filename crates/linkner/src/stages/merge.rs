//! merge: the decision for every candidate from its local decision and, when it was routed,
//! the LLM's outcome (under the merge policy). Pure functions.

use linkner_core::LabelSchema;
use linkner_llm::{Answer, LlmError, Usage};

use super::{LlmOutcome, ScoredCandidate};
use crate::annotation::{LlmVerdict, Provenance};
use crate::merge::{Decision, MergePolicy};

/// One candidate after the merge: its local side, the decision and the LLM's token usage
/// (with whether the answer came from the cache) when there was an answer.
#[derive(Debug)]
pub(crate) struct Decided {
    /// The candidate with its local decision.
    pub scored: ScoredCandidate,
    /// The decision.
    pub merged: Merged,
    /// Token usage of the answer and whether it was cached.
    pub usage: Option<(Usage, bool)>,
}

/// The merge stage: every candidate with its outcome (`outcomes[i]` answers `scored[i]`,
/// `None` when it was not routed) decided by [`merge`].
pub(crate) fn merge_all(
    schema: &LabelSchema,
    policy: &MergePolicy,
    scored: Vec<ScoredCandidate>,
    outcomes: Vec<Option<LlmOutcome>>,
) -> Vec<Decided> {
    scored
        .into_iter()
        .zip(outcomes)
        .map(|(s, outcome)| {
            let usage = match &outcome {
                Some(LlmOutcome::Answer(a)) => Some((a.usage, a.cached)),
                _ => None,
            };
            let merged = merge(schema, policy, &s, outcome);
            Decided {
                scored: s,
                merged,
                usage,
            }
        })
        .collect()
}

/// The decision for one candidate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Merged {
    /// The final label (the local one when rejected: rejected entities keep it).
    pub label: String,
    /// The confidence of whoever decided (`entity.score`).
    pub score: Option<f32>,
    /// Where the label came from.
    pub provenance: Provenance,
    /// The LLM's answer and the merged distribution, when there was an answer.
    pub verdict: Option<LlmVerdict>,
    /// True when the entity is rejected as a non-entity.
    pub rejected: bool,
}

/// Decides one candidate from its local decision and, when it was routed, the LLM's outcome.
/// An answer outside the schema is a failure (local label kept), never a guess.
pub(crate) fn merge(
    schema: &LabelSchema,
    policy: &MergePolicy,
    scored: &ScoredCandidate,
    outcome: Option<LlmOutcome>,
) -> Merged {
    let local = || Merged {
        label: scored.local_label.clone(),
        score: Some(scored.local_prob),
        provenance: Provenance::Local,
        verdict: None,
        rejected: false,
    };
    let failed = |e: LlmError| Merged {
        provenance: Provenance::LlmFailed {
            kind: e.kind(),
            error: e.to_string(),
        },
        ..local()
    };
    let answer = match outcome {
        None => return local(),
        Some(LlmOutcome::Failed(e)) => return failed(e),
        Some(LlmOutcome::Skipped(reason)) => {
            return Merged {
                provenance: Provenance::Budget { reason },
                ..local()
            };
        }
        Some(LlmOutcome::Answer(a)) => a,
    };
    if schema.class(answer.class).is_none() {
        return failed(LlmError::LabelOutsideSchema {
            answer: format!(
                "class #{} ({}) outside schema `{}`",
                answer.class, answer.label, schema.name
            ),
            expected: schema.type_names().join(", "),
        });
    }
    let decision = decide(schema, policy, scored, &answer);
    let class = if schema.class(decision.class).is_some() {
        decision.class
    } else {
        scored.candidate.class
    };
    let verdict = LlmVerdict {
        class: answer.class,
        label: answer.label.clone(),
        confidence: answer.confidence,
        distribution: answer.distribution.clone(),
        label_mass: answer.label_mass,
        merged: decision.distribution.clone(),
        merge: policy.clone(),
        cached: answer.cached,
    };
    // The confidence of the decision: the merged distribution's, else the LLM's own when the
    // LLM's answer stood, else the local probability.
    let score = decision.confidence.or(if class == answer.class {
        answer.confidence
    } else {
        Some(scored.local_prob)
    });
    let (label, provenance, rejected) = labelled(schema, scored, class);
    Merged {
        label,
        score,
        provenance,
        verdict: Some(verdict),
        rejected,
    }
}

/// The merge's decision on an answer within the schema: a per-type merge decides by the
/// entity's local label (the verdict records the whole policy).
fn decide(
    schema: &LabelSchema,
    policy: &MergePolicy,
    scored: &ScoredCandidate,
    answer: &Answer,
) -> Decision {
    let answer_dist = answer
        .distribution
        .as_deref()
        .filter(|d| d.len() == schema.num_classes());
    policy.for_label(&scored.local_label).decide_with_mass(
        &scored.candidate.probs,
        answer.class,
        answer_dist,
        answer.label_mass,
    )
}

/// The final label, its provenance and whether the entity is rejected, once the merged
/// decision chose `class` (0: not an entity).
fn labelled(
    schema: &LabelSchema,
    scored: &ScoredCandidate,
    class: usize,
) -> (String, Provenance, bool) {
    if class == 0 {
        (scored.local_label.clone(), Provenance::LlmRejected, true)
    } else if class == scored.candidate.class {
        (scored.local_label.clone(), Provenance::LlmConfirmed, false)
    } else {
        let name = schema
            .class(class)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        (
            name,
            Provenance::LlmRelabelled {
                from: scored.local_label.clone(),
            },
            false,
        )
    }
}
