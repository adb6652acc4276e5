//! How well an estimator finds the tagger's mistakes: plain functions over scored predictions.
//!
//! A prediction is **wrong** when no gold entity has the same span and type ([`Outcome`]). The
//! metrics treat "wrong" as the positive class that a good uncertainty score ranks first.
//!
//! Ties between scores are resolved by expectation over a random order of the tied items
//! (average ranks for AUROC, expected counts for AURC and the coverage curve), so a constant
//! estimator gets exactly the random-ranking value and results never depend on input order.

use linkner_core::WordSpan;
use serde::{Deserialize, Serialize};

use crate::error::{Result, UncertaintyError};

/// Number of equal-width bins of [`ece`] in reports.
pub const ECE_BINS: usize = 15;

/// What a predicted entity turned out to be against the gold entities of its sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A gold entity has the same span and type.
    Correct,
    /// A gold entity has the same span but another type (an oracle can relabel it).
    WrongType,
    /// No gold entity has this span (an oracle can only reject it).
    Spurious,
}

impl Outcome {
    /// Whether the prediction is correct.
    pub fn is_correct(self) -> bool {
        self == Outcome::Correct
    }

    /// Judges `predicted` against the gold spans of the same sentence (exact span and label).
    pub fn judge(predicted: &WordSpan, gold: &[WordSpan]) -> Outcome {
        let mut same_span = false;
        for g in gold {
            if g.start == predicted.start && g.end == predicted.end {
                if g.label == predicted.label {
                    return Outcome::Correct;
                }
                same_span = true;
            }
        }
        if same_span {
            Outcome::WrongType
        } else {
            Outcome::Spurious
        }
    }
}

/// One predicted entity: its uncertainty score (higher = less sure) and its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// Uncertainty in `[0, 1]` (higher = less sure).
    pub score: f32,
    /// Whether the prediction was right.
    pub outcome: Outcome,
}

impl Scored {
    /// A prediction with `score`, correct or not (a wrong one counts as
    /// [`Outcome::Spurious`]; use [`Scored::with_outcome`] to say more).
    pub fn new(score: f32, correct: bool) -> Self {
        let outcome = if correct {
            Outcome::Correct
        } else {
            Outcome::Spurious
        };
        Scored { score, outcome }
    }

    /// A prediction with `score` and `outcome`.
    pub fn with_outcome(score: f32, outcome: Outcome) -> Self {
        Scored { score, outcome }
    }

    /// Whether the prediction is wrong (the positive class of the metrics).
    pub fn is_wrong(&self) -> bool {
        !self.outcome.is_correct()
    }
}

fn validate(items: &[Scored], metric: &str, unit_range: bool) -> Result<()> {
    if items.is_empty() {
        return Err(UncertaintyError::InvalidInput(format!(
            "{metric} needs at least one scored prediction"
        )));
    }
    for (i, item) in items.iter().enumerate() {
        let ok = if unit_range {
            (0.0..=1.0).contains(&item.score)
        } else {
            item.score.is_finite()
        };
        if !ok {
            let expected = if unit_range { "in [0, 1]" } else { "finite" };
            return Err(UncertaintyError::InvalidInput(format!(
                "{metric}: score {i} is {}, expected {expected}",
                item.score
            )));
        }
    }
    Ok(())
}

/// Indices sorted by score (ascending), grouped by equal score: `(start, end)` ranges into the
/// sorted order.
fn sorted_groups(items: &[Scored], descending: bool) -> (Vec<usize>, Vec<(usize, usize)>) {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        let o = items[a].score.total_cmp(&items[b].score);
        if descending { o.reverse() } else { o }
    });
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 1..=order.len() {
        if i == order.len() || items[order[i]].score != items[order[start]].score {
            groups.push((start, i));
            start = i;
        }
    }
    (order, groups)
}

/// Area under the ROC curve of the score as a detector of wrong predictions: the probability
/// that a random wrong prediction scores higher than a random correct one, ties counting ½
/// (Mann–Whitney with average ranks). `1` = perfect ranking, `0.5` = random, `0` = reversed.
///
/// Errors when a score is not finite, and ([`UncertaintyError::Undefined`]) when all
/// predictions are correct or all are wrong.
pub fn auroc(items: &[Scored]) -> Result<f64> {
    validate(items, "AUROC", false)?;
    let n_wrong = items.iter().filter(|s| s.is_wrong()).count();
    let n_right = items.len() - n_wrong;
    if n_wrong == 0 || n_right == 0 {
        return Err(UncertaintyError::Undefined {
            metric: "AUROC",
            reason: format!(
                "needs both correct and wrong predictions ({n_right} correct, {n_wrong} wrong)"
            ),
        });
    }
    let (order, groups) = sorted_groups(items, false);
    let mut rank_sum_wrong = 0.0f64;
    for (start, end) in groups {
        // Ranks start..end (1-based: start+1 ..= end), average (start + 1 + end) / 2.
        let avg_rank = (start + 1 + end) as f64 / 2.0;
        let wrong = order[start..end]
            .iter()
            .filter(|&&i| items[i].is_wrong())
            .count();
        rank_sum_wrong += avg_rank * wrong as f64;
    }
    let (p, q) = (n_wrong as f64, n_right as f64);
    Ok((rank_sum_wrong - p * (p + 1.0) / 2.0) / (p * q))
}

/// One point of a risk–coverage curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RiskCoverage {
    /// Fraction of predictions kept (the most certain first).
    pub coverage: f64,
    /// Fraction of the kept predictions that are wrong.
    pub risk: f64,
}

/// The risk–coverage curve: keeping the `i` most certain predictions (`i = 1 … n`), the
/// fraction of them that are wrong. `n` points, the last at coverage 1.
pub fn risk_coverage(items: &[Scored]) -> Result<Vec<RiskCoverage>> {
    validate(items, "risk-coverage", false)?;
    let n = items.len();
    let (order, groups) = sorted_groups(items, false);
    let mut curve = Vec::with_capacity(n);
    let mut wrong_before = 0.0f64;
    for (start, end) in groups {
        let m = (end - start) as f64;
        let w = order[start..end]
            .iter()
            .filter(|&&i| items[i].is_wrong())
            .count() as f64;
        for j in 1..=(end - start) {
            let kept = start + j;
            let expected_wrong = wrong_before + j as f64 * w / m;
            curve.push(RiskCoverage {
                coverage: kept as f64 / n as f64,
                risk: expected_wrong / kept as f64,
            });
        }
        wrong_before += w;
    }
    Ok(curve)
}

/// Area under the risk–coverage curve (Geifman & El-Yaniv): the mean risk over the coverages
/// `1/n … 1`. Lower is better; its floor depends on the error rate (a perfect ranking reaches
/// it), a random ranking gets the error rate.
pub fn aurc(items: &[Scored]) -> Result<f64> {
    let curve = risk_coverage(items)?;
    Ok(curve.iter().map(|p| p.risk).sum::<f64>() / curve.len() as f64)
}

/// Expected calibration error of the **confidence `1 − score`** with `bins` equal-width bins
/// over `[0, 1]` (the last bin includes 1): `Σ_b (n_b / n) · |accuracy_b − mean confidence_b|`.
/// Scores must be in `[0, 1]`. Reports use [`ECE_BINS`] = 15.
pub fn ece(items: &[Scored], bins: usize) -> Result<f64> {
    validate(items, "ECE", true)?;
    if bins == 0 {
        return Err(UncertaintyError::InvalidInput(
            "ECE needs at least one bin".into(),
        ));
    }
    let mut count = vec![0usize; bins];
    let mut correct = vec![0usize; bins];
    let mut confidence = vec![0.0f64; bins];
    for item in items {
        let c = 1.0 - f64::from(item.score);
        let b = ((c * bins as f64).floor() as usize).min(bins - 1);
        count[b] += 1;
        confidence[b] += c;
        if item.outcome.is_correct() {
            correct[b] += 1;
        }
    }
    let n = items.len() as f64;
    Ok((0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            let nb = count[b] as f64;
            (nb / n) * (correct[b] as f64 / nb - confidence[b] / nb).abs()
        })
        .sum())
}

/// One point of a [`coverage_curve`]: the `routed` most uncertain predictions go to the LLM.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Fraction of the predictions routed (asked for).
    pub routed_fraction: f64,
    /// Number routed: `round(routed_fraction · n)`.
    pub routed: usize,
    /// Score of the least uncertain routed prediction (`None` when none is routed). With ties,
    /// a threshold policy `score ≥ threshold` may route more.
    pub threshold: Option<f32>,
    /// Precision of the predictions kept locally (0 when none is kept).
    pub local_precision: f64,
    /// Recall of the kept predictions against all gold entities.
    pub local_recall: f64,
    /// F1 of the kept predictions against all gold entities (routed ones removed).
    pub local_f1: f64,
    /// F1 when an oracle settles the routed predictions: correct ones confirmed, wrong-type ones
    /// relabelled to the gold type, spurious ones rejected — the ceiling of routing.
    pub oracle_f1: f64,
}

/// Routed fractions `0, 0.05, …, 1` (21 points).
pub fn default_fractions() -> Vec<f64> {
    (0..=20).map(|i| f64::from(i) / 20.0).collect()
}

fn f1(tp: f64, predicted: f64, gold: f64) -> f64 {
    let den = predicted + gold;
    if den > 0.0 { 2.0 * tp / den } else { 0.0 }
}

/// The coverage curve: for each routed fraction, the `round(f · n)` most uncertain predictions
/// are removed from the local output; the F1 of what is left is computed against `n_gold` gold
/// entities (gold entities the tagger missed count as false negatives), and beside it the F1 if
/// an oracle settled the routed ones ([`CurvePoint::oracle_f1`]).
///
/// `items` are the predicted entities with distinct spans (what a non-overlapping decoder
/// returns), so `correct + wrong_type ≤ n_gold`; fractions must be in `[0, 1]`.
pub fn coverage_curve(
    items: &[Scored],
    n_gold: usize,
    fractions: &[f64],
) -> Result<Vec<CurvePoint>> {
    if !items.is_empty() {
        validate(items, "coverage curve", false)?;
    }
    if let Some(f) = fractions.iter().find(|f| !(0.0..=1.0).contains(*f)) {
        return Err(UncertaintyError::InvalidInput(format!(
            "routed fraction {f} is not in [0, 1]"
        )));
    }
    let count = |o: Outcome| items.iter().filter(|s| s.outcome == o).count();
    let (n_correct, n_wrong_type) = (count(Outcome::Correct), count(Outcome::WrongType));
    if n_correct + n_wrong_type > n_gold {
        return Err(UncertaintyError::InvalidInput(format!(
            "{n_correct} correct and {n_wrong_type} wrong-type predictions but only {n_gold} \
             gold entities: each gold span can be predicted once"
        )));
    }
    let n = items.len();
    let (order, groups) = sorted_groups(items, true);
    // Expected (correct, wrong_type) among the top-k most uncertain, with ties split evenly.
    let top = |k: usize| -> (f64, f64) {
        let (mut c, mut w) = (0.0, 0.0);
        for &(start, end) in &groups {
            if start >= k {
                break;
            }
            let take = (k.min(end) - start) as f64 / (end - start) as f64;
            let members = &order[start..end];
            let gc = members
                .iter()
                .filter(|&&i| items[i].outcome == Outcome::Correct)
                .count();
            let gw = members
                .iter()
                .filter(|&&i| items[i].outcome == Outcome::WrongType)
                .count();
            c += take * gc as f64;
            w += take * gw as f64;
        }
        (c, w)
    };
    let gold = n_gold as f64;
    Ok(fractions
        .iter()
        .map(|&fraction| {
            let routed = ((fraction * n as f64).round() as usize).min(n);
            let (routed_correct, routed_wrong_type) = top(routed);
            let kept = (n - routed) as f64;
            let tp = n_correct as f64 - routed_correct;
            let oracle_tp = n_correct as f64 + routed_wrong_type;
            let oracle_predicted = kept + routed_correct + routed_wrong_type;
            CurvePoint {
                routed_fraction: fraction,
                routed,
                threshold: (routed > 0).then(|| items[order[routed - 1]].score),
                local_precision: if kept > 0.0 { tp / kept } else { 0.0 },
                local_recall: if gold > 0.0 { tp / gold } else { 0.0 },
                local_f1: f1(tp, kept, gold),
                oracle_f1: f1(oracle_tp, oracle_predicted, gold),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(score: f32, correct: bool) -> Scored {
        Scored::new(score, correct)
    }

    #[test]
    fn auroc_counts_ties_as_half() {
        let items = [s(0.5, true), s(0.5, false)];
        assert_eq!(auroc(&items).unwrap(), 0.5);
        // wrong: 0.9, 0.4; right: 0.1, 0.4 → pairs: (0.9>0.1)(0.9>0.4)(0.4>0.1)(0.4=0.4)
        let items = [s(0.9, false), s(0.4, false), s(0.1, true), s(0.4, true)];
        assert!((auroc(&items).unwrap() - 3.5 / 4.0).abs() < 1e-12);
        assert!(matches!(
            auroc(&[s(0.1, true)]),
            Err(UncertaintyError::Undefined { .. })
        ));
        assert!(auroc(&[s(f32::NAN, true), s(0.1, false)]).is_err());
    }

    #[test]
    fn aurc_by_hand() {
        // most certain first: right (risk 0), wrong (1/2), right (1/3) → mean = (0 + .5 + 1/3)/3
        let items = [s(0.1, true), s(0.5, false), s(0.9, true)];
        assert!((aurc(&items).unwrap() - (0.5 + 1.0 / 3.0) / 3.0).abs() < 1e-12);
        // constant scores: every coverage has the error rate
        let items = [s(0.3, true), s(0.3, false), s(0.3, true), s(0.3, true)];
        assert!((aurc(&items).unwrap() - 0.25).abs() < 1e-12);
        assert!(aurc(&[]).is_err());
    }

    #[test]
    fn ece_by_hand() {
        // confidence 0.9 (score 0.1), all wrong → gap 0.9
        let items = [s(0.1, false), s(0.1, false)];
        assert!((ece(&items, 15).unwrap() - 0.9).abs() < 1e-6);
        assert!(ece(&[s(1.5, true)], 15).is_err());
        assert!(ece(&items, 0).is_err());
    }

    #[test]
    fn coverage_curve_by_hand() {
        let items = [
            Scored::with_outcome(0.9, Outcome::Spurious),
            Scored::with_outcome(0.8, Outcome::WrongType),
            Scored::with_outcome(0.2, Outcome::Correct),
            Scored::with_outcome(0.1, Outcome::Correct),
        ];
        let curve = coverage_curve(&items, 4, &[0.0, 0.25, 0.5, 1.0]).unwrap();
        // nothing routed: tp 2, pred 4, gold 4 → F1 0.5
        assert!((curve[0].local_f1 - 0.5).abs() < 1e-12);
        assert_eq!(curve[0].threshold, None);
        // spurious routed: tp 2, pred 3 → 4/7; oracle rejects it: same
        assert!((curve[1].local_f1 - 4.0 / 7.0).abs() < 1e-12);
        assert!((curve[1].oracle_f1 - 4.0 / 7.0).abs() < 1e-12);
        // + wrong type routed: local tp 2 pred 2 → 4/6; oracle relabels: tp 3 pred 3 → 6/7
        assert!((curve[2].local_f1 - 4.0 / 6.0).abs() < 1e-12);
        assert!((curve[2].oracle_f1 - 6.0 / 7.0).abs() < 1e-12);
        assert_eq!(curve[2].threshold, Some(0.8));
        // everything routed: nothing local; oracle tp 3 pred 3
        assert_eq!(curve[3].local_f1, 0.0);
        assert!((curve[3].oracle_f1 - 6.0 / 7.0).abs() < 1e-12);
        assert!(coverage_curve(&items, 2, &[0.0]).is_err());
        assert!(coverage_curve(&items, 4, &[1.5]).is_err());
    }

    #[test]
    fn judge_spans() {
        let gold = [WordSpan::new(0, 2, "PER"), WordSpan::new(3, 4, "LOC")];
        assert_eq!(
            Outcome::judge(&WordSpan::new(0, 2, "PER"), &gold),
            Outcome::Correct
        );
        assert_eq!(
            Outcome::judge(&WordSpan::new(3, 4, "ORG"), &gold),
            Outcome::WrongType
        );
        assert_eq!(
            Outcome::judge(&WordSpan::new(0, 1, "PER"), &gold),
            Outcome::Spurious
        );
    }
}
