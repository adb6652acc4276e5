//! Merge policies: how the LLM's answer and the local tagger's distribution become one decision
//! for a routed entity.
//!
//! | policy | rule | old name |
//! |---|---|---|
//! | [`MergePolicy::Replace`] | the LLM's answer wins, whatever its confidence | LinkNER's rule |
//! | [`MergePolicy::Fuse`] | log-linear pooling `p ∝ p_local^w · p_llm^(1−w)` over the classes, the LLM's distribution optionally tempered and widened by its doubt | |
//! | [`MergePolicy::Rerank`] | the LLM picks only among the local top-`k` types and "not an entity" | filter-then-rerank |
//! | [`MergePolicy::PerType`] | one of the above per entity type: the entity's local label picks it | |
//!
//! Every class of the schema takes part, the non-entity class `0` included, so a merged decision
//! of class 0 rejects the entity. The policies are pure functions of the two distributions
//! ([`MergePolicy::decide`]), so `linkner tune` replays them offline from one LLM pass.
//!
//! In a config file (serde, tagged by `type`):
//!
//! ```
//! use linkner::merge::MergePolicy;
//! let m: MergePolicy = serde_json::from_str(r#"{"type": "fuse", "weight": 0.6}"#).unwrap();
//! assert_eq!(m, MergePolicy::fuse(0.6));
//! let m: MergePolicy =
//!     serde_json::from_str(r#"{"type": "fuse", "weight": 0.6, "temperature": 2.0, "doubt": true}"#)
//!         .unwrap();
//! assert_eq!(m.to_string(), "fuse:0.6,t=2,doubt");
//! let m: MergePolicy = serde_json::from_str(r#"{"type": "replace"}"#).unwrap();
//! assert_eq!(m, MergePolicy::Replace);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{LinkError, Result};

/// Probability given to the LLM's answer when the backend returns no distribution (constrained
/// or free-text answer modes): the rest is spread evenly over the other classes.
pub const ANSWER_ONLY_CONFIDENCE: f32 = 0.9;

/// Floor of every probability before logs are taken in [`MergePolicy::Fuse`], so that one
/// model's zero cannot veto a class outright.
pub const PROB_FLOOR: f32 = 1e-6;

/// How a routed entity's final class is decided from the local and the LLM distributions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MergePolicy {
    /// The LLM's answer replaces the local label ("not an entity" drops the entity): the rule of
    /// the LinkNER paper.
    #[default]
    Replace,
    /// Log-linear pooling over all classes: `p(c) ∝ p_local(c)^weight · p_llm(c)^(1 − weight)`.
    /// `weight` 1 is the local tagger alone, 0 the LLM's argmax. Before pooling, the LLM's
    /// distribution is tempered (`p^(1/temperature)`, renormalised) and, with `doubt`, mixed
    /// toward uniform by the mass the LLM put outside the answer vocabulary
    /// (`m·p + (1 − m)/n`, `m` = [`LlmVerdict::label_mass`](crate::LlmVerdict::label_mass)),
    /// so a peaked answer the model itself doubted cannot veto the local label. Neither
    /// changes the LLM's own argmax, only how much it weighs against the tagger.
    Fuse {
        /// Weight of the local distribution, in `[0, 1]`.
        weight: f32,
        /// Temperature of the LLM's distribution (> 0; 1 leaves it as it is).
        #[serde(default = "one", skip_serializing_if = "is_one")]
        temperature: f32,
        /// Widen the LLM's distribution by its off-label mass (no effect on answers without
        /// one).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        doubt: bool,
    },
    /// The LLM chooses only among the local model's `k` most probable entity types and the
    /// non-entity class: its distribution restricted to those classes decides. An answer outside
    /// them (when the backend gives no distribution) keeps the local label.
    Rerank {
        /// How many local types are candidates (≥ 1).
        k: usize,
    },
    /// One merge per entity type: the routed entity's **local** label picks its merge from
    /// `merges`, the types not named get `default` ([`MergePolicy::for_label`]). `linkner
    /// tune` fits it type by type (a `fuse` weight, temperature and doubt of its own, or
    /// another policy) when that gains on dev. In JSON:
    /// `{"type": "per_type", "merges": {"PER": {"type": "replace"}}, "default": {"type": "fuse", "weight": 0.3}}`.
    PerType {
        /// The merge of each type named (the schema's type names, as in the data files); none
        /// of them `per_type`.
        merges: BTreeMap<String, MergePolicy>,
        /// The merge of every type not named (not `per_type`).
        default: Box<MergePolicy>,
    },
}

fn one() -> f32 {
    1.0
}

fn is_one(t: &f32) -> bool {
    *t == 1.0
}

/// What a merge decided for one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The final class: `0` rejects the entity, else a type of the schema.
    pub class: usize,
    /// The merged distribution over the classes (for `replace`: the LLM's own distribution when
    /// it gave one).
    pub distribution: Option<Vec<f32>>,
    /// The probability of the final class under `distribution`, when there is one.
    pub confidence: Option<f32>,
}

impl MergePolicy {
    /// Fuse at `weight`, the LLM's distribution as it is (temperature 1, no doubt).
    pub fn fuse(weight: f32) -> MergePolicy {
        MergePolicy::Fuse {
            weight,
            temperature: 1.0,
            doubt: false,
        }
    }

    /// The merge that decides an entity whose local label is `label`: for
    /// [`MergePolicy::PerType`] the label's own merge (else its default), for every other
    /// policy the policy itself.
    pub fn for_label(&self, label: &str) -> &MergePolicy {
        match self {
            MergePolicy::PerType { merges, default } => merges.get(label).unwrap_or(default),
            other => other,
        }
    }

    /// Checks the parameters (`weight` in `[0, 1]`, `temperature > 0`, `k ≥ 1`; the merges of
    /// `per_type` are each checked and none is itself `per_type`).
    pub fn validate(&self) -> Result<()> {
        match self {
            MergePolicy::Replace => Ok(()),
            MergePolicy::PerType { merges, default } => {
                for (name, m) in merges.iter().chain([(&"default".to_string(), &**default)]) {
                    if matches!(m, MergePolicy::PerType { .. }) {
                        return Err(LinkError::Config(format!(
                            "merge.merges.{name}: a per_type merge cannot hold another per_type"
                        )));
                    }
                    m.validate().map_err(|e| {
                        LinkError::Config(format!("merge of `{name}` in per_type: {e}"))
                    })?;
                }
                Ok(())
            }
            MergePolicy::Fuse {
                weight,
                temperature,
                ..
            } => {
                if !(weight.is_finite() && (0.0..=1.0).contains(weight)) {
                    Err(LinkError::Config(format!(
                        "merge.weight must be in [0, 1], got {weight}"
                    )))
                } else if !(temperature.is_finite() && *temperature > 0.0) {
                    Err(LinkError::Config(format!(
                        "merge.temperature must be positive, got {temperature}"
                    )))
                } else {
                    Ok(())
                }
            }
            MergePolicy::Rerank { k } => {
                if *k >= 1 {
                    Ok(())
                } else {
                    Err(LinkError::Config("merge.k must be at least 1".into()))
                }
            }
        }
    }

    /// A short name for tables: `replace`, `fuse:0.6`, `fuse:0.6,t=2,doubt`, `rerank:2`,
    /// `per_type(PER=replace; default=fuse:0.3)` (no `|`, so it fits a Markdown cell).
    pub fn short_name(&self) -> String {
        match self {
            MergePolicy::Replace => "replace".into(),
            MergePolicy::Fuse {
                weight,
                temperature,
                doubt,
            } => {
                let mut s = format!("fuse:{weight}");
                if *temperature != 1.0 {
                    s.push_str(&format!(",t={temperature}"));
                }
                if *doubt {
                    s.push_str(",doubt");
                }
                s
            }
            MergePolicy::Rerank { k } => format!("rerank:{k}"),
            MergePolicy::PerType { merges, default } => {
                let parts: Vec<String> = merges
                    .iter()
                    .map(|(t, m)| format!("{t}={}", m.short_name()))
                    .chain([format!("default={}", default.short_name())])
                    .collect();
                format!("per_type({})", parts.join("; "))
            }
        }
    }

    /// Decides one entity. `local` is the tagger's distribution over the schema's classes (class
    /// 0 = non-entity), `answer` the LLM's class and `answer_dist` its distribution over the same
    /// classes, when the backend gave one. A distribution of the wrong length is ignored (treated
    /// as absent), so a decision is always made. The LLM's doubt is not known here: see
    /// [`MergePolicy::decide_with_mass`].
    pub fn decide(&self, local: &[f32], answer: usize, answer_dist: Option<&[f32]>) -> Decision {
        self.decide_with_mass(local, answer, answer_dist, None)
    }

    /// [`MergePolicy::decide`] with the mass the LLM put on the answer vocabulary
    /// ([`LlmVerdict::label_mass`](crate::LlmVerdict::label_mass)), which `fuse` with `doubt`
    /// uses. The entity's type is not known here: for [`MergePolicy::PerType`] pick the type's
    /// merge first ([`MergePolicy::for_label`]; the pipeline and `linkner tune` do), else its
    /// default decides.
    pub fn decide_with_mass(
        &self,
        local: &[f32],
        answer: usize,
        answer_dist: Option<&[f32]>,
        label_mass: Option<f32>,
    ) -> Decision {
        let n = local.len().max(answer + 1);
        let answer_dist = answer_dist.filter(|d| d.len() == n && d.iter().all(|p| p.is_finite()));
        match self {
            MergePolicy::Replace => Decision {
                class: answer,
                distribution: answer_dist.map(<[f32]>::to_vec),
                confidence: answer_dist.and_then(|d| d.get(answer).copied()),
            },
            MergePolicy::Fuse {
                weight,
                temperature,
                doubt,
            } => {
                let llm = match answer_dist {
                    Some(d) => read_llm(d, *temperature, label_mass.filter(|_| *doubt)),
                    None => answer_only(n, answer),
                };
                if local.len() != n {
                    // No usable local distribution: the LLM alone.
                    return decision_from(llm);
                }
                let w = weight.clamp(0.0, 1.0);
                let logs: Vec<f32> = local
                    .iter()
                    .zip(&llm)
                    .map(|(&l, &m)| w * l.max(PROB_FLOOR).ln() + (1.0 - w) * m.max(PROB_FLOOR).ln())
                    .collect();
                decision_from(linkner_core::prob::softmax_f32(&logs))
            }
            MergePolicy::Rerank { k } => {
                let allowed = top_types(local, *k);
                match answer_dist {
                    Some(d) => {
                        let mut restricted = vec![0.0f32; n];
                        for &c in &allowed {
                            restricted[c] = d[c];
                        }
                        let total: f32 = restricted.iter().sum();
                        if total > 0.0 {
                            for p in &mut restricted {
                                *p /= total;
                            }
                            decision_from(restricted)
                        } else {
                            keep_local(local)
                        }
                    }
                    None if allowed.contains(&answer) => Decision {
                        class: answer,
                        distribution: None,
                        confidence: None,
                    },
                    None => keep_local(local),
                }
            }
            // The label is not known here: callers pick the type's merge with `for_label`.
            MergePolicy::PerType { default, .. } => {
                default.decide_with_mass(local, answer, answer_dist, label_mass)
            }
        }
    }
}

/// The LLM's distribution tempered by `temperature` and, with a label mass `m`, mixed toward
/// uniform: `m·p_T + (1 − m)/n`.
fn read_llm(d: &[f32], temperature: f32, label_mass: Option<f32>) -> Vec<f32> {
    let mut p: Vec<f32> = if temperature == 1.0 {
        d.to_vec()
    } else {
        let logs: Vec<f32> = d
            .iter()
            .map(|&x| x.max(PROB_FLOOR).ln() / temperature)
            .collect();
        linkner_core::prob::softmax_f32(&logs)
    };
    if let Some(m) = label_mass.filter(|m| m.is_finite()) {
        let m = m.clamp(0.0, 1.0);
        let u = (1.0 - m) / p.len().max(1) as f32;
        for x in &mut p {
            *x = m * *x + u;
        }
    }
    p
}

/// The local model's own decision (its argmax over the entity types).
fn keep_local(local: &[f32]) -> Decision {
    let class = linkner_core::prob::argmax_from(local, 1).unwrap_or(0);
    Decision {
        class,
        distribution: None,
        confidence: local.get(class).copied(),
    }
}

/// Class 0 plus the `k` most probable entity types of `local` (ties: lower index first).
fn top_types(local: &[f32], k: usize) -> Vec<usize> {
    let mut types: Vec<usize> = (1..local.len()).collect();
    types.sort_by(|&a, &b| local[b].total_cmp(&local[a]).then(a.cmp(&b)));
    types.truncate(k);
    types.push(0);
    types
}

/// A distribution that puts [`ANSWER_ONLY_CONFIDENCE`] on `answer`.
fn answer_only(n: usize, answer: usize) -> Vec<f32> {
    if n <= 1 {
        return vec![1.0; n];
    }
    let rest = (1.0 - ANSWER_ONLY_CONFIDENCE) / (n - 1) as f32;
    (0..n)
        .map(|c| {
            if c == answer {
                ANSWER_ONLY_CONFIDENCE
            } else {
                rest
            }
        })
        .collect()
}

fn decision_from(dist: Vec<f32>) -> Decision {
    let class = linkner_core::prob::argmax(&dist).unwrap_or(0);
    Decision {
        class,
        confidence: dist.get(class).copied(),
        distribution: Some(dist),
    }
}

impl std::str::FromStr for MergePolicy {
    type Err = LinkError;

    /// Parses `replace`, `fuse:0.6` (also `fuse` = weight 0.5; options after the weight:
    /// `fuse:0.6,t=2,doubt`), `rerank:2` (also `rerank` = k 2), or the JSON form.
    fn from_str(text: &str) -> Result<Self> {
        let t = text.trim();
        if t.starts_with('{') {
            let m: MergePolicy = serde_json::from_str(t)
                .map_err(|e| LinkError::Config(format!("merge policy `{t}`: {e}")))?;
            m.validate()?;
            return Ok(m);
        }
        let (kind, arg) = match t.split_once(':') {
            Some((k, a)) => (k.trim().to_ascii_lowercase(), Some(a.trim())),
            None => (t.to_ascii_lowercase(), None),
        };
        let bad = || {
            LinkError::Config(format!(
                "unknown merge policy `{t}`; expected replace, fuse:WEIGHT (0..1)[,t=TEMPERATURE][,doubt], rerank:K, or JSON"
            ))
        };
        let m = match (kind.as_str(), arg) {
            ("replace", None) => MergePolicy::Replace,
            ("fuse", None) => MergePolicy::fuse(0.5),
            ("fuse", Some(a)) => {
                let mut parts = a.split(',').map(str::trim);
                let weight = parts.next().unwrap_or("").parse().map_err(|_| bad())?;
                let (mut temperature, mut doubt) = (1.0, false);
                for opt in parts {
                    match opt.split_once('=') {
                        Some(("t", v)) => temperature = v.trim().parse().map_err(|_| bad())?,
                        None if opt == "doubt" => doubt = true,
                        _ => return Err(bad()),
                    }
                }
                MergePolicy::Fuse {
                    weight,
                    temperature,
                    doubt,
                }
            }
            ("rerank", None) => MergePolicy::Rerank { k: 2 },
            ("rerank", Some(a)) => MergePolicy::Rerank {
                k: a.parse().map_err(|_| bad())?,
            },
            _ => return Err(bad()),
        };
        m.validate()?;
        Ok(m)
    }
}

impl std::fmt::Display for MergePolicy {
    /// The command-line form ([`MergePolicy::short_name`]).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.short_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: [f32; 5] = [0.30, 0.05, 0.45, 0.15, 0.05]; // O, PER, LOC, ORG, MISC
    const LLM: [f32; 5] = [0.10, 0.05, 0.15, 0.60, 0.10];

    fn argmax(v: &[f32]) -> usize {
        linkner_core::prob::argmax(v).unwrap()
    }

    /// (policy, local, answer, answer distribution, expected class)
    type Case<'a> = (MergePolicy, &'a [f32], usize, Option<&'a [f32]>, usize);

    #[test]
    fn table_of_decisions() {
        let cases: Vec<Case<'_>> = vec![
            (MergePolicy::Replace, &LOCAL, 3, Some(&LLM), 3),
            (MergePolicy::Replace, &LOCAL, 0, None, 0),
            // Fuse: weight 1 is the local argmax, weight 0 the LLM's argmax.
            (MergePolicy::fuse(1.0), &LOCAL, 3, Some(&LLM), 2),
            (MergePolicy::fuse(0.0), &LOCAL, 3, Some(&LLM), 3),
            // Half-half: LOC 0.45*0.15 vs ORG 0.15*0.60 (sqrt): ORG wins (0.09 > 0.0675).
            (MergePolicy::fuse(0.5), &LOCAL, 3, Some(&LLM), 3),
            // A confident local model outweighs a weak LLM at w = 0.7.
            (MergePolicy::fuse(0.7), &LOCAL, 3, Some(&LLM), 2),
            // Both lean to "not an entity": rejected.
            (
                MergePolicy::fuse(0.5),
                &[0.45, 0.0, 0.40, 0.1, 0.05],
                0,
                Some(&[0.7, 0.0, 0.2, 0.05, 0.05]),
                0,
            ),
            // Rerank k = 1: only LOC (local top type) or O; the LLM's ORG is out, LOC beats O.
            (MergePolicy::Rerank { k: 1 }, &LOCAL, 3, Some(&LLM), 2),
            (
                MergePolicy::Rerank { k: 1 },
                &LOCAL,
                0,
                Some(&[0.5, 0.1, 0.2, 0.1, 0.1]),
                0,
            ),
            // Rerank k = 2: LOC and ORG allowed, ORG wins.
            (MergePolicy::Rerank { k: 2 }, &LOCAL, 3, Some(&LLM), 3),
            // Without a distribution: an answer outside the allowed set keeps the local label.
            (MergePolicy::Rerank { k: 1 }, &LOCAL, 3, None, 2),
            (MergePolicy::Rerank { k: 2 }, &LOCAL, 3, None, 3),
        ];
        for (i, (policy, local, answer, dist, want)) in cases.into_iter().enumerate() {
            let d = policy.decide(local, answer, dist);
            assert_eq!(d.class, want, "case {i}: {policy:?}");
            if let Some(m) = &d.distribution {
                assert!((m.iter().sum::<f32>() - 1.0).abs() < 1e-5, "case {i}");
                assert_eq!(argmax(m), d.class, "case {i}");
            }
        }
    }

    #[test]
    fn fuse_endpoints_equal_local_and_llm_argmax_on_random_inputs() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut dist = |n: usize| {
            let v: Vec<f32> = (0..n).map(|_| rng.random_range(0.01f32..1.0)).collect();
            let s: f32 = v.iter().sum();
            v.into_iter().map(|x| x / s).collect::<Vec<f32>>()
        };
        for _ in 0..200 {
            let local = dist(7);
            let llm = dist(7);
            let answer = argmax(&llm);
            let w1 = MergePolicy::fuse(1.0).decide(&local, answer, Some(&llm));
            assert_eq!(w1.class, argmax(&local));
            let w0 = MergePolicy::fuse(0.0).decide(&local, answer, Some(&llm));
            assert_eq!(w0.class, answer);
            let r = MergePolicy::Replace.decide(&local, answer, Some(&llm));
            assert_eq!(r.class, answer);
        }
    }

    #[test]
    fn fuse_without_a_distribution_treats_the_answer_as_confident() {
        // The answer alone (0.9) against a local 0.45/0.30 split: the answer wins at w = 0.5.
        let d = MergePolicy::fuse(0.5).decide(&LOCAL, 3, None);
        assert_eq!(d.class, 3);
        // ...but not against a local model that is sure.
        let sure = [0.01, 0.0, 0.98, 0.005, 0.005];
        let d = MergePolicy::fuse(0.8).decide(&sure, 3, None);
        assert_eq!(d.class, 2);
    }

    #[test]
    fn parse_validate_and_display() {
        for (text, want) in [
            ("replace", MergePolicy::Replace),
            ("fuse:0.25", MergePolicy::fuse(0.25)),
            ("fuse", MergePolicy::fuse(0.5)),
            (
                "fuse:0.7,t=2,doubt",
                MergePolicy::Fuse {
                    weight: 0.7,
                    temperature: 2.0,
                    doubt: true,
                },
            ),
            (
                "fuse:0.3, t=0.5",
                MergePolicy::Fuse {
                    weight: 0.3,
                    temperature: 0.5,
                    doubt: false,
                },
            ),
            ("rerank:3", MergePolicy::Rerank { k: 3 }),
            (r#"{"type": "fuse", "weight": 0.7}"#, MergePolicy::fuse(0.7)),
        ] {
            let got: MergePolicy = text.parse().unwrap();
            assert_eq!(got, want, "{text}");
            let again: MergePolicy = got.to_string().parse().unwrap();
            assert_eq!(again, want);
        }
        for bad in [
            "fuse:2",
            "fuse:x",
            "rerank:0",
            "fuse:0.5,t=0",
            "fuse:0.5,t=x",
            "fuse:0.5,sure",
            "blend",
            r#"{"type": "fuse"}"#,
        ] {
            assert!(bad.parse::<MergePolicy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn doubt_and_temperature_weaken_a_peaked_answer_but_never_move_its_argmax() {
        // The LLM is sure (0.98) it is not an entity; the local tagger says LOC at 0.7. At
        // w = 0.5 the plain fuse lets the LLM veto; a doubtful LLM (only 30 % of its mass on
        // answer tokens) or a high temperature leaves the local label standing.
        let local = [0.1, 0.05, 0.7, 0.1, 0.05];
        let llm = [0.98, 0.005, 0.005, 0.005, 0.005];
        let plain = MergePolicy::fuse(0.5);
        assert_eq!(
            plain
                .decide_with_mass(&local, 0, Some(&llm), Some(0.3))
                .class,
            0
        );
        let doubt = MergePolicy::Fuse {
            weight: 0.5,
            temperature: 1.0,
            doubt: true,
        };
        assert_eq!(
            doubt
                .decide_with_mass(&local, 0, Some(&llm), Some(0.3))
                .class,
            2
        );
        // A sure LLM (all its mass on answer tokens) still vetoes, and without a mass doubt
        // changes nothing.
        assert_eq!(
            doubt
                .decide_with_mass(&local, 0, Some(&llm), Some(1.0))
                .class,
            0
        );
        assert_eq!(doubt.decide(&local, 0, Some(&llm)).class, 0);
        let hot = MergePolicy::Fuse {
            weight: 0.5,
            temperature: 4.0,
            doubt: false,
        };
        assert_eq!(hot.decide(&local, 0, Some(&llm)).class, 2);
        // At weight 0 the LLM's argmax decides whatever its temperature and doubt.
        for t in [0.25, 1.0, 4.0] {
            let p = MergePolicy::Fuse {
                weight: 0.0,
                temperature: t,
                doubt: true,
            };
            assert_eq!(
                p.decide_with_mass(&local, 0, Some(&llm), Some(0.05)).class,
                0
            );
        }
        // The widened distribution is a distribution.
        let w = read_llm(&llm, 2.0, Some(0.3));
        assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{w:?}");
        assert!(w.iter().all(|&x| x >= 0.7 / 5.0 - 1e-6), "{w:?}");
    }

    #[test]
    fn the_json_form_keeps_old_files_and_writes_no_defaults() {
        let old: MergePolicy = serde_json::from_str(r#"{"type": "fuse", "weight": 0.8}"#).unwrap();
        assert_eq!(old, MergePolicy::fuse(0.8));
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"{"type":"fuse","weight":0.8}"#
        );
        assert!(
            serde_json::from_str::<MergePolicy>(r#"{"type": "fuse", "weight": 0.8, "temp": 2}"#)
                .is_err()
        );
    }

    #[test]
    fn per_type_picks_the_merge_of_the_local_label_and_reads_from_json() {
        let m: MergePolicy = serde_json::from_str(
            r#"{"type": "per_type", "merges": {"PER": {"type": "replace"}},
                "default": {"type": "fuse", "weight": 0.3, "temperature": 4, "doubt": true}}"#,
        )
        .unwrap();
        m.validate().unwrap();
        assert_eq!(m.for_label("PER"), &MergePolicy::Replace);
        let default = MergePolicy::Fuse {
            weight: 0.3,
            temperature: 4.0,
            doubt: true,
        };
        assert_eq!(m.for_label("LOC"), &default);
        assert_eq!(MergePolicy::Replace.for_label("PER"), &MergePolicy::Replace);
        assert_eq!(
            m.to_string(),
            "per_type(PER=replace; default=fuse:0.3,t=4,doubt)"
        );
        let back: MergePolicy = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        // Without a label (`decide`), the default decides.
        assert_eq!(
            m.decide(&LOCAL, 3, Some(&LLM)),
            default.decide(&LOCAL, 3, Some(&LLM))
        );
    }

    #[test]
    fn per_type_refuses_a_nested_per_type_and_a_bad_inner_merge() {
        let inner = MergePolicy::PerType {
            merges: BTreeMap::new(),
            default: Box::new(MergePolicy::Replace),
        };
        let nested = MergePolicy::PerType {
            merges: [("PER".to_string(), inner)].into(),
            default: Box::new(MergePolicy::Replace),
        };
        let err = nested.validate().unwrap_err().to_string();
        assert!(err.contains("PER") && err.contains("per_type"), "{err}");
        let bad = MergePolicy::PerType {
            merges: BTreeMap::new(),
            default: Box::new(MergePolicy::fuse(1.5)),
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("default") && err.contains("weight"), "{err}");
    }
}
