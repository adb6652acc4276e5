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
    ///
    /// Walks the text from its start: for many slices of one long text, build a
    /// [`CharIndex`] once ([`Sentence::char_index`]) and slice through it.
    pub fn char_slice(&self, start: usize, end: usize) -> Option<String> {
        char_slice(&self.text, start, end).map(str::to_owned)
    }

    /// A char → byte index of the text (built in one pass), for slicing it by char offsets
    /// many times without walking it from the start each time.
    pub fn char_index(&self) -> CharIndex<'_> {
        CharIndex::new(&self.text)
    }

    /// The gold entities as char-offset [`Entity`] values.
    pub fn entities(&self) -> Result<Vec<Entity>> {
        self.spans
            .iter()
            .map(|s| Entity::from_word_span(self, s))
            .collect()
    }
}

/// Chars between two byte-offset checkpoints of a [`CharIndex`].
const CHAR_INDEX_STRIDE: usize = 64;

/// Chars `start..end` of `text` (char offsets, exclusive end: the offset contract of this
/// crate), borrowed from it; `None` when `start > end` or `end` is past the text's last char.
/// `start == end` is the empty slice.
///
/// The one char-slicing function of linkner: [`Sentence::char_slice`] and the LLM requests use
/// it. It walks the text once from its start; for many slices of one text use [`CharIndex`].
pub fn char_slice(text: &str, start: usize, end: usize) -> Option<&str> {
    if start > end {
        return None;
    }
    let mut bounds = text
        .char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(text.len()));
    let from = bounds.nth(start)?;
    let to = if end == start {
        from
    } else {
        bounds.nth(end - start - 1)?
    };
    Some(&text[from..to])
}

/// Char offsets → byte offsets of one string: built in one pass over the text, then a slice by
/// char offsets costs at most 64 chars of walking instead of a walk
/// from the start. Memory: nothing for an ASCII text, one `usize` per 64 chars otherwise.
///
/// ```
/// use linkner_core::text::CharIndex;
/// let ix = CharIndex::new("Zoë Müller visited 東京.");
/// assert_eq!(ix.len(), 22);
/// assert_eq!(ix.slice(4, 10), Some("Müller"));
/// assert_eq!(ix.slice(19, 21), Some("東京"));
/// assert_eq!(ix.slice(19, 99), None);
/// ```
#[derive(Debug, Clone)]
pub struct CharIndex<'a> {
    text: &'a str,
    /// Number of chars.
    chars: usize,
    /// Byte offset of every `CHAR_INDEX_STRIDE`-th char (empty for an ASCII text).
    checkpoints: Vec<usize>,
}

impl<'a> CharIndex<'a> {
    /// Indexes `text`.
    pub fn new(text: &'a str) -> CharIndex<'a> {
        if text.is_ascii() {
            return CharIndex {
                text,
                chars: text.len(),
                checkpoints: Vec::new(),
            };
        }
        let mut checkpoints = Vec::with_capacity(text.len() / CHAR_INDEX_STRIDE + 1);
        let mut chars = 0usize;
        for (byte, _) in text.char_indices() {
            if chars.is_multiple_of(CHAR_INDEX_STRIDE) {
                checkpoints.push(byte);
            }
            chars += 1;
        }
        CharIndex {
            text,
            chars,
            checkpoints,
        }
    }

    /// Number of chars of the text.
    pub fn len(&self) -> usize {
        self.chars
    }

    /// True for an empty text.
    pub fn is_empty(&self) -> bool {
        self.chars == 0
    }

    /// The byte offset of char `pos` (`pos == len()` gives the text's byte length); `None`
    /// past the end.
    pub fn byte(&self, pos: usize) -> Option<usize> {
        if pos > self.chars {
            return None;
        }
        if pos == self.chars {
            return Some(self.text.len());
        }
        if self.checkpoints.is_empty() {
            return Some(pos);
        }
        let base = *self.checkpoints.get(pos / CHAR_INDEX_STRIDE)?;
        let skip = pos % CHAR_INDEX_STRIDE;
        self.text[base..]
            .char_indices()
            .nth(skip)
            .map(|(b, _)| base + b)
    }

    /// The chars `start..end` of the text, or `None` when the range is reversed or outside it.
    pub fn slice(&self, start: usize, end: usize) -> Option<&'a str> {
        if start > end {
            return None;
        }
        let b0 = self.byte(start)?;
        let b1 = self.byte(end)?;
        self.text.get(b0..b1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_slice_agrees_with_the_offset_contract() {
        // The contract: `text.chars().skip(start).take(end - start)`, None outside.
        let texts = [
            "",
            "Zoë Müller, 東京 🎉 Jose\u{301} a\u{200b}b \u{5e9}\u{5dc}\u{5d5}\u{5dd} \u{627}\u{644}",
            "ascii",
        ];
        for t in texts {
            let n = t.chars().count();
            for start in 0..=n + 1 {
                for end in 0..=n + 1 {
                    let want = (start <= end && end <= n)
                        .then(|| t.chars().skip(start).take(end - start).collect::<String>());
                    assert_eq!(
                        char_slice(t, start, end).map(str::to_string),
                        want,
                        "{t:?} [{start}, {end})"
                    );
                }
            }
        }
    }

    #[test]
    fn char_index_slices_like_char_slice() {
        let texts = [
            String::new(),
            "plain ascii text".to_string(),
            "Zoë Müller visited 東京 with Syria\u{200b}n friends 🎉 and Jose\u{301}.".to_string(),
            // Longer than several strides, with multi-byte chars around the checkpoints.
            "aé東🎉".repeat(100),
        ];
        for t in &texts {
            let s = Sentence::from_words(&[t.as_str()]);
            let ix = s.char_index();
            let n = t.chars().count();
            assert_eq!(ix.len(), n);
            assert_eq!(ix.is_empty(), n == 0);
            for start in (0..=n + 1).step_by(7) {
                for end in (start.saturating_sub(2)..=n + 2).step_by(5) {
                    assert_eq!(
                        ix.slice(start, end).map(str::to_string),
                        s.char_slice(start, end),
                        "{t:?} [{start}, {end})"
                    );
                }
            }
            assert_eq!(ix.byte(n), Some(t.len()));
            assert_eq!(ix.byte(n + 1), None);
        }
    }
}
