//! Tuning the routing and the merge on a dev split from **one** LLM pass, and the statistics to
//! judge the result: replay, grid search and a paired bootstrap.
//!
//! A pipeline run whose policy routes every entity above a low `floor` records, for each routed
//! entity, the LLM's answer and distribution ([`LlmVerdict`](crate::LlmVerdict)) and the local
//! distribution. Any setting that routes a subset of those — a threshold (overall or per type)
//! at or above the floor — and any [`MergePolicy`] can then be replayed offline
//! ([`replay_spans`]): with a deterministic, cached LLM the replay equals a real run at that
//! setting. [`search`] scores every setting of a grid on the dev gold and returns them best
//! first; "route nothing" is always one of them. [`paired_bootstrap`] gives the confidence
//! interval of an F1 difference between two systems on the same sentences
//! ([`paired_bootstrap_grouped`] resamples whole documents), and the [`Guard`] lets a tuned
//! setting route only when the lower end of its dev gain's interval is above zero and, with
//! [`cross_fit`], when the search's choice also helps on dev units it was not chosen on.

use std::collections::BTreeMap;

use linkner_core::score::{Mode, Scorer};
use linkner_core::{LabelSchema, Sentence, WordSpan};
use serde::{Deserialize, Serialize};

use crate::annotation::{Annotation, LinkedEntity};
use crate::error::{LinkError, Result};
use crate::merge::MergePolicy;
use crate::policy::{RouteInput, RoutingPolicy};

mod bootstrap;
mod cross_fit;
mod guard;

pub use bootstrap::{DeltaCi, ResampleUnit, paired_bootstrap, paired_bootstrap_grouped};
pub use cross_fit::{CrossFit, FoldChoice, SearchedPass, cross_fit};
pub use guard::{Guard, GuardVerdict};

/// The decision of one entity under a replayed setting.
fn replay_entity(
    e: &LinkedEntity,
    policy: &RoutingPolicy,
    merge: &MergePolicy,
    schema: &LabelSchema,
) -> Option<String> {
    let routed = policy
        .route(&[RouteInput {
            label: &e.local_label,
            uncertainty: e.uncertainty,
        }])
        .first()
        .copied()
        .unwrap_or(false);
    match (&e.llm, routed) {
        (Some(v), true) => {
            let d = merge.for_label(&e.local_label).decide_with_mass(
                &e.local_probs,
                v.class,
                v.distribution.as_deref(),
                v.label_mass,
            );
            if d.class == 0 {
                None
            } else {
                schema.class(d.class).map(|t| t.name.clone())
            }
        }
        // Not routed, or routed without an answer (the call failed): the local label.
        _ => Some(e.local_label.clone()),
    }
}

/// The spans of `annotation` as a run with `policy` and `merge` would have produced them, from a
/// run that routed a superset of what `policy` routes (see the module docs). `policy` must
/// decide per entity: `threshold`, `per_type`, `never` or `always` (not `budget`).
pub fn replay_spans(
    annotation: &Annotation,
    policy: &RoutingPolicy,
    merge: &MergePolicy,
    schema: &LabelSchema,
) -> Vec<WordSpan> {
    let mut spans: Vec<WordSpan> = annotation
        .entities
        .iter()
        .chain(&annotation.rejected)
        .filter_map(|e| {
            replay_entity(e, policy, merge, schema)
                .map(|label| WordSpan::new(e.span.start, e.span.end, label))
        })
        .collect();
    spans.sort_by_key(|s| (s.start, s.end));
    spans
}

/// Conlleval F1 of spans per sentence against gold.
pub fn f1_of(gold: &[Sentence], predicted: &[Vec<WordSpan>]) -> Result<f64> {
    let mut scorer = Scorer::new(Mode::Conlleval);
    for (g, p) in gold.iter().zip(predicted) {
        scorer.add_spans(&g.spans, p)?;
    }
    Ok(scorer.finish().f1)
}

/// One routing + merge setting and its dev score.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SettingScore {
    /// The routing policy (`never`, `threshold` or `per_type`).
    pub policy: RoutingPolicy,
    /// The merge policy.
    pub merge: MergePolicy,
    /// Entity F1 on the dev sentences.
    pub f1: f64,
    /// Fraction of the entities routed.
    pub routed_fraction: f64,
}

/// The grid of [`search`].
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Thresholds tried (overall and per type); only those at or above the pass's floor count.
    pub thresholds: Vec<f32>,
    /// Merge policies tried.
    pub merges: Vec<MergePolicy>,
    /// Also tune one threshold per type (coordinate ascent from the best overall threshold).
    pub per_type: bool,
    /// A per-type setting replaces the overall one only when it gains more than this much F1
    /// (guards against fitting the dev split's noise).
    pub per_type_min_gain: f64,
    /// Also tune one merge per type ([`MergePolicy::PerType`]: each type's merge from
    /// `merges`, coordinate ascent from the best setting's merge, its routing kept).
    pub per_type_merge: bool,
}

impl Grid {
    /// Temperatures of the LLM's distribution tried with `fuse` ([`Grid::standard`]).
    pub const TEMPERATURES: [f32; 4] = [0.5, 1.0, 2.0, 4.0];

    /// Thresholds `floor, floor + step, …` up to 1, the merges `replace`, `fuse` at weights
    /// 0.1 … 0.9 — each with the LLM's distribution at the temperatures of
    /// [`Grid::TEMPERATURES`], with and without its doubt (fitted jointly with the weight) —
    /// and `rerank` with k = 1, 2, 3; per-type thresholds and per-type merges on, each adopted
    /// for a gain above 0.1 F1.
    pub fn standard(floor: f32, step: f32) -> Grid {
        let mut thresholds = Vec::new();
        let mut t = floor;
        while t < 1.0 + 1e-6 {
            thresholds.push((t * 1000.0).round() / 1000.0);
            t += step.max(0.005);
        }
        let mut merges = vec![MergePolicy::Replace];
        for doubt in [false, true] {
            for temperature in Self::TEMPERATURES {
                merges.extend((1..10).map(|i| MergePolicy::Fuse {
                    weight: i as f32 / 10.0,
                    temperature,
                    doubt,
                }));
            }
        }
        merges.extend((1..=3).map(|k| MergePolicy::Rerank { k }));
        Grid {
            thresholds,
            merges,
            per_type: true,
            per_type_min_gain: 0.001,
            per_type_merge: true,
        }
    }
}

/// Scores the setting on the dev gold.
fn score_setting(
    gold: &[Sentence],
    annotations: &[Annotation],
    policy: &RoutingPolicy,
    merge: &MergePolicy,
    schema: &LabelSchema,
) -> Result<SettingScore> {
    let mut scorer = Scorer::new(Mode::Conlleval);
    let (mut routed, mut entities) = (0usize, 0usize);
    for (g, a) in gold.iter().zip(annotations) {
        scorer.add_spans(&g.spans, &replay_spans(a, policy, merge, schema))?;
        for e in a.entities.iter().chain(&a.rejected) {
            entities += 1;
            routed += usize::from(
                policy
                    .route(&[RouteInput {
                        label: &e.local_label,
                        uncertainty: e.uncertainty,
                    }])
                    .first()
                    .copied()
                    .unwrap_or(false),
            );
        }
    }
    Ok(SettingScore {
        policy: policy.clone(),
        merge: merge.clone(),
        f1: scorer.finish().f1,
        routed_fraction: if entities == 0 {
            0.0
        } else {
            routed as f64 / entities as f64
        },
    })
}

/// Scores "route nothing" (the tagger alone) on the dev gold: the baseline every setting is
/// compared with.
fn score_route_nothing(
    gold: &[Sentence],
    annotations: &[Annotation],
    schema: &LabelSchema,
) -> Result<SettingScore> {
    score_setting(
        gold,
        annotations,
        &RoutingPolicy::Never,
        &MergePolicy::Replace,
        schema,
    )
}

/// Scores every setting of `grid` on `annotations` (a run that routed every entity above
/// `floor`) against `gold`, "route nothing" included, and returns them best first (ties: fewer
/// routed, then the order of the grid).
pub fn search(
    gold: &[Sentence],
    annotations: &[Annotation],
    schema: &LabelSchema,
    floor: f32,
    grid: &Grid,
) -> Result<Vec<SettingScore>> {
    if gold.len() != annotations.len() {
        return Err(LinkError::GoldMismatch {
            gold: gold.len(),
            annotations: annotations.len(),
            sentence: None,
        });
    }
    let mut all = vec![score_route_nothing(gold, annotations, schema)?];
    let thresholds: Vec<f32> = grid
        .thresholds
        .iter()
        .copied()
        .filter(|&t| t >= floor - 1e-6)
        .collect();
    for merge in &grid.merges {
        for &t in &thresholds {
            all.push(score_setting(
                gold,
                annotations,
                &RoutingPolicy::threshold(t),
                merge,
                schema,
            )?);
        }
    }
    sort_best_first(&mut all);
    let ctx = Ascent {
        gold,
        annotations,
        schema,
        grid,
    };
    if grid.per_type
        && let Some(best) = all.first().cloned()
        && let RoutingPolicy::Threshold { threshold } = best.policy
        && let Some(per) = ctx.per_type_thresholds(&best, threshold, &thresholds)?
    {
        all.push(per);
        sort_best_first(&mut all);
    }
    // From the best setting that routes: one merge for all types may not beat routing
    // nothing where one per type does.
    if grid.per_type_merge
        && let Some(best) = all.iter().find(|s| s.routed_fraction > 0.0).cloned()
        && let Some(per) = ctx.per_type_merges(&best)?
    {
        all.push(per);
        sort_best_first(&mut all);
    }
    Ok(all)
}

/// What the per-type coordinate ascents of [`search`] score on.
struct Ascent<'a> {
    gold: &'a [Sentence],
    annotations: &'a [Annotation],
    schema: &'a LabelSchema,
    grid: &'a Grid,
}

impl Ascent<'_> {
    fn score(&self, policy: &RoutingPolicy, merge: &MergePolicy) -> Result<SettingScore> {
        score_setting(self.gold, self.annotations, policy, merge, self.schema)
    }

    /// Coordinate ascent over the schema's types, two rounds, from `start` for every type:
    /// each type tries every choice with the others kept, and a trial that scores higher is
    /// kept; `setting` turns the per-type choices into the routing and merge scored. The
    /// result when it gains more than the grid's minimum over `best`.
    fn ascend<T: Clone + PartialEq>(
        &self,
        best: &SettingScore,
        start: &T,
        choices: &[T],
        setting: impl Fn(&BTreeMap<String, T>) -> (RoutingPolicy, MergePolicy),
    ) -> Result<Option<SettingScore>> {
        let mut per: BTreeMap<String, T> = self
            .schema
            .types
            .iter()
            .map(|t| (t.name.clone(), start.clone()))
            .collect();
        let mut current = best.clone();
        for _round in 0..2 {
            for t in &self.schema.types {
                for c in choices {
                    if per.get(&t.name) == Some(c) {
                        continue;
                    }
                    let mut trial = per.clone();
                    trial.insert(t.name.clone(), c.clone());
                    let (policy, merge) = setting(&trial);
                    let s = self.score(&policy, &merge)?;
                    if s.f1 > current.f1 + 1e-12 {
                        current = s;
                        per = trial;
                    }
                }
            }
        }
        Ok((current.f1 > best.f1 + self.grid.per_type_min_gain).then_some(current))
    }

    /// One threshold per type, from the best overall threshold (a type's threshold of 1 routes
    /// none of it), the merge of `best` kept.
    fn per_type_thresholds(
        &self,
        best: &SettingScore,
        threshold: f32,
        thresholds: &[f32],
    ) -> Result<Option<SettingScore>> {
        let mut choices = thresholds.to_vec();
        choices.push(1.0);
        self.ascend(best, &threshold, &choices, |per| {
            let policy = RoutingPolicy::PerType {
                thresholds: per.clone(),
                default: threshold,
            };
            (policy, best.merge.clone())
        })
    }

    /// One merge per type, each type trying every merge of the grid from `best`'s merge, the
    /// routing of `best` kept; the types left at `best`'s merge are its default (the caller
    /// sorts the result among the rest, routing nothing included).
    fn per_type_merges(&self, best: &SettingScore) -> Result<Option<SettingScore>> {
        if matches!(best.merge, MergePolicy::PerType { .. }) {
            return Ok(None);
        }
        let default = best.merge.clone();
        self.ascend(best, &default, &self.grid.merges, |per| {
            let merge = MergePolicy::PerType {
                merges: per
                    .iter()
                    .filter(|(_, m)| **m != default)
                    .map(|(t, m)| (t.clone(), m.clone()))
                    .collect(),
                default: Box::new(default.clone()),
            };
            (best.policy.clone(), merge)
        })
    }
}

fn sort_best_first(all: &mut [SettingScore]) {
    all.sort_by(|a, b| {
        b.f1.total_cmp(&a.f1)
            .then(a.routed_fraction.total_cmp(&b.routed_fraction))
    });
}

#[cfg(test)]
mod tests {
    use super::bootstrap::f1_counts;
    use super::*;
    use crate::annotation::{LlmVerdict, Provenance};
    use linkner_core::Entity;

    pub(super) fn linked(
        s: &Sentence,
        start: usize,
        local: &[f32],
        uncertainty: f32,
        llm: Option<(usize, Vec<f32>)>,
    ) -> LinkedEntity {
        let schema = LabelSchema::conll03();
        let class = (1..local.len())
            .max_by(|&a, &b| local[a].total_cmp(&local[b]))
            .unwrap();
        let label = schema.class(class).unwrap().name.clone();
        let span = WordSpan::new(start, start + 1, label.clone());
        LinkedEntity {
            entity: Entity::from_word_span(s, &span).unwrap(),
            span,
            local_label: label,
            local_prob: local[class],
            uncertainty,
            provenance: Provenance::Local,
            local_probs: local.to_vec(),
            llm: llm.map(|(c, d)| LlmVerdict {
                class: c,
                label: schema.class(c).unwrap().name.clone(),
                confidence: Some(d[c]),
                distribution: Some(d),
                label_mass: None,
                merged: None,
                merge: MergePolicy::Replace,
                cached: false,
            }),
        }
    }

    /// Gold: Paris=LOC, Acme=ORG, "said" no entity. Local: Paris=PER (unsure), Acme=ORG
    /// (sure), said=MISC (unsure). The LLM answers LOC for Paris, O for said.
    fn fixture() -> (Vec<Sentence>, Vec<Annotation>) {
        let mut gold = Sentence::from_words(&["Paris", "said", "Acme"]);
        gold.spans = vec![WordSpan::new(0, 1, "LOC"), WordSpan::new(2, 3, "ORG")];
        let plain = Sentence::from_words(&["Paris", "said", "Acme"]);
        let a = Annotation {
            sentence: plain.clone(),
            entities: vec![
                linked(
                    &plain,
                    0,
                    &[0.1, 0.5, 0.4, 0.0, 0.0],
                    0.6,
                    Some((2, vec![0.1, 0.2, 0.7, 0.0, 0.0])),
                ),
                linked(
                    &plain,
                    1,
                    &[0.4, 0.0, 0.0, 0.0, 0.6],
                    0.5,
                    Some((0, vec![0.9, 0.0, 0.0, 0.0, 0.1])),
                ),
                linked(&plain, 2, &[0.02, 0.0, 0.0, 0.98, 0.0], 0.05, None),
            ],
            rejected: vec![],
            timings: None,
        };
        (vec![gold], vec![a])
    }

    #[test]
    fn replay_applies_routing_and_merge() {
        let (_, ann) = fixture();
        let schema = LabelSchema::conll03();
        let labels = |p: RoutingPolicy, m: MergePolicy| -> Vec<(usize, String)> {
            replay_spans(&ann[0], &p, &m, &schema)
                .into_iter()
                .map(|s| (s.start, s.label))
                .collect()
        };
        assert_eq!(
            labels(RoutingPolicy::Never, MergePolicy::Replace),
            vec![(0, "PER".into()), (1, "MISC".into()), (2, "ORG".into())]
        );
        assert_eq!(
            labels(RoutingPolicy::threshold(0.4), MergePolicy::Replace),
            vec![(0, "LOC".into()), (2, "ORG".into())]
        );
        // Only Paris routed above 0.55.
        assert_eq!(
            labels(RoutingPolicy::threshold(0.55), MergePolicy::Replace),
            vec![(0, "LOC".into()), (1, "MISC".into()), (2, "ORG".into())]
        );
        // Fuse at weight 1 keeps the local labels even when routed.
        assert_eq!(
            labels(RoutingPolicy::threshold(0.0), MergePolicy::fuse(1.0)),
            vec![(0, "PER".into()), (1, "MISC".into()), (2, "ORG".into())]
        );
        // Acme is routed at 0.0 but had no answer: its local label stays.
        assert!(
            labels(RoutingPolicy::threshold(0.0), MergePolicy::Replace)
                .contains(&(2, "ORG".into()))
        );
        // Per type: only MISC routed.
        assert_eq!(
            labels(
                RoutingPolicy::per_type([("MISC", 0.1)], 0.99),
                MergePolicy::Replace
            ),
            vec![(0, "PER".into()), (2, "ORG".into())]
        );
    }

    #[test]
    fn search_finds_the_best_setting_and_always_tries_routing_nothing() {
        let (gold, ann) = fixture();
        let schema = LabelSchema::conll03();
        let grid = Grid::standard(0.1, 0.1);
        let all = search(&gold, &ann, &schema, 0.1, &grid).unwrap();
        assert!(all.iter().any(|s| s.policy == RoutingPolicy::Never));
        let best = &all[0];
        assert!((best.f1 - 1.0).abs() < 1e-12, "{best:?}");
        // Local alone: 1 of 3 predicted right, 1 of 2 gold found.
        let never = all
            .iter()
            .find(|s| s.policy == RoutingPolicy::Never)
            .unwrap();
        assert!((never.f1 - f1_counts(1, 3, 2)).abs() < 1e-12);
        // Sorted best first.
        assert!(all.windows(2).all(|w| w[0].f1 >= w[1].f1));
        // Thresholds below the floor are never tried.
        assert!(all.iter().all(|s| match s.policy {
            RoutingPolicy::Threshold { threshold } => threshold >= 0.1 - 1e-6,
            _ => true,
        }));
    }

    /// Per local type the same uncertain pattern (local 0.6 / 0.2, the LLM peaked on the
    /// other class), but the LLM is right on the PER-labelled entities and wrong on the
    /// LOC-labelled ones: no single merge can tell them apart, one merge per type can.
    #[test]
    fn search_adopts_a_merge_per_type_when_one_merge_cannot_serve_both_types() {
        let schema = LabelSchema::conll03();
        let (mut gold, mut anns) = (Vec::new(), Vec::new());
        for i in 0..40 {
            let plain = Sentence::from_words(&["Rome"]);
            let (local_class, gold_label, llm_class) = if i < 20 {
                (1, "LOC", 2) // said PER, is LOC, the LLM says LOC: mends
            } else {
                (2, "LOC", 1) // said LOC, is LOC, the LLM says PER: breaks
            };
            let mut p = vec![0.05f32; 5];
            p[local_class] = 0.6;
            p[3 - local_class] = 0.2;
            let mut d = vec![0.02f32; 5];
            d[llm_class] = 0.92;
            let mut g = plain.clone();
            g.spans = vec![WordSpan::new(0, 1, gold_label)];
            gold.push(g);
            anns.push(Annotation {
                sentence: plain.clone(),
                entities: vec![linked(&plain, 0, &p, 0.6, Some((llm_class, d)))],
                rejected: vec![],
                timings: None,
            });
        }
        let mut grid = Grid::standard(0.1, 0.1);
        grid.per_type = false;
        grid.per_type_merge = false;
        let single = search(&gold, &anns, &schema, 0.1, &grid).unwrap().remove(0);
        grid.per_type_merge = true;
        let best = search(&gold, &anns, &schema, 0.1, &grid).unwrap().remove(0);
        assert!((best.f1 - 1.0).abs() < 1e-12, "{best:?}");
        assert!(single.f1 < best.f1 - 0.1, "{single:?}");
        let MergePolicy::PerType { merges, default } = &best.merge else {
            panic!("not per type: {best:?}");
        };
        // The PER-labelled entities follow the LLM, the LOC-labelled ones keep their label.
        let decide = |m: &MergePolicy, local: &[f32], llm: &[f32]| {
            m.decide(local, linkner_core::prob::argmax(llm).unwrap(), Some(llm))
                .class
        };
        let (per, loc) = (best.merge.for_label("PER"), best.merge.for_label("LOC"));
        assert_eq!(
            decide(
                per,
                &[0.05, 0.6, 0.2, 0.05, 0.05],
                &[0.02, 0.02, 0.92, 0.02, 0.02]
            ),
            2
        );
        assert_eq!(
            decide(
                loc,
                &[0.05, 0.2, 0.6, 0.05, 0.05],
                &[0.02, 0.92, 0.02, 0.02, 0.02]
            ),
            2
        );
        assert!(merges.len() <= 2 && !matches!(**default, MergePolicy::PerType { .. }));
        // Replayed through the same decisions the pipeline makes: all 40 right.
        let spans: Vec<Vec<WordSpan>> = anns
            .iter()
            .map(|a| replay_spans(a, &best.policy, &best.merge, &schema))
            .collect();
        assert!((f1_of(&gold, &spans).unwrap() - 1.0).abs() < 1e-12);
    }
}
