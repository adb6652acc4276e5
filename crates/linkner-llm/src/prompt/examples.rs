//! Few-shot examples: a pool collected from labelled sentences (gold entities and the
//! non-entity spans a tagger confuses with them) and a seeded, balanced draw from it.

use linkner_core::{LabelSchema, Sentence};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::request::Example;

/// Which non-entity examples [`ExamplePool::from_sentences`] collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NegativeExamples {
    /// Capitalised words outside every gold entity (not sentence-initial): linkner 0.1's
    /// choice, a cue that lower-cased text such as tweets lacks. The default: varied
    /// negatives measured no better with the 1.5B model (docs/results.md, ablation).
    #[default]
    Capitalised,
    /// Several kinds, drawn in turn: capitalised words, lower-case words, part of a gold
    /// entity, and a gold entity extended by a neighbouring word — the mistakes a tagger makes.
    Varied,
}

/// The kind of a non-entity example, for drawing them in turn.
pub(super) fn negative_kind(e: &Example) -> usize {
    let words = e.entity.split_whitespace().count();
    let capitalised = e.entity.chars().next().is_some_and(char::is_uppercase);
    match (words > 1, capitalised) {
        (false, true) => 0,
        (false, false) => 1,
        (true, _) => 2,
    }
}

/// A pool of labelled examples to draw few-shot examples from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExamplePool {
    /// All examples, any order.
    pub examples: Vec<Example>,
}

impl ExamplePool {
    /// A pool of the given examples.
    pub fn new(examples: Vec<Example>) -> Self {
        ExamplePool { examples }
    }

    /// Builds a pool from labelled sentences with [`NegativeExamples::Capitalised`] non-entity
    /// examples (linkner 0.1's pool).
    pub fn from_sentences(sentences: &[Sentence], schema: &LabelSchema) -> Self {
        Self::from_sentences_with(sentences, schema, NegativeExamples::Capitalised)
    }

    /// Builds a pool from labelled sentences: every gold entity is an example of its type, and
    /// non-entity examples are collected as `negatives` says. Entities whose label the schema
    /// does not know are skipped.
    pub fn from_sentences_with(
        sentences: &[Sentence],
        schema: &LabelSchema,
        negatives: NegativeExamples,
    ) -> Self {
        let mut examples = Vec::new();
        for s in sentences {
            let n = s.tokens.len();
            let mut covered = vec![false; n];
            for span in &s.spans {
                for c in covered.iter_mut().take(span.end.min(n)).skip(span.start) {
                    *c = true;
                }
            }
            let slice = |a: usize, b: usize| -> Option<Example> {
                let (first, last) = (s.tokens.get(a)?, s.tokens.get(b.checked_sub(1)?)?);
                let text = s.char_slice(first.start, last.end)?;
                Some(Example::new(s.text.clone(), text, 0).at(first.start))
            };
            for span in &s.spans {
                let Some(class) = schema.class_of(&span.label) else {
                    continue;
                };
                if let Some(mut e) = slice(span.start, span.end) {
                    e.class = class;
                    examples.push(e);
                }
                if negatives == NegativeExamples::Varied {
                    // Part of a multi-word entity, and the entity with the next (non-entity)
                    // word: the boundary mistakes of a span tagger.
                    if span.end - span.start > 1
                        && let Some(e) = slice(span.start, span.end - 1)
                    {
                        examples.push(e);
                    }
                    if span.end < n
                        && !covered[span.end]
                        && s.tokens[span.end].text.chars().any(char::is_alphanumeric)
                        && let Some(e) = slice(span.start, span.end + 1)
                    {
                        examples.push(e);
                    }
                }
            }
            for (i, t) in s.tokens.iter().enumerate().skip(1) {
                if covered[i] {
                    continue;
                }
                let capitalised = t.text.chars().next().is_some_and(|c| c.is_uppercase())
                    && t.text.chars().count() > 1
                    && t.text.chars().any(|c| c.is_lowercase());
                let lower_word =
                    t.text.chars().count() > 3 && t.text.chars().all(char::is_lowercase);
                if (capitalised || (negatives == NegativeExamples::Varied && lower_word))
                    && let Some(e) = slice(i, i + 1)
                {
                    examples.push(e);
                }
            }
        }
        ExamplePool { examples }
    }

    /// Draws up to `k` examples of every class `0..num_classes` with a seeded shuffle, and
    /// interleaves them (first example of every type, then the second, …; non-entity last in
    /// each round). Non-entity examples are drawn in turn from their kinds (capitalised word,
    /// lower-case word, multi-word span), so a varied pool gives varied examples. The same
    /// pool, `k` and seed always give the same examples.
    pub fn draw(&self, num_classes: usize, k: usize, seed: u64) -> Vec<Example> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut by_class: Vec<Vec<&Example>> = vec![Vec::new(); num_classes];
        for e in &self.examples {
            if let Some(v) = by_class.get_mut(e.class) {
                v.push(e);
            }
        }
        for (class, v) in by_class.iter_mut().enumerate() {
            v.shuffle(&mut rng);
            if class == 0 {
                // Round-robin over the kinds, each kind in its shuffled order.
                let mut kinds: Vec<Vec<&Example>> = vec![Vec::new(); 3];
                for e in v.drain(..) {
                    kinds[negative_kind(e)].push(e);
                }
                let longest = kinds.iter().map(Vec::len).max().unwrap_or(0);
                for i in 0..longest {
                    for kind in &kinds {
                        if let Some(e) = kind.get(i) {
                            v.push(e);
                        }
                    }
                }
            }
            v.truncate(k);
        }
        let order: Vec<usize> = (1..num_classes).chain(std::iter::once(0)).collect();
        let mut out = Vec::new();
        for round in 0..k {
            for &c in &order {
                if let Some(e) = by_class[c].get(round) {
                    out.push((*e).clone());
                }
            }
        }
        out
    }
}
