//! [`EstimatorConfig`]: the serde-tagged description of a built-in estimator, as it appears in
//! a config file (`{"type": "entropy"}`), and its [`build`](EstimatorConfig::build).

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::builtins::{Confidence, Entropy, Evidential, EvidentialMeasure, McDropout, McMeasure};
use crate::error::{Result, UncertaintyError};
use crate::estimator::UncertaintyEstimator;

fn default_samples() -> usize {
    McDropout::DEFAULT_SAMPLES
}

/// A built-in estimator and its parameters.
///
/// ```
/// use linkner_uncertainty::EstimatorConfig;
/// let config: EstimatorConfig = serde_json::from_str(
///     r#"{"type": "mc_dropout", "samples": 20, "measure": "mutual_information"}"#,
/// ).unwrap();
/// let estimator = config.build().unwrap();
/// assert_eq!(estimator.name(), "mc_dropout:mutual_information");
/// assert_eq!(estimator.requirements().mc_samples, 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EstimatorConfig {
    /// [`Confidence`]: `{"type": "confidence"}`.
    Confidence {},
    /// [`Entropy`]: `{"type": "entropy"}`.
    Entropy {},
    /// [`McDropout`]: `{"type": "mc_dropout", "samples": 10, "measure": "predictive_entropy"}`
    /// (both fields optional; `measure` is `predictive_entropy`, `mutual_information` or
    /// `variance`).
    McDropout {
        /// Stochastic passes to ask the tagger for (default 10, at least 1).
        #[serde(default = "default_samples")]
        samples: usize,
        /// What to measure over the passes.
        #[serde(default)]
        measure: McMeasure,
    },
    /// [`Evidential`]: `{"type": "evidential", "measure": "vacuity"}` (`measure` optional;
    /// `vacuity` or `dissonance`).
    Evidential {
        /// What to measure from the Dirichlet parameters.
        #[serde(default)]
        measure: EvidentialMeasure,
    },
}

impl Default for EstimatorConfig {
    /// Entropy: needs nothing beyond one deterministic pass.
    fn default() -> Self {
        EstimatorConfig::Entropy {}
    }
}

impl EstimatorConfig {
    /// Builds the estimator. Errors on invalid parameters (`samples = 0`).
    pub fn build(&self) -> Result<Box<dyn UncertaintyEstimator>> {
        Ok(match *self {
            EstimatorConfig::Confidence {} => Box::new(Confidence::new()),
            EstimatorConfig::Entropy {} => Box::new(Entropy::new()),
            EstimatorConfig::McDropout { samples, measure } => {
                Box::new(McDropout::new(samples, measure)?)
            }
            EstimatorConfig::Evidential { measure } => Box::new(Evidential::new(measure)),
        })
    }

    /// The four estimators the paper compares, with default parameters: confidence, entropy,
    /// Monte-Carlo dropout (predictive entropy, 10 passes) and evidential vacuity.
    pub fn paper_set() -> Vec<EstimatorConfig> {
        vec![
            EstimatorConfig::Confidence {},
            EstimatorConfig::Entropy {},
            EstimatorConfig::McDropout {
                samples: McDropout::DEFAULT_SAMPLES,
                measure: McMeasure::PredictiveEntropy,
            },
            EstimatorConfig::Evidential {
                measure: EvidentialMeasure::Vacuity,
            },
        ]
    }

    /// Every built-in with every measure (default parameters otherwise).
    pub fn all() -> Vec<EstimatorConfig> {
        let samples = McDropout::DEFAULT_SAMPLES;
        let mut all = vec![EstimatorConfig::Confidence {}, EstimatorConfig::Entropy {}];
        for measure in [
            McMeasure::PredictiveEntropy,
            McMeasure::MutualInformation,
            McMeasure::Variance,
        ] {
            all.push(EstimatorConfig::McDropout { samples, measure });
        }
        for measure in [EvidentialMeasure::Vacuity, EvidentialMeasure::Dissonance] {
            all.push(EstimatorConfig::Evidential { measure });
        }
        all
    }

    /// The name of the estimator this config builds (the same as its
    /// [`UncertaintyEstimator::name`]).
    pub fn name(&self) -> String {
        match self {
            EstimatorConfig::Confidence {} => "confidence".into(),
            EstimatorConfig::Entropy {} => "entropy".into(),
            EstimatorConfig::McDropout { measure, .. } => {
                format!("mc_dropout:{}", measure.as_str())
            }
            EstimatorConfig::Evidential { measure } => format!("evidential:{}", measure.as_str()),
        }
    }
}

const NAMES: &str = "confidence, entropy, mc_dropout[:predictive_entropy|mutual_information|\
                     variance][@SAMPLES], evidential[:vacuity|dissonance], or a JSON object";

impl FromStr for EstimatorConfig {
    type Err = UncertaintyError;

    /// Parses a command-line name: `confidence`, `entropy`,
    /// `mc_dropout[:MEASURE][@SAMPLES]` (e.g. `mc_dropout:variance@20`),
    /// `evidential[:MEASURE]`, or a JSON object such as `{"type": "entropy"}`.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.starts_with('{') {
            return serde_json::from_str(s)
                .map_err(|e| UncertaintyError::InvalidConfig(format!("`{s}`: {e}")));
        }
        let unknown = || {
            UncertaintyError::InvalidConfig(format!("unknown estimator `{s}`; expected {NAMES}"))
        };
        let (head, samples) = match s.split_once('@') {
            Some((head, n)) => {
                let n = n.parse::<usize>().map_err(|_| {
                    UncertaintyError::InvalidConfig(format!("`{s}`: `{n}` is not a sample count"))
                })?;
                (head, Some(n))
            }
            None => (s, None),
        };
        let (kind, measure) = match head.split_once(':') {
            Some((k, m)) => (k, Some(m)),
            None => (head, None),
        };
        let measure_value = |m: &str| serde_json::Value::String(m.to_string());
        let config = match (kind, measure, samples) {
            ("confidence", None, None) => EstimatorConfig::Confidence {},
            ("entropy", None, None) => EstimatorConfig::Entropy {},
            ("mc_dropout", m, n) => EstimatorConfig::McDropout {
                samples: n.unwrap_or(McDropout::DEFAULT_SAMPLES),
                measure: match m {
                    Some(m) => serde_json::from_value(measure_value(m)).map_err(|_| unknown())?,
                    None => McMeasure::default(),
                },
            },
            ("evidential", m, None) => EstimatorConfig::Evidential {
                measure: match m {
                    Some(m) => serde_json::from_value(measure_value(m)).map_err(|_| unknown())?,
                    None => EvidentialMeasure::default(),
                },
            },
            _ => return Err(unknown()),
        };
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_match_built_estimators() {
        for config in EstimatorConfig::all() {
            let parsed: EstimatorConfig = config.name().parse().unwrap();
            assert_eq!(parsed, config);
            assert_eq!(config.build().unwrap().name(), config.name());
        }
        let c: EstimatorConfig = "mc_dropout:variance@20".parse().unwrap();
        assert_eq!(
            c,
            EstimatorConfig::McDropout {
                samples: 20,
                measure: McMeasure::Variance
            }
        );
        assert!("entropy:foo".parse::<EstimatorConfig>().is_err());
        assert!("mc_dropout:foo".parse::<EstimatorConfig>().is_err());
        assert!("mc_dropout@x".parse::<EstimatorConfig>().is_err());
        assert!("bayes".parse::<EstimatorConfig>().is_err());
    }
}
