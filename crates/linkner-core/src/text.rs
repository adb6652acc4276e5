//! Sentences and documents: words with char offsets into the original text.

use serde::{Deserialize, Serialize};

use crate::entity::{Entity, WordSpan};
use crate::error::{CoreError, Result};

/// One word of a [`Sentence`] with its char offsets (end exclusive) into [`Sentence::text`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The word as it appears in the text.
    pub text: String,
    /// Char offset of its first char.
    pub start: usize,
    /// Char offset one past its last char.
    pub end: usize,
}

/// A sentence: the original text, its words with char offsets, and (for labelled data) the gold
/// entities as word spans plus the tags they were read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sentence {
    /// The original text. For data read from word-per-line files it is the words joined by one
    /// space.
    pub text: String,
    /// The words, in order, with char offsets into `text`.
    pub tokens: Vec<Token>,
    /// Gold entities as word spans (empty when unlabelled).
    #[serde(default)]
    pub spans: Vec<WordSpan>,
    /// The raw tags of a tagged file, one per word, when the sentence came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

impl Sentence {
    /// Builds a sentence from words, joining them with single spaces.
    pub fn from_words<S: AsRef<str>>(words: &[S]) -> Sentence {
        let mut text = String::new();
        let mut tokens = Vec::with_capacity(words.len());
        let mut pos = 0usize;
        for (i, w) in words.iter().enumerate() {
            if i > 0 {
                text.push(' ');
                pos += 1;
            }
            let w = w.as_ref();
            let n = w.chars().count();
            text.push_str(w);
            tokens.push(Token {
                text: w.to_string(),
                start: pos,
                end: pos + n,
            });
            pos += n;
        }
        Sentence {
            text,
            tokens,
            spans: Vec::new(),
            tags: None,
        }
    }

    /// Builds a sentence from an original text and words given as char ranges into it; checks
    /// that the ranges are in order, inside the text and non-empty.
    pub fn from_char_ranges(
        text: impl Into<String>,
        ranges: &[(usize, usize)],
    ) -> Result<Sentence> {
        let text = text.into();
        let chars: Vec<char> = text.chars().collect();
        let mut tokens = Vec::with_capacity(ranges.len());
        let mut prev_end = 0;
        for &(start, end) in ranges {
            if start >= end || end > chars.len() || start < prev_end {
                return Err(CoreError::InvalidSpan {
                    start,
                    end,
                    len: chars.len(),
                    message: "word ranges must be non-empty, ordered and inside the text".into(),
                });
            }
            tokens.push(Token {
                text: chars[start..end].iter().collect(),
                start,
                end,
            });
            prev_end = end;
        }
        Ok(Sentence {
            text,
            tokens,
            spans: Vec::new(),
            tags: None,
        })
    }

    /// The words of the sentence.
    pub fn words(&self) -> Vec<&str> {
        self.tokens.iter().map(|t| t.text.as_str()).collect()
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True when the sentence has no word.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The chars `start..end` of the text, or `None` when the range is outside it.
    pub fn char_slice(&self, start: usize, end: usize) -> Option<String> {
        if start > end {
            return None;
        }
        let s: String = self.text.chars().skip(start).take(end - start).collect();
        (s.chars().count() == end - start).then_some(s)
    }

    /// The gold entities as char-offset [`Entity`] values.
    pub fn entities(&self) -> Result<Vec<Entity>> {
        self.spans
            .iter()
            .map(|s| Entity::from_word_span(self, s))
            .collect()
    }
}

/// A document: an optional id and its sentences (CoNLL `-DOCSTART-` lines separate documents).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Document {
    /// Document id, when the source gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The sentences, in order.
    pub sentences: Vec<Sentence>,
}
