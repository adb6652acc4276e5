//! Every built-in estimator passes the conformance suite, and the suite catches broken ones.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use linkner_core::Candidate;
use linkner_uncertainty::builtins::{McDropout, McMeasure};
use linkner_uncertainty::{
    EstimatorConfig, Requirements, Result, UncertaintyError, UncertaintyEstimator, conformance,
    dist,
};
use proptest::prelude::*;

fn builtins() -> Vec<Box<dyn UncertaintyEstimator>> {
    let mut all: Vec<Box<dyn UncertaintyEstimator>> = EstimatorConfig::all()
        .iter()
        .map(|c| c.build().unwrap())
        .collect();
    // Sample counts other than the default: 1 pass (degenerate), 3 (fewer than classes).
    for samples in [1, 3] {
        for measure in [
            McMeasure::PredictiveEntropy,
            McMeasure::MutualInformation,
            McMeasure::Variance,
        ] {
            all.push(Box::new(McDropout::new(samples, measure).unwrap()));
        }
    }
    all
}

#[test]
fn every_builtin_conforms() {
    for estimator in builtins() {
        let violations = conformance::check(estimator.as_ref());
        assert!(
            violations.is_empty(),
            "{}: {}",
            estimator.name(),
            violations
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn builtin_names_are_unique() {
    let names: Vec<String> = EstimatorConfig::all().iter().map(|c| c.name()).collect();
    let mut dedup = names.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), names.len());
}

fn logits_strategy() -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![
        prop::collection::vec(-20.0f32..20.0, 1..12),
        prop::collection::vec(-1e4f32..1e4, 1..12),
        prop::collection::vec(prop::sample::select(vec![-1e4f32, 0.0, 1e4]), 1..12),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn builtins_conform_on_random_logits(logits in logits_strategy(), seed in any::<u64>()) {
        for estimator in builtins() {
            let c = conformance::candidate(&logits, estimator.requirements(), seed);
            let score = conformance::check_candidate(estimator.as_ref(), &c, "proptest");
            prop_assert!(score.is_ok(), "{}: {:?}", estimator.name(), score);
            if estimator.uniform_is_max() && logits.len() > 1 {
                let u = conformance::uniform_candidate(logits.len(), estimator.requirements());
                let uniform = estimator.score(&u).unwrap();
                let s = score.unwrap();
                prop_assert!(s <= uniform + conformance::UNIFORM_TOLERANCE,
                    "{}: {s} > uniform {uniform}", estimator.name());
            }
        }
    }
}

// ---- the suite must catch broken estimators ----

struct Fixed {
    name: &'static str,
    value: f32,
}

impl UncertaintyEstimator for Fixed {
    fn name(&self) -> String {
        self.name.into()
    }
    fn score(&self, _: &Candidate) -> Result<f32> {
        Ok(self.value)
    }
}

struct Drifting(AtomicU32);

impl UncertaintyEstimator for Drifting {
    fn name(&self) -> String {
        "drifting".into()
    }
    fn score(&self, _: &Candidate) -> Result<f32> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        Ok((n % 100) as f32 / 100.0)
    }
}

/// Indexes without checking: panics on an empty distribution.
struct Careless;

impl UncertaintyEstimator for Careless {
    fn name(&self) -> String {
        "careless".into()
    }
    fn score(&self, c: &Candidate) -> Result<f32> {
        Ok(1.0 - c.probs[0].abs().min(1.0))
    }
}

/// Declares Monte-Carlo samples but scores without them.
struct IgnoresSamples;

impl UncertaintyEstimator for IgnoresSamples {
    fn name(&self) -> String {
        "ignores_samples".into()
    }
    fn requirements(&self) -> Requirements {
        Requirements::none().with_mc_samples(4)
    }
    fn score(&self, c: &Candidate) -> Result<f32> {
        let p = dist::class_probs(c)?;
        Ok(dist::unit(dist::normalized_entropy(&p)))
    }
}

/// Max probability (a confidence, not an uncertainty) while declaring uniform is highest.
struct Inverted;

impl UncertaintyEstimator for Inverted {
    fn name(&self) -> String {
        "inverted".into()
    }
    fn score(&self, c: &Candidate) -> Result<f32> {
        let p = dist::class_probs(c)?;
        Ok(dist::unit(p.iter().copied().fold(0.0, f64::max)))
    }
    fn uniform_is_max(&self) -> bool {
        true
    }
}

fn checks_failed(estimator: &dyn UncertaintyEstimator) -> Vec<&'static str> {
    let mut checks: Vec<&'static str> = conformance::check(estimator)
        .iter()
        .map(|v| v.check)
        .collect();
    checks.sort();
    checks.dedup();
    checks
}

#[test]
fn suite_catches_out_of_range_and_nan() {
    assert_eq!(
        checks_failed(&Fixed {
            name: "big",
            value: 1.5
        }),
        vec!["range"]
    );
    assert_eq!(
        checks_failed(&Fixed {
            name: "neg",
            value: -0.1
        }),
        vec!["range"]
    );
    assert_eq!(
        checks_failed(&Fixed {
            name: "nan",
            value: f32::NAN
        }),
        vec!["range"]
    );
    assert!(
        checks_failed(&Fixed {
            name: "ok",
            value: 0.5
        })
        .is_empty()
    );
}

#[test]
fn suite_catches_nondeterminism() {
    assert_eq!(
        checks_failed(&Drifting(AtomicU32::new(0))),
        vec!["determinism"]
    );
}

#[test]
fn suite_catches_panics_on_bad_input() {
    assert_eq!(checks_failed(&Careless), vec!["panic"]);
}

#[test]
fn suite_catches_ignored_requirements() {
    assert_eq!(checks_failed(&IgnoresSamples), vec!["requirements"]);
}

#[test]
fn suite_catches_a_false_uniform_max_claim() {
    assert_eq!(checks_failed(&Inverted), vec!["uniform_max"]);
}

#[test]
#[should_panic(expected = "violates the conformance suite")]
fn assert_conforms_panics_with_a_clear_message() {
    conformance::assert_conforms(&Fixed {
        name: "big",
        value: 2.0,
    });
}

#[test]
fn missing_inputs_are_typed_errors() {
    let c = conformance::candidate(&[0.1, 0.2], Requirements::none(), 1);
    let mc = EstimatorConfig::McDropout {
        samples: 5,
        measure: McMeasure::Variance,
    }
    .build()
    .unwrap();
    assert!(matches!(
        mc.score(&c),
        Err(UncertaintyError::MissingSamples {
            needed: 5,
            found: 0,
            ..
        })
    ));
    let ev = "evidential"
        .parse::<EstimatorConfig>()
        .unwrap()
        .build()
        .unwrap();
    assert!(matches!(
        ev.score(&c),
        Err(UncertaintyError::MissingAlpha { .. })
    ));
}
