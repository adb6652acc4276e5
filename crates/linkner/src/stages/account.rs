//! account: the annotations of the call and the counts of what happened to its candidates.
//! A pure function.

use linkner_core::{Sentence, WordSpan};

use super::{Decided, ScoredCandidate};
use crate::annotation::{Annotation, LinkedEntity, Provenance};
use crate::budget::BudgetReason;
use crate::stats::StatsSnapshot;

/// The account stage: the annotations (document order; entities and rejected entities in
/// candidate order) and the counts of the decisions — outcomes by provenance, failures by
/// kind, token usage and cache hits. Entities, routed candidates, requests and times are the
/// other stages' counts.
pub(crate) fn account(
    sentences: Vec<Sentence>,
    decided: Vec<Decided>,
) -> (Vec<Annotation>, StatsSnapshot) {
    let mut counts = StatsSnapshot::default();
    let mut out: Vec<Annotation> = sentences
        .into_iter()
        .map(|sentence| Annotation {
            sentence,
            entities: Vec::new(),
            rejected: Vec::new(),
            timings: None,
        })
        .collect();
    for d in decided {
        if let Some((u, cached)) = &d.usage {
            counts.prompt_tokens += u.prompt_tokens;
            counts.completion_tokens += u.completion_tokens;
            counts.cached_prompt_tokens += u.cached_prompt_tokens;
            counts.cache_hits += u64::from(*cached);
        }
        count(&d.merged.provenance, &mut counts);
        let doc = d.scored.doc;
        let rejected = d.merged.rejected;
        let linked = linked_entity(d);
        if let Some(annotation) = out.get_mut(doc) {
            if rejected {
                annotation.rejected.push(linked);
            } else {
                annotation.entities.push(linked);
            }
        }
    }
    (out, counts)
}

/// Counts one decision by where its label came from.
fn count(provenance: &Provenance, counts: &mut StatsSnapshot) {
    match provenance {
        Provenance::Local => {}
        Provenance::LlmConfirmed => counts.confirmed += 1,
        Provenance::LlmRelabelled { .. } => counts.relabelled += 1,
        Provenance::LlmRejected => counts.rejected += 1,
        Provenance::LlmFailed { kind, .. } => {
            counts.failures += 1;
            counts.failures_by_kind.add(*kind, 1);
        }
        Provenance::Budget {
            reason: BudgetReason::Capacity,
        } => counts.budget_skipped += 1,
        Provenance::Budget {
            reason: BudgetReason::Deadline,
        } => counts.deadline_missed += 1,
    }
}

/// The public entity of one decision.
fn linked_entity(d: Decided) -> LinkedEntity {
    let Decided { scored, merged, .. } = d;
    let ScoredCandidate {
        candidate,
        local_label,
        local_prob,
        uncertainty,
        ..
    } = scored;
    let mut entity = candidate.entity;
    entity.label = merged.label.clone();
    entity.score = merged.score;
    LinkedEntity {
        span: WordSpan::new(candidate.span.start, candidate.span.end, merged.label),
        entity,
        local_label,
        local_prob,
        uncertainty,
        provenance: merged.provenance,
        local_probs: candidate.probs,
        llm: merged.verdict,
    }
}
