//! BIO-family tags and chunking.
//!
//! [`chunks`] turns any tag sequence into entities with exactly the rules of Python `seqeval`'s
//! default mode (`get_entities`, a port of the CoNLL `conlleval` script extended with `S-`
//! singletons): IOB1, IOB2, IOE and BIOES inputs, and ill-formed sequences (an orphan `I-X` opens
//! an entity; a type change inside a chunk closes one and opens another). [`chunks_strict`]
//! follows `seqeval`'s `mode="strict"` (`seqeval.scheme.Tokens`), where only well-formed chunks of
//! the given [`TagScheme`] count and a tag the scheme does not allow is an error.
//!
//! ```
//! use linkner_core::tags::{chunks, chunks_strict};
//! use linkner_core::{TagScheme, WordSpan};
//!
//! // An orphan `I-` opens an entity in the default (conlleval) mode …
//! let tags = ["O", "I-PER", "I-PER", "B-LOC"];
//! assert_eq!(
//!     chunks(&tags),
//!     vec![WordSpan::new(1, 3, "PER"), WordSpan::new(3, 4, "LOC")]
//! );
//! // … but not in strict IOB2 mode.
//! assert_eq!(
//!     chunks_strict(&tags, TagScheme::Iob2).unwrap(),
//!     vec![WordSpan::new(3, 4, "LOC")]
//! );
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::entity::WordSpan;
use crate::error::{CoreError, Result};

/// The tagging scheme of a file, for writing tags and for strict chunking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TagScheme {
    /// `I-X` everywhere, `B-X` only between two adjacent entities of the same type.
    Iob1,
    /// `B-X` opens every entity, `I-X` continues it.
    #[default]
    Iob2,
    /// `B-`, `I-`, `E-` (end) and `S-` (single). BILOU's `L-`/`U-` are not accepted (seqeval's
    /// default chunking would read them as unknown prefixes): convert them to `E-`/`S-` first.
    Bioes,
}

impl TagScheme {
    /// Every scheme, in declaration order.
    pub const ALL: [TagScheme; 3] = [TagScheme::Iob1, TagScheme::Iob2, TagScheme::Bioes];

    /// The lowercase name (`iob1`, `iob2`, `bioes`), as serde and [`FromStr`] spell it.
    pub fn name(self) -> &'static str {
        match self {
            TagScheme::Iob1 => "iob1",
            TagScheme::Iob2 => "iob2",
            TagScheme::Bioes => "bioes",
        }
    }
}

impl fmt::Display for TagScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TagScheme {
    type Err = CoreError;

    /// Accepts `iob1`, `iob2` (or `bio`), `bioes` (or `iobes`), in any case.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "iob1" => Ok(TagScheme::Iob1),
            "iob2" | "bio" => Ok(TagScheme::Iob2),
            "bioes" | "iobes" => Ok(TagScheme::Bioes),
            _ => Err(CoreError::UnknownName {
                kind: "tag scheme",
                name: s.to_string(),
                expected: "iob1, iob2, bioes (alias iobes)".into(),
            }),
        }
    }
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
    /// Parses a well-formed tag: `O`, or `P-TYPE` where `P` is one of `B I E S` (BILOU's `L`/`U`
    /// are rejected: seqeval's chunking does not read them as `E`/`S`). Returns `None` for anything else. Readers use it to validate files; the
    /// chunkers read tags their own (seqeval-exact) way.
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
            "E" => 'E',
            "S" => 'S',
            _ => return None,
        };
        Some(Tag { prefix, label })
    }
}

// ---------------------------------------------------------------------------------------------
// Default (conlleval) mode: a line-by-line port of seqeval's `get_entities`.
// ---------------------------------------------------------------------------------------------

/// A tag as `seqeval.metrics.sequence_labeling.get_entities` reads it: the prefix is the first
/// char, the type is what follows the first `-` after it (or the whole rest when there is no
/// `-`), and an empty type is `_`. An empty tag is read as `O`.
fn loose(tag: &str) -> (char, &str) {
    let mut chars = tag.chars();
    let Some(prefix) = chars.next() else {
        return ('O', "_");
    };
    let rest = chars.as_str();
    let ty = match rest.split_once('-') {
        Some((_, after)) => after,
        None => rest,
    };
    (prefix, if ty.is_empty() { "_" } else { ty })
}

/// seqeval's / conlleval's `end_of_chunk`: does a chunk end between the previous and the current
/// word?
fn end_of_chunk(prev_tag: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(prev_tag, 'E' | 'S')
        || matches!(
            (prev_tag, tag),
            ('B', 'B') | ('B', 'S') | ('B', 'O') | ('I', 'B') | ('I', 'S') | ('I', 'O')
        )
        || (prev_tag != 'O' && prev_tag != '.' && prev_type != ty)
}

/// seqeval's / conlleval's `start_of_chunk`: does a chunk start at the current word?
fn start_of_chunk(prev_tag: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || matches!(
            (prev_tag, tag),
            ('E', 'E') | ('E', 'I') | ('S', 'E') | ('S', 'I') | ('O', 'E') | ('O', 'I')
        )
        || (tag != 'O' && tag != '.' && prev_type != ty)
}

/// Extracts the entities of one sentence with the rules of `seqeval`'s default mode (its
/// `get_entities`, which follows conlleval).
///
/// Exactly what seqeval computes for the sentence, in the same order, including its reading of
/// ill-formed input: an orphan `I-X` (or `E-X`) opens an entity, a type change closes the open
/// entity and opens a new one, `B-X` after `E-X`/`S-X` closes and opens. Tags are not validated:
/// the prefix is the first char and the type what follows the first `-` (so BILOU's `L-`/`U-` are
/// *not* read as `E-`/`S-`, as in seqeval and conlleval; an unknown prefix continues the open
/// chunk of the same type). A sentence is chunked on its own, closed by an implicit `O`, which is
/// how seqeval joins sentences; seqeval could carry a chunk of *untyped* tags (`X` with no `-`)
/// over a sentence boundary, this function never does.
pub fn chunks<S: AsRef<str>>(tags: &[S]) -> Vec<WordSpan> {
    let mut out = Vec::new();
    let (mut prev_tag, mut prev_type) = ('O', "");
    let mut begin = 0usize;
    let closing = std::iter::once("O");
    for (i, raw) in tags.iter().map(AsRef::as_ref).chain(closing).enumerate() {
        let (tag, ty) = loose(raw);
        if end_of_chunk(prev_tag, tag, prev_type, ty) {
            out.push(WordSpan::new(begin, i, prev_type));
        }
        if start_of_chunk(prev_tag, tag, prev_type, ty) {
            begin = i;
        }
        prev_tag = tag;
        prev_type = ty;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Strict mode: a port of `seqeval.scheme.Tokens` with the IOB1, IOB2 and IOBES token classes.
// ---------------------------------------------------------------------------------------------

/// A tag as `seqeval.scheme.Token` reads it: the prefix is the first char, the type is the rest
/// with leading and trailing `-` stripped, `_` when empty.
#[derive(Debug, Clone, Copy)]
struct StrictToken<'a> {
    prefix: char,
    ty: &'a str,
}

const STRICT_OUTSIDE: StrictToken<'static> = StrictToken {
    prefix: 'O',
    ty: "_",
};

/// A `(previous prefix, current prefix, type condition)` pattern of seqeval's scheme classes.
/// Prefix sets are strings of prefix letters; `*` is any prefix.
type Pattern = (&'static str, &'static str, TypeCond);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeCond {
    Same,
    Diff,
    Any,
}

/// The transition patterns of one scheme (seqeval's `start_patterns`, `inside_patterns`,
/// `end_patterns`) and its allowed prefixes.
struct SchemeRules {
    allowed: &'static str,
    expected: &'static str,
    start: &'static [Pattern],
    inside: &'static [Pattern],
    end: &'static [Pattern],
}

const IOB1_RULES: SchemeRules = SchemeRules {
    allowed: "IOB",
    expected: "O, I-<type> or B-<type>",
    start: &[
        ("O", "I", TypeCond::Any),
        ("I", "I", TypeCond::Diff),
        ("B", "I", TypeCond::Any),
        ("I", "B", TypeCond::Same),
        ("B", "B", TypeCond::Same),
    ],
    inside: &[("B", "I", TypeCond::Same), ("I", "I", TypeCond::Same)],
    end: &[
        ("I", "I", TypeCond::Diff),
        ("I", "O", TypeCond::Any),
        ("I", "B", TypeCond::Any),
        ("B", "O", TypeCond::Any),
        ("B", "I", TypeCond::Diff),
        ("B", "B", TypeCond::Same),
    ],
};

const IOB2_RULES: SchemeRules = SchemeRules {
    allowed: "IOB",
    expected: "O, B-<type> or I-<type>",
    start: &[("*", "B", TypeCond::Any)],
    inside: &[("B", "I", TypeCond::Same), ("I", "I", TypeCond::Same)],
    end: &[
        ("I", "O", TypeCond::Any),
        ("I", "I", TypeCond::Diff),
        ("I", "B", TypeCond::Any),
        ("B", "O", TypeCond::Any),
        ("B", "I", TypeCond::Diff),
        ("B", "B", TypeCond::Any),
    ],
};

const IOBES_RULES: SchemeRules = SchemeRules {
    allowed: "IOBES",
    expected: "O, B-<type>, I-<type>, E-<type> or S-<type>",
    start: &[("*", "B", TypeCond::Any), ("*", "S", TypeCond::Any)],
    inside: &[
        ("B", "I", TypeCond::Same),
        ("B", "E", TypeCond::Same),
        ("I", "I", TypeCond::Same),
        ("I", "E", TypeCond::Same),
    ],
    end: &[("S", "*", TypeCond::Any), ("E", "*", TypeCond::Any)],
};

impl SchemeRules {
    fn of(scheme: TagScheme) -> &'static SchemeRules {
        match scheme {
            TagScheme::Iob1 => &IOB1_RULES,
            TagScheme::Iob2 => &IOB2_RULES,
            TagScheme::Bioes => &IOBES_RULES,
        }
    }

    /// seqeval's `Token.check_patterns`.
    fn matches(patterns: &[Pattern], prev: StrictToken<'_>, cur: StrictToken<'_>) -> bool {
        let has = |set: &str, p: char| set == "*" || set.contains(p);
        patterns.iter().any(|&(pp, cp, cond)| {
            has(pp, prev.prefix)
                && has(cp, cur.prefix)
                && match cond {
                    TypeCond::Any => true,
                    TypeCond::Same => prev.ty == cur.ty,
                    TypeCond::Diff => prev.ty != cur.ty,
                }
        })
    }
}

/// Extracts the entities of one sentence with `seqeval`'s `mode="strict"` rules for `scheme`
/// (`seqeval.scheme.IOB1`, `IOB2` or `IOBES`): an entity counts only when it starts, continues
/// and ends the way the scheme prescribes (in IOB2 an orphan `I-X` is no entity, `B-X I-Y` is
/// `B-X` alone, …).
///
/// Errors with [`CoreError::InvalidTag`] (context `word N`, 1-based) on a tag whose prefix the
/// scheme does not allow — e.g. `E-X` or `S-X` under IOB2, or an empty tag — where seqeval raises.
pub fn chunks_strict<S: AsRef<str>>(tags: &[S], scheme: TagScheme) -> Result<Vec<WordSpan>> {
    let rules = SchemeRules::of(scheme);
    let mut ext = Vec::with_capacity(tags.len() + 1);
    for (i, raw) in tags.iter().map(AsRef::as_ref).enumerate() {
        let mut chars = raw.chars();
        let prefix = chars.next().filter(|p| rules.allowed.contains(*p));
        let Some(prefix) = prefix else {
            return Err(CoreError::InvalidTag {
                context: format!("word {}", i + 1),
                tag: raw.to_string(),
                scheme: scheme.name().to_string(),
                expected: rules.expected.to_string(),
            });
        };
        let ty = chars.as_str().trim_matches('-');
        ext.push(StrictToken {
            prefix,
            ty: if ty.is_empty() { "_" } else { ty },
        });
    }
    ext.push(STRICT_OUTSIDE);
    // `seqeval.scheme.Tokens.entities`, with `_forward` and `_is_end` inlined. The last element
    // of `ext` is `O`, which is never inside a chunk, so the inner scan always stops on it.
    let last = ext.len() - 1;
    let mut out = Vec::new();
    let mut i = 0usize;
    let mut prev = STRICT_OUTSIDE;
    // Stopping before the final `O` changes nothing: `O` never starts a chunk.
    while i < last {
        let token = ext[i];
        if SchemeRules::matches(rules.start, prev, token) {
            let mut end = i + 1;
            let mut inner = token;
            while end < last && SchemeRules::matches(rules.inside, inner, ext[end]) {
                inner = ext[end];
                end += 1;
            }
            if SchemeRules::matches(rules.end, ext[end - 1], ext[end]) {
                out.push(WordSpan::new(i, end, token.ty));
            }
            i = end;
        } else {
            i += 1;
        }
        prev = ext[i - 1];
    }
    Ok(out)
}

/// Writes word spans as tags of `scheme` for a sentence of `len` words. Spans must not overlap
/// (later overlapping spans are skipped) and must lie inside `0..len`.
pub fn spans_to_tags(spans: &[WordSpan], len: usize, scheme: TagScheme) -> Vec<String> {
    let mut tags = vec!["O".to_string(); len];
    let mut sorted: Vec<&WordSpan> = spans
        .iter()
        .filter(|s| s.start < s.end && s.end <= len)
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(v: &[(usize, usize, &str)]) -> Vec<WordSpan> {
        v.iter().map(|&(s, e, l)| WordSpan::new(s, e, l)).collect()
    }

    #[test]
    fn default_mode_reads_ill_formed_sequences_like_conlleval() {
        // seqeval docstring example.
        let t = ["B-PER", "I-PER", "O", "B-LOC"];
        assert_eq!(chunks(&t), spans(&[(0, 2, "PER"), (3, 4, "LOC")]));
        // Orphan I- opens; a type change inside a chunk closes and opens.
        let t = ["I-PER", "I-LOC", "I-LOC", "O", "I-ORG"];
        assert_eq!(
            chunks(&t),
            spans(&[(0, 1, "PER"), (1, 3, "LOC"), (4, 5, "ORG")])
        );
        // IOB1 (B- only between adjacent same-type entities) and BIOES.
        let t = ["I-PER", "B-PER", "I-PER", "O"];
        assert_eq!(chunks(&t), spans(&[(0, 1, "PER"), (1, 3, "PER")]));
        let t = ["S-PER", "B-LOC", "E-LOC", "E-LOC", "I-LOC"];
        assert_eq!(
            chunks(&t),
            spans(&[(0, 1, "PER"), (1, 3, "LOC"), (3, 4, "LOC"), (4, 5, "LOC")])
        );
        // Types containing '-' keep it.
        let t = ["B-creative-work", "I-creative-work"];
        assert_eq!(chunks(&t), spans(&[(0, 2, "creative-work")]));
        assert!(chunks::<&str>(&[]).is_empty());
    }

    #[test]
    fn strict_mode_keeps_only_well_formed_chunks() {
        let t = ["I-PER", "B-LOC", "I-LOC", "I-ORG", "B-PER", "B-PER"];
        assert_eq!(
            chunks_strict(&t, TagScheme::Iob2).unwrap(),
            spans(&[(1, 3, "LOC"), (4, 5, "PER"), (5, 6, "PER")])
        );
        let t = [
            "B-PER", "I-PER", "E-PER", "S-LOC", "B-ORG", "I-ORG", "O", "I-X", "E-X",
        ];
        assert_eq!(
            chunks_strict(&t, TagScheme::Bioes).unwrap(),
            spans(&[(0, 3, "PER"), (3, 4, "LOC")])
        );
        let t = ["I-PER", "I-PER", "B-PER", "O", "B-LOC"];
        assert_eq!(
            chunks_strict(&t, TagScheme::Iob1).unwrap(),
            spans(&[(0, 2, "PER"), (2, 3, "PER")])
        );
    }

    #[test]
    fn strict_mode_rejects_tags_outside_the_scheme() {
        let err = chunks_strict(&["O", "S-PER"], TagScheme::Iob2).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("word 2") && msg.contains("S-PER"), "{msg}");
        assert!(chunks_strict(&["U-PER"], TagScheme::Bioes).is_err());
        // Readers reject BILOU prefixes instead of reading them differently from the chunker.
        assert!(Tag::parse("L-PER").is_none());
        assert!(Tag::parse("U-PER").is_none());
        assert_eq!(Tag::parse("E-PER").map(|t| t.prefix), Some('E'));
        assert!(chunks_strict(&[""], TagScheme::Iob2).is_err());
    }

    #[test]
    fn schemes_round_trip_through_their_names() {
        for s in TagScheme::ALL {
            assert_eq!(s.name().parse::<TagScheme>().unwrap(), s);
        }
        assert_eq!("IOBES".parse::<TagScheme>().unwrap(), TagScheme::Bioes);
        assert!("bilou".parse::<TagScheme>().is_err());
    }

    #[test]
    fn written_tags_chunk_back_to_the_spans() {
        let s = spans(&[(0, 2, "PER"), (2, 3, "PER"), (4, 7, "LOC")]);
        for scheme in TagScheme::ALL {
            let tags = spans_to_tags(&s, 8, scheme);
            assert_eq!(chunks(&tags), s, "{scheme}: {tags:?}");
            assert_eq!(
                chunks_strict(&tags, scheme).unwrap(),
                s,
                "{scheme}: {tags:?}"
            );
        }
    }
}
