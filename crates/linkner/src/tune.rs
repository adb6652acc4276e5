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
//! setting route only when the lower end of its dev gain's interval is above zero.

use std::collections::BTreeMap;

use linkner_core::score::{Mode, Scorer};
use linkner_core::{LabelSchema, Sentence, WordSpan};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::annotation::{Annotation, LinkedEntity};
use crate::error::{LinkError, Result};
use crate::merge::MergePolicy;
use crate::policy::{RouteInput, RoutingPolicy};

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
            let d = merge.decide_with_mass(
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
}

impl Grid {
    /// Temperatures of the LLM's distribution tried with `fuse` ([`Grid::standard`]).
    pub const TEMPERATURES: [f32; 4] = [0.5, 1.0, 2.0, 4.0];

    /// Thresholds `floor, floor + step, …` up to 1, the merges `replace`, `fuse` at weights
    /// 0.1 … 0.9 — each with the LLM's distribution at the temperatures of
    /// [`Grid::TEMPERATURES`], with and without its doubt (fitted jointly with the weight) —
    /// and `rerank` with k = 1, 2, 3; per-type thresholds on, adopted for a gain above 0.1 F1.
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
    let mut all = vec![score_setting(
        gold,
        annotations,
        &RoutingPolicy::Never,
        &MergePolicy::Replace,
        schema,
    )?];
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
    if grid.per_type
        && let Some(best) = all.first().cloned()
        && let RoutingPolicy::Threshold { threshold } = best.policy
    {
        // Coordinate ascent over the types, two rounds, from the best overall threshold; a
        // type's threshold of 1 routes none of it.
        let mut per: BTreeMap<String, f32> = schema
            .types
            .iter()
            .map(|t| (t.name.clone(), threshold))
            .collect();
        let mut current = best.clone();
        let mut choices = thresholds.clone();
        choices.push(1.0);
        for _round in 0..2 {
            for t in &schema.types {
                for &c in &choices {
                    let mut trial = per.clone();
                    trial.insert(t.name.clone(), c);
                    let policy = RoutingPolicy::PerType {
                        thresholds: trial.clone(),
                        default: threshold,
                    };
                    let s = score_setting(gold, annotations, &policy, &best.merge, schema)?;
                    if s.f1 > current.f1 + 1e-12 {
                        current = s;
                        per = trial;
                    }
                }
            }
        }
        if current.f1 > best.f1 + grid.per_type_min_gain {
            all.push(current);
            sort_best_first(&mut all);
        }
    }
    Ok(all)
}

fn sort_best_first(all: &mut [SettingScore]) {
    all.sort_by(|a, b| {
        b.f1.total_cmp(&a.f1)
            .then(a.routed_fraction.total_cmp(&b.routed_fraction))
    });
}

/// Counts of one sentence: (correct, predicted, gold) exact-match entities.
fn counts(gold: &[WordSpan], pred: &[WordSpan]) -> (usize, usize, usize) {
    let mut g: Vec<(usize, usize, &str)> = gold
        .iter()
        .map(|s| (s.start, s.end, s.label.as_str()))
        .collect();
    g.sort_unstable();
    let mut correct = 0;
    for p in pred {
        if let Ok(i) = g.binary_search(&(p.start, p.end, p.label.as_str())) {
            g.remove(i);
            correct += 1;
        }
    }
    (correct, pred.len(), gold.len())
}

fn f1_counts(c: usize, p: usize, g: usize) -> f64 {
    if c == 0 || p == 0 || g == 0 {
        return 0.0;
    }
    let (pr, rc) = (c as f64 / p as f64, c as f64 / g as f64);
    2.0 * pr * rc / (pr + rc)
}

/// What a bootstrap resamples: whole documents when the data has them (the sentences of one
/// document are not independent: a document-context tagger reads them together and their
/// entities repeat), sentences otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ResampleUnit {
    /// Each sentence is a unit.
    #[default]
    Sentences,
    /// Each document (consecutive sentences) is a unit.
    Documents,
}

impl ResampleUnit {
    /// The unit of data split into `groups` (sentences per document, in order): documents
    /// when some document holds more than one sentence, else sentences.
    pub fn of_groups(groups: &[usize]) -> ResampleUnit {
        if groups.iter().any(|&n| n > 1) {
            ResampleUnit::Documents
        } else {
            ResampleUnit::Sentences
        }
    }

    /// `sentences` or `documents`.
    pub fn name(self) -> &'static str {
        match self {
            ResampleUnit::Sentences => "sentences",
            ResampleUnit::Documents => "documents",
        }
    }
}

/// A difference of F1 between two systems with its bootstrap confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeltaCi {
    /// F1(b) − F1(a) on the sentences themselves.
    pub delta: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
    /// Coverage of the interval (e.g. 0.95).
    pub level: f64,
    /// Resamples drawn.
    pub resamples: usize,
    /// What was resampled.
    #[serde(default)]
    pub unit: ResampleUnit,
    /// How many units there were (documents or sentences).
    #[serde(default)]
    pub units: usize,
}

/// Paired bootstrap of F1(b) − F1(a): the sentences are resampled with replacement
/// `resamples` times (seeded), both systems scored on each resample, and the percentile
/// interval of the difference at `level` returned. `a` and `b` hold each sentence's predicted
/// spans, in `gold` order. For data with documents use [`paired_bootstrap_grouped`].
pub fn paired_bootstrap(
    gold: &[Sentence],
    a: &[Vec<WordSpan>],
    b: &[Vec<WordSpan>],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<DeltaCi> {
    paired_bootstrap_grouped(gold, a, b, &vec![1; gold.len()], resamples, level, seed)
}

/// [`paired_bootstrap`] resampling groups of consecutive sentences — documents — instead of
/// sentences: `groups[i]` is the number of sentences of the i-th document, in `gold` order
/// (they must sum to `gold.len()`). The interval's [`ResampleUnit`] is
/// [`ResampleUnit::of_groups`].
pub fn paired_bootstrap_grouped(
    gold: &[Sentence],
    a: &[Vec<WordSpan>],
    b: &[Vec<WordSpan>],
    groups: &[usize],
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<DeltaCi> {
    if a.len() != gold.len() || b.len() != gold.len() {
        return Err(LinkError::Config(format!(
            "bootstrap: {} gold sentences, {} and {} predictions",
            gold.len(),
            a.len(),
            b.len()
        )));
    }
    if groups.iter().sum::<usize>() != gold.len() || groups.contains(&0) {
        return Err(LinkError::Config(format!(
            "bootstrap: {} documents of {} sentences in all (each at least one), for {} gold \
             sentences",
            groups.len(),
            groups.iter().sum::<usize>(),
            gold.len()
        )));
    }
    if !(0.0 < level && level < 1.0) || resamples == 0 {
        return Err(LinkError::Config(
            "bootstrap: level in (0, 1) and at least one resample".into(),
        ));
    }
    // Counts per group: (correct, predicted, gold) of each system.
    let per_group = |pred: &[Vec<WordSpan>]| {
        let mut out = Vec::with_capacity(groups.len());
        let mut i = 0;
        for &n in groups {
            let (mut x, mut y, mut z) = (0, 0, 0);
            for (g, p) in gold[i..i + n].iter().zip(&pred[i..i + n]) {
                let (c, pp, gg) = counts(&g.spans, p);
                x += c;
                y += pp;
                z += gg;
            }
            out.push((x, y, z));
            i += n;
        }
        out
    };
    let (ca, cb) = (per_group(a), per_group(b));
    let total = |c: &[(usize, usize, usize)], idx: &mut dyn Iterator<Item = usize>| {
        let (mut x, mut y, mut z) = (0, 0, 0);
        for i in idx {
            x += c[i].0;
            y += c[i].1;
            z += c[i].2;
        }
        f1_counts(x, y, z)
    };
    let n = groups.len();
    let delta = total(&cb, &mut (0..n)) - total(&ca, &mut (0..n));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut diffs = Vec::with_capacity(resamples);
    let mut pick = vec![0usize; n];
    for _ in 0..resamples {
        for p in pick.iter_mut() {
            *p = rng.random_range(0..n.max(1));
        }
        let fa = total(&ca, &mut pick.iter().copied());
        let fb = total(&cb, &mut pick.iter().copied());
        diffs.push(fb - fa);
    }
    diffs.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let i = ((p * (resamples as f64 - 1.0)).round() as usize).min(resamples - 1);
        diffs[i]
    };
    let tail = (1.0 - level) / 2.0;
    Ok(DeltaCi {
        delta,
        low: q(tail),
        high: q(1.0 - tail),
        level,
        resamples,
        unit: ResampleUnit::of_groups(groups),
        units: n,
    })
}

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
}

impl Guard {
    /// Judges `setting` on the dev run `annotations` (see [`search`]) against `gold`, whose
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotation::{LlmVerdict, Provenance};
    use linkner_core::Entity;

    fn linked(
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

    #[test]
    fn bootstrap_brackets_the_difference_and_is_seeded() {
        // 200 sentences of one entity each; system b right on all, a on 160.
        let mut gold = Vec::new();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..200 {
            let mut s = Sentence::from_words(&["X"]);
            s.spans = vec![WordSpan::new(0, 1, "PER")];
            gold.push(s);
            b.push(vec![WordSpan::new(0, 1, "PER")]);
            a.push(vec![WordSpan::new(
                0,
                1,
                if i % 5 == 0 { "LOC" } else { "PER" },
            )]);
        }
        let ci = paired_bootstrap(&gold, &a, &b, 1000, 0.95, 1).unwrap();
        assert!((ci.delta - 0.2).abs() < 1e-9, "{ci:?}");
        assert!(
            ci.low > 0.1 && ci.low < 0.2 && ci.high > 0.2 && ci.high < 0.3,
            "{ci:?}"
        );
        assert_eq!(ci, paired_bootstrap(&gold, &a, &b, 1000, 0.95, 1).unwrap());
        // The width is that of a 95 % interval: resampled, b − a is 1 − p̂ with p̂ the share of
        // the 200 sentences a gets right, so the half-width is 1.96·sqrt(0.8·0.2/200) = 0.0554
        // (an 80 % interval would be 0.036, a 99 % one 0.073; the percentiles move in steps of
        // 0.005).
        let half = (ci.high - ci.low) / 2.0;
        assert!((0.045..=0.065).contains(&half), "half-width {half}: {ci:?}");
        assert!(
            ((ci.high - ci.delta) - (ci.delta - ci.low)).abs() <= 0.0101,
            "not centred: {ci:?}"
        );
        // Identical systems: a zero-width interval at zero.
        let same = paired_bootstrap(&gold, &b, &b, 200, 0.95, 1).unwrap();
        assert_eq!((same.delta, same.low, same.high), (0.0, 0.0, 0.0));
        assert!(paired_bootstrap(&gold, &a[..10], &b, 10, 0.95, 1).is_err());
    }

    #[test]
    fn documents_are_resampled_whole_and_give_the_wider_honest_interval() {
        // 20 documents of 10 one-entity sentences; a is wrong on every sentence of 4 whole
        // documents (errors cluster by document, as a document-context tagger's do), b right
        // everywhere. Δ = 0.2 either way; resampled by document the half-width is about
        // 1.96·sqrt(0.8·0.2/20) = 0.175, by sentence (wrongly independent) 0.055.
        let mut gold = Vec::new();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for doc in 0..20 {
            for _ in 0..10 {
                let mut s = Sentence::from_words(&["X"]);
                s.spans = vec![WordSpan::new(0, 1, "PER")];
                gold.push(s);
                b.push(vec![WordSpan::new(0, 1, "PER")]);
                let label = if doc % 5 == 0 { "LOC" } else { "PER" };
                a.push(vec![WordSpan::new(0, 1, label)]);
            }
        }
        let groups = vec![10; 20];
        let by_doc = paired_bootstrap_grouped(&gold, &a, &b, &groups, 2000, 0.95, 3).unwrap();
        let by_sentence = paired_bootstrap(&gold, &a, &b, 2000, 0.95, 3).unwrap();
        assert!((by_doc.delta - 0.2).abs() < 1e-9 && (by_sentence.delta - 0.2).abs() < 1e-9);
        assert_eq!((by_doc.unit, by_doc.units), (ResampleUnit::Documents, 20));
        assert_eq!(
            (by_sentence.unit, by_sentence.units),
            (ResampleUnit::Sentences, 200)
        );
        let half = |c: &DeltaCi| (c.high - c.low) / 2.0;
        assert!((0.13..=0.22).contains(&half(&by_doc)), "{by_doc:?}");
        assert!(half(&by_sentence) < 0.07, "{by_sentence:?}");
        // One-sentence groups are the sentence bootstrap, draw for draw.
        assert_eq!(
            paired_bootstrap_grouped(&gold, &a, &b, &vec![1; 200], 2000, 0.95, 3).unwrap(),
            by_sentence
        );
        // Groups that do not cover the sentences are an error, not a silent truncation.
        for bad in [vec![10; 19], vec![10; 21], [vec![0], vec![10; 20]].concat()] {
            assert!(paired_bootstrap_grouped(&gold, &a, &b, &bad, 10, 0.95, 3).is_err());
        }
    }

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
        let never = score_setting(
            &gold,
            &anns,
            &RoutingPolicy::Never,
            &MergePolicy::Replace,
            &schema,
        )
        .unwrap();
        assert!(
            !guard
                .judge(&gold, &anns, &schema, &groups, &never)
                .unwrap()
                .routes
        );
    }

    fn setting_never(gold: &[Sentence], anns: &[Annotation], schema: &LabelSchema) -> f64 {
        score_setting(
            gold,
            anns,
            &RoutingPolicy::Never,
            &MergePolicy::Replace,
            schema,
        )
        .unwrap()
        .f1
    }
}
