//! Property tests of the quality metrics.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use linkner_uncertainty::metrics::{self, Outcome, Scored};
use proptest::prelude::*;

/// Correctness flags with at least one correct and one wrong prediction.
fn mixed_flags() -> impl Strategy<Value = Vec<bool>> {
    prop::collection::vec(any::<bool>(), 2..80).prop_filter("needs both classes", |v| {
        v.iter().any(|&b| b) && v.iter().any(|&b| !b)
    })
}

/// Scores that rank every wrong prediction above every correct one (distinct, in [0, 1]).
fn perfect(flags: &[bool]) -> Vec<Scored> {
    let n = flags.len() as f32;
    flags
        .iter()
        .enumerate()
        .map(|(i, &correct)| {
            let base = if correct { 0.0 } else { 0.5 };
            Scored::new(base + 0.5 * i as f32 / n, correct)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn auroc_of_perfect_ranking_is_one(flags in mixed_flags()) {
        prop_assert_eq!(metrics::auroc(&perfect(&flags)).unwrap(), 1.0);
    }

    #[test]
    fn auroc_of_reversed_ranking_is_zero(flags in mixed_flags()) {
        let reversed: Vec<Scored> = perfect(&flags)
            .into_iter()
            .map(|s| Scored::with_outcome(1.0 - s.score, s.outcome))
            .collect();
        prop_assert_eq!(metrics::auroc(&reversed).unwrap(), 0.0);
    }

    #[test]
    fn auroc_is_invariant_to_strictly_monotone_transforms(
        pairs in prop::collection::vec((0u8..100, any::<bool>()), 2..80)
            .prop_filter("needs both classes", |v| v.iter().any(|p| p.1) && v.iter().any(|p| !p.1))
    ) {
        // Integer-valued scores so every transform below is exact in f32 (ties are preserved).
        let with = |f: &dyn Fn(f32) -> f32| -> f64 {
            let items: Vec<Scored> =
                pairs.iter().map(|&(x, c)| Scored::new(f(f32::from(x)), c)).collect();
            metrics::auroc(&items).unwrap()
        };
        let base = with(&|x| x);
        prop_assert!((0.0..=1.0).contains(&base));
        prop_assert_eq!(with(&|x| 3.0 * x - 7.0), base);
        prop_assert_eq!(with(&|x| x * x * x), base);
        prop_assert_eq!(with(&|x| x.exp2()), base);
        // a decreasing transform mirrors it
        prop_assert!((with(&|x| -x) - (1.0 - base)).abs() < 1e-12);
    }

    #[test]
    fn ece_is_zero_when_exactly_calibrated(
        levels in prop::collection::vec((0u32..=8, 1usize..6), 1..9)
    ) {
        // Confidence j/8 (exact in binary) held by 8·t predictions of which j·t are correct:
        // every bin's accuracy equals its mean confidence exactly.
        let mut items = Vec::new();
        for &(j, t) in &levels {
            let score = 1.0 - j as f32 / 8.0;
            for i in 0..8 * t {
                items.push(Scored::new(score, i < j as usize * t));
            }
        }
        prop_assert_eq!(metrics::ece(&items, metrics::ECE_BINS).unwrap(), 0.0);
    }

    #[test]
    fn ece_is_in_unit_range(pairs in prop::collection::vec((0.0f32..=1.0, any::<bool>()), 1..60)) {
        let items: Vec<Scored> = pairs.iter().map(|&(s, c)| Scored::new(s, c)).collect();
        let e = metrics::ece(&items, metrics::ECE_BINS).unwrap();
        prop_assert!((0.0..=1.0).contains(&e));
    }

    #[test]
    fn aurc_of_perfect_ranking_is_at_most_random(
        flags in mixed_flags(),
        shuffle in any::<u64>(),
    ) {
        let best = metrics::aurc(&perfect(&flags)).unwrap();
        // A pseudo-random permutation of distinct scores.
        let n = flags.len() as u64;
        let random: Vec<Scored> = flags
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let r = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(shuffle) % (n * 97);
                Scored::new(r as f32 + i as f32 / (2.0 * n as f32), c)
            })
            .collect();
        let rand = metrics::aurc(&random).unwrap();
        prop_assert!(best <= rand + 1e-12, "perfect {best} > random {rand}");
        // A constant estimator gets exactly the error rate.
        let constant: Vec<Scored> = flags.iter().map(|&c| Scored::new(0.5, c)).collect();
        let rate = flags.iter().filter(|&&c| !c).count() as f64 / flags.len() as f64;
        prop_assert!((metrics::aurc(&constant).unwrap() - rate).abs() < 1e-9);
        prop_assert!(best <= rate + 1e-12);
    }

    #[test]
    fn coverage_curve_is_consistent(
        outcomes in prop::collection::vec((0.0f32..1.0, 0u8..3), 1..60),
        missed in 0usize..20,
    ) {
        let items: Vec<Scored> = outcomes
            .iter()
            .map(|&(s, o)| {
                let o = [Outcome::Correct, Outcome::WrongType, Outcome::Spurious][o as usize];
                Scored::with_outcome(s, o)
            })
            .collect();
        let n_gold = items.iter().filter(|s| s.outcome != Outcome::Spurious).count() + missed;
        let curve = metrics::coverage_curve(&items, n_gold, &metrics::default_fractions()).unwrap();
        prop_assert_eq!(curve.len(), 21);
        let tp = items.iter().filter(|s| s.outcome == Outcome::Correct).count() as f64;
        let base = if items.len() + n_gold > 0 { 2.0 * tp / (items.len() + n_gold) as f64 } else { 0.0 };
        prop_assert!((curve[0].local_f1 - base).abs() < 1e-12);
        prop_assert!((curve[0].oracle_f1 - base).abs() < 1e-12);
        prop_assert_eq!(curve[20].routed, items.len());
        for w in curve.windows(2) {
            prop_assert!(w[0].routed <= w[1].routed);
            // the oracle only fixes or removes mistakes: it never loses ground as more is routed
            prop_assert!(w[1].oracle_f1 >= w[0].oracle_f1 - 1e-12);
        }
        for p in &curve {
            prop_assert!(p.oracle_f1 >= p.local_f1 - 1e-12);
            prop_assert!((0.0..=1.0).contains(&p.local_f1) && (0.0..=1.0).contains(&p.oracle_f1));
        }
    }
}

#[test]
fn perfect_routing_removes_exactly_the_mistakes() {
    let flags = [
        true, false, true, true, false, true, true, true, false, true,
    ];
    let items = perfect(&flags);
    let n_gold = 12;
    let curve = metrics::coverage_curve(&items, n_gold, &[0.3]).unwrap();
    // the 3 wrong ones are the most uncertain: routing 30% leaves 7 correct, F1 = 14 / (7 + 12)
    assert_eq!(curve[0].routed, 3);
    assert!((curve[0].local_f1 - 14.0 / 19.0).abs() < 1e-12);
    assert!((curve[0].local_precision - 1.0).abs() < 1e-12);
}
