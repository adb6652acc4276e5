//! `evaluate` on a synthetic labelled set: metrics agree with the plain functions, the report
//! serialises to JSON, and estimator failures name the estimator and candidate.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use linkner_core::{Candidate, WordSpan};
use linkner_uncertainty::metrics::{self, Outcome, Scored};
use linkner_uncertainty::{
    EstimatorConfig, EstimatorReport, Requirements, UncertaintyError, UncertaintyEstimator,
    conformance, evaluate_estimators, judge_sentence,
};

/// Candidates whose confidence decides correctness: sharp ones are right, flat ones wrong,
/// with a few exceptions so that no estimator is perfect.
fn labelled_set(requirements: Requirements) -> Vec<(Candidate, Outcome)> {
    (0..60)
        .map(|i| {
            let sharpness = (i % 20) as f32 / 2.0;
            let logits = [0.0, sharpness, sharpness * 0.3, 0.5];
            let c = conformance::candidate(&logits, requirements, i as u64);
            let outcome = match (sharpness > 4.0, i % 7 == 0) {
                (true, false) | (false, true) => Outcome::Correct,
                _ if i % 3 == 0 => Outcome::WrongType,
                _ => Outcome::Spurious,
            };
            (c, outcome)
        })
        .collect()
}

#[test]
fn evaluate_matches_the_metric_functions_and_serialises() {
    let configs = EstimatorConfig::all();
    let built: Vec<Box<dyn UncertaintyEstimator>> =
        configs.iter().map(|c| c.build().unwrap()).collect();
    let refs: Vec<&dyn UncertaintyEstimator> = built.iter().map(|b| b.as_ref()).collect();
    let requirements = refs
        .iter()
        .fold(Requirements::none(), |r, e| r.union(e.requirements()));
    let set = labelled_set(requirements);
    let n_correct_or_wt = set.iter().filter(|(_, o)| *o != Outcome::Spurious).count();
    let n_gold = n_correct_or_wt + 5;
    let reports = evaluate_estimators(&refs, &set, n_gold).unwrap();
    assert_eq!(reports.len(), configs.len());

    for (estimator, report) in refs.iter().zip(&reports) {
        assert_eq!(report.name, estimator.name());
        let items: Vec<Scored> = set
            .iter()
            .map(|(c, o)| Scored::with_outcome(estimator.score(c).unwrap(), *o))
            .collect();
        assert_eq!(report.auroc, Some(metrics::auroc(&items).unwrap()));
        assert_eq!(report.aurc, metrics::aurc(&items).unwrap());
        assert_eq!(report.ece, metrics::ece(&items, 15).unwrap());
        assert!(report.aurc_optimal <= report.aurc);
        assert_eq!(
            report.n_wrong,
            items.iter().filter(|s| s.is_wrong()).count()
        );
        assert_eq!(report.curve.len(), 21);
    }
    // Confidence-driven correctness: the confidence estimator detects the mistakes well.
    let confidence = &reports[0];
    assert!(confidence.auroc.unwrap() > 0.7, "{confidence:?}");

    let json = serde_json::to_string_pretty(&reports).unwrap();
    let back: Vec<EstimatorReport> = serde_json::from_str(&json).unwrap();
    assert_eq!(back.len(), reports.len());
    for (b, r) in back.iter().zip(&reports) {
        // serde_json parses floats to within an ulp, not bit for bit
        assert_eq!(b.name, r.name);
        assert!((b.aurc - r.aurc).abs() < 1e-12 && (b.ece - r.ece).abs() < 1e-12);
        assert!((b.auroc.unwrap() - r.auroc.unwrap()).abs() < 1e-12);
        assert_eq!(b.curve.len(), r.curve.len());
    }
    assert!(json.contains("\"auroc\"") && json.contains("\"oracle_f1\""));
}

#[test]
fn evaluate_reports_which_estimator_failed() {
    let set = labelled_set(Requirements::none());
    let mc = EstimatorConfig::McDropout {
        samples: 4,
        measure: Default::default(),
    }
    .build()
    .unwrap();
    match evaluate_estimators(&[mc.as_ref()], &set, 100) {
        Err(UncertaintyError::Estimator {
            estimator,
            index,
            source,
        }) => {
            assert_eq!(estimator, "mc_dropout:predictive_entropy");
            assert_eq!(index, 0);
            assert!(matches!(*source, UncertaintyError::MissingSamples { .. }));
        }
        other => panic!("expected an estimator error, got {other:?}"),
    }
}

#[test]
fn auroc_is_none_when_nothing_is_wrong() {
    let set: Vec<(Candidate, Outcome)> = labelled_set(Requirements::none())
        .into_iter()
        .map(|(c, _)| (c, Outcome::Correct))
        .collect();
    let entropy = EstimatorConfig::Entropy {}.build().unwrap();
    let reports = evaluate_estimators(&[entropy.as_ref()], &set, set.len()).unwrap();
    assert_eq!(reports[0].auroc, None);
    assert_eq!(reports[0].aurc, 0.0);
}

#[test]
fn judge_sentence_uses_span_and_type() {
    let mut a = conformance::candidate(&[0.0, 3.0], Requirements::none(), 0);
    a.span = WordSpan::new(0, 2, "PER");
    let mut b = a.clone();
    b.span = WordSpan::new(3, 4, "ORG");
    let mut c = a.clone();
    c.span = WordSpan::new(5, 6, "LOC");
    let gold = [WordSpan::new(0, 2, "PER"), WordSpan::new(3, 4, "LOC")];
    let outcomes: Vec<Outcome> = judge_sentence(vec![a, b, c], &gold)
        .into_iter()
        .map(|p| p.1)
        .collect();
    assert_eq!(
        outcomes,
        vec![Outcome::Correct, Outcome::WrongType, Outcome::Spurious]
    );
}
