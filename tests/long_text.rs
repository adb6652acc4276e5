//! Long text in linear time: one line of 1,000,000 characters through the pipeline must not
//! cost much more than 10 times a line of 100,000 (it was quadratic: every candidate's check
//! walked the text from its start). A ratio of complexity measured in one run, not a timing
//! target: 10× the text may take at most 15× the time.
//!
//! The tagger is a stand-in that is itself linear (one candidate every 8 words, its text sliced
//! through one char index), so the ratio measures the pipeline. Times are CPU times of the
//! process, each run from cold caches, the least of several runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use linkner::core::text::CharIndex;
use linkner::core::{Candidate, Entity, LabelSchema, Sentence, WordSpan};
use linkner::core::{LocalTagger, PredictOptions, TaggerError};
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

/// The short line's length in chars; the long one is 10 times longer. Both sizes are far above
/// the CPU caches and the allocator's small-object regime, so that they cost the same per char
/// when the work is linear.
const SHORT: usize = 250_000;

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

/// Writes through 64 MiB so that no earlier run's data is left in the CPU caches: both sizes
/// then start cold, and the ratio reflects the work rather than which size fits in the cache.
fn evict_caches(buf: &mut [u8], round: u8) {
    for b in buf.iter_mut().step_by(64) {
        *b = b.wrapping_add(round);
    }
    std::hint::black_box(&buf);
}

/// CPU time used so far by every thread of this process (Linux `schedstat`, nanoseconds). CPU
/// time, not wall time: on a busy machine a longer run is preempted more often, which would
/// inflate the ratio of wall times.
fn cpu_time() -> Duration {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.unwrap().path().join("schedstat");
        // A thread may end between the listing and the read.
        if let Ok(s) = std::fs::read_to_string(path) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}

/// The least CPU time of up to `runs` annotations of `text` (each from cold caches), and the
/// entities found. Stops early once a run took at most `enough`, or one took more than three
/// times that (no noise does that: the code is slow, and retrying would only take long).
async fn best_time(p: &Pipeline, text: &str, runs: usize, enough: Duration) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut found = 0;
    let mut buf = vec![0u8; 64 << 20];
    for r in 0..runs {
        evict_caches(&mut buf, r as u8 + 1);
        let t = cpu_time();
        let a = p.annotate(text).await.unwrap();
        let took = cpu_time().saturating_sub(t);
        best = best.min(took);
        found = a.entities.len();
        if best <= enough || took > enough * 3 {
            break;
        }
    }
    (best, found)
}

// One test: the timings must not share the CPU with another test of this file.
#[tokio::test]
async fn ten_times_the_text_takes_at_most_fifteen_times_the_time() {
    let p = pipeline();
    let short = line(SHORT);
    let long = line(10 * SHORT);
    // Warm up (allocator, lazy statics).
    p.annotate(&short).await.unwrap();
    let (t_short, n_short) = best_time(&p, &short, 7, Duration::ZERO).await;
    let (t_long, n_long) = best_time(&p, &long, 3, t_short * 15).await;
    // The candidates are there.
    assert!(
        n_short > 1_000 && n_long > 10 * n_short - 10,
        "{n_short} {n_long}"
    );
    let ratio = t_long.as_secs_f64() / t_short.as_secs_f64();
    eprintln!(
        "{SHORT} chars: {t_short:?} ({n_short} entities); {} chars: {t_long:?} ({n_long}); ratio {ratio:.1}",
        10 * SHORT
    );
    assert!(
        ratio <= 15.0,
        "10× the text took {ratio:.1}× the time ({t_short:?} → {t_long:?}): not linear"
    );

    // And their offsets point into the original line.
    let a = p.annotate(&long).await.unwrap();
    let chars = CharIndex::new(&long);
    for e in a.entities.iter().step_by(97) {
        assert_eq!(
            chars.slice(e.entity.start, e.entity.end),
            Some(e.entity.text.as_str())
        );
    }
}
