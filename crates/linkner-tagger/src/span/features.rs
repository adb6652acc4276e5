//! Span enumeration and word-shape features.
//!
//! An uncased encoder (all-MiniLM-L6-v2 lowercases its input) cannot see capitalisation, the
//! strongest surface cue of English named entities; the shape features give it back to the span
//! classifier.

use linkner_core::WordSpan;

/// Number of shape features per word.
pub const WORD_SHAPE_FEATURES: usize = 9;
/// Number of shape features per span: first word, last word, and "every word capitalised".
pub const SPAN_SHAPE_FEATURES: usize = 2 * WORD_SHAPE_FEATURES + 1;

/// Shape features of a word: `[first letter upper, all letters upper, all letters lower,
/// has digit, all digits, no letter or digit, upper after the first char (mixed case),
/// inner punctuation, sentence-initial]`, each 0 or 1.
pub fn word_shape(word: &str, sentence_initial: bool) -> [f32; WORD_SHAPE_FEATURES] {
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    let letters: Vec<char> = word.chars().filter(|c| c.is_alphabetic()).collect();
    let first_upper = word
        .chars()
        .find(|c| c.is_alphanumeric())
        .is_some_and(char::is_uppercase);
    let all_upper = !letters.is_empty() && letters.iter().all(|c| !c.is_lowercase());
    let all_lower = !letters.is_empty() && letters.iter().all(|c| !c.is_uppercase());
    let has_digit = word.chars().any(|c| c.is_numeric());
    let all_digit = word
        .chars()
        .all(|c| c.is_numeric() || matches!(c, ',' | '.' | '-' | '/'))
        && has_digit;
    let no_alnum = !word.chars().any(char::is_alphanumeric);
    let mixed = !all_upper && word.chars().skip(1).any(char::is_uppercase);
    let n = word.chars().count();
    let inner_punct = word
        .chars()
        .enumerate()
        .any(|(i, c)| i > 0 && i + 1 < n && !c.is_alphanumeric());
    [
        b(first_upper),
        b(all_upper),
        b(all_lower),
        b(has_digit),
        b(all_digit),
        b(no_alnum),
        b(mixed),
        b(inner_punct),
        b(sentence_initial),
    ]
}

/// Shape features of a span `start..end` of `shapes` (one entry per word).
pub fn span_shape(
    shapes: &[[f32; WORD_SHAPE_FEATURES]],
    start: usize,
    end: usize,
) -> [f32; SPAN_SHAPE_FEATURES] {
    let mut out = [0.0; SPAN_SHAPE_FEATURES];
    out[..WORD_SHAPE_FEATURES].copy_from_slice(&shapes[start]);
    out[WORD_SHAPE_FEATURES..2 * WORD_SHAPE_FEATURES].copy_from_slice(&shapes[end - 1]);
    let all_cap = shapes[start..end].iter().all(|s| s[0] > 0.5 || s[5] > 0.5);
    out[2 * WORD_SHAPE_FEATURES] = if all_cap { 1.0 } else { 0.0 };
    out
}

/// All spans `(start, end)` of a sentence of `n` words with `start` in `core` and at most
/// `max_width` words, ending at or before `limit`; in order of start, then end.
pub fn enumerate_spans(
    core: std::ops::Range<usize>,
    limit: usize,
    max_width: usize,
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for s in core {
        for e in s + 1..=(s + max_width).min(limit) {
            out.push((s, e));
        }
    }
    out
}

/// Gold entities that no enumerated span can reach because they are wider than `max_width`.
pub fn out_of_reach(spans: &[WordSpan], max_width: usize) -> usize {
    spans.iter().filter(|s| s.len() > max_width).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let s = word_shape("Paris", false);
        assert_eq!(s[0], 1.0);
        assert_eq!(s[1], 0.0);
        assert_eq!(word_shape("NATO", false)[1], 1.0);
        assert_eq!(word_shape("house", true)[2], 1.0);
        assert_eq!(word_shape("house", true)[8], 1.0);
        assert_eq!(word_shape("1,000", false)[4], 1.0);
        assert_eq!(word_shape(".", false)[5], 1.0);
        assert_eq!(word_shape("McDonald", false)[6], 1.0);
        assert_eq!(word_shape("U.S.", false)[7], 1.0);
    }

    #[test]
    fn enumerates_and_counts_reach() {
        assert_eq!(
            enumerate_spans(0..3, 3, 2),
            vec![(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]
        );
        let spans = vec![WordSpan::new(0, 6, "ORG"), WordSpan::new(0, 5, "ORG")];
        assert_eq!(out_of_reach(&spans, 5), 1);
    }
}
