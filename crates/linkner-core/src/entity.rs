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
    /// Converts a word span of `sentence` into a char-offset entity, slicing its text through
    /// `chars` (an index of `sentence.text` built once for all of its spans; see
    /// [`Sentence::char_index`]): linear time for many spans of one long sentence, where
    /// [`Entity::from_word_span`] reads the whole text again for each.
    pub fn from_word_span_with(
        sentence: &Sentence,
        chars: &crate::text::CharIndex<'_>,
        span: &WordSpan,
    ) -> Result<Entity> {
        let n = sentence.tokens.len();
        if span.start >= span.end || span.end > n {
            return Err(CoreError::InvalidSpan {
                start: span.start,
                end: span.end,
                len: n,
                message: "word span must be non-empty and inside the sentence".into(),
            });
        }
        let start = sentence.tokens[span.start].start;
        let end = sentence.tokens[span.end - 1].end;
        Ok(Entity {
            start,
            end,
            text: chars.slice(start, end).unwrap_or_default().to_string(),
            label: span.label.clone(),
            score: None,
        })
    }

    /// Converts a word span of `sentence` into a char-offset entity (indexes the text for
    /// this one span; for many spans use [`Entity::from_word_span_with`]).
    pub fn from_word_span(sentence: &Sentence, span: &WordSpan) -> Result<Entity> {
        Self::from_word_span_with(sentence, &sentence.char_index(), span)
    }
}
