//! The exit status of `link`, `annotate` and `report` when the LLM side failed: they write all
//! their output (failed entities keep their local labels), then exit with
//! [`EXIT_LLM_FAILURES`] when the failed share of the routed entities reaches
//! `--llm-failure-limit` (default 1: only when every routed entity failed), and print the
//! failure counts by kind.
//!
//! The totals come from the pipeline's statistics ([`StatsSnapshot::routed`],
//! [`StatsSnapshot::failures`]); the counts by kind from the LLM backend's own statistics
//! ([`Stats::failures_by_kind`]), failures the backend never saw (a request that could not be
//! built, a backend that panicked) as `other`.

use std::collections::BTreeMap;

use clap::Args;
use linkner::StatsSnapshot;

use super::CliError;

/// Exit status when the LLM failed for at least `--llm-failure-limit` of the routed entities
/// (after all output was written). 1 is any other error, 2 a usage error.
pub const EXIT_LLM_FAILURES: u8 = 3;

/// The `--llm-failure-limit` option.
#[derive(Debug, Clone, Args)]
pub struct FailureArgs {
    /// Exit with status 3 (after writing all output) when at least this share of the routed
    /// entities failed in the LLM (0 < SHARE ≤ 1). The default 1 exits 3 only when every routed
    /// entity failed (a wrong URL, a dead server).
    #[arg(long, value_name = "SHARE", default_value_t = 1.0, value_parser = parse_share)]
    pub llm_failure_limit: f64,
}

fn parse_share(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number; expected a share in (0, 1]"))?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("{v} is outside (0, 1]"))
    }
}

/// LLM outcomes summed over the runs of one command.
#[derive(Debug, Clone, Default)]
pub struct FailureTally {
    routed: u64,
    failed: u64,
    by_kind: BTreeMap<String, u64>,
}

impl FailureTally {
    /// Adds one run's pipeline counters (routed entities, failures and their kinds).
    pub fn add_run(&mut self, s: &StatsSnapshot) {
        self.routed += s.routed;
        self.failed += s.failures;
        for (kind, n) in s.failures_by_kind.iter() {
            *self.by_kind.entry(kind.name().to_string()).or_default() += n;
        }
    }

    /// Failures by kind (`other` for those no backend counted).
    pub fn by_kind(&self) -> BTreeMap<String, u64> {
        let mut out = self.by_kind.clone();
        let known: u64 = out.values().sum();
        if self.failed > known {
            *out.entry("other".into()).or_default() += self.failed - known;
        }
        out
    }

    /// `Err(LlmFailures)` when the failed share reaches `limit` (and something was routed).
    pub fn check(&self, limit: f64) -> Result<(), CliError> {
        let over =
            self.routed > 0 && self.failed > 0 && self.failed as f64 >= limit * self.routed as f64;
        if over {
            return Err(Box::new(LlmFailures {
                routed: self.routed,
                failed: self.failed,
                by_kind: self.by_kind(),
                limit,
            }));
        }
        Ok(())
    }
}

/// The error `main` turns into exit status [`EXIT_LLM_FAILURES`].
#[derive(Debug, Clone)]
pub struct LlmFailures {
    /// Routed entities.
    pub routed: u64,
    /// Routed entities whose LLM call failed.
    pub failed: u64,
    /// Failures by kind.
    pub by_kind: BTreeMap<String, u64>,
    /// The `--llm-failure-limit` reached.
    pub limit: f64,
}

impl std::fmt::Display for LlmFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        write!(
            f,
            "the LLM failed for {} of {} routed entities ({}); the output is complete, with \
             their local labels kept (exit status {EXIT_LLM_FAILURES}: the failed share \
             reached --llm-failure-limit {})",
            self.failed,
            self.routed,
            kinds.join(", "),
            self.limit
        )
    }
}

impl std::error::Error for LlmFailures {}

#[cfg(test)]
mod tests {
    use super::*;
    use linkner::llm::FailureKind;

    fn run(routed: u64, failures: u64) -> StatsSnapshot {
        StatsSnapshot {
            routed,
            failures,
            ..StatsSnapshot::default()
        }
    }

    #[test]
    fn the_default_limit_fails_only_when_everything_failed() {
        let mut t = FailureTally::default();
        t.add_run(&run(10, 9));
        assert!(t.check(1.0).is_ok());
        assert!(t.check(0.5).is_err());
        t.add_run(&run(1, 2)); // 11 routed, 11 failed
        let e = t.check(1.0).unwrap_err();
        let f = e.downcast_ref::<LlmFailures>().unwrap();
        assert_eq!((f.failed, f.routed), (11, 11));
        // Nothing routed, nothing failed: fine whatever the limit.
        assert!(FailureTally::default().check(0.01).is_ok());
    }

    #[test]
    fn counts_by_kind_come_from_the_pipeline_and_the_rest_is_other() {
        let mut t = FailureTally::default();
        let mut r = run(5, 5);
        r.failures_by_kind.add(FailureKind::Timeout, 1);
        r.failures_by_kind.add(FailureKind::CircuitOpen, 3);
        t.add_run(&r);
        let k = t.by_kind();
        assert_eq!(k.get("timeout"), Some(&1));
        assert_eq!(k.get("circuit_open"), Some(&3));
        assert_eq!(k.get("other"), Some(&1));
        let msg = t.check(1.0).unwrap_err().to_string();
        assert!(
            msg.contains("5 of 5") && msg.contains("circuit_open 3"),
            "{msg}"
        );
    }

    #[test]
    fn shares_outside_the_range_are_refused() {
        assert!(parse_share("0").is_err());
        assert!(parse_share("1.5").is_err());
        assert!(parse_share("x").is_err());
        assert_eq!(parse_share("0.25"), Ok(0.25));
    }
}
