//! Properties of the span-F1 scorer on arbitrary tag sequences (ill-formed ones included).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use linkner_core::TagScheme;
use linkner_core::WordSpan;
use linkner_core::score::{LabelScores, Mode, Scorer, Scores};
use linkner_core::tags::spans_to_tags;
use proptest::prelude::*;

/// A tag of any BIOES prefix (or `O`) and one of a few types, one of which contains a `-`.
fn tag(bioes: bool) -> impl Strategy<Value = String> {
    let prefixes: Vec<&'static str> = if bioes {
        vec!["B", "I", "E", "S"]
    } else {
        vec!["B", "I"]
    };
    prop_oneof![
        2 => Just("O".to_string()),
        3 => (
            prop::sample::select(prefixes),
            prop::sample::select(vec!["PER", "LOC", "creative-work"]),
        )
            .prop_map(|(p, t)| format!("{p}-{t}")),
    ]
}

/// One sentence: gold and predicted tags of the same length.
fn pair(bioes: bool) -> impl Strategy<Value = (Vec<String>, Vec<String>)> {
    (1usize..12).prop_flat_map(move |n| {
        (
            prop::collection::vec(tag(bioes), n),
            prop::collection::vec(tag(bioes), n),
        )
    })
}

fn corpus(bioes: bool) -> impl Strategy<Value = Vec<(Vec<String>, Vec<String>)>> {
    prop::collection::vec(pair(bioes), 1..10)
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        Just(Mode::Conlleval),
        Just(Mode::Strict(TagScheme::Iob1)),
        Just(Mode::Strict(TagScheme::Iob2)),
    ]
}

fn score(mode: Mode, corpus: &[(Vec<String>, Vec<String>)]) -> Scores {
    let mut scorer = Scorer::new(mode);
    for (g, p) in corpus {
        scorer.add_tags(g, p).unwrap();
    }
    scorer.finish()
}

fn check_row(name: &str, s: &LabelScores) -> Result<(), TestCaseError> {
    for v in [s.precision, s.recall, s.f1] {
        prop_assert!((0.0..=1.0).contains(&v), "{name}: {s:?} out of [0, 1]");
    }
    prop_assert!(s.correct <= s.predicted.min(s.support), "{name}: {s:?}");
    let harmonic = if s.precision + s.recall == 0.0 {
        0.0
    } else {
        2.0 * s.precision * s.recall / (s.precision + s.recall)
    };
    prop_assert!((s.f1 - harmonic).abs() <= 1e-12, "{name}: {s:?}");
    prop_assert!(
        s.f1 >= s.precision.min(s.recall) - 1e-12 && s.f1 <= s.precision.max(s.recall) + 1e-12,
        "{name}: F1 not between P and R: {s:?}"
    );
    Ok(())
}

fn micro(s: &Scores) -> LabelScores {
    LabelScores {
        precision: s.precision,
        recall: s.recall,
        f1: s.f1,
        support: s.support,
        predicted: s.predicted,
        correct: s.correct,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn perfect_prediction_scores_one(corpus in corpus(true)) {
        let gold: Vec<_> = corpus.iter().map(|(g, _)| (g.clone(), g.clone())).collect();
        for mode in [Mode::Conlleval, Mode::Strict(TagScheme::Bioes)] {
            let s = score(mode, &gold);
            if s.support > 0 {
                prop_assert_eq!((s.precision, s.recall, s.f1), (1.0, 1.0, 1.0), "{}", mode);
                prop_assert_eq!(s.correct, s.support);
                for (name, row) in &s.per_label {
                    prop_assert_eq!(row.f1, 1.0, "{}", name);
                }
            } else {
                prop_assert_eq!((s.precision, s.recall, s.f1), (0.0, 0.0, 0.0));
            }
        }
    }

    #[test]
    fn permuting_sentences_changes_nothing(
        (corpus, shuffled) in corpus(false).prop_flat_map(|c| (Just(c.clone()), Just(c).prop_shuffle())),
        mode in mode(),
    ) {
        prop_assert_eq!(score(mode, &corpus), score(mode, &shuffled));
    }

    #[test]
    fn scores_are_bounded_and_f1_is_the_harmonic_mean(corpus in corpus(false), mode in mode()) {
        let s = score(mode, &corpus);
        check_row("micro", &micro(&s))?;
        for (name, row) in &s.per_label {
            check_row(name, row)?;
        }
        let sum = |f: fn(&LabelScores) -> usize| s.per_label.values().map(f).sum::<usize>();
        prop_assert_eq!(sum(|r| r.support), s.support);
        prop_assert_eq!(sum(|r| r.predicted), s.predicted);
        prop_assert_eq!(sum(|r| r.correct), s.correct);
    }

    #[test]
    fn spans_and_their_tags_score_the_same(
        raw in prop::collection::vec(
            (
                (8usize..14),
                prop::collection::vec((0usize..12, 1usize..4, 0usize..2), 0..5),
                prop::collection::vec((0usize..12, 1usize..4, 0usize..2), 0..5),
            ),
            1..6,
        ),
        scheme in prop::sample::select(TagScheme::ALL.to_vec()),
    ) {
        // Non-overlapping spans (as `spans_to_tags` keeps them) written as tags of any scheme
        // and read back in conlleval mode give the same scores as the spans themselves.
        let labels = ["PER", "LOC"];
        let spans = |n: usize, v: &[(usize, usize, usize)]| {
            let mut out: Vec<WordSpan> = Vec::new();
            let mut sorted: Vec<WordSpan> = v
                .iter()
                .filter(|&&(s, len, _)| s + len <= n)
                .map(|&(s, len, l)| WordSpan::new(s, s + len, labels[l]))
                .collect();
            sorted.sort();
            for s in sorted {
                if out.last().is_none_or(|p| p.end <= s.start) {
                    out.push(s);
                }
            }
            out
        };
        let mut by_tags = Scorer::new(Mode::Conlleval);
        let mut by_spans = Scorer::new(Mode::Conlleval);
        for (n, g, p) in &raw {
            let (g, p) = (spans(*n, g), spans(*n, p));
            by_spans.add_spans(&g, &p).unwrap();
            by_tags
                .add_tags(&spans_to_tags(&g, *n, scheme), &spans_to_tags(&p, *n, scheme))
                .unwrap();
        }
        prop_assert_eq!(by_tags.finish(), by_spans.finish());
    }
}
