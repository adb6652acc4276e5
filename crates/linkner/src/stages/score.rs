//! score and route: the estimator's uncertainty and the local decision of every candidate,
//! then the policy's choice of what goes to the LLM. Pure functions.

use linkner_core::{Candidate, LabelSchema, Sentence};
use linkner_uncertainty::UncertaintyEstimator;

use super::ScoredCandidate;
use crate::error::{EstimatorViolation, LinkError, Result};
use crate::policy::{RouteInput, RoutingPolicy};

/// Scores every candidate with the estimator and attaches the local decision. Returns the
/// sentences (document order) and the candidates (document, then candidate order).
pub(crate) fn score(
    schema: &LabelSchema,
    estimator: &dyn UncertaintyEstimator,
    tagged: Vec<(Sentence, Vec<Candidate>)>,
) -> Result<(Vec<Sentence>, Vec<ScoredCandidate>)> {
    let mut sentences = Vec::with_capacity(tagged.len());
    let mut scored = Vec::new();
    for (doc, (sentence, candidates)) in tagged.into_iter().enumerate() {
        let scores = estimator.score_batch(&candidates)?;
        if scores.len() != candidates.len() {
            return Err(LinkError::EstimatorContract {
                estimator: estimator.name().to_string(),
                violation: EstimatorViolation::Count {
                    expected: candidates.len(),
                    got: scores.len(),
                },
            });
        }
        for (candidate, uncertainty) in candidates.into_iter().zip(scores) {
            if !(0.0..=1.0).contains(&uncertainty) {
                return Err(LinkError::EstimatorContract {
                    estimator: estimator.name().to_string(),
                    violation: EstimatorViolation::Score { score: uncertainty },
                });
            }
            let local_label = schema
                .class(candidate.class)
                .map(|t| t.name.clone())
                .unwrap_or_default();
            let local_prob = candidate
                .probs
                .get(candidate.class)
                .copied()
                .or(candidate.entity.score)
                .unwrap_or(0.0);
            scored.push(ScoredCandidate {
                doc,
                candidate,
                local_label,
                local_prob,
                uncertainty,
            });
        }
        sentences.push(sentence);
    }
    Ok((sentences, scored))
}

/// The indices of the candidates the policy sends to the LLM, ascending.
pub(crate) fn route(policy: &RoutingPolicy, scored: &[ScoredCandidate]) -> Vec<usize> {
    let inputs: Vec<RouteInput<'_>> = scored
        .iter()
        .map(|s| RouteInput {
            label: &s.local_label,
            uncertainty: s.uncertainty,
        })
        .collect();
    policy
        .route(&inputs)
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.then_some(i))
        .collect()
}
