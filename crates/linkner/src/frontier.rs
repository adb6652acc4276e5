//! The cost–accuracy frontier of a tuning run: dev F1 against LLM calls per 1,000 sentences,
//! one curve per estimator, from a `linkner tune --json` record alone (the replay of
//! [`crate::tune`] already scored every setting; nothing is run and no LLM is called).
//!
//! A setting's calls are its routed entities: one `classify` call per routed entity. The
//! record keeps each setting's routed *fraction*, not the number of entities it is a fraction
//! of; [`entity_count`] recovers that number from the record's `llm_calls` (the tuning pass of
//! a prompt routes every entity above the floor, once per estimator) and checks it against the
//! fractions. Prompt tokens are not in the record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{LinkError, Result};
use crate::merge::MergePolicy;
use crate::policy::RoutingPolicy;
use crate::tune::SettingScore;

/// The part of a `linkner tune --json` record the frontier reads (other fields are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuningRecord {
    /// Dev sentences tuned on.
    pub sentences: usize,
    /// F1 of the local tagger alone on those sentences.
    pub local_f1: f64,
    /// Every searched setting.
    pub trials: Vec<TuningTrial>,
    /// Per prompt variant: the `classify` calls of its tuning pass (summed over the estimators,
    /// answers from the cache included) and the HTTP requests it sent.
    #[serde(default)]
    pub llm_calls: BTreeMap<String, (u64, u64)>,
}

/// One searched setting of a [`TuningRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuningTrial {
    /// The prompt variant.
    pub prompt: String,
    /// The estimator.
    pub estimator: String,
    /// Contextual calibration on.
    #[serde(default)]
    pub calibrate: bool,
    /// The routing and merge, with dev F1 and routed fraction.
    #[serde(flatten)]
    pub scored: SettingScore,
}

/// One point of a frontier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontierPoint {
    /// LLM calls per 1,000 dev sentences.
    pub calls_per_1k: f64,
    /// LLM calls on the dev sentences (routed entities).
    pub calls: usize,
    /// Dev entity F1.
    pub f1: f64,
    /// Fraction of the entities routed.
    pub routed_fraction: f64,
    /// The prompt variant; `None` for the "route nothing" point.
    pub prompt: Option<String>,
    /// Contextual calibration on.
    pub calibrate: bool,
    /// The routing policy.
    pub policy: RoutingPolicy,
    /// The merge policy.
    pub merge: MergePolicy,
}

/// The frontier of one estimator: its non-dominated settings, fewest calls first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimatorFrontier {
    /// The estimator.
    pub estimator: String,
    /// Points by increasing calls and strictly increasing F1; the first is "route nothing".
    pub points: Vec<FrontierPoint>,
}

/// The frontiers of every estimator of one tuning record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frontier {
    /// Dev sentences tuned on.
    pub sentences: usize,
    /// Entities the local tagger found on them (what the routed fractions are fractions of).
    pub entities: usize,
    /// F1 of the local tagger alone.
    pub local_f1: f64,
    /// One frontier per estimator, by name.
    pub estimators: Vec<EstimatorFrontier>,
}

/// How far `fraction × entities` may be from a whole number of entities.
const WHOLE: f64 = 1e-6;

/// The number of entities the routed fractions of `record` are fractions of.
///
/// The tuning pass of a prompt runs once per estimator with every entity above the floor
/// routed, and its `classify` calls are recorded (`llm_calls[prompt].0`); the largest routed
/// fraction of a prompt and estimator is that of the floor. So the calls divided by the sum,
/// over the prompt's estimators, of their largest routed fraction is the entity count. Every
/// prompt must give the same count, and every routed fraction must be a whole number of
/// entities over it. A record whose trials route nothing gives 0.
pub fn entity_count(record: &TuningRecord) -> Result<usize> {
    if record
        .trials
        .iter()
        .all(|t| t.scored.routed_fraction == 0.0)
    {
        return Ok(0);
    }
    let mut widest: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for t in &record.trials {
        let w = widest
            .entry((t.prompt.as_str(), t.estimator.as_str()))
            .or_insert(0.0);
        *w = w.max(t.scored.routed_fraction);
    }
    let mut found: Option<usize> = None;
    for (prompt, &(calls, _requests)) in &record.llm_calls {
        let sum: f64 = widest
            .iter()
            .filter(|((p, _), _)| p == prompt)
            .map(|(_, f)| f)
            .sum();
        if calls == 0 || sum <= 0.0 {
            continue;
        }
        let exact = calls as f64 / sum;
        let n = exact.round();
        if (exact - n).abs() > 1e-3 * n.max(1.0) {
            return Err(LinkError::Config(format!(
                "tuning record: prompt `{prompt}` made {calls} LLM calls for routed fractions \
                 summing to {sum}: {exact} is not a whole number of entities"
            )));
        }
        let n = n as usize;
        match found {
            Some(m) if m != n => {
                return Err(LinkError::Config(format!(
                    "tuning record: the prompts' LLM calls give {m} and {n} entities"
                )));
            }
            _ => found = Some(n),
        }
    }
    let n = found.ok_or_else(|| {
        LinkError::Config(
            "tuning record: no prompt with LLM calls and routed entities in `llm_calls`; \
             the number of entities behind the routed fractions is unknown"
                .into(),
        )
    })?;
    if let Some(t) = record.trials.iter().find(|t| {
        let k = t.scored.routed_fraction * n as f64;
        (k - k.round()).abs() > WHOLE * n as f64 || k < -WHOLE
    }) {
        return Err(LinkError::Config(format!(
            "tuning record: routed fraction {} ({} · {}) is not a whole number of {n} entities",
            t.scored.routed_fraction, t.prompt, t.estimator
        )));
    }
    Ok(n)
}

/// Keeps the non-dominated points (no other point has at most its calls and at least its F1,
/// one of them strictly), fewest calls first; of equal points the first given stays.
fn pareto(mut points: Vec<FrontierPoint>) -> Vec<FrontierPoint> {
    points.sort_by(|a, b| a.calls.cmp(&b.calls).then(b.f1.total_cmp(&a.f1)));
    let mut kept: Vec<FrontierPoint> = Vec::new();
    for p in points {
        if kept.last().is_none_or(|best| p.f1 > best.f1 + 1e-12) {
            kept.push(p);
        }
    }
    kept
}

/// The cost–accuracy frontier of each estimator of `record` (the settings of every prompt
/// variant and calibration pooled), each starting with the "route nothing" point at 0 calls
/// and the local F1. Calls per setting are `routed fraction × entities` ([`entity_count`]),
/// per 1,000 dev sentences.
pub fn frontier(record: &TuningRecord) -> Result<Frontier> {
    if record.sentences == 0 {
        return Err(LinkError::Config("tuning record: 0 dev sentences".into()));
    }
    let entities = entity_count(record)?;
    let per_1k = 1000.0 / record.sentences as f64;
    let mut by_estimator: BTreeMap<&str, Vec<FrontierPoint>> = BTreeMap::new();
    for t in &record.trials {
        let points = by_estimator.entry(t.estimator.as_str()).or_insert_with(|| {
            vec![FrontierPoint {
                calls_per_1k: 0.0,
                calls: 0,
                f1: record.local_f1,
                routed_fraction: 0.0,
                prompt: None,
                calibrate: false,
                policy: RoutingPolicy::Never,
                merge: MergePolicy::Replace,
            }]
        });
        let calls = (t.scored.routed_fraction * entities as f64).round() as usize;
        points.push(FrontierPoint {
            calls_per_1k: calls as f64 * per_1k,
            calls,
            f1: t.scored.f1,
            routed_fraction: t.scored.routed_fraction,
            prompt: Some(t.prompt.clone()),
            calibrate: t.calibrate,
            policy: t.scored.policy.clone(),
            merge: t.scored.merge.clone(),
        });
    }
    Ok(Frontier {
        sentences: record.sentences,
        entities,
        local_f1: record.local_f1,
        estimators: by_estimator
            .into_iter()
            .map(|(name, points)| EstimatorFrontier {
                estimator: name.to_string(),
                points: pareto(points),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(estimator: &str, threshold: f32, f1: f64, routed: usize) -> TuningTrial {
        TuningTrial {
            prompt: "plain".into(),
            estimator: estimator.into(),
            calibrate: false,
            scored: SettingScore {
                policy: RoutingPolicy::threshold(threshold),
                merge: MergePolicy::Replace,
                f1,
                routed_fraction: routed as f64 / 40.0,
            },
        }
    }

    /// 20 sentences, 40 entities. `conf` routes 10 at its floor, `ent` 20: the pass made 30
    /// calls.
    fn record() -> TuningRecord {
        TuningRecord {
            sentences: 20,
            local_f1: 0.70,
            trials: vec![
                trial("conf", 0.05, 0.74, 10),
                trial("conf", 0.3, 0.76, 6),
                // Dominated: more calls than the 0.3 setting for less F1.
                trial("conf", 0.2, 0.75, 8),
                trial("conf", 0.5, 0.72, 2),
                // Dominated by route nothing: calls for a worse F1.
                trial("conf", 0.8, 0.69, 1),
                trial("ent", 0.05, 0.80, 20),
                trial("ent", 0.4, 0.80, 12),
                trial("ent", 1.0, 0.70, 0),
            ],
            llm_calls: BTreeMap::from([("plain".to_string(), (30, 25))]),
        }
    }

    fn summary(f: &EstimatorFrontier) -> Vec<(usize, f64, f64)> {
        f.points
            .iter()
            .map(|p| (p.calls, p.calls_per_1k, p.f1))
            .collect()
    }

    #[test]
    fn entity_count_comes_from_the_calls_of_the_tuning_pass() {
        assert_eq!(entity_count(&record()).unwrap(), 40);
        // The calls disagree with the fractions: 31 calls for 30/40 routed.
        let mut bad = record();
        bad.llm_calls.insert("plain".into(), (31, 25));
        assert!(entity_count(&bad).is_err());
        // A fraction that is no whole number of entities.
        let mut odd = record();
        odd.trials[1].scored.routed_fraction = 6.5 / 40.0;
        assert!(entity_count(&odd).is_err());
        // No calls recorded.
        let mut none = record();
        none.llm_calls.clear();
        assert!(entity_count(&none).is_err());
    }

    #[test]
    fn frontier_keeps_the_non_dominated_settings_from_zero_calls_up() {
        let f = frontier(&record()).unwrap();
        assert_eq!((f.sentences, f.entities), (20, 40));
        let names: Vec<&str> = f.estimators.iter().map(|e| e.estimator.as_str()).collect();
        assert_eq!(names, ["conf", "ent"]);
        // 1,000 / 20 sentences = 50 per call.
        assert_eq!(
            summary(&f.estimators[0]),
            [(0, 0.0, 0.70), (2, 100.0, 0.72), (6, 300.0, 0.76)]
        );
        // The threshold-1 setting ties route nothing and does not replace it; 20 calls tie
        // 12 calls on F1 and are dropped.
        assert_eq!(
            summary(&f.estimators[1]),
            [(0, 0.0, 0.70), (12, 600.0, 0.80)]
        );
        for e in &f.estimators {
            let zero = &e.points[0];
            assert_eq!(zero.policy, RoutingPolicy::Never);
            assert_eq!(zero.prompt, None);
            assert!(
                e.points
                    .windows(2)
                    .all(|w| w[0].calls < w[1].calls && w[0].f1 < w[1].f1)
            );
        }
        let best = f.estimators[0].points.last().unwrap();
        assert_eq!(best.policy, RoutingPolicy::threshold(0.3));
        assert_eq!(best.prompt.as_deref(), Some("plain"));
        assert!((best.routed_fraction - 0.15).abs() < 1e-12);
    }

    #[test]
    fn a_record_parses_from_tune_json() {
        let json = r#"{"dev": "dev.txt", "sentences": 20, "local_f1": 0.7, "floor": 0.05,
            "best": {}, "wall_seconds": 1.0,
            "trials": [{"prompt": "plain", "estimator": "conf", "calibrate": true,
                        "policy": {"type": "threshold", "threshold": 0.3},
                        "merge": {"type": "fuse", "weight": 0.6},
                        "f1": 0.76, "routed_fraction": 0.25}],
            "llm_calls": {"plain": [10, 4]}}"#;
        let r: TuningRecord = serde_json::from_str(json).unwrap();
        assert_eq!(r.llm_calls["plain"], (10, 4));
        assert!(r.trials[0].calibrate);
        assert_eq!(r.trials[0].scored.merge, MergePolicy::fuse(0.6));
        let f = frontier(&r).unwrap();
        assert_eq!(f.entities, 40);
        assert_eq!(
            summary(&f.estimators[0]),
            [(0, 0.0, 0.7), (10, 500.0, 0.76)]
        );
    }
}
