//! Splitting raw text into words with exact char offsets.
//!
//! The rules follow CoNLL-style tokenisation closely enough for a tagger trained on CoNLL data,
//! and never lose or alter a character:
//!
//! - text is walked by extended grapheme clusters, so combining marks, emoji ZWJ sequences,
//!   skin-tone modifiers and flag pairs stay with their base character;
//! - whitespace and control characters separate words; invisible format characters (zero-width
//!   space / joiners, word joiner, soft hyphen, BOM) separate words too, except between two
//!   letters or digits where they stay inside the word — so they never form a word of their own;
//! - letters and digits form words; every CJK ideograph or kana is a word of its own;
//! - punctuation and symbols (emoji included) are split off as one-cluster words, except
//!   word-internal hyphens and ampersands (`Jean-Pierre`, `AT&T`), decimal and thousands
//!   separators (`3.5`, `1,000`), dotted abbreviations (`U.S.`) and apostrophes inside names
//!   (`O'Neill`); English clitics are split as in CoNLL (`Germany 's`, `don 't`).
//!
//! Offsets are char offsets (Unicode scalar values) into the original string, end exclusive.

use crate::text::Sentence;
use unicode_segmentation::UnicodeSegmentation;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Only separators (whitespace, control, invisible format characters).
    Sep,
    /// Letters or digits.
    Word,
    /// A CJK ideograph or kana: always a word of its own.
    Cjk,
    /// Punctuation, symbol, emoji, or anything else.
    Punct,
}

#[derive(Debug, Clone)]
struct Unit {
    start: usize,
    end: usize,
    class: Class,
    base: char,
    /// Invisible format characters only (a `Sep` that may join two word parts).
    invisible: bool,
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'
            | '\u{200C}'
            | '\u{200D}'
            | '\u{2060}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{180E}'
            | '\u{FE00}'..='\u{FE0F}'
    )
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || c.is_control() || is_invisible(c)
}

fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}'     // hiragana, katakana
        | '\u{3400}'..='\u{4DBF}'   // CJK extension A
        | '\u{4E00}'..='\u{9FFF}'   // CJK unified ideographs
        | '\u{F900}'..='\u{FAFF}'   // compatibility ideographs
        | '\u{20000}'..='\u{2FA1F}' // extensions B.., compatibility supplement
    )
}

fn units(text: &str) -> Vec<Unit> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    for g in text.graphemes(true) {
        let n = g.chars().count();
        let lead = g.chars().take_while(|c| is_separator(*c)).count();
        if lead == n {
            out.push(Unit {
                start: pos,
                end: pos + n,
                class: Class::Sep,
                base: g.chars().next().unwrap_or(' '),
                invisible: g.chars().all(is_invisible),
            });
        } else {
            if lead > 0 {
                let sep: String = g.chars().take(lead).collect();
                out.push(Unit {
                    start: pos,
                    end: pos + lead,
                    class: Class::Sep,
                    base: sep.chars().next().unwrap_or(' '),
                    invisible: sep.chars().all(is_invisible),
                });
            }
            let base = g.chars().nth(lead).unwrap_or(' ');
            let class = if is_cjk(base) {
                Class::Cjk
            } else if base.is_alphanumeric() {
                Class::Word
            } else {
                Class::Punct
            };
            out.push(Unit {
                start: pos + lead,
                end: pos + n,
                class,
                base,
                invisible: false,
            });
        }
        pos += n;
    }
    out
}

const CLITICS: &[&str] = &["s", "t", "re", "ve", "ll", "d", "m"];

/// Splits `text` into words; returns their char ranges `(start, end)`, in order, non-empty and
/// non-overlapping. Every character that is not a separator belongs to exactly one word.
pub fn split_words(text: &str) -> Vec<(usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let us = units(text);
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut cur: Option<(usize, usize)> = None;
    let flush = |cur: &mut Option<(usize, usize)>, words: &mut Vec<(usize, usize)>| {
        if let Some(w) = cur.take() {
            words.push(w);
        }
    };
    // The next unit, if it touches `end`.
    let adjacent = |i: usize, end: usize| us.get(i + 1).filter(|u| u.start == end);
    for (i, u) in us.iter().enumerate() {
        let attached = cur.filter(|c| c.1 == u.start);
        let prev = attached.map(|c| chars[c.1 - 1]);
        let next = adjacent(i, u.end);
        let next_is_word = next.is_some_and(|n| n.class == Class::Word);
        match u.class {
            Class::Sep => {
                let joins = u.invisible
                    && prev.is_some_and(char::is_alphanumeric)
                    && next_is_word
                    && attached.is_some();
                if joins {
                    cur = Some((attached.map_or(u.start, |c| c.0), u.end));
                } else {
                    flush(&mut cur, &mut words);
                }
            }
            Class::Cjk => {
                flush(&mut cur, &mut words);
                words.push((u.start, u.end));
            }
            Class::Word => match attached {
                Some(c) => cur = Some((c.0, u.end)),
                None => {
                    flush(&mut cur, &mut words);
                    cur = Some((u.start, u.end));
                }
            },
            Class::Punct => {
                let c = u.base;
                let single = u.end - u.start == 1;
                let next_base = next.map(|n| n.base);
                let prev_alnum = prev.is_some_and(char::is_alphanumeric);
                let join = single
                    && match c {
                        '-' | '\u{2010}' | '&' => prev_alnum && next_is_word,
                        ',' => {
                            prev.is_some_and(|p| p.is_ascii_digit())
                                && next_base.is_some_and(|n| n.is_ascii_digit())
                        }
                        '.' => {
                            let decimal = prev.is_some_and(|p| p.is_ascii_digit())
                                && next_base.is_some_and(|n| n.is_ascii_digit());
                            decimal || attached.is_some_and(|w| is_abbreviation(&chars, w, &us, i))
                        }
                        '\'' | '\u{2019}' => {
                            prev.is_some_and(char::is_alphabetic)
                                && next_is_word
                                && !is_clitic(&chars, &us, i)
                        }
                        _ => false,
                    };
                if join {
                    cur = Some((attached.map_or(u.start, |w| w.0), u.end));
                } else if matches!(c, '\'' | '\u{2019}')
                    && single
                    && prev.is_some_and(char::is_alphabetic)
                    && is_clitic(&chars, &us, i)
                {
                    // `Germany's` -> `Germany` `'s`: the apostrophe starts the clitic word.
                    flush(&mut cur, &mut words);
                    cur = Some((u.start, u.end));
                } else {
                    flush(&mut cur, &mut words);
                    words.push((u.start, u.end));
                }
            }
        }
    }
    flush(&mut cur, &mut words);
    words
}

/// The letters/digits of consecutive adjacent word units after unit `i`, and the index of the
/// first unit after them.
fn following_word(chars: &[char], us: &[Unit], i: usize) -> (String, usize) {
    let mut s = String::new();
    let mut j = i + 1;
    let mut end = us.get(i).map_or(0, |u| u.end);
    while let Some(u) = us.get(j) {
        if u.start != end || u.class != Class::Word {
            break;
        }
        s.extend(&chars[u.start..u.end]);
        end = u.end;
        j += 1;
    }
    (s, j)
}

fn is_clitic(chars: &[char], us: &[Unit], i: usize) -> bool {
    let (w, _) = following_word(chars, us, i);
    CLITICS.contains(&w.to_lowercase().as_str())
}

/// True when the word `w` so far is a dotted abbreviation in progress (`U`, `U.S`) and the
/// period at unit `i` belongs to it.
fn is_abbreviation(chars: &[char], w: (usize, usize), us: &[Unit], i: usize) -> bool {
    let cw = &chars[w.0..w.1];
    let alternating = cw.len() % 2 == 1
        && cw.iter().enumerate().all(|(k, c)| {
            if k % 2 == 0 {
                c.is_alphabetic()
            } else {
                *c == '.'
            }
        });
    if !alternating {
        return false;
    }
    if cw.contains(&'.') {
        return true;
    }
    // `U` `.` `S` `.`: a single letter follows, then another period.
    let (next, j) = following_word(chars, us, i);
    next.chars().count() == 1
        && next.chars().all(char::is_alphabetic)
        && us
            .get(j)
            .is_some_and(|u| u.base == '.' && us.get(j - 1).is_some_and(|p| p.end == u.start))
}

/// Builds a [`Sentence`] from raw text: its words with char offsets into `text`.
pub fn sentence_from_text(text: &str) -> Sentence {
    let ranges = split_words(text);
    let chars: Vec<char> = text.chars().collect();
    let tokens = ranges
        .iter()
        .map(|&(s, e)| crate::text::Token {
            text: chars[s..e].iter().collect(),
            start: s,
            end: e,
        })
        .collect();
    Sentence {
        text: text.to_string(),
        tokens,
        spans: Vec::new(),
        tags: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        split_words(text)
            .into_iter()
            .map(|(s, e)| chars[s..e].iter().collect())
            .collect()
    }

    #[test]
    fn conll_style_english() {
        assert_eq!(
            words("EU rejects German call to boycott British lamb."),
            [
                "EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."
            ]
        );
        assert_eq!(
            words("Germany's U.S. deal (worth $3.5 bn, 1,000 jobs) - Jean-Pierre O'Neill of AT&T."),
            [
                "Germany",
                "'s",
                "U.S.",
                "deal",
                "(",
                "worth",
                "$",
                "3.5",
                "bn",
                ",",
                "1,000",
                "jobs",
                ")",
                "-",
                "Jean-Pierre",
                "O'Neill",
                "of",
                "AT&T",
                "."
            ]
        );
        assert_eq!(words("don't \"quote\""), ["don", "'t", "\"", "quote", "\""]);
    }

    #[test]
    fn unicode_text() {
        // Decomposed accent stays with its base; precomposed is a letter.
        assert_eq!(words("Jose\u{301} Müller"), ["Jose\u{301}", "Müller"]);
        // One word per CJK char.
        assert_eq!(words("東京に行く"), ["東", "京", "に", "行", "く"]);
        // Emoji ZWJ sequence and flag are one word each; split from letters.
        assert_eq!(
            words("hi👨\u{200D}👩\u{200D}👧 🇫🇷!"),
            ["hi", "👨\u{200D}👩\u{200D}👧", "🇫🇷", "!"]
        );
        // Zero-width chars never form words; inside a word they stay.
        assert_eq!(words("a\u{200B} \u{200B}b"), ["a", "b"]);
        assert_eq!(words("\u{FEFF}Paris\u{200B}"), ["Paris"]);
        assert_eq!(words("co\u{00AD}operate"), ["co\u{00AD}operate"]);
        // An orphan combining mark after a space is kept as a word of its own.
        assert_eq!(words("a \u{301}b"), ["a", "\u{301}", "b"]);
    }

    #[test]
    fn empty_and_blank() {
        assert!(split_words("").is_empty());
        assert!(split_words(" \t\n\u{200B}\u{FEFF}").is_empty());
    }
}
