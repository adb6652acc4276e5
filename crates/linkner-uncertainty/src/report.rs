//! [`evaluate_estimators`]: every quality metric of several estimators on one labelled set, as a
//! JSON-serialisable [`EstimatorReport`] each (what `linkner eval --estimator all --json`
//! prints).

use linkner_core::{Candidate, WordSpan};
use serde::{Deserialize, Serialize};

use crate::error::{Result, UncertaintyError};
use crate::estimator::UncertaintyEstimator;
use crate::metrics::{self, CurvePoint, ECE_BINS, Outcome, Scored};

/// The quality of one estimator on one labelled set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimatorReport {
    /// Estimator name.
    pub name: String,
    /// Predicted entities scored.
    pub n_predicted: usize,
    /// Of which wrong (not in gold with the same span and type).
    pub n_wrong: usize,
    /// Gold entities of the set.
    pub n_gold: usize,
    /// [`metrics::auroc`] of the score as a detector of wrong predictions; `None` when every
    /// prediction is correct or every one is wrong.
    pub auroc: Option<f64>,
    /// [`metrics::aurc`] (lower is better).
    pub aurc: f64,
    /// AURC of a perfect ranking of the same predictions: the floor of `aurc`.
    pub aurc_optimal: f64,
    /// [`metrics::ece`] of the confidence `1 − score`, 15 bins.
    pub ece: f64,
    /// [`metrics::coverage_curve`] at routed fractions 0, 0.05, …, 1.
    pub curve: Vec<CurvePoint>,
}

/// Pairs each predicted candidate of one sentence with its [`Outcome`] against the sentence's
/// gold spans (exact span and type, [`Outcome::judge`]). Candidates should have distinct spans
/// (a non-overlapping decoder's output) so that each gold entity is matched at most once.
pub fn judge_sentence(candidates: Vec<Candidate>, gold: &[WordSpan]) -> Vec<(Candidate, Outcome)> {
    candidates
        .into_iter()
        .map(|c| {
            let outcome = Outcome::judge(&c.span, gold);
            (c, outcome)
        })
        .collect()
}

/// Builds the report of one estimator from its already computed scores.
pub fn report_from_scores(name: &str, items: &[Scored], n_gold: usize) -> Result<EstimatorReport> {
    let auroc = match metrics::auroc(items) {
        Ok(a) => Some(a),
        Err(UncertaintyError::Undefined { .. }) => None,
        Err(e) => return Err(e),
    };
    let perfect: Vec<Scored> = items
        .iter()
        .map(|s| Scored::with_outcome(if s.is_wrong() { 1.0 } else { 0.0 }, s.outcome))
        .collect();
    Ok(EstimatorReport {
        name: name.to_string(),
        n_predicted: items.len(),
        n_wrong: items.iter().filter(|s| s.is_wrong()).count(),
        n_gold,
        auroc,
        aurc: metrics::aurc(items)?,
        aurc_optimal: metrics::aurc(&perfect)?,
        ece: metrics::ece(items, ECE_BINS)?,
        curve: metrics::coverage_curve(items, n_gold, &metrics::default_fractions())?,
    })
}

/// Scores every candidate with `estimator` and pairs the scores with the outcomes. Errors name
/// the estimator and the candidate.
pub fn score_all(
    estimator: &dyn UncertaintyEstimator,
    labelled: &[(Candidate, Outcome)],
) -> Result<Vec<Scored>> {
    labelled
        .iter()
        .enumerate()
        .map(|(index, (candidate, outcome))| {
            estimator
                .score(candidate)
                .map(|score| Scored::with_outcome(score, *outcome))
                .map_err(|e| UncertaintyError::Estimator {
                    estimator: estimator.name().to_string(),
                    index,
                    source: Box::new(e),
                })
        })
        .collect()
}

/// Evaluates each estimator on the predicted entities of a labelled set: `labelled` pairs each
/// candidate with its [`Outcome`] (see [`Outcome::judge`]), `n_gold` is the number of gold
/// entities of the set (missed ones included). Candidates must carry what every estimator
/// requires (see [`Requirements::union`](crate::Requirements::union)).
pub fn evaluate_estimators(
    estimators: &[&dyn UncertaintyEstimator],
    labelled: &[(Candidate, Outcome)],
    n_gold: usize,
) -> Result<Vec<EstimatorReport>> {
    estimators
        .iter()
        .map(|estimator| {
            let items = score_all(*estimator, labelled)?;
            report_from_scores(&estimator.name(), &items, n_gold)
        })
        .collect()
}
