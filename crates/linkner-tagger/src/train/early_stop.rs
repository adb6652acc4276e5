//! Early stopping: the best epoch so far (by dev F1, else the latest) and the patience.

use crate::span::SpanTagger;

/// The best epoch so far and the epochs since.
pub(super) struct EarlyStop {
    /// Score, epoch and tagger of the best epoch.
    best: Option<(f64, usize, SpanTagger)>,
    /// Epochs since the best one.
    since_best: usize,
    /// Stop after this many epochs without a better score (0: never stop early).
    patience: usize,
}

impl EarlyStop {
    /// No epoch seen yet.
    pub(super) fn new(patience: usize) -> EarlyStop {
        EarlyStop {
            best: None,
            since_best: 0,
            patience,
        }
    }

    /// Records the `score` of `epoch` (keeping a copy of `tagger` when it is the best so far);
    /// whether training stops here.
    pub(super) fn stops_after(&mut self, score: f64, epoch: usize, tagger: &SpanTagger) -> bool {
        if self.best.as_ref().is_none_or(|b| score > b.0) {
            self.best = Some((score, epoch, tagger.clone()));
            self.since_best = 0;
        } else {
            self.since_best += 1;
            if self.patience > 0 && self.since_best >= self.patience {
                tracing::info!(epoch, "early stopping: dev F1 did not improve");
                return true;
            }
        }
        false
    }

    /// The best epoch and its tagger; `last` (the number of epochs run) and `tagger` when no
    /// epoch was recorded.
    pub(super) fn best(self, last: usize, tagger: SpanTagger) -> (usize, SpanTagger) {
        match self.best {
            Some((_, e, t)) => (e, t),
            None => (last, tagger),
        }
    }
}
