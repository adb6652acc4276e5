//! Routing policies: which candidate entities go to the LLM.

use std::collections::BTreeMap;

use linkner_core::LabelSchema;
use serde::{Deserialize, Serialize};

use crate::error::{LinkError, Result};

/// LinkNER's default threshold: entities whose uncertainty is above 0.4 go to the LLM.
pub const DEFAULT_THRESHOLD: f32 = 0.4;

fn default_threshold() -> f32 {
    DEFAULT_THRESHOLD
}

/// Decides which candidate entities are sent to the LLM, from their uncertainty (higher = less
/// sure) and their local label.
///
/// In a config file (serde, tagged by `type`):
///
/// ```
/// use linkner::RoutingPolicy;
/// let p: RoutingPolicy = serde_json::from_str(r#"{"type": "threshold"}"#).unwrap();
/// assert_eq!(p, RoutingPolicy::Threshold { threshold: 0.4 });
/// let p: RoutingPolicy = serde_json::from_str(r#"{"type": "budget", "fraction": 0.1}"#).unwrap();
/// let p: RoutingPolicy = serde_json::from_str(
///     r#"{"type": "per_type", "thresholds": {"MISC": 0.2}, "default": 0.5}"#).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoutingPolicy {
    /// Route every entity whose uncertainty is strictly above `threshold` (LinkNER's rule;
    /// default 0.4). `threshold` ≥ 1 routes nothing, a negative one routes everything.
    Threshold {
        /// The threshold (default 0.4).
        #[serde(default = "default_threshold")]
        threshold: f32,
    },
    /// Route at most `fraction` of the candidates of one call (`annotate`, `annotate_batch`, or
    /// one chunk of a stream): the `floor(fraction × n)` most uncertain ones, ties broken by
    /// position (earlier document, then earlier entity first). Candidates whose uncertainty
    /// is below `min_uncertainty` are never routed, so the budget is a ceiling, not a quota.
    Budget {
        /// Largest routed fraction, in `[0, 1]`.
        fraction: f32,
        /// Smallest uncertainty worth routing (default 0: any).
        #[serde(default)]
        min_uncertainty: f32,
    },
    /// One threshold per local label (the schema's data names, e.g. `MISC`), `default` for the
    /// types not listed. Names that the tagger's schema lacks are refused when the pipeline is
    /// built.
    PerType {
        /// Threshold per type name.
        thresholds: BTreeMap<String, f32>,
        /// Threshold of the types not listed (default 0.4).
        #[serde(default = "default_threshold")]
        default: f32,
    },
    /// Route nothing: the local tagger alone (the LLM is not needed).
    Never,
    /// Route every candidate (an upper bound on cost; the oracle ceiling of routing).
    Always,
}

impl Default for RoutingPolicy {
    /// `Threshold { threshold: 0.4 }`.
    fn default() -> Self {
        RoutingPolicy::Threshold {
            threshold: DEFAULT_THRESHOLD,
        }
    }
}

/// What a policy sees of one candidate entity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteInput<'a> {
    /// The local label (data name, e.g. `PER`).
    pub label: &'a str,
    /// The estimator's uncertainty, in `[0, 1]`.
    pub uncertainty: f32,
}

impl RoutingPolicy {
    /// A threshold policy.
    pub fn threshold(threshold: f32) -> Self {
        RoutingPolicy::Threshold { threshold }
    }

    /// A budget policy routing at most `fraction` of the candidates.
    pub fn budget(fraction: f32) -> Self {
        RoutingPolicy::Budget {
            fraction,
            min_uncertainty: 0.0,
        }
    }

    /// A per-type policy.
    pub fn per_type<I, S>(thresholds: I, default: f32) -> Self
    where
        I: IntoIterator<Item = (S, f32)>,
        S: Into<String>,
    {
        RoutingPolicy::PerType {
            thresholds: thresholds.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            default,
        }
    }

    /// True when the policy can route something (an LLM is then required).
    pub fn may_route(&self) -> bool {
        match self {
            RoutingPolicy::Never => false,
            RoutingPolicy::Budget { fraction, .. } => *fraction > 0.0,
            _ => true,
        }
    }

    /// Checks the parameters: finite thresholds, a budget fraction in `[0, 1]`, and — when a
    /// schema is given — per-type names that exist in it.
    pub fn validate(&self, schema: Option<&LabelSchema>) -> Result<()> {
        let finite = |name: &str, v: f32| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(LinkError::Policy(format!(
                    "{name} must be a finite number, got {v}"
                )))
            }
        };
        match self {
            RoutingPolicy::Threshold { threshold } => finite("threshold", *threshold),
            RoutingPolicy::Budget {
                fraction,
                min_uncertainty,
            } => {
                finite("min_uncertainty", *min_uncertainty)?;
                if !(0.0..=1.0).contains(fraction) {
                    return Err(LinkError::Policy(format!(
                        "budget fraction must be in [0, 1], got {fraction}"
                    )));
                }
                Ok(())
            }
            RoutingPolicy::PerType {
                thresholds,
                default,
            } => {
                finite("default threshold", *default)?;
                for (name, t) in thresholds {
                    finite(&format!("threshold of `{name}`"), *t)?;
                    if let Some(schema) = schema
                        && (name == &schema.non_entity.name || schema.class_of(name).is_none())
                    {
                        return Err(LinkError::Policy(format!(
                            "per-type threshold for `{name}`, which is not a type of schema `{}` \
                             (expected one of: {})",
                            schema.name,
                            schema.type_names().join(", ")
                        )));
                    }
                }
                Ok(())
            }
            RoutingPolicy::Never | RoutingPolicy::Always => Ok(()),
        }
    }

    /// Which of `candidates` (all the candidates of one call, in document then entity order)
    /// go to the LLM: `true` at index `i` routes candidate `i`.
    pub fn route(&self, candidates: &[RouteInput<'_>]) -> Vec<bool> {
        match self {
            RoutingPolicy::Threshold { threshold } => candidates
                .iter()
                .map(|c| c.uncertainty > *threshold)
                .collect(),
            RoutingPolicy::PerType {
                thresholds,
                default,
            } => candidates
                .iter()
                .map(|c| c.uncertainty > *thresholds.get(c.label).unwrap_or(default))
                .collect(),
            RoutingPolicy::Never => vec![false; candidates.len()],
            RoutingPolicy::Always => vec![true; candidates.len()],
            RoutingPolicy::Budget {
                fraction,
                min_uncertainty,
            } => {
                let n = candidates.len();
                let quota = ((f64::from(*fraction) * n as f64) + 1e-9).floor() as usize;
                let mut order: Vec<usize> = (0..n)
                    .filter(|&i| candidates[i].uncertainty >= *min_uncertainty)
                    .collect();
                // Most uncertain first; a stable sort keeps earlier candidates first on ties.
                order.sort_by(|&a, &b| {
                    candidates[b]
                        .uncertainty
                        .total_cmp(&candidates[a].uncertainty)
                });
                let mut out = vec![false; n];
                for &i in order.iter().take(quota.min(n)) {
                    out[i] = true;
                }
                out
            }
        }
    }
}

impl std::str::FromStr for RoutingPolicy {
    type Err = LinkError;

    /// Parses the command-line form of a policy (the JSON form is also accepted):
    ///
    /// | text | policy |
    /// |---|---|
    /// | `0.4`, `threshold:0.4`, `threshold` | [`RoutingPolicy::Threshold`] (default 0.4) |
    /// | `budget:0.1`, `budget:10%` | [`RoutingPolicy::Budget`] |
    /// | `per_type:MISC=0.2,ORG=0.3[,default=0.5]` | [`RoutingPolicy::PerType`] |
    /// | `never`, `always` | [`RoutingPolicy::Never`], [`RoutingPolicy::Always`] |
    /// | `{"type": "budget", "fraction": 0.1}` | JSON, as in a config file |
    fn from_str(text: &str) -> Result<Self> {
        let t = text.trim();
        if t.starts_with('{') {
            return serde_json::from_str(t)
                .map_err(|e| LinkError::Policy(format!("policy `{t}`: {e}")));
        }
        let number = |v: &str, what: &str| -> Result<f32> {
            let v = v.trim();
            let (v, divisor) = match v.strip_suffix('%') {
                Some(p) => (p, 100.0),
                None => (v, 1.0),
            };
            v.parse::<f32>().map(|x| x / divisor).map_err(|_| {
                LinkError::Policy(format!("policy `{t}`: {what} `{v}` is not a number"))
            })
        };
        let (kind, arg) = match t.split_once(':') {
            Some((k, a)) => (k.trim().to_ascii_lowercase(), Some(a)),
            None => (t.to_ascii_lowercase(), None),
        };
        let policy = match (kind.as_str(), arg) {
            ("never" | "local", None) => RoutingPolicy::Never,
            ("always" | "all", None) => RoutingPolicy::Always,
            ("threshold", None) => RoutingPolicy::default(),
            ("threshold", Some(a)) => RoutingPolicy::threshold(number(a, "threshold")?),
            ("budget", Some(a)) => RoutingPolicy::budget(number(a, "fraction")?),
            ("per_type" | "per-type", Some(a)) => {
                let mut thresholds = BTreeMap::new();
                let mut default = DEFAULT_THRESHOLD;
                for item in a.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let (name, value) = item.split_once('=').ok_or_else(|| {
                        LinkError::Policy(format!(
                            "policy `{t}`: expected TYPE=THRESHOLD, got `{item}`"
                        ))
                    })?;
                    let value = number(value, "threshold")?;
                    if name.trim() == "default" {
                        default = value;
                    } else {
                        thresholds.insert(name.trim().to_string(), value);
                    }
                }
                RoutingPolicy::PerType {
                    thresholds,
                    default,
                }
            }
            _ if arg.is_none() && t.parse::<f32>().is_ok() => {
                RoutingPolicy::threshold(number(t, "threshold")?)
            }
            _ => {
                return Err(LinkError::Policy(format!(
                    "unknown policy `{t}`; expected a threshold (0.4, threshold:0.4), \
                     budget:FRACTION (budget:0.1 or budget:10%), \
                     per_type:TYPE=T,...[,default=T], never, always, or JSON"
                )));
            }
        };
        policy.validate(None)?;
        Ok(policy)
    }
}

impl std::fmt::Display for RoutingPolicy {
    /// The command-line form parsed by [`str::parse`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoutingPolicy::Threshold { threshold } => write!(f, "threshold:{threshold}"),
            RoutingPolicy::Budget {
                fraction,
                min_uncertainty,
            } if *min_uncertainty == 0.0 => write!(f, "budget:{fraction}"),
            RoutingPolicy::Budget { .. } => match serde_json::to_string(self) {
                Ok(json) => f.write_str(&json),
                Err(_) => Err(std::fmt::Error),
            },
            RoutingPolicy::PerType {
                thresholds,
                default,
            } => {
                write!(f, "per_type:")?;
                for (name, t) in thresholds {
                    write!(f, "{name}={t},")?;
                }
                write!(f, "default={default}")
            }
            RoutingPolicy::Never => f.write_str("never"),
            RoutingPolicy::Always => f.write_str("always"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_forms_parse_and_round_trip() {
        let cases = [
            ("0.3", RoutingPolicy::threshold(0.3)),
            ("threshold", RoutingPolicy::threshold(0.4)),
            ("threshold:0.25", RoutingPolicy::threshold(0.25)),
            ("budget:10%", RoutingPolicy::budget(0.1)),
            ("budget:0.2", RoutingPolicy::budget(0.2)),
            ("never", RoutingPolicy::Never),
            ("ALWAYS", RoutingPolicy::Always),
            (
                "per_type:MISC=0.2,ORG=0.3,default=0.5",
                RoutingPolicy::per_type([("MISC", 0.2), ("ORG", 0.3)], 0.5),
            ),
            (
                r#"{"type": "budget", "fraction": 0.5}"#,
                RoutingPolicy::budget(0.5),
            ),
        ];
        for (text, want) in cases {
            let got: RoutingPolicy = text.parse().unwrap();
            assert_eq!(got, want, "{text}");
            let again: RoutingPolicy = got.to_string().parse().unwrap();
            assert_eq!(again, want, "round trip of {text}");
        }
        for bad in [
            "",
            "budget",
            "budget:lots",
            "budget:2",
            "per_type:MISC",
            "sometimes",
        ] {
            assert!(
                bad.parse::<RoutingPolicy>().is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    fn inputs(scores: &[f32]) -> Vec<RouteInput<'static>> {
        scores
            .iter()
            .map(|&u| RouteInput {
                label: "PER",
                uncertainty: u,
            })
            .collect()
    }

    #[test]
    fn an_uncertainty_equal_to_the_threshold_stays_local() {
        // LinkNER's rule is strictly above: at the threshold itself an entity is not routed,
        // one float step above it is (`>=` in place of `>` fails the first assertion).
        let t = 0.4f32;
        let above = f32::from_bits(t.to_bits() + 1);
        let below = f32::from_bits(t.to_bits() - 1);
        let got = RoutingPolicy::threshold(t).route(&inputs(&[below, t, above]));
        assert_eq!(got, vec![false, false, true]);
        let per_type = RoutingPolicy::PerType {
            thresholds: [("PER".to_string(), t)].into_iter().collect(),
            default: t,
        };
        let got = per_type.route(&inputs(&[below, t, above]));
        assert_eq!(got, vec![false, false, true]);
    }

    #[test]
    fn budget_takes_the_most_uncertain_and_breaks_ties_by_position() {
        let p = RoutingPolicy::budget(0.5);
        let got = p.route(&inputs(&[0.1, 0.9, 0.5, 0.5, 0.2, 0.3]));
        assert_eq!(got, vec![false, true, true, true, false, false]);
        let got = RoutingPolicy::budget(0.4).route(&inputs(&[0.5, 0.5, 0.5, 0.5, 0.5]));
        assert_eq!(got, vec![true, true, false, false, false]);
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(RoutingPolicy::budget(1.5).validate(None).is_err());
        assert!(RoutingPolicy::threshold(f32::NAN).validate(None).is_err());
        let schema = LabelSchema::conll03();
        assert!(
            RoutingPolicy::per_type([("PERSON", 0.1)], 0.4)
                .validate(Some(&schema))
                .is_err()
        );
        assert!(
            RoutingPolicy::per_type([("O", 0.1)], 0.4)
                .validate(Some(&schema))
                .is_err()
        );
        assert!(
            RoutingPolicy::per_type([("PER", 0.1)], 0.4)
                .validate(Some(&schema))
                .is_ok()
        );
    }
}
