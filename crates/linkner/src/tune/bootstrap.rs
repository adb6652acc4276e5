//! The paired bootstrap of an F1 difference, resampling sentences or whole documents.

use linkner_core::{Sentence, WordSpan};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{LinkError, Result};

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

pub(super) fn f1_counts(c: usize, p: usize, g: usize) -> f64 {
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
    check_bootstrap(gold, a, b, groups, resamples, level)?;
    let (ca, cb) = (group_counts(gold, a, groups), group_counts(gold, b, groups));
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

/// The arguments of [`paired_bootstrap_grouped`] are consistent: one prediction per gold
/// sentence on each side, groups of at least one sentence that cover them all, a level in
/// (0, 1) and at least one resample.
fn check_bootstrap(
    gold: &[Sentence],
    a: &[Vec<WordSpan>],
    b: &[Vec<WordSpan>],
    groups: &[usize],
    resamples: usize,
    level: f64,
) -> Result<()> {
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
    Ok(())
}

/// (correct, predicted, gold) entity counts of each group of consecutive sentences.
fn group_counts(
    gold: &[Sentence],
    pred: &[Vec<WordSpan>],
    groups: &[usize],
) -> Vec<(usize, usize, usize)> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
