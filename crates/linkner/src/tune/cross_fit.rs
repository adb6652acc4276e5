//! The guard's selection check: is the tuned gain the LLM's, or the search's?
//!
//! [`search`](super::search) scores thousands of settings on the same dev sentences and keeps the
//! best, so the best setting's dev gain is biased upward by the choice itself — the more
//! settings and the fewer dev entities, the more. The bootstrap interval of that one setting
//! does not see the choice. The check re-runs the **whole** search (every prompt variant and
//! estimator, per-type thresholds included) on one half of the dev units and scores the
//! setting it picks on the other half, both ways round. Each sentence is then predicted by a
//! setting chosen without it, so the gain of those cross-fitted predictions over the tagger
//! alone is free of selection (if anything pessimistic: each search sees half the data).

use linkner_core::{LabelSchema, Sentence, WordSpan};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::{DeltaCi, Grid, Guard, SettingScore, paired_bootstrap_grouped, replay_spans, search};
use crate::annotation::Annotation;
use crate::error::{LinkError, Result};
use crate::merge::MergePolicy;
use crate::policy::RoutingPolicy;

/// One dev pass the search replays: a name (prompt variant, estimator, calibration) and its
/// annotations, one per dev sentence in gold order.
#[derive(Debug, Clone, Copy)]
pub struct SearchedPass<'a> {
    /// What produced it, e.g. `plain · confidence`.
    pub name: &'a str,
    /// Its annotations, in gold order.
    pub annotations: &'a [Annotation],
}

/// The setting one half's search chose, which then predicted the other half.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FoldChoice {
    /// The pass the chosen setting replays.
    pub pass: String,
    /// The chosen setting, with its F1 on the half it was chosen on.
    pub setting: SettingScore,
    /// Units (documents or sentences) it was chosen on.
    pub chosen_on: usize,
    /// Units it predicted.
    pub predicted: usize,
}

/// The result of the selection check ([`cross_fit`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CrossFit {
    /// What each half's search chose.
    pub folds: Vec<FoldChoice>,
    /// Gain of the cross-fitted predictions over routing nothing on the whole dev split, with
    /// its bootstrap interval (same units as the guard's).
    pub gain: DeltaCi,
}

impl CrossFit {
    /// True when the cross-fitted gain is above zero: the search's choices help on dev units
    /// they were not chosen on.
    pub fn holds(&self) -> bool {
        self.gain.delta > 0.0
    }
}

/// The units (consecutive sentence ranges of `groups`) split into two halves, seeded.
fn halves(groups: &[usize], seed: u64) -> [Vec<std::ops::Range<usize>>; 2] {
    let mut ranges = Vec::with_capacity(groups.len());
    let mut start = 0;
    for &n in groups {
        ranges.push(start..start + n);
        start += n;
    }
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let cut = order.len() / 2;
    let pick = |ix: &[usize]| {
        let mut ix = ix.to_vec();
        ix.sort_unstable();
        ix.into_iter()
            .map(|i| ranges[i].clone())
            .collect::<Vec<_>>()
    };
    [pick(&order[..cut]), pick(&order[cut..])]
}

/// The best setting of every pass on the sentences of `units`: (pass index, setting).
fn choose(
    gold: &[Sentence],
    passes: &[SearchedPass<'_>],
    units: &[std::ops::Range<usize>],
    schema: &LabelSchema,
    floor: f32,
    grid: &Grid,
) -> Result<(usize, SettingScore)> {
    let take = |all: &[Sentence]| -> Vec<Sentence> {
        units
            .iter()
            .flat_map(|r| all[r.clone()].iter().cloned())
            .collect()
    };
    let sub_gold = take(gold);
    let mut best: Option<(usize, SettingScore)> = None;
    for (i, p) in passes.iter().enumerate() {
        let anns: Vec<Annotation> = units
            .iter()
            .flat_map(|r| p.annotations[r.clone()].iter().cloned())
            .collect();
        let top = search(&sub_gold, &anns, schema, floor, grid)?
            .into_iter()
            .next()
            .ok_or_else(|| LinkError::Config("the search scored no setting".into()))?;
        let better = match &best {
            None => true,
            Some((_, b)) => {
                top.f1 > b.f1 + 1e-12
                    || ((top.f1 - b.f1).abs() <= 1e-12 && top.routed_fraction < b.routed_fraction)
            }
        };
        if better {
            best = Some((i, top));
        }
    }
    best.ok_or_else(|| LinkError::Config("no dev pass to search".into()))
}

/// The selection check (see the module docs): the whole search on each half of the dev units
/// (documents when `groups` has any of several sentences, else sentences; halves drawn with
/// `guard.seed`), each half predicted by the setting chosen on the other, and the paired
/// bootstrap of those predictions against routing nothing. `passes` are every pass the search
/// ran on (all prompt variants, estimators and calibrations), `floor` and `grid` the search's.
pub fn cross_fit(
    gold: &[Sentence],
    groups: &[usize],
    passes: &[SearchedPass<'_>],
    schema: &LabelSchema,
    floor: f32,
    grid: &Grid,
    guard: &Guard,
) -> Result<CrossFit> {
    let first = passes
        .first()
        .ok_or_else(|| LinkError::Config("no dev pass to search".into()))?;
    if let Some(p) = passes.iter().find(|p| p.annotations.len() != gold.len()) {
        return Err(LinkError::GoldMismatch {
            gold: gold.len(),
            annotations: p.annotations.len(),
            sentence: None,
        });
    }
    if groups.len() < 2 || groups.iter().sum::<usize>() != gold.len() {
        return Err(LinkError::Config(format!(
            "the selection check needs at least two units covering the {} dev sentences; got {} \
             groups of {} sentences",
            gold.len(),
            groups.len(),
            groups.iter().sum::<usize>()
        )));
    }
    let local: Vec<Vec<WordSpan>> = first
        .annotations
        .iter()
        .map(|a| replay_spans(a, &RoutingPolicy::Never, &MergePolicy::Replace, schema))
        .collect();
    let mut crossed = local.clone();
    let split = halves(groups, guard.seed);
    let mut folds = Vec::with_capacity(2);
    for (k, predicted) in split.iter().enumerate() {
        let chosen_on = &split[1 - k];
        let (pass, setting) = choose(gold, passes, chosen_on, schema, floor, grid)?;
        for r in predicted {
            for i in r.clone() {
                crossed[i] = replay_spans(
                    &passes[pass].annotations[i],
                    &setting.policy,
                    &setting.merge,
                    schema,
                );
            }
        }
        folds.push(FoldChoice {
            pass: passes[pass].name.to_string(),
            setting,
            chosen_on: chosen_on.len(),
            predicted: predicted.len(),
        });
    }
    let gain = paired_bootstrap_grouped(
        gold,
        &local,
        &crossed,
        groups,
        guard.resamples,
        guard.level,
        guard.seed,
    )?;
    Ok(CrossFit { folds, gain })
}

#[cfg(test)]
mod tests {
    use super::super::tests::linked;
    use super::*;
    use crate::tune::score_route_nothing;

    /// What the LLM does to one sentence's entity.
    #[derive(Clone, Copy)]
    enum Case {
        /// The tagger says `local`, gold is `gold`, the LLM answers `llm`; uncertain (0.6).
        Routed {
            local: usize,
            gold: usize,
            llm: usize,
        },
        /// The tagger is right and sure: never routed.
        Plain,
    }

    /// One-word sentences (conll03 classes: 1 PER, 2 LOC), one per case.
    fn run(cases: &[Case]) -> (Vec<Sentence>, Vec<Annotation>) {
        let schema = LabelSchema::conll03();
        let name = |c: usize| schema.class(c).unwrap().name.clone();
        let (mut gold, mut anns) = (Vec::new(), Vec::new());
        for case in cases {
            let plain = Sentence::from_words(&["Rome"]);
            let mut g = plain.clone();
            let entity = match *case {
                Case::Routed { local, gold, llm } => {
                    g.spans = vec![WordSpan::new(0, 1, name(gold))];
                    let mut p = vec![0.05; 5];
                    p[local] = 0.6;
                    p[3 - local] = 0.2;
                    let mut d = vec![0.02; 5];
                    d[llm] = 0.92;
                    linked(&plain, 0, &p, 0.6, Some((llm, d)))
                }
                Case::Plain => {
                    g.spans = vec![WordSpan::new(0, 1, "LOC")];
                    linked(&plain, 0, &[0.0, 0.0, 1.0, 0.0, 0.0], 0.0, None)
                }
            };
            gold.push(g);
            anns.push(Annotation {
                sentence: plain,
                entities: vec![entity],
                rejected: vec![],
                timings: None,
            });
        }
        (gold, anns)
    }

    fn pass(anns: &[Annotation]) -> [SearchedPass<'_>; 1] {
        [SearchedPass {
            name: "plain · confidence",
            annotations: anns,
        }]
    }

    #[test]
    fn a_gain_the_llm_makes_holds_on_held_out_halves() {
        // The LLM mends 30 of 40 local errors (PER said, LOC gold) and breaks nothing.
        let mut cases = vec![Case::Plain; 200];
        for (i, c) in cases.iter_mut().enumerate().take(40) {
            let llm = if i < 30 { 2 } else { 1 };
            *c = Case::Routed {
                local: 1,
                gold: 2,
                llm,
            };
        }
        let (gold, anns) = run(&cases);
        let groups = vec![1; gold.len()];
        let grid = Grid::standard(0.05, 0.05);
        let cf = cross_fit(
            &gold,
            &groups,
            &pass(&anns),
            &LabelSchema::conll03(),
            0.05,
            &grid,
            &Guard::default(),
        )
        .unwrap();
        assert!(cf.holds() && cf.gain.low > 0.0, "{cf:?}");
        assert_eq!(cf.folds.len(), 2);
        assert_eq!(cf.folds[0].chosen_on + cf.folds[0].predicted, 200);
        assert_ne!(cf.folds[0].setting.policy, RoutingPolicy::Never, "{cf:?}");
    }

    #[test]
    fn a_gain_made_by_the_choice_among_settings_does_not_hold_and_stops_the_guard() {
        // Per local type the LLM helps on one half and hurts on the other, a little more help
        // than harm overall: on the whole dev split routing both types gains (+8 entities),
        // but what one half's search picks (route the type that helped there) breaks the
        // other half.
        let groups = vec![1; 200];
        let [a, b] = halves(&groups, Guard::default().seed);
        let mut cases = vec![Case::Plain; 200];
        let mend_per = Case::Routed {
            local: 1,
            gold: 2,
            llm: 2,
        };
        let break_loc = Case::Routed {
            local: 2,
            gold: 2,
            llm: 1,
        };
        let break_per = Case::Routed {
            local: 1,
            gold: 1,
            llm: 2,
        };
        let mend_loc = Case::Routed {
            local: 2,
            gold: 1,
            llm: 1,
        };
        let ix = |h: &[std::ops::Range<usize>]| h.iter().map(|r| r.start).collect::<Vec<_>>();
        let (ia, ib) = (ix(&a), ix(&b));
        for (k, &i) in ia.iter().enumerate().take(44) {
            cases[i] = if k < 24 { mend_per } else { break_loc };
        }
        for (k, &i) in ib.iter().enumerate().take(44) {
            cases[i] = if k < 20 { break_per } else { mend_loc };
        }
        let (gold, anns) = run(&cases);
        let schema = LabelSchema::conll03();
        let grid = Grid::standard(0.05, 0.05);
        let best = search(&gold, &anns, &schema, 0.05, &grid)
            .unwrap()
            .remove(0);
        let never = score_route_nothing(&gold, &anns, &schema).unwrap();
        assert!(
            best.f1 > never.f1,
            "in-sample the search finds a gain: {best:?}"
        );
        let cf = cross_fit(
            &gold,
            &groups,
            &pass(&anns),
            &schema,
            0.05,
            &grid,
            &Guard::default(),
        )
        .unwrap();
        assert!(!cf.holds() && cf.gain.delta < 0.0, "{cf:?}");
        // A verdict the interval let route routes nothing once the check is added, and says why.
        let mut verdict = Guard::default()
            .judge(&gold, &anns, &schema, &groups, &best)
            .unwrap();
        verdict.routes = true;
        let checked = verdict.with_cross_fit(cf.clone());
        assert!(!checked.routes, "{checked:?}");
        assert!(
            checked.reason.contains("choice among settings"),
            "{}",
            checked.reason
        );
        assert_eq!(checked.cross_fit, Some(cf));
    }

    #[test]
    fn the_check_refuses_passes_that_do_not_match_the_gold() {
        let (gold, anns) = run(&[Case::Plain; 10]);
        let grid = Grid::standard(0.05, 0.05);
        let schema = LabelSchema::conll03();
        let err = cross_fit(
            &gold,
            &[1; 10],
            &pass(&anns[..9]),
            &schema,
            0.05,
            &grid,
            &Guard::default(),
        );
        assert!(
            matches!(err, Err(LinkError::GoldMismatch { .. })),
            "{err:?}"
        );
        let err = cross_fit(
            &gold,
            &[10],
            &pass(&anns),
            &schema,
            0.05,
            &grid,
            &Guard::default(),
        );
        assert!(err.unwrap_err().to_string().contains("at least two units"));
    }
}
