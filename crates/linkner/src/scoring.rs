//! Scoring a pipeline's output against gold: the local tagger alone, the linked result, and the
//! oracle ceiling of the same routing — all three from **one** run.
//!
//! Every annotation keeps what the local tagger said about each entity (`local_label`, and the
//! rejected list), so the local-only prediction is recovered exactly without a second pass; the
//! oracle replaces the label of every routed entity by its gold label (dropping it when the span
//! is not a gold entity), which is the best any LLM could do with that routing.

use std::collections::HashMap;

use linkner_core::score::{Mode, Scorer, Scores};
use linkner_core::{Sentence, WordSpan};
use serde::{Deserialize, Serialize};

use crate::annotation::{Annotation, LinkedEntity};
use crate::error::{LinkError, Result};

/// Entity-level scores of one pipeline run (exact span and type, conlleval semantics).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkScores {
    /// The local tagger's own labels, routing ignored (rejected entities counted with their
    /// local label).
    pub local: Scores,
    /// The pipeline's output: LLM decisions applied, rejected entities dropped.
    pub linked: Scores,
    /// The ceiling of this routing: routed entities get their gold label, or are dropped when
    /// the span is not a gold entity. Not an LLM result.
    pub oracle: Scores,
}

/// The spans of an annotation with every entity `routed` decided by the LLM (its final label,
/// dropped when rejected) — or, with `gold`, by the oracle (its gold label, dropped when not a
/// gold entity) — and every other entity given its local label back. Text order.
fn decided_spans(
    annotation: &Annotation,
    routed: impl Fn(&LinkedEntity) -> bool,
    gold: Option<&[WordSpan]>,
) -> Vec<WordSpan> {
    let gold_at: Option<HashMap<(usize, usize), &str>> = gold.map(|g| {
        g.iter()
            .map(|g| ((g.start, g.end), g.label.as_str()))
            .collect()
    });
    let mut spans = Vec::new();
    for (e, rejected) in annotation
        .entities
        .iter()
        .map(|e| (e, false))
        .chain(annotation.rejected.iter().map(|e| (e, true)))
    {
        let (start, end) = (e.span.start, e.span.end);
        if routed(e) {
            match &gold_at {
                Some(g) => {
                    if let Some(label) = g.get(&(start, end)) {
                        spans.push(WordSpan::new(start, end, *label));
                    }
                }
                None if rejected => {}
                None => spans.push(WordSpan::new(start, end, e.span.label.clone())),
            }
        } else {
            spans.push(WordSpan::new(start, end, e.local_label.clone()));
        }
    }
    spans.sort_by_key(|s| (s.start, s.end));
    spans
}

/// The local tagger's prediction of one annotation: kept and rejected entities with their local
/// labels, in text order.
pub fn local_spans(annotation: &Annotation) -> Vec<WordSpan> {
    decided_spans(annotation, |_| false, None)
}

/// The oracle prediction of one annotation: local labels for entities that were not routed,
/// gold labels for routed ones (a routed span that is not a gold entity is dropped).
pub fn oracle_spans(annotation: &Annotation, gold: &[WordSpan]) -> Vec<WordSpan> {
    decided_spans(annotation, |e| e.provenance.is_routed(), Some(gold))
}

/// Re-decides the routing of an annotation made with [`RoutingPolicy::Always`]
/// (`crate::RoutingPolicy::Always`: every entity went to the LLM) as if the policy had been
/// `Threshold { threshold }`: an entity whose uncertainty is above `threshold` keeps the LLM's
/// decision (its final label, or dropped when rejected), any other gets its local label back.
///
/// With a deterministic, cached LLM this equals running the pipeline at that threshold, at the
/// cost of one LLM pass for all thresholds (and all estimators: the LLM request does not depend
/// on the estimator). `gold`, when given, makes it the oracle instead: routed entities get
/// their gold label.
///
/// [`RoutingPolicy::Always`]: crate::RoutingPolicy::Always
pub fn spans_at_threshold(
    annotation: &Annotation,
    threshold: f32,
    gold: Option<&[WordSpan]>,
) -> Vec<WordSpan> {
    decided_spans(annotation, |e| e.uncertainty > threshold, gold)
}

/// Accumulates [`LinkScores`] over annotated gold sentences, chunk by chunk.
#[derive(Debug, Clone)]
pub struct LinkScorer {
    local: Scorer,
    linked: Scorer,
    oracle: Scorer,
}

impl Default for LinkScorer {
    fn default() -> Self {
        LinkScorer::new()
    }
}

impl LinkScorer {
    /// An empty scorer (conlleval semantics, as the rest of linkner).
    pub fn new() -> LinkScorer {
        LinkScorer {
            local: Scorer::new(Mode::Conlleval),
            linked: Scorer::new(Mode::Conlleval),
            oracle: Scorer::new(Mode::Conlleval),
        }
    }

    /// Adds gold sentences and their annotations (same order, same length). Fails when the
    /// lengths differ or an annotation's words are not the gold sentence's.
    pub fn add(&mut self, gold: &[Sentence], annotations: &[Annotation]) -> Result<()> {
        if gold.len() != annotations.len() {
            return Err(LinkError::GoldMismatch {
                gold: gold.len(),
                annotations: annotations.len(),
                sentence: None,
            });
        }
        for (i, (g, a)) in gold.iter().zip(annotations).enumerate() {
            if g.tokens.len() != a.sentence.tokens.len() {
                return Err(LinkError::GoldMismatch {
                    gold: g.tokens.len(),
                    annotations: a.sentence.tokens.len(),
                    sentence: Some(i),
                });
            }
            self.local.add_spans(&g.spans, &local_spans(a))?;
            self.linked.add_spans(&g.spans, &a.spans())?;
            self.oracle
                .add_spans(&g.spans, &oracle_spans(a, &g.spans))?;
        }
        Ok(())
    }

    /// The scores so far.
    pub fn finish(&self) -> LinkScores {
        LinkScores {
            local: self.local.finish(),
            linked: self.linked.finish(),
            oracle: self.oracle.finish(),
        }
    }
}

/// Scores annotations of gold sentences in one call (see [`LinkScorer`]).
pub fn score_annotations(gold: &[Sentence], annotations: &[Annotation]) -> Result<LinkScores> {
    let mut scorer = LinkScorer::new();
    scorer.add(gold, annotations)?;
    Ok(scorer.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotation::Provenance;
    use linkner_core::Entity;

    fn sentence(words: &[&str], spans: Vec<WordSpan>) -> Sentence {
        let mut s = Sentence::from_words(words);
        s.spans = spans;
        s
    }

    fn entity(
        s: &Sentence,
        start: usize,
        end: usize,
        label: &str,
        local: &str,
        p: Provenance,
    ) -> LinkedEntity {
        let span = WordSpan::new(start, end, label);
        LinkedEntity {
            entity: Entity::from_word_span(s, &span).unwrap(),
            span,
            local_label: local.into(),
            local_prob: 0.9,
            uncertainty: 0.5,
            provenance: p,
            local_probs: Vec::new(),
            llm: None,
        }
    }

    #[test]
    fn local_linked_and_oracle_differ_as_routing_says() {
        // Gold: "Paris"=LOC (0..1), "Acme"=ORG (2..3). "said" (1..2) is no entity.
        let gold = sentence(
            &["Paris", "said", "Acme", "today"],
            vec![WordSpan::new(0, 1, "LOC"), WordSpan::new(2, 3, "ORG")],
        );
        let plain = sentence(&["Paris", "said", "Acme", "today"], vec![]);
        // Local: Paris=PER (wrong), said=MISC (spurious), Acme=ORG (right, not routed).
        // The LLM relabels Paris to LOC, and wrongly rejects... nothing; it confirms "said".
        let a = Annotation {
            sentence: plain.clone(),
            entities: vec![
                entity(
                    &plain,
                    0,
                    1,
                    "LOC",
                    "PER",
                    Provenance::LlmRelabelled { from: "PER".into() },
                ),
                entity(&plain, 1, 2, "MISC", "MISC", Provenance::LlmConfirmed),
                entity(&plain, 2, 3, "ORG", "ORG", Provenance::Local),
            ],
            rejected: vec![],
            timings: None,
        };
        let s = score_annotations(std::slice::from_ref(&gold), &[a]).unwrap();
        assert_eq!((s.local.predicted, s.local.correct), (3, 1));
        assert_eq!((s.linked.predicted, s.linked.correct), (3, 2));
        // Oracle: Paris -> LOC, "said" dropped, Acme kept.
        assert_eq!((s.oracle.predicted, s.oracle.correct), (2, 2));
        assert!((s.oracle.f1 - 1.0).abs() < 1e-12);

        // A rejected entity counts locally (with its local label) but not in the linked output.
        let b = Annotation {
            sentence: plain.clone(),
            entities: vec![entity(&plain, 2, 3, "ORG", "ORG", Provenance::Local)],
            rejected: vec![entity(&plain, 0, 1, "LOC", "LOC", Provenance::LlmRejected)],
            timings: None,
        };
        let s = score_annotations(std::slice::from_ref(&gold), &[b]).unwrap();
        assert_eq!((s.local.predicted, s.local.correct), (2, 2));
        assert_eq!((s.linked.predicted, s.linked.correct), (1, 1));
        assert_eq!((s.oracle.predicted, s.oracle.correct), (2, 2));
    }

    #[test]
    fn threshold_replay_matches_the_routing_it_simulates() {
        let gold = sentence(
            &["Paris", "said", "Acme", "today"],
            vec![WordSpan::new(0, 1, "LOC"), WordSpan::new(2, 3, "ORG")],
        );
        let plain = sentence(&["Paris", "said", "Acme", "today"], vec![]);
        let mut paris = entity(
            &plain,
            0,
            1,
            "LOC",
            "PER",
            Provenance::LlmRelabelled { from: "PER".into() },
        );
        paris.uncertainty = 0.8;
        let mut said = entity(&plain, 1, 2, "MISC", "MISC", Provenance::LlmRejected);
        said.uncertainty = 0.3;
        let mut acme = entity(
            &plain,
            2,
            3,
            "PER",
            "ORG",
            Provenance::LlmRelabelled { from: "ORG".into() },
        );
        acme.uncertainty = 0.1;
        let a = Annotation {
            sentence: plain,
            entities: vec![paris, acme],
            rejected: vec![said],
            timings: None,
        };
        let labels = |v: Vec<WordSpan>| {
            v.into_iter()
                .map(|s| (s.start, s.label))
                .collect::<Vec<_>>()
        };
        // Nothing routed: the local labels.
        assert_eq!(
            labels(spans_at_threshold(&a, 1.0, None)),
            vec![
                (0, "PER".to_string()),
                (1, "MISC".into()),
                (2, "ORG".into())
            ]
        );
        // Only Paris routed (0.8 > 0.5): relabelled to LOC.
        assert_eq!(
            labels(spans_at_threshold(&a, 0.5, None)),
            vec![
                (0, "LOC".to_string()),
                (1, "MISC".into()),
                (2, "ORG".into())
            ]
        );
        // Paris and "said" routed: "said" dropped.
        assert_eq!(
            labels(spans_at_threshold(&a, 0.2, None)),
            vec![(0, "LOC".to_string()), (2, "ORG".into())]
        );
        // Everything routed: the LLM's wrong PER for Acme is applied...
        assert_eq!(
            labels(spans_at_threshold(&a, 0.0, None)),
            vec![(0, "LOC".to_string()), (2, "PER".into())]
        );
        // ...and the oracle gets it right.
        assert_eq!(
            labels(spans_at_threshold(&a, 0.0, Some(&gold.spans))),
            vec![(0, "LOC".to_string()), (2, "ORG".into())]
        );
    }

    #[test]
    fn mismatched_inputs_are_errors() {
        let gold = sentence(&["a", "b"], vec![]);
        let other = sentence(&["a"], vec![]);
        let a = Annotation {
            sentence: other,
            entities: vec![],
            rejected: vec![],
            timings: None,
        };
        assert!(score_annotations(std::slice::from_ref(&gold), &[]).is_err());
        assert!(score_annotations(&[gold], &[a]).is_err());
    }
}
