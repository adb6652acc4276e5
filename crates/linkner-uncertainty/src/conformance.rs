//! The conformance suite every estimator runs — the built-ins in this crate's tests, and yours
//! in your own:
//!
//! ```
//! # use linkner_uncertainty::{conformance, builtins::Entropy};
//! conformance::assert_conforms(&Entropy);
//! ```
//!
//! It scores fixed extreme candidates (logits ±1e4, all equal, a single class, tiny and huge
//! differences) and pseudo-random ones from a fixed seed, each carrying exactly what the
//! estimator's [`requirements`](UncertaintyEstimator::requirements) ask for, and checks:
//!
//! - **range**: every score is `Ok`, finite and in `[0, 1]`;
//! - **determinism** (when [`is_deterministic`](UncertaintyEstimator::is_deterministic)): the
//!   same candidate scored twice gets the same score, bit for bit;
//! - **uniform is highest** (when [`uniform_is_max`](UncertaintyEstimator::uniform_is_max)):
//!   for each class count, the uniform candidate scores at least as high as every other;
//! - **requirements**: a candidate lacking the declared Monte-Carlo samples or Dirichlet
//!   parameters gets an error, not a silent score;
//! - **bad input**: empty, non-finite or inconsistent distributions never panic (an error, or a
//!   score in `[0, 1]`).
//!
//! [`check_candidate`] runs the per-candidate checks on one candidate, for property tests over
//! your own generators; [`candidate`] builds candidates the way the suite does.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use linkner_core::{Candidate, Entity, WordSpan};

use crate::estimator::{Requirements, UncertaintyEstimator};

/// Tolerance of the "uniform is highest" check.
pub const UNIFORM_TOLERANCE: f32 = 1e-6;

/// Number of pseudo-random candidates [`check`] scores.
pub const RANDOM_CASES: usize = 256;

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which check failed (`range`, `determinism`, `uniform_max`, `requirements`, `panic`).
    pub check: &'static str,
    /// The input, described.
    pub case: String,
    /// What happened.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.check, self.case, self.message)
    }
}

/// A deterministic pseudo-random generator (SplitMix64), so that the suite needs no
/// dependency and every run sees the same candidates.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)`.
    fn symmetric(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn softplus(x: f32) -> f32 {
    let x = f64::from(x);
    (x.max(0.0) + (-x.abs()).exp().ln_1p()) as f32
}

fn shell(logits: Vec<f32>, probs: Vec<f32>) -> Candidate {
    let class = linkner_core::prob::argmax(&probs).unwrap_or(0);
    let score = probs.get(class).copied();
    Candidate {
        span: WordSpan::new(0, 1, "T"),
        entity: Entity {
            start: 0,
            end: 4,
            text: "Word".into(),
            label: "T".into(),
            score,
        },
        class,
        logits,
        probs,
        mc_probs: Vec::new(),
        alpha: None,
    }
}

/// A candidate with `logits` (finite), carrying what `requirements` asks for: probabilities
/// (softmax), `requirements.mc_samples` Monte-Carlo passes (softmax of the logits plus noise
/// from `seed`, of scale 1 + 10% of the largest |logit|), and Dirichlet parameters
/// `softplus(logits) + 1`.
pub fn candidate(logits: &[f32], requirements: Requirements, seed: u64) -> Candidate {
    let mut rng = SplitMix(seed);
    let probs = linkner_core::prob::softmax_f32(logits);
    let mut c = shell(logits.to_vec(), probs);
    let scale = 1.0 + 0.1 * logits.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    c.mc_probs = (0..requirements.mc_samples)
        .map(|_| {
            let noisy: Vec<f32> = logits
                .iter()
                .map(|&x| x + scale * rng.symmetric())
                .collect();
            linkner_core::prob::softmax_f32(&noisy)
        })
        .collect();
    if requirements.needs_alpha {
        c.alpha = Some(logits.iter().map(|&x| softplus(x) + 1.0).collect());
    }
    c
}

/// The uniform candidate over `k` classes: logits all 0, probabilities `1/k`, every
/// Monte-Carlo pass uniform, every Dirichlet parameter 1 (no evidence).
pub fn uniform_candidate(k: usize, requirements: Requirements) -> Candidate {
    let mut c = shell(vec![0.0; k], vec![1.0 / k as f32; k]);
    c.mc_probs = vec![vec![1.0 / k as f32; k]; requirements.mc_samples];
    if requirements.needs_alpha {
        c.alpha = Some(vec![1.0; k]);
    }
    c
}

fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".into())
    })
}

/// Runs the range and determinism checks on one well-formed candidate (one that carries what
/// the estimator requires). Returns the score when the checks pass.
pub fn check_candidate(
    estimator: &dyn UncertaintyEstimator,
    candidate: &Candidate,
    case: &str,
) -> Result<f32, Vec<Violation>> {
    let violation = |check, message: String| Violation {
        check,
        case: case.to_string(),
        message,
    };
    let first = match catch(|| estimator.score(candidate)) {
        Err(panic) => return Err(vec![violation("panic", format!("score panicked: {panic}"))]),
        Ok(Err(e)) => return Err(vec![violation("range", format!("score failed: {e}"))]),
        Ok(Ok(s)) => s,
    };
    let mut violations = Vec::new();
    if !(0.0..=1.0).contains(&first) {
        violations.push(violation(
            "range",
            format!("score {first} is not in [0, 1]"),
        ));
    }
    if estimator.is_deterministic() {
        match catch(|| estimator.score(candidate)) {
            Ok(Ok(second)) if second.to_bits() == first.to_bits() => {}
            Ok(Ok(second)) => violations.push(violation(
                "determinism",
                format!("scored {first} then {second} on the same candidate"),
            )),
            Ok(Err(e)) => violations.push(violation(
                "determinism",
                format!("scored {first} then failed on the same candidate: {e}"),
            )),
            Err(panic) => violations.push(violation(
                "panic",
                format!("second score panicked: {panic}"),
            )),
        }
    }
    if violations.is_empty() {
        Ok(first)
    } else {
        Err(violations)
    }
}

/// The fixed extreme logit vectors the suite scores, with a description each.
pub fn extreme_logits() -> Vec<(String, Vec<f32>)> {
    let mut cases = Vec::new();
    for k in [1usize, 2, 5, 9] {
        cases.push((format!("k={k} all zero"), vec![0.0; k]));
        cases.push((format!("k={k} all +1e4"), vec![1e4; k]));
        cases.push((format!("k={k} all -1e4"), vec![-1e4; k]));
        let mut one_hot = vec![-1e4; k];
        one_hot[k - 1] = 1e4;
        cases.push((format!("k={k} one +1e4 rest -1e4"), one_hot));
        let alternating: Vec<f32> = (0..k)
            .map(|i| if i % 2 == 0 { 1e4 } else { -1e4 })
            .collect();
        cases.push((format!("k={k} alternating ±1e4"), alternating));
        let mut spike = vec![0.0; k];
        spike[0] = 1e4;
        cases.push((format!("k={k} one +1e4 rest 0"), spike));
        let tiny: Vec<f32> = (0..k).map(|i| i as f32 * 1e-7).collect();
        cases.push((format!("k={k} tiny differences"), tiny));
        let max_f32: Vec<f32> = (0..k).map(|i| if i == 0 { 3e38 } else { -3e38 }).collect();
        cases.push((format!("k={k} ±3e38"), max_f32));
    }
    cases
}

fn random_logits(rng: &mut SplitMix) -> Vec<f32> {
    let k = 1 + rng.below(10);
    let scale = [0.01f32, 0.3, 1.0, 3.0, 10.0, 100.0, 1e4][rng.below(7)];
    (0..k).map(|_| scale * rng.symmetric()).collect()
}

fn malformed(requirements: Requirements) -> Vec<(String, Candidate)> {
    let base = candidate(&[1.0, 2.0, 0.5], requirements, 7);
    let mut cases = Vec::new();
    let mut c = base.clone();
    c.logits.clear();
    c.probs.clear();
    c.mc_probs = c.mc_probs.iter().map(|_| Vec::new()).collect();
    c.alpha = c.alpha.map(|_| Vec::new());
    cases.push(("empty distributions".to_string(), c));
    let mut c = base.clone();
    c.logits[0] = f32::NAN;
    c.probs[0] = f32::NAN;
    if let Some(p) = c.mc_probs.first_mut() {
        p[0] = f32::NAN;
    }
    if let Some(a) = c.alpha.as_mut() {
        a[0] = f32::NAN;
    }
    cases.push(("NaN everywhere".to_string(), c));
    let mut c = base.clone();
    c.logits[1] = f32::INFINITY;
    c.probs[1] = f32::INFINITY;
    if let Some(a) = c.alpha.as_mut() {
        a[1] = f32::INFINITY;
    }
    cases.push(("infinite values".to_string(), c));
    let mut c = base.clone();
    c.probs.push(0.0);
    if let Some(p) = c.mc_probs.last_mut() {
        p.truncate(1);
    }
    if let Some(a) = c.alpha.as_mut() {
        a.push(1.0);
    }
    cases.push(("inconsistent lengths".to_string(), c));
    let mut c = base;
    c.logits.clear();
    c.probs = vec![-0.5, 1.5, 0.0];
    if let Some(a) = c.alpha.as_mut() {
        a[0] = -3.0;
    }
    cases.push(("negative probabilities and alpha".to_string(), c));
    cases
}

/// Runs the whole suite on `estimator` and returns every violation (empty = conforms).
pub fn check(estimator: &dyn UncertaintyEstimator) -> Vec<Violation> {
    let requirements = estimator.requirements();
    let mut violations = Vec::new();
    // Scored well-formed candidates, per class count, for the uniform check.
    let mut scored: Vec<(String, usize, f32)> = Vec::new();

    let mut run =
        |case: String, c: Candidate, violations: &mut Vec<Violation>| match check_candidate(
            estimator, &c, &case,
        ) {
            Ok(score) => scored.push((case, c.logits.len(), score)),
            Err(v) => violations.extend(v),
        };
    for (i, (case, logits)) in extreme_logits().into_iter().enumerate() {
        run(
            case,
            candidate(&logits, requirements, i as u64),
            &mut violations,
        );
    }
    let mut rng = SplitMix(0x11AB_E5EE_D000_0001);
    for i in 0..RANDOM_CASES {
        let logits = random_logits(&mut rng);
        let case = format!("random #{i} logits {logits:?}");
        let seed = rng.next_u64();
        run(
            case,
            candidate(&logits, requirements, seed),
            &mut violations,
        );
    }

    if estimator.uniform_is_max() {
        for k in 2usize..=10 {
            let case = format!("uniform k={k}");
            let uniform =
                match check_candidate(estimator, &uniform_candidate(k, requirements), &case) {
                    Ok(s) => s,
                    Err(v) => {
                        violations.extend(v);
                        continue;
                    }
                };
            for (other, _, score) in scored.iter().filter(|(_, kk, _)| *kk == k) {
                if *score > uniform + UNIFORM_TOLERANCE {
                    violations.push(Violation {
                        check: "uniform_max",
                        case: other.clone(),
                        message: format!(
                            "scored {score}, above the uniform distribution's {uniform} (k={k})"
                        ),
                    });
                }
            }
        }
    }

    let full = candidate(&[0.3, 1.2, -0.4], requirements, 3);
    if requirements.mc_samples > 0 {
        let mut c = full.clone();
        c.mc_probs.truncate(requirements.mc_samples - 1);
        expect_error(
            estimator,
            &c,
            "fewer Monte-Carlo samples than required",
            &mut violations,
        );
    }
    if requirements.needs_alpha {
        let mut c = full;
        c.alpha = None;
        expect_error(estimator, &c, "no Dirichlet parameters", &mut violations);
    }

    for (case, c) in malformed(requirements) {
        match catch(|| estimator.score(&c)) {
            Err(panic) => violations.push(Violation {
                check: "panic",
                case,
                message: format!(
                    "score panicked on bad input instead of returning an error: {panic}"
                ),
            }),
            Ok(Ok(s)) if !(0.0..=1.0).contains(&s) => violations.push(Violation {
                check: "range",
                case,
                message: format!("bad input scored {s}, not in [0, 1] (return an error instead)"),
            }),
            Ok(_) => {}
        }
    }
    violations
}

fn expect_error(
    estimator: &dyn UncertaintyEstimator,
    c: &Candidate,
    case: &str,
    violations: &mut Vec<Violation>,
) {
    match catch(|| estimator.score(c)) {
        Ok(Err(_)) => {}
        Ok(Ok(s)) => violations.push(Violation {
            check: "requirements",
            case: case.into(),
            message: format!("scored {s} instead of reporting the missing input as an error"),
        }),
        Err(panic) => violations.push(Violation {
            check: "panic",
            case: case.into(),
            message: format!("score panicked instead of returning an error: {panic}"),
        }),
    }
}

/// Runs [`check`] and panics with every violation listed — for use in tests.
#[allow(clippy::panic)]
pub fn assert_conforms(estimator: &dyn UncertaintyEstimator) {
    let violations = check(estimator);
    if !violations.is_empty() {
        let shown: Vec<String> = violations
            .iter()
            .take(20)
            .map(|v| format!("  {v}"))
            .collect();
        panic!(
            "estimator `{}` violates the conformance suite ({} violations):\n{}",
            estimator.name(),
            violations.len(),
            shown.join("\n")
        );
    }
}
