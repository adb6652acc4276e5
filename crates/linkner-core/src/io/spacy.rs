//! spaCy's JSON documents: what `Doc.to_json()` gives and `Doc.from_json()` takes, one per line
//! (or a JSON array of them).
//!
//! ```json
//! {"text": "Zoë lives in 東京", "ents": [{"start": 0, "end": 3, "label": "PERSON"}],
//!  "tokens": [{"id": 0, "start": 0, "end": 3}, …]}
//! ```
//!
//! `ents` are char offsets into `text` (Python `str` indices). `tokens` are optional on input;
//! when present they are the words (whitespace tokens dropped), cut at entity boundaries
//! ([`super::align`]). Each record is a [`Document`] of one sentence; `sents` and the other
//! annotation layers (`pos`, `dep`, …) are ignored. The writer puts out `text`, `ents` and
//! `tokens` the way spaCy lays them out (whitespace other than one space after a word is a token
//! of its own), so that `Doc.from_json` rebuilds the exact text.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use super::align::{CharSpan, sentence_from_char_spans};
use super::json_records::{read_json_records, record_as};
use super::offsets::{OffsetMap, OffsetUnit};
use super::record::TextRecord;
use super::{check_label, unit_error};
use crate::error::{CoreError, Result};
use crate::schema::LabelSchema;
use crate::text::{Document, Sentence};

#[derive(Deserialize)]
struct SpacyDoc {
    text: String,
    #[serde(default)]
    ents: Vec<SpacyEnt>,
    #[serde(default)]
    tokens: Option<Vec<SpacyToken>>,
}

#[derive(Deserialize)]
struct SpacyEnt {
    start: usize,
    end: usize,
    label: String,
}

#[derive(Deserialize)]
struct SpacyToken {
    start: usize,
    end: usize,
}

/// Reads spaCy `Doc.to_json` records.
#[derive(Debug, Clone, Default)]
pub struct SpacyReader {
    schema: Option<LabelSchema>,
    offsets: OffsetUnit,
}

impl SpacyReader {
    /// A reader of char offsets that accepts any label.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes any label that `schema` does not list a [`CoreError::UnknownLabel`].
    pub fn schema(mut self, schema: Option<LabelSchema>) -> Self {
        self.schema = schema;
        self
    }

    /// The unit of the file's offsets (chars, spaCy's own, by default).
    pub fn offsets(mut self, unit: OffsetUnit) -> Self {
        self.offsets = unit;
        self
    }

    /// Reads a file: one [`Document`] per record.
    pub fn read_path(&self, path: impl AsRef<Path>) -> Result<Vec<Document>> {
        let path = path.as_ref();
        read_json_records(path)?
            .into_iter()
            .map(|(line, value)| {
                let doc: SpacyDoc = record_as(value, path, line, "spaCy JSON document")?;
                Ok(Document {
                    id: None,
                    sentences: vec![self.sentence(&doc, path, line)?],
                })
            })
            .collect()
    }

    fn sentence(&self, doc: &SpacyDoc, path: &Path, line: usize) -> Result<Sentence> {
        let map = OffsetMap::new(&doc.text, self.offsets);
        let chars: Vec<char> = doc.text.chars().collect();
        let char_of = |o: usize, what: &str| {
            map.to_char(o)
                .ok_or_else(|| unit_error(path, line, what, o, self.offsets, map.len()))
        };
        let words = match &doc.tokens {
            None => None,
            Some(tokens) => {
                let mut w = Vec::with_capacity(tokens.len());
                for (i, t) in tokens.iter().enumerate() {
                    let (s, e) = (
                        char_of(t.start, &format!("token {i}"))?,
                        char_of(t.end, &format!("token {i}"))?,
                    );
                    if s < e && chars[s..e].iter().any(|c| !c.is_whitespace()) {
                        w.push((s, e));
                    }
                }
                Some(w)
            }
        };
        let mut spans = Vec::with_capacity(doc.ents.len());
        for (i, e) in doc.ents.iter().enumerate() {
            check_label(self.schema.as_ref(), &e.label, path, line)?;
            let what = format!("entity {i}");
            spans.push(CharSpan::new(
                char_of(e.start, &what)?,
                char_of(e.end, &what)?,
                e.label.as_str(),
            ));
        }
        sentence_from_char_spans(&doc.text, words.as_deref(), &spans)
            .map_err(|m| CoreError::parse(path, line, m))
    }
}

/// The `Doc.to_json` layout of a record: `text`, `ents`, `tokens` (with spaCy's whitespace
/// tokens) in `map`'s unit.
pub(crate) fn record_json(record: &TextRecord, words: &Sentence, map: &OffsetMap) -> Value {
    let chars: Vec<char> = record.text.chars().collect();
    let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(words.tokens.len() + 2);
    let mut prev_end = 0usize;
    // spaCy gives each token a trailing whitespace of "" or " ": a gap after a word that starts
    // with a space gives that space to the word, and whatever whitespace is left (or a gap before
    // the first word) is a token of its own, so that the tokens rebuild the exact text.
    let gap = |from: usize, to: usize, after_word: bool, ranges: &mut Vec<(usize, usize)>| {
        let from = if after_word && from < to && chars[from] == ' ' {
            from + 1
        } else {
            from
        };
        if from < to {
            ranges.push((from, to));
        }
    };
    for t in &words.tokens {
        gap(prev_end, t.start, !ranges.is_empty(), &mut ranges);
        ranges.push((t.start, t.end));
        prev_end = t.end;
    }
    gap(prev_end, chars.len(), !ranges.is_empty(), &mut ranges);
    let tokens: Vec<Value> = ranges
        .iter()
        .enumerate()
        .map(|(i, &(s, e))| json!({"id": i, "start": map.from_char(s), "end": map.from_char(e)}))
        .collect();
    let ents: Vec<Value> = record
        .entities
        .iter()
        .map(|e| {
            json!({
                "start": map.from_char(e.entity.start),
                "end": map.from_char(e.entity.end),
                "label": e.entity.label,
            })
        })
        .collect();
    json!({ "text": record.text, "ents": ents, "tokens": tokens })
}
