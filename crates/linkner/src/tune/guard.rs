//! The guard on a tuned setting: route only when the dev gain is shown.

use linkner_core::{LabelSchema, Sentence, WordSpan};
use serde::{Deserialize, Serialize};

use super::{CrossFit, DeltaCi, SettingScore, paired_bootstrap_grouped, replay_spans};
use crate::annotation::Annotation;
use crate::error::Result;
use crate::merge::MergePolicy;
use crate::policy::RoutingPolicy;

/// The guard on a tuned setting: route at all only when the dev gain over routing nothing is
/// above zero at the lower end of its bootstrap interval (documents resampled when the dev
/// data has them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Guard {
    /// Coverage of the interval (0.95: the lower end is the 2.5th percentile).
    pub level: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            level: 0.95,
            resamples: 1000,
            seed: 42,
        }
    }
}

/// What the [`Guard`] decided about one setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardVerdict {
    /// The setting judged.
    pub setting: SettingScore,
    /// Its dev gain over routing nothing, with the interval.
    pub gain: DeltaCi,
    /// True when the setting may route (the interval's lower end is above zero).
    pub routes: bool,
    /// Why, in one sentence.
    pub reason: String,
    /// The selection check, when it was made ([`GuardVerdict::with_cross_fit`]); records
    /// written before it existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_fit: Option<CrossFit>,
}

impl GuardVerdict {
    /// Adds the selection check ([`cross_fit`](super::cross_fit)): a setting the interval
    /// let route still routes nothing when the search's choices, made on one half of the dev
    /// units, do not gain on the other half — the dev gain was the choice among many
    /// settings, not the LLM's.
    pub fn with_cross_fit(mut self, check: CrossFit) -> GuardVerdict {
        let pct = |x: f64| format!("{:+.2}", 100.0 * x);
        let crossed = format!(
            "chosen on one half of the {} {} and scored on the other, the search gains {} F1 \
             [{}, {}]",
            check.gain.units,
            check.gain.unit.name(),
            pct(check.gain.delta),
            pct(check.gain.low),
            pct(check.gain.high)
        );
        if self.routes {
            if check.holds() {
                self.reason = format!("{}; {crossed}", self.reason);
            } else {
                self.routes = false;
                self.reason = format!(
                    "{}, but {crossed}: the dev gain is the choice among settings, not the \
                     LLM's, so nothing is routed",
                    self.reason.trim_end_matches(": above zero")
                );
            }
        }
        self.cross_fit = Some(check);
        self
    }
}

impl Guard {
    /// Judges `setting` on the dev run `annotations` (see [`search`](super::search)) against `gold`, whose
    /// documents hold `groups` sentences each. A setting that routes nothing passes as it is.
    pub fn judge(
        &self,
        gold: &[Sentence],
        annotations: &[Annotation],
        schema: &LabelSchema,
        groups: &[usize],
        setting: &SettingScore,
    ) -> Result<GuardVerdict> {
        let spans = |policy: &RoutingPolicy, merge: &MergePolicy| -> Vec<Vec<WordSpan>> {
            annotations
                .iter()
                .map(|a| replay_spans(a, policy, merge, schema))
                .collect()
        };
        let local = spans(&RoutingPolicy::Never, &MergePolicy::Replace);
        let tuned = spans(&setting.policy, &setting.merge);
        let gain = paired_bootstrap_grouped(
            gold,
            &local,
            &tuned,
            groups,
            self.resamples,
            self.level,
            self.seed,
        )?;
        let pct = |x: f64| format!("{:+.2}", 100.0 * x);
        let interval = format!(
            "{:.0} % interval [{}, {}] over {} {}",
            100.0 * gain.level,
            pct(gain.low),
            pct(gain.high),
            gain.units,
            gain.unit.name()
        );
        let (routes, reason) = if setting.policy == RoutingPolicy::Never {
            (false, "the best setting routes nothing".to_string())
        } else if gain.low > 0.0 {
            let why = format!("dev gain {} F1, {interval}: above zero", pct(gain.delta));
            (true, why)
        } else {
            let why = format!(
                "dev gain {} F1, but its {interval} reaches zero: the gain is not shown, so \
                 nothing is routed",
                pct(gain.delta)
            );
            (false, why)
        };
        Ok(GuardVerdict {
            setting: setting.clone(),
            gain,
            routes,
            reason,
            cross_fit: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::linked;
    use super::super::{score_route_nothing, score_setting};
    use super::*;

    /// `n` one-word sentences, gold LOC; the local tagger says PER on the first `local_wrong`
    /// (uncertain) and LOC elsewhere (also uncertain); the LLM answers LOC on the first
    /// `llm_right` of the local errors and PER on the first `llm_wrong` sentences the tagger
    /// had right.
    fn routed_run(
        n: usize,
        local_wrong: usize,
        llm_right: usize,
        llm_wrong: usize,
    ) -> (Vec<Sentence>, Vec<Annotation>) {
        let (mut gold, mut anns) = (Vec::new(), Vec::new());
        for i in 0..n {
            let mut g = Sentence::from_words(&["Rome"]);
            g.spans = vec![WordSpan::new(0, 1, "LOC")];
            let plain = Sentence::from_words(&["Rome"]);
            let wrong = i < local_wrong;
            let local: &[f32] = if wrong {
                &[0.1, 0.5, 0.4, 0.0, 0.0]
            } else {
                &[0.1, 0.4, 0.5, 0.0, 0.0]
            };
            let llm_class = if wrong {
                if i < llm_right { 2 } else { 1 }
            } else if i - local_wrong < llm_wrong {
                1
            } else {
                2
            };
            let mut d = vec![0.02; 5];
            d[llm_class] = 0.92;
            anns.push(Annotation {
                sentence: plain.clone(),
                entities: vec![linked(&plain, 0, local, 0.6, Some((llm_class, d)))],
                rejected: vec![],
                timings: None,
            });
            gold.push(g);
        }
        (gold, anns)
    }

    #[test]
    fn the_guard_lets_a_clear_gain_route_and_stops_a_gain_within_noise() {
        let schema = LabelSchema::conll03();
        let guard = Guard::default();
        let setting = |gold: &[Sentence], anns: &[Annotation]| {
            score_setting(
                gold,
                anns,
                &RoutingPolicy::threshold(0.1),
                &MergePolicy::Replace,
                &schema,
            )
            .unwrap()
        };
        // Clear: the LLM mends 30 of 40 local errors and breaks nothing in 200 sentences.
        let (gold, anns) = routed_run(200, 40, 30, 0);
        let groups = vec![1; gold.len()];
        let v = guard
            .judge(&gold, &anns, &schema, &groups, &setting(&gold, &anns))
            .unwrap();
        assert!(v.routes && v.gain.low > 0.0, "{v:?}");
        assert!(v.reason.contains("above zero"), "{}", v.reason);
        // Within noise: it mends 5 and breaks 4 — a positive dev gain (one entity) whose
        // interval reaches below zero; the guard says route nothing, and why.
        let (gold, anns) = routed_run(200, 40, 5, 4);
        let s = setting(&gold, &anns);
        assert!(s.f1 > setting_never(&gold, &anns, &schema), "{s:?}");
        let v = guard.judge(&gold, &anns, &schema, &groups, &s).unwrap();
        assert!(
            !v.routes && v.gain.delta > 0.0 && v.gain.low <= 0.0,
            "{v:?}"
        );
        assert!(v.reason.contains("nothing is routed"), "{}", v.reason);
        // A setting that routes nothing does not route.
        let never = score_route_nothing(&gold, &anns, &schema).unwrap();
        assert!(
            !guard
                .judge(&gold, &anns, &schema, &groups, &never)
                .unwrap()
                .routes
        );
    }

    fn setting_never(gold: &[Sentence], anns: &[Annotation], schema: &LabelSchema) -> f64 {
        score_route_nothing(gold, anns, schema).unwrap().f1
    }
}
