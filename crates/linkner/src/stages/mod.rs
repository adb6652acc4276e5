//! The pipeline's stages, each a small function with table tests; [`crate::Pipeline`] composes
//! them:
//!
//! ```text
//! tag ──► check ──► score ──► route ──► classify ──► merge ──► account
//! (tagger)  (shape +   (estimator) (policy)  (LLM)       (merge policy) (annotations
//!            contract)                                                   + counts)
//! ```
//!
//! `tag` runs on tokio's blocking pool and `classify` on its own task (see `pipeline.rs`); every
//! other stage is a pure function of its inputs. Stages that count return their counts (a
//! [`StatsSnapshot`] of their own fields) and the pipeline adds them up.

mod account;
mod check;
mod classify;
mod merge;
mod score;
#[cfg(test)]
mod tests;

pub(crate) use account::account;
pub(crate) use check::{Tagged, check};
pub(crate) use classify::{LlmSide, Routed, classify_routed};
pub(crate) use merge::{Decided, merge_all};
pub(crate) use score::{route, score};

use linkner_core::{Candidate, Sentence};
use linkner_llm::{Answer, Example, LlmError};

use crate::budget::BudgetReason;
use crate::stats::StatsSnapshot;

/// One checked candidate of one document, with the local decision and its uncertainty.
#[derive(Debug, Clone)]
pub(crate) struct ScoredCandidate {
    /// Index of the document in the call.
    pub doc: usize,
    /// The tagger's candidate.
    pub candidate: Candidate,
    /// The local label (data name).
    pub local_label: String,
    /// The local probability of that label.
    pub local_prob: f32,
    /// The estimator's score, in `[0, 1]`.
    pub uncertainty: f32,
}

/// What the LLM step gave one routed candidate.
#[derive(Debug)]
pub(crate) enum LlmOutcome {
    /// An answer of the backend.
    Answer(Answer),
    /// The call failed; the local label is kept.
    Failed(LlmError),
    /// The routing budget left it with its local label (never sent, or answered too late).
    Skipped(BudgetReason),
}

/// What the local stages made of one call: the work left for the LLM side and their times.
pub(crate) struct Local {
    pub(crate) work: Work,
    pub(crate) tagger_time: std::time::Duration,
    pub(crate) estimator_time: std::time::Duration,
}

impl Local {
    /// The counts of the local side (entities, routed, times); `documents` is the caller's.
    pub(crate) fn delta(&self) -> StatsSnapshot {
        StatsSnapshot {
            entities: self.work.scored.len() as u64,
            routed: self.work.routed.len() as u64,
            tagger_time: self.tagger_time,
            estimator_time: self.estimator_time,
            ..StatsSnapshot::default()
        }
    }

    pub(crate) fn into_work(self) -> Work {
        self.work
    }
}

/// The sentences of a call with their scored candidates, the routed ones (indices into
/// `scored`, ascending) and their examples (one list per routed candidate, or why retrieval
/// failed).
pub(crate) struct Work {
    pub(crate) sentences: Vec<Sentence>,
    pub(crate) scored: Vec<ScoredCandidate>,
    pub(crate) routed: Vec<usize>,
    pub(crate) examples: std::result::Result<Vec<Vec<Example>>, String>,
}

impl Work {
    /// Splits a call's work into one piece per sentence (document order).
    pub(crate) fn split(self) -> Vec<Work> {
        let Work {
            sentences,
            scored,
            routed,
            examples,
        } = self;
        let mut out: Vec<Work> = sentences
            .into_iter()
            .map(|sentence| Work {
                sentences: vec![sentence],
                scored: Vec::new(),
                routed: Vec::new(),
                examples: Ok(Vec::new()),
            })
            .collect();
        let mut examples = examples.map(|e| e.into_iter().map(Some).collect::<Vec<_>>());
        let mut r = 0;
        for (i, mut s) in scored.into_iter().enumerate() {
            let Some(piece) = out.get_mut(s.doc) else {
                continue;
            };
            s.doc = 0;
            if routed.get(r) == Some(&i) {
                piece.routed.push(piece.scored.len());
                match (&mut examples, &mut piece.examples) {
                    (Ok(all), Ok(mine)) => {
                        if let Some(list) = all.get_mut(r).and_then(Option::take) {
                            mine.push(list);
                        }
                    }
                    (Err(e), mine) => *mine = Err(e.clone()),
                    (Ok(_), Err(_)) => {}
                }
                r += 1;
            }
            piece.scored.push(s);
        }
        out
    }
}
