//! Offset units: how a file counts positions in a text.
//!
//! linkner's own offsets are always **chars** (Unicode scalar values, what Python's `str`
//! indexes and Rust's `str::chars` yields). Tools written in JavaScript (Label Studio's editor,
//! browser front ends) count **UTF-16 code units**, where every char outside the Basic
//! Multilingual Plane (most emoji, rare CJK) counts 2. [`OffsetMap`] converts between the two for
//! one text; readers use it on input (`offsets` option) and writers on output.
//!
//! ```
//! use linkner_core::io::{OffsetMap, OffsetUnit};
//!
//! let text = "🎉 Zoë";
//! let map = OffsetMap::new(text, OffsetUnit::Utf16);
//! assert_eq!(map.from_char(2), 3); // "Z" is char 2, UTF-16 unit 3
//! assert_eq!(map.to_char(3), Some(2));
//! assert_eq!(map.to_char(1), None); // inside the emoji's surrogate pair
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// The unit a file's offsets count in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetUnit {
    /// Unicode scalar values (Python `str` indices; linkner's own unit).
    #[default]
    Chars,
    /// UTF-16 code units (JavaScript string indices; Label Studio's editor).
    Utf16,
}

impl OffsetUnit {
    /// Names accepted by [`OffsetUnit::from_str`].
    pub const NAMES: &'static [&'static str] = &["chars", "utf16"];

    /// The unit's name.
    pub fn name(self) -> &'static str {
        match self {
            OffsetUnit::Chars => "chars",
            OffsetUnit::Utf16 => "utf16",
        }
    }
}

impl fmt::Display for OffsetUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OffsetUnit {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "chars" | "char" | "codepoints" => Ok(OffsetUnit::Chars),
            "utf16" => Ok(OffsetUnit::Utf16),
            _ => Err(CoreError::UnknownName {
                kind: "offset unit",
                name: s.to_string(),
                expected: Self::NAMES.join(", "),
            }),
        }
    }
}

/// Converts offsets of one text between chars and a file's [`OffsetUnit`].
#[derive(Debug, Clone)]
pub struct OffsetMap {
    /// For UTF-16: the unit offset of every char boundary (`nchars + 1` values). Empty for chars.
    units: Vec<usize>,
    /// Number of chars of the text.
    nchars: usize,
}

impl OffsetMap {
    /// The map of `text` for offsets counted in `unit`.
    pub fn new(text: &str, unit: OffsetUnit) -> OffsetMap {
        let nchars = text.chars().count();
        let units = match unit {
            OffsetUnit::Chars => Vec::new(),
            OffsetUnit::Utf16 => {
                let mut units = Vec::with_capacity(nchars + 1);
                let mut pos = 0;
                units.push(0);
                for c in text.chars() {
                    pos += c.len_utf16();
                    units.push(pos);
                }
                units
            }
        };
        OffsetMap { units, nchars }
    }

    /// The text's length in the file's unit.
    pub fn len(&self) -> usize {
        self.units.last().copied().unwrap_or(self.nchars)
    }

    /// True for an empty text.
    pub fn is_empty(&self) -> bool {
        self.nchars == 0
    }

    /// The char offset of a file offset, or `None` when it is past the end or falls inside a
    /// char (between the two halves of a UTF-16 surrogate pair).
    pub fn to_char(&self, offset: usize) -> Option<usize> {
        if self.units.is_empty() {
            return (offset <= self.nchars).then_some(offset);
        }
        self.units.binary_search(&offset).ok()
    }

    /// The file offset of a char offset (clamped to the text's end).
    pub fn from_char(&self, offset: usize) -> usize {
        let offset = offset.min(self.nchars);
        if self.units.is_empty() {
            offset
        } else {
            self.units[offset]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_counts_astral_chars_twice() {
        // e + combining acute, CJK, emoji (astral), Hebrew, zero-width joiner.
        let text = "e\u{301}東🎉א\u{200d}x";
        let m = OffsetMap::new(text, OffsetUnit::Utf16);
        let units: usize = text.encode_utf16().count();
        assert_eq!(m.len(), units);
        let chars: Vec<char> = text.chars().collect();
        for c in 0..=chars.len() {
            let u = m.from_char(c);
            let prefix: String = chars[..c].iter().collect();
            assert_eq!(u, prefix.encode_utf16().count());
            assert_eq!(m.to_char(u), Some(c));
        }
        // Inside the emoji's surrogate pair: chars e, ◌́, 東 are 3 units, 🎉 starts at 3.
        assert_eq!(m.to_char(4), None);
        assert_eq!(m.to_char(units + 1), None);
    }

    #[test]
    fn chars_are_the_identity() {
        let m = OffsetMap::new("🎉a", OffsetUnit::Chars);
        assert_eq!((m.len(), m.to_char(1), m.from_char(2)), (2, Some(1), 2));
        assert_eq!(m.to_char(3), None);
    }

    #[test]
    fn names_parse() {
        for n in OffsetUnit::NAMES {
            assert_eq!(n.parse::<OffsetUnit>().unwrap().name(), *n);
        }
        assert_eq!("UTF-16".parse::<OffsetUnit>().unwrap(), OffsetUnit::Utf16);
        assert!("bytes".parse::<OffsetUnit>().is_err());
    }
}
