//! The k-NN retriever of per-entity demonstrations: span embeddings of the real MiniLM encoder,
//! an index that is cached next to the checkpoint and gives the same neighbours once reloaded,
//! never the query's own sentence, most similar last.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use linkner::ExampleRetriever;
use linkner::core::{LabelSchema, Sentence, WordSpan};
use linkner::knn::{KnnOptions, KnnRetriever};
use linkner::tagger::{DeviceSpec, HeadOptions, SpanTagger, default_encoder_dir};

fn tagger() -> SpanTagger {
    let encoder = default_encoder_dir()
        .expect("the MiniLM encoder is not installed: run scripts/setup-python.sh");
    let device = DeviceSpec::Cpu.checked_device().unwrap();
    SpanTagger::from_encoder_dir(
        &encoder,
        LabelSchema::conll03(),
        HeadOptions::default(),
        &device,
    )
    .unwrap()
    .0
}

fn labelled(words: &[&str], spans: &[(usize, usize, &str)]) -> Sentence {
    let mut s = Sentence::from_words(words);
    s.spans = spans
        .iter()
        .map(|&(a, b, l)| WordSpan::new(a, b, l))
        .collect();
    s
}

fn training() -> Vec<Sentence> {
    vec![
        labelled(
            &["Paris", "is", "lovely", "in", "spring", "."],
            &[(0, 1, "LOC")],
        ),
        labelled(
            &["Angela", "Merkel", "met", "the", "press", "."],
            &[(0, 2, "PER")],
        ),
        labelled(
            &["Microsoft", "hired", "engineers", "in", "Seattle", "."],
            &[(0, 1, "ORG"), (4, 5, "LOC")],
        ),
        labelled(
            &["The", "Olympics", "start", "on", "Friday", "."],
            &[(1, 2, "MISC")],
        ),
        labelled(
            &["We", "flew", "to", "Paris", "yesterday", "."],
            &[(3, 4, "LOC")],
        ),
    ]
}

#[test]
fn neighbours_are_deterministic_cached_and_never_from_the_query_sentence() {
    let train = training();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.conll");
    let options = KnnOptions::default();
    let built =
        KnnRetriever::load_or_build(tagger(), dir.path(), &data, &train, 3, &options).unwrap();
    // The index holds every gold entity and some non-entities.
    let items = &built.index().items;
    assert_eq!(items.iter().filter(|i| i.class != 0).count(), 6);
    assert!(items.iter().any(|i| i.class == 0));
    let cached: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("knn-"))
        .collect();
    assert_eq!(
        cached.len(),
        2,
        "index and vectors next to the checkpoint: {cached:?}"
    );

    // A query for "Paris" in a new sentence: its nearest span is "Paris".
    let query = labelled(&["I", "love", "Paris", "."], &[]);
    let span = WordSpan::new(2, 3, "LOC");
    let first = built.retrieve(&[(&query, &span)]).unwrap();
    assert_eq!(first[0].len(), 3);
    let nearest = first[0].last().unwrap();
    assert_eq!(
        (nearest.entity.as_str(), nearest.class),
        ("Paris", 2),
        "{first:?}"
    );

    // Same again, and from the index reloaded from disk: the same neighbours.
    assert_eq!(built.retrieve(&[(&query, &span)]).unwrap(), first);
    let reloaded =
        KnnRetriever::load_or_build(tagger(), dir.path(), &data, &train, 3, &options).unwrap();
    assert_eq!(reloaded.index(), built.index());
    assert_eq!(reloaded.retrieve(&[(&query, &span)]).unwrap(), first);

    // A query from a training sentence never gets that sentence back.
    let own = &train[0];
    let own_span = WordSpan::new(0, 1, "LOC");
    let got = built.retrieve(&[(own, &own_span)]).unwrap();
    assert!(got[0].iter().all(|e| e.sentence != own.text), "{got:?}");
    // Its nearest is the other "Paris".
    assert_eq!(got[0].last().unwrap().sentence, train[4].text);
}
