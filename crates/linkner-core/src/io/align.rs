//! Char-offset annotations onto words: the shared step of every format that stores entities as
//! offsets into a text (spaCy, Label Studio, doccano, brat).
//!
//! A tagger labels words, so a text with char-offset entities becomes a [`Sentence`] whose words
//! are the given tokens (or [`split_words`] of the text) **cut wherever
//! an entity starts or ends inside a word**: `"Obama's"` with an entity on `Obama` gives the words
//! `Obama` and `'s`. No entity is ever dropped or moved: an entity that starts or ends on
//! whitespace is trimmed to its first and last non-whitespace char (annotators often select a
//! trailing space; the entity's words are the same), an exact duplicate (same range, same label)
//! counts once, and entities that overlap (nested or crossing: a flat tagger cannot learn them)
//! are an error naming both.

use crate::entity::WordSpan;
use crate::text::{Sentence, Token};
use crate::words::split_words;

/// An entity given by char offsets `[start, end)` into a text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CharSpan {
    /// Char offset of the first char.
    pub start: usize,
    /// Char offset one past the last char.
    pub end: usize,
    /// Entity type.
    pub label: String,
}

impl CharSpan {
    /// A span of `label` over chars `[start, end)`.
    pub fn new(start: usize, end: usize, label: impl Into<String>) -> CharSpan {
        CharSpan {
            start,
            end,
            label: label.into(),
        }
    }
}

/// Builds a sentence of `text` whose gold spans are `spans` (char offsets).
///
/// `words` are the text's words as char ranges (ordered, non-overlapping) when the file gives
/// them; `None` splits the text with [`split_words`]. Returns a message (the caller adds file and
/// line) when an entity is empty, outside the text, only whitespace, has an empty label, or
/// overlaps another.
pub fn sentence_from_char_spans(
    text: &str,
    words: Option<&[(usize, usize)]>,
    spans: &[CharSpan],
) -> Result<Sentence, String> {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let mut spans = trimmed(&chars, spans)?;
    spans.sort();
    spans.dedup();
    for pair in spans.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.start < a.end {
            let show = |s: &CharSpan| {
                format!(
                    "{} {:?} [{}, {})",
                    s.label,
                    chars[s.start..s.end].iter().collect::<String>(),
                    s.start,
                    s.end
                )
            };
            return Err(format!(
                "entities {} and {} overlap; expected flat (non-nested, non-crossing) entities",
                show(a),
                show(b)
            ));
        }
    }
    let base: Vec<(usize, usize)> = match words {
        Some(w) => {
            let mut prev = 0;
            for (i, &(s, e)) in w.iter().enumerate() {
                if s >= e || e > n || s < prev {
                    return Err(format!(
                        "token {i} [{s}, {e}) does not fit: expected non-empty, ordered, \
                         non-overlapping char ranges inside the text's {n} chars"
                    ));
                }
                prev = e;
            }
            w.to_vec()
        }
        None => split_words(text),
    };
    let mut cuts: Vec<usize> = spans.iter().flat_map(|s| [s.start, s.end]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut ranges = Vec::with_capacity(base.len() + cuts.len());
    for (s, e) in base {
        let mut from = s;
        let first = cuts.partition_point(|&c| c <= s);
        for &c in cuts[first..].iter().take_while(|&&c| c < e) {
            ranges.push((from, c));
            from = c;
        }
        ranges.push((from, e));
    }
    // An entity over chars that no word covers (the given tokens skip them) gets words of its
    // own: every non-whitespace char of the text that no word covers becomes part of one.
    let ranges = cover_entities(&chars, ranges, &spans);
    let tokens: Vec<Token> = ranges
        .iter()
        .map(|&(s, e)| Token {
            text: chars[s..e].iter().collect(),
            start: s,
            end: e,
        })
        .collect();
    let mut out = Vec::with_capacity(spans.len());
    for s in &spans {
        let first = tokens.partition_point(|t| t.end <= s.start);
        let last = tokens.partition_point(|t| t.start < s.end);
        if first >= last {
            return Err(format!(
                "entity {} [{}, {}) covers no word of the text",
                s.label, s.start, s.end
            ));
        }
        out.push(WordSpan::new(first, last, s.label.as_str()));
    }
    Ok(Sentence {
        text: text.to_string(),
        tokens,
        spans: out,
        tags: None,
    })
}

/// Checks the spans and trims whitespace off their ends.
fn trimmed(chars: &[char], spans: &[CharSpan]) -> Result<Vec<CharSpan>, String> {
    let n = chars.len();
    let mut out = Vec::with_capacity(spans.len());
    for (i, s) in spans.iter().enumerate() {
        if s.start >= s.end || s.end > n {
            return Err(format!(
                "entity {i} [{}, {}) does not fit: expected a non-empty char range inside the \
                 text's {n} chars",
                s.start, s.end
            ));
        }
        if s.label.trim().is_empty() {
            return Err(format!(
                "entity {i} [{}, {}) has an empty label",
                s.start, s.end
            ));
        }
        let (mut a, mut b) = (s.start, s.end);
        while a < b && chars[a].is_whitespace() {
            a += 1;
        }
        while b > a && chars[b - 1].is_whitespace() {
            b -= 1;
        }
        if a == b {
            return Err(format!(
                "entity {i} {} [{}, {}) covers only whitespace",
                s.label, s.start, s.end
            ));
        }
        out.push(CharSpan::new(a, b, s.label.trim()));
    }
    Ok(out)
}

/// Adds words for the chars of an entity that no word covers (runs of non-whitespace).
fn cover_entities(
    chars: &[char],
    ranges: Vec<(usize, usize)>,
    spans: &[CharSpan],
) -> Vec<(usize, usize)> {
    let mut covered = vec![false; chars.len()];
    for &(s, e) in &ranges {
        covered[s..e].iter_mut().for_each(|c| *c = true);
    }
    let mut extra = Vec::new();
    for span in spans {
        let mut i = span.start;
        while i < span.end {
            if covered[i] || chars[i].is_whitespace() {
                i += 1;
                continue;
            }
            let start = i;
            while i < span.end && !covered[i] && !chars[i].is_whitespace() {
                i += 1;
            }
            extra.push((start, i));
        }
    }
    if extra.is_empty() {
        return ranges;
    }
    let mut all = ranges;
    all.extend(extra);
    all.sort_unstable();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &Sentence) -> Vec<&str> {
        s.words()
    }

    #[test]
    fn words_are_cut_at_entity_boundaries() {
        let s =
            sentence_from_char_spans("Obama's visit", None, &[CharSpan::new(0, 5, "PER")]).unwrap();
        assert_eq!(words(&s), ["Obama", "'s", "visit"]);
        assert_eq!(s.spans, [WordSpan::new(0, 1, "PER")]);
        let s =
            sentence_from_char_spans("NewYorkTimes", None, &[CharSpan::new(3, 7, "LOC")]).unwrap();
        assert_eq!(words(&s), ["New", "York", "Times"]);
        assert_eq!(s.entities().unwrap()[0].text, "York");
    }

    #[test]
    fn whitespace_is_trimmed_duplicates_merge_overlaps_fail() {
        let text = "in  Zoë Müller 🎉 today";
        let s = sentence_from_char_spans(
            text,
            None,
            &[CharSpan::new(3, 15, "PER"), CharSpan::new(4, 14, "PER")],
        )
        .unwrap();
        let e = s.entities().unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].start, e[0].end, e[0].text.as_str()),
            (4, 14, "Zoë Müller")
        );
        let err = sentence_from_char_spans(
            text,
            None,
            &[CharSpan::new(4, 14, "PER"), CharSpan::new(8, 16, "LOC")],
        )
        .unwrap_err();
        assert!(
            err.contains("overlap") && err.contains("\"Müller 🎉\""),
            "{err}"
        );
        assert!(sentence_from_char_spans(text, None, &[CharSpan::new(2, 4, "X")]).is_err());
        assert!(sentence_from_char_spans(text, None, &[CharSpan::new(5, 99, "X")]).is_err());
        assert!(sentence_from_char_spans(text, None, &[CharSpan::new(4, 7, " ")]).is_err());
    }

    #[test]
    fn given_tokens_are_kept_and_gaps_under_entities_filled() {
        // Tokens skip "東京" (e.g. a tool that only tokenised ASCII).
        let text = "to 東京 now";
        let s =
            sentence_from_char_spans(text, Some(&[(0, 2), (6, 9)]), &[CharSpan::new(3, 5, "LOC")])
                .unwrap();
        assert_eq!(words(&s), ["to", "東京", "now"]);
        assert_eq!(s.spans, [WordSpan::new(1, 2, "LOC")]);
        assert!(sentence_from_char_spans(text, Some(&[(2, 1)]), &[]).is_err());
    }
}
