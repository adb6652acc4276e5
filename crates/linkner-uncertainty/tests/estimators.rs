//! The built-in estimators compute their documented formulas.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use linkner_core::Candidate;
use linkner_uncertainty::builtins::{
    Confidence, Entropy, Evidential, EvidentialMeasure, McDropout, McMeasure,
};
use linkner_uncertainty::{
    EstimatorConfig, Requirements, UncertaintyError, UncertaintyEstimator, conformance,
};

fn with_probs(probs: &[f32]) -> Candidate {
    let mut c = conformance::candidate(&[0.0; 1], Requirements::none(), 0);
    c.logits.clear();
    c.probs = probs.to_vec();
    c
}

fn with_mc(passes: &[&[f32]]) -> Candidate {
    let mut c = with_probs(&[0.5, 0.5]);
    c.mc_probs = passes.iter().map(|p| p.to_vec()).collect();
    c
}

fn with_alpha(alpha: &[f32]) -> Candidate {
    let mut c = with_probs(&vec![1.0 / alpha.len() as f32; alpha.len()]);
    c.alpha = Some(alpha.to_vec());
    c
}

fn close(a: f32, b: f64) -> bool {
    (f64::from(a) - b).abs() < 1e-6
}

#[test]
fn confidence_is_one_minus_max_probability() {
    let s = Confidence.score(&with_probs(&[0.1, 0.7, 0.2])).unwrap();
    assert!(close(s, 0.3), "{s}");
}

#[test]
fn entropy_is_normalised_by_ln_k() {
    let p = [0.1f64, 0.7, 0.2];
    let h: f64 = -p.iter().map(|x| x * x.ln()).sum::<f64>() / 3f64.ln();
    let s = Entropy.score(&with_probs(&[0.1, 0.7, 0.2])).unwrap();
    assert!(close(s, h), "{s} vs {h}");
    assert!(close(Entropy.score(&with_probs(&[0.25; 4])).unwrap(), 1.0));
    assert!(close(
        Entropy.score(&with_probs(&[0.0, 1.0, 0.0])).unwrap(),
        0.0
    ));
}

#[test]
fn logits_take_precedence_and_stay_exact_at_extremes() {
    let c = conformance::candidate(&[1e4, -1e4, 1e4], Requirements::none(), 0);
    // two classes share all the mass: entropy ln2 / ln3, confidence 1/2.
    assert!(close(Entropy.score(&c).unwrap(), 2f64.ln() / 3f64.ln()));
    assert!(close(Confidence.score(&c).unwrap(), 0.5));
}

#[test]
fn mc_dropout_measures_disagreement() {
    // Two confident passes that disagree: total uncertainty and disagreement are both maximal.
    let torn = with_mc(&[&[1.0, 0.0], &[0.0, 1.0]]);
    // Two uniform passes: maximal total uncertainty, no disagreement.
    let flat = with_mc(&[&[0.5, 0.5], &[0.5, 0.5]]);
    let score = |m, c: &Candidate| McDropout::new(2, m).unwrap().score(c).unwrap();
    assert!(close(score(McMeasure::PredictiveEntropy, &torn), 1.0));
    assert!(close(score(McMeasure::MutualInformation, &torn), 1.0));
    assert!(close(score(McMeasure::Variance, &torn), 1.0));
    assert!(close(score(McMeasure::PredictiveEntropy, &flat), 1.0));
    assert!(close(score(McMeasure::MutualInformation, &flat), 0.0));
    assert!(close(score(McMeasure::Variance, &flat), 0.0));
}

#[test]
fn mc_dropout_mutual_information_by_hand() {
    let c = with_mc(&[&[0.9, 0.1], &[0.5, 0.5]]);
    let h = |p: &[f64]| {
        -p.iter()
            .filter(|x| **x > 0.0)
            .map(|x| x * x.ln())
            .sum::<f64>()
    };
    let mi = (h(&[0.7, 0.3]) - (h(&[0.9, 0.1]) + h(&[0.5, 0.5])) / 2.0) / 2f64.ln();
    let var = ((0.2f64 * 0.2) * 2.0) / 0.5; // each class varies by ±0.2
    let s = McDropout::new(2, McMeasure::MutualInformation)
        .unwrap()
        .score(&c)
        .unwrap();
    assert!(close(s, mi), "{s} vs {mi}");
    let s = McDropout::new(2, McMeasure::Variance)
        .unwrap()
        .score(&c)
        .unwrap();
    assert!(close(s, var), "{s} vs {var}");
}

#[test]
fn mc_dropout_rejects_bad_samples() {
    let est = McDropout::new(2, McMeasure::PredictiveEntropy).unwrap();
    assert!(matches!(
        est.score(&with_mc(&[&[1.0, 0.0]])),
        Err(UncertaintyError::MissingSamples {
            needed: 2,
            found: 1,
            ..
        })
    ));
    assert!(matches!(
        est.score(&with_mc(&[&[1.0, 0.0], &[0.2, 0.3, 0.5]])),
        Err(UncertaintyError::InvalidCandidate(_))
    ));
    assert!(matches!(
        est.score(&with_mc(&[&[1.0, 0.0], &[0.2, 0.2]])),
        Err(UncertaintyError::InvalidCandidate(_))
    ));
    assert!(matches!(
        McDropout::new(0, McMeasure::Variance),
        Err(UncertaintyError::InvalidConfig(_))
    ));
}

#[test]
fn evidential_vacuity_and_dissonance() {
    let vacuity = Evidential::new(EvidentialMeasure::Vacuity);
    let dissonance = Evidential::new(EvidentialMeasure::Dissonance);
    // No evidence: fully vacuous, no conflict.
    assert!(close(
        vacuity.score(&with_alpha(&[1.0, 1.0, 1.0])).unwrap(),
        1.0
    ));
    assert!(close(
        dissonance.score(&with_alpha(&[1.0, 1.0, 1.0])).unwrap(),
        0.0
    ));
    // Strong balanced evidence for two classes: b = [10/22, 10/22], dissonance = Σ b = 20/22.
    let c = with_alpha(&[11.0, 11.0]);
    assert!(close(vacuity.score(&c).unwrap(), 2.0 / 22.0));
    assert!(close(dissonance.score(&c).unwrap(), 20.0 / 22.0));
    // Evidence for one class only: no conflict.
    assert!(close(
        dissonance.score(&with_alpha(&[1.0, 50.0, 1.0])).unwrap(),
        0.0
    ));
    // Unbalanced: b = [2/8, 4/8] (S = 8): Bal = 1 - 2/6 = 2/3; diss = 2·(2/8 · 4/8 · 2/3)/… by formula
    let (b1, b2) = (2.0f64 / 8.0, 4.0 / 8.0);
    let bal = 1.0 - (b1 - b2).abs() / (b1 + b2);
    let expected = b1 * bal + b2 * bal; // each class has one other; Σ_j b_j Bal / Σ_j b_j = Bal
    let s = dissonance.score(&with_alpha(&[3.0, 5.0])).unwrap();
    assert!(close(s, expected), "{s} vs {expected}");
    assert!(matches!(
        vacuity.score(&with_alpha(&[0.5, 2.0])),
        Err(UncertaintyError::InvalidCandidate(_))
    ));
}

#[test]
fn config_round_trips_and_rejects_unknown_input() {
    for config in EstimatorConfig::all() {
        let json = serde_json::to_string(&config).unwrap();
        let back: EstimatorConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config, "{json}");
    }
    let c: EstimatorConfig = serde_json::from_str(r#"{"type": "mc_dropout"}"#).unwrap();
    assert_eq!(
        c,
        EstimatorConfig::McDropout {
            samples: 10,
            measure: McMeasure::PredictiveEntropy
        }
    );
    let c: EstimatorConfig =
        serde_json::from_str(r#"{"type": "evidential", "measure": "dissonance"}"#).unwrap();
    assert_eq!(c.build().unwrap().name(), "evidential:dissonance");
    assert!(c.build().unwrap().requirements().needs_alpha);
    assert!(serde_json::from_str::<EstimatorConfig>(r#"{"type": "bayes"}"#).is_err());
    assert!(serde_json::from_str::<EstimatorConfig>(r#"{"type": "entropy", "x": 1}"#).is_err());
    assert!(
        serde_json::from_str::<EstimatorConfig>(r#"{"type": "mc_dropout", "measure": "max"}"#)
            .is_err()
    );
    let zero: EstimatorConfig =
        serde_json::from_str(r#"{"type": "mc_dropout", "samples": 0}"#).unwrap();
    assert!(matches!(
        zero.build(),
        Err(UncertaintyError::InvalidConfig(_))
    ));
    let parsed: EstimatorConfig = r#"{"type": "confidence"}"#.parse().unwrap();
    assert_eq!(parsed, EstimatorConfig::Confidence {});
}

#[test]
fn requirements_union() {
    let a = Requirements::none().with_mc_samples(5);
    let b = Requirements::none().with_mc_samples(3).with_alpha();
    let u = a.union(b);
    assert_eq!(u.mc_samples, 5);
    assert!(u.needs_alpha);
}

#[test]
fn boxed_and_shared_estimators_forward() {
    let boxed: Box<dyn UncertaintyEstimator> = Box::new(Entropy);
    let shared = std::sync::Arc::new(McDropout::new(3, McMeasure::Variance).unwrap());
    assert_eq!(boxed.name(), "entropy");
    assert_eq!(shared.requirements().mc_samples, 3);
    let c = with_probs(&[0.5, 0.5]);
    assert_eq!(boxed.score_batch(&[c.clone(), c]).unwrap().len(), 2);
}
