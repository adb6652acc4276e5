//! Entities: char spans into the original text ([`Entity`]) and word spans ([`WordSpan`]).

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::text::Sentence;

/// An entity as a range of words of a [`Sentence`]: words `start..end` (end exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WordSpan {
    /// Index of the first word.
    pub start: usize,
    /// Index one past the last word.
    pub end: usize,
    /// Entity type, as the dataset / schema names it (e.g. `PER`).
    pub label: String,
}

impl WordSpan {
    /// Creates a span of words `start..end` with `label`.
    pub fn new(start: usize, end: usize, label: impl Into<String>) -> Self {
        WordSpan {
            start,
            end,
            label: label.into(),
        }
    }

    /// Number of words covered.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// True when the span covers no word.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the two spans share at least one word.
    pub fn overlaps(&self, other: &WordSpan) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// An entity with **char offsets** into the caller's original string (end exclusive; see the
/// crate docs for the offset contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// Char offset of the first char.
    pub start: usize,
    /// Char offset one past the last char.
    pub end: usize,
    /// The covered text, exactly as in the original string.
    pub text: String,
    /// Entity type.
    pub label: String,
    /// Confidence of the label, when a model produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

impl Entity {
    /// The char range `[start, end)` of a word span of `sentence`, checked.
    fn char_range(sentence: &Sentence, span: &WordSpan) -> Result<(usize, usize)> {
        let n = sentence.tokens.len();
        if span.start >= span.end || span.end > n {
            return Err(CoreError::InvalidSpan {
                start: span.start,
                end: span.end,
                len: n,
                message: "word span must be non-empty and inside the sentence".into(),
            });
        }
        Ok((
            sentence.tokens[span.start].start,
            sentence.tokens[span.end - 1].end,
        ))
    }

    /// Converts a word span of `sentence` into a char-offset entity, slicing its text through
    /// `chars` (an index of `sentence.text` built once for all of its spans; see
    /// [`Sentence::char_index`]): linear time for many spans of one long sentence, where
    /// [`Entity::from_word_span`] walks the text from its start for each.
    pub fn from_word_span_with(
        sentence: &Sentence,
        chars: &crate::text::CharIndex<'_>,
        span: &WordSpan,
    ) -> Result<Entity> {
        let (start, end) = Self::char_range(sentence, span)?;
        Ok(Entity {
            start,
            end,
            text: chars.slice(start, end).unwrap_or_default().to_string(),
            label: span.label.clone(),
            score: None,
        })
    }

    /// Converts a word span of `sentence` into a char-offset entity. Walks the text up to the
    /// span's end: for many spans of one long sentence use [`Entity::from_word_span_with`].
    pub fn from_word_span(sentence: &Sentence, span: &WordSpan) -> Result<Entity> {
        let (start, end) = Self::char_range(sentence, span)?;
        Ok(Entity {
            start,
            end,
            text: sentence.char_slice(start, end).unwrap_or_default(),
            label: span.label.clone(),
            score: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_conversions_agree() {
        let s = Sentence::from_words(&["Zoë", "Müller", "visited", "東京", "🎉", "today"]);
        let ix = s.char_index();
        for start in 0..=s.tokens.len() {
            for end in 0..=s.tokens.len() + 1 {
                let span = WordSpan::new(start, end, "X");
                let a = Entity::from_word_span(&s, &span);
                let b = Entity::from_word_span_with(&s, &ix, &span);
                match (a, b) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b),
                    (Err(_), Err(_)) => assert!(start >= end || end > s.tokens.len()),
                    (a, b) => panic!("[{start}, {end}): {a:?} vs {b:?}"),
                }
            }
        }
        let e = Entity::from_word_span(&s, &WordSpan::new(1, 4, "X")).unwrap();
        assert_eq!(e.text, "Müller visited 東京");
    }
}
