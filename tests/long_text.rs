//! Long text in linear time: one line of 1,000,000 characters through the pipeline must not
//! cost much more than 10 times a line of 100,000 (it was quadratic: every candidate's check
//! walked the text from its start). A ratio of complexity measured in one run, not a timing
//! target: 10× the text may take at most 15× the time.
//!
//! The tagger is a stand-in that is itself linear (one candidate every 8 words, its text sliced
//! through one char index), so the ratio measures the pipeline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use linkner::core::text::CharIndex;
use linkner::core::{Candidate, Entity, LabelSchema, Sentence, WordSpan};
use linkner::tagger::{LocalTagger, PredictOptions, TaggerError};
use linkner::uncertainty::builtins::Confidence;
use linkner::{Pipeline, RoutingPolicy};

/// Splits on spaces (linear) and proposes every 8th word as a PER candidate.
struct LinearTagger {
    schema: LabelSchema,
}

impl LinearTagger {
    fn sentence(text: &str) -> Sentence {
        let mut ranges = Vec::new();
        let mut start = None;
        let mut pos = 0usize;
        for c in text.chars() {
            match (c == ' ', start) {
                (true, Some(s)) => {
                    ranges.push((s, pos));
                    start = None;
                }
                (false, None) => start = Some(pos),
                _ => {}
            }
            pos += 1;
        }
        if let Some(s) = start {
            ranges.push((s, pos));
        }
        Sentence::from_char_ranges(text, &ranges).unwrap()
    }

    fn candidates(&self, s: &Sentence) -> Vec<Candidate> {
        let chars = CharIndex::new(&s.text);
        let n = self.schema.num_classes();
        let mut probs = vec![0.05; n];
        probs[1] = 1.0 - 0.05 * (n - 1) as f32;
        (0..s.tokens.len())
            .step_by(8)
            .map(|w| {
                let span = WordSpan::new(w, w + 1, "PER");
                let mut entity = Entity::from_word_span_with(s, &chars, &span).unwrap();
                entity.score = Some(probs[1]);
                Candidate {
                    span,
                    entity,
                    class: 1,
                    logits: probs.iter().map(|p| p.ln()).collect(),
                    probs: probs.clone(),
                    mc_probs: Vec::new(),
                    alpha: None,
                }
            })
            .collect()
    }
}

impl LocalTagger for LinearTagger {
    fn schema(&self) -> &LabelSchema {
        &self.schema
    }

    fn tag_sentences(
        &self,
        sentences: &[Sentence],
        _: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>, TaggerError> {
        Ok(sentences.iter().map(|s| self.candidates(s)).collect())
    }

    fn tag_texts(
        &self,
        texts: &[&str],
        _: &PredictOptions,
    ) -> Result<Vec<(Sentence, Vec<Candidate>)>, TaggerError> {
        Ok(texts
            .iter()
            .map(|t| {
                let s = Self::sentence(t);
                let c = self.candidates(&s);
                (s, c)
            })
            .collect())
    }
}

/// A line of about `chars` characters, non-ASCII (chars ≠ bytes).
fn line(chars: usize) -> String {
    let words = [
        "Zoë",
        "Müller",
        "visited",
        "東京",
        "with",
        "Ægir",
        "and",
        "Jose\u{301}",
    ];
    let mut s = String::with_capacity(chars * 2);
    let mut n = 0usize;
    let mut i = 0usize;
    while n < chars {
        if i > 0 {
            s.push(' ');
            n += 1;
        }
        let w = words[i % words.len()];
        s.push_str(w);
        n += w.chars().count();
        i += 1;
    }
    s
}

fn pipeline() -> Pipeline {
    Pipeline::builder()
        .tagger(Arc::new(LinearTagger {
            schema: LabelSchema::conll03(),
        }))
        .estimator(Arc::new(Confidence))
        .policy(RoutingPolicy::Never)
        .build()
        .unwrap()
}

/// The fastest of `runs` annotations of `text`, and the entities found.
async fn best_time(p: &Pipeline, text: &str, runs: usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut found = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let a = p.annotate(text).await.unwrap();
        best = best.min(t.elapsed());
        found = a.entities.len();
    }
    (best, found)
}

#[tokio::test]
async fn ten_times_the_text_takes_at_most_fifteen_times_the_time() {
    let p = pipeline();
    let short = line(100_000);
    let long = line(1_000_000);
    // Warm up (allocator, lazy statics).
    p.annotate(&line(10_000)).await.unwrap();
    let (t_short, n_short) = best_time(&p, &short, 5).await;
    let (t_long, n_long) = best_time(&p, &long, 2).await;
    // The candidates are there, with offsets into the original line.
    assert!(
        n_short > 1_000 && n_long > 10 * n_short - 10,
        "{n_short} {n_long}"
    );
    let ratio = t_long.as_secs_f64() / t_short.as_secs_f64();
    eprintln!(
        "100k chars: {t_short:?} ({n_short} entities); 1M chars: {t_long:?} ({n_long}); ratio {ratio:.1}"
    );
    assert!(
        ratio <= 15.0,
        "10× the text took {ratio:.1}× the time ({t_short:?} → {t_long:?}): not linear"
    );
}

#[tokio::test]
async fn entities_of_a_long_line_point_into_it() {
    let p = pipeline();
    let text = line(200_000);
    let a = p.annotate(&text).await.unwrap();
    let chars = CharIndex::new(&text);
    for e in a.entities.iter().step_by(97) {
        assert_eq!(
            chars.slice(e.entity.start, e.entity.end),
            Some(e.entity.text.as_str())
        );
    }
    assert!(a.entities.len() > 2_000);
}
