//! Output offsets are char offsets into the caller's original string, whatever precedes the
//! entity: accents (precomposed and combining), CJK, emoji, ZWJ sequences, zero-width chars.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{Reply, ScriptedLlm, ScriptedTagger, chars, entry};
use linkner::uncertainty::builtins::Confidence;
use linkner::{Pipeline, RoutingPolicy};

/// Char offset of the first occurrence of `needle` in `text`, computed independently of the
/// pipeline (by walking chars).
fn char_find(text: &str, needle: &str) -> usize {
    let t: Vec<char> = text.chars().collect();
    let n: Vec<char> = needle.chars().collect();
    (0..=t.len() - n.len())
        .find(|&i| t[i..i + n.len()] == n[..])
        .expect("needle in text")
}

#[tokio::test]
async fn offsets_point_into_the_original_unicode_text() {
    let cases: &[(&str, &[&str])] = &[
        (
            "Jürgen Klopp joined Liverpool .",
            &["Jürgen Klopp", "Liverpool"],
        ),
        // `e` + combining diaeresis: two chars before the entity count as two.
        ("Zoe\u{0308} met Renée in Paris", &["Renée", "Paris"]),
        ("東京 is where Sony works", &["東京", "Sony"]),
        ("👍 Rome 🇮🇹 and 👨‍👩‍👧 Madrid", &["Rome", "Madrid"]),
        (
            "a\u{200B}b then São Paulo , then Zürich",
            &["São Paulo", "Zürich"],
        ),
        ("Ǆemal and Ωmega visited Kraków", &["Kraków"]),
    ];
    let tagger = ScriptedTagger::new(vec![
        entry("Jürgen Klopp", "PER", 0.1),
        entry("Liverpool", "ORG", 0.7),
        entry("Renée", "PER", 0.1),
        entry("Paris", "LOC", 0.7),
        entry("東京", "LOC", 0.7),
        entry("Sony", "ORG", 0.1),
        entry("Rome", "LOC", 0.7),
        entry("Madrid", "LOC", 0.1),
        entry("São Paulo", "LOC", 0.7),
        entry("Zürich", "LOC", 0.1),
        entry("Kraków", "LOC", 0.7),
    ]);
    // The LLM relabels Liverpool and Paris so that LLM-decided entities are checked too.
    let llm = ScriptedLlm::new(&[("Liverpool", Reply::Class(2)), ("Paris", Reply::Class(3))]);
    let p = Pipeline::builder()
        .tagger(Arc::new(tagger))
        .estimator(Arc::new(Confidence::new()))
        .llm(Arc::new(llm))
        .policy(RoutingPolicy::threshold(0.4))
        .build()
        .unwrap();
    let texts: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let docs = p.annotate_batch(&texts).await.unwrap();
    for ((text, expected), doc) in cases.iter().zip(&docs) {
        assert_eq!(doc.text(), *text);
        let got: Vec<&str> = doc
            .entities
            .iter()
            .map(|e| e.entity.text.as_str())
            .collect();
        assert_eq!(&got, expected, "{text}");
        for e in &doc.entities {
            let start = char_find(text, &e.entity.text);
            assert_eq!(e.entity.start, start, "{text}: {}", e.entity.text);
            assert_eq!(e.entity.end, start + e.entity.text.chars().count());
            assert_eq!(chars(text, e.entity.start, e.entity.end), e.entity.text);
            // The word span covers the same chars.
            let first = &doc.sentence.tokens[e.span.start];
            let last = &doc.sentence.tokens[e.span.end - 1];
            assert_eq!((first.start, last.end), (e.entity.start, e.entity.end));
        }
    }
    // Relabelled entities keep their offsets.
    assert_eq!(docs[0].entities[1].entity.label, "LOC");
    assert_eq!(docs[1].entities[1].entity.label, "ORG");
    assert_eq!(docs[1].entities[1].entity.start, 18);
    // A byte offset would be different here: the check above is not vacuous.
    assert_ne!(
        texts[3].find("Rome").unwrap(),
        docs[3].entities[0].entity.start
    );
}

#[tokio::test]
async fn pre_tokenized_sentences_keep_their_text_and_offsets() {
    let s = linkner::core::Sentence::from_words(&["Ça", "va", "à", "Genève", "?"]);
    let p = Pipeline::builder()
        .tagger(Arc::new(ScriptedTagger::new(vec![entry(
            "Genève", "LOC", 0.2,
        )])))
        .estimator(Arc::new(Confidence::new()))
        .policy(RoutingPolicy::Never)
        .build()
        .unwrap();
    let out = p.annotate_sentences(vec![s.clone()]).await.unwrap();
    assert_eq!(out[0].sentence, s);
    let e = &out[0].entities[0];
    assert_eq!((e.entity.start, e.entity.end), (8, 14));
    assert_eq!(e.span, linkner::core::WordSpan::new(3, 4, "LOC"));
}
