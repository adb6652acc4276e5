//! BIO-family tags and chunking.
//!
//! [`chunks`] turns any tag sequence into entities with exactly the rules of the CoNLL `conlleval`
//! script (which Python `seqeval` copies in its default mode): IOB1, IOB2, IOE and BIOES inputs,
//! and ill-formed sequences (an orphan `I-X` opens an entity; a type change inside a chunk closes
//! one and opens another). [`chunks_strict`] follows `seqeval`'s `mode="strict"`, where only
//! well-formed chunks of the given [`TagScheme`] count.

use serde::{Deserialize, Serialize};

use crate::entity::WordSpan;

/// The tagging scheme of a file, for writing tags and for strict chunking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TagScheme {
    /// `I-X` everywhere, `B-X` only between two adjacent entities of the same type.
    Iob1,
    /// `B-X` opens every entity, `I-X` continues it.
    #[default]
    Iob2,
    /// `B-`, `I-`, `E-` (end) and `S-` (single); also read with `L-`/`U-` as BILOU.
    Bioes,
}

/// One parsed tag: its prefix (`B`, `I`, `E`, `S`, or `O`) and its entity type (empty for `O`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    /// The one-letter prefix; `'O'` for outside.
    pub prefix: char,
    /// The entity type (the text after the first `-`); empty for `O`.
    pub label: &'a str,
}

impl<'a> Tag<'a> {
    /// Parses a tag the way conlleval does: `O`, or `P-TYPE` where `P` is one of `B I E S`
    /// (`L`/`U` are read as `E`/`S`). Returns `None` for anything else.
    pub fn parse(tag: &'a str) -> Option<Tag<'a>> {
        if tag == "O" {
            return Some(Tag {
                prefix: 'O',
                label: "",
            });
        }
        let (p, label) = tag.split_once('-')?;
        if label.is_empty() {
            return None;
        }
        let prefix = match p {
            "B" => 'B',
            "I" => 'I',
            "E" | "L" => 'E',
            "S" | "U" => 'S',
            _ => return None,
        };
        Some(Tag { prefix, label })
    }
}

/// conlleval's `endOfChunk`: does a chunk end between `prev` and `cur`?
fn end_of_chunk(prev: Tag<'_>, cur: Tag<'_>) -> bool {
    let (p, t) = (prev.prefix, cur.prefix);
    matches!(
        (p, t),
        ('B', 'B') | ('B', 'S') | ('B', 'O') | ('I', 'B') | ('I', 'S') | ('I', 'O')
    ) || p == 'E'
        || p == 'S'
        || (p != 'O' && prev.label != cur.label)
}

/// conlleval's `startOfChunk`: does a chunk start at `cur`, given `prev`?
fn start_of_chunk(prev: Tag<'_>, cur: Tag<'_>) -> bool {
    let (p, t) = (prev.prefix, cur.prefix);
    t == 'B'
        || t == 'S'
        || matches!(
            (p, t),
            ('E', 'E') | ('E', 'I') | ('S', 'E') | ('S', 'I') | ('O', 'E') | ('O', 'I')
        )
        || (t != 'O' && prev.label != cur.label)
}

const OUTSIDE: Tag<'static> = Tag {
    prefix: 'O',
    label: "",
};

/// Extracts entities from a tag sequence with conlleval's rules. Tags that do not parse
/// ([`Tag::parse`] returns `None`) are read as `O`; readers reject them before this point.
pub fn chunks<S: AsRef<str>>(tags: &[S]) -> Vec<WordSpan> {
    let mut out = Vec::new();
    let mut prev = OUTSIDE;
    let mut open: Option<usize> = None;
    for (i, t) in tags.iter().enumerate() {
        let cur = Tag::parse(t.as_ref()).unwrap_or(OUTSIDE);
        if let Some(s) = open
            && end_of_chunk(prev, cur)
        {
            out.push(WordSpan::new(s, i, prev.label));
            open = None;
        }
        if start_of_chunk(prev, cur) {
            open = Some(i);
        }
        prev = cur;
    }
    if let Some(s) = open {
        out.push(WordSpan::new(s, tags.len(), prev.label));
    }
    out
}

/// Writes word spans as tags of `scheme` for a sentence of `len` words. Spans must not overlap
/// (later overlapping spans are skipped) and must lie inside `0..len`.
pub fn spans_to_tags(spans: &[WordSpan], len: usize, scheme: TagScheme) -> Vec<String> {
    let mut tags = vec!["O".to_string(); len];
    let mut sorted: Vec<&WordSpan> = spans.iter().filter(|s| s.start < s.end && s.end <= len).collect();
    sorted.sort();
    let mut last_end = 0usize;
    let mut prev: Option<&WordSpan> = None;
    for s in sorted {
        if s.start < last_end {
            continue;
        }
        for (k, tag) in tags.iter_mut().enumerate().take(s.end).skip(s.start) {
            let prefix = match scheme {
                TagScheme::Iob2 => {
                    if k == s.start {
                        "B"
                    } else {
                        "I"
                    }
                }
                TagScheme::Iob1 => {
                    let adjacent_same =
                        prev.is_some_and(|p| p.end == s.start && p.label == s.label);
                    if k == s.start && adjacent_same {
                        "B"
                    } else {
                        "I"
                    }
                }
                TagScheme::Bioes => {
                    if s.len() == 1 {
                        "S"
                    } else if k == s.start {
                        "B"
                    } else if k + 1 == s.end {
                        "E"
                    } else {
                        "I"
                    }
                }
            };
            *tag = format!("{prefix}-{}", s.label);
        }
        last_end = s.end;
        prev = Some(s);
    }
    tags
}
