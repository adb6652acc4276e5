//! JSONL: one JSON object per sentence, with char offsets.
//!
//! Each line is a [`JsonlRecord`]:
//!
//! ```json
//! {"doc":0,"text":"EU rejects German call","tokens":[{"text":"EU","start":0,"end":2},…],
//!  "entities":[{"start":0,"end":2,"text":"EU","label":"ORG","score":0.98}]}
//! ```
//!
//! Offsets are char offsets into `text` (end exclusive). `doc` (default 0) is the 0-based index
//! of the document the sentence belongs to; consecutive lines with the same `doc` form one
//! [`Document`], whose id is the optional `doc_id`. `tokens` may be left out, in which case the
//! words are the maximal runs of non-whitespace chars of `text`. `entities` must start and end
//! on word boundaries and their `text` must equal the covered chars; `score` is optional.
//! `tags` (the raw tags of a tagged source file) is optional. Unknown fields are ignored and
//! blank lines are skipped.

use std::fs::File;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::entity::{Entity, WordSpan};
use crate::error::{CoreError, Result};
use crate::schema::LabelSchema;
use crate::tags::Tag;
use crate::text::{Document, Sentence, Token};

use super::{check_label, for_each_line, io_error, open};

/// One line of a JSONL file: a sentence with its words and entities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonlRecord {
    /// 0-based index of the document the sentence belongs to.
    #[serde(default)]
    pub doc: usize,
    /// The document's id, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc_id: Option<String>,
    /// The sentence's original text.
    pub text: String,
    /// The words with char offsets into `text`; `None` means whitespace-separated words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<Token>>,
    /// The entities with char offsets into `text` (and optional scores).
    #[serde(default)]
    pub entities: Vec<Entity>,
    /// Raw tags of a tagged source file, one per word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

impl JsonlRecord {
    /// The record of `sentence` (document `doc`, id `doc_id`) with its gold spans as entities.
    pub fn from_sentence(doc: usize, doc_id: Option<String>, sentence: &Sentence) -> Result<Self> {
        Ok(JsonlRecord {
            doc,
            doc_id,
            text: sentence.text.clone(),
            tokens: Some(sentence.tokens.clone()),
            entities: sentence.entities()?,
            tags: sentence.tags.clone(),
        })
    }

    /// The record of `sentence` with the given (predicted, possibly scored) entities instead of
    /// its gold spans, and without tags.
    pub fn with_entities(doc: usize, sentence: &Sentence, entities: Vec<Entity>) -> Self {
        JsonlRecord {
            doc,
            doc_id: None,
            text: sentence.text.clone(),
            tokens: Some(sentence.tokens.clone()),
            entities,
            tags: None,
        }
    }

    /// Checks the record and turns it into a [`Sentence`] whose spans are the entities (scores
    /// are dropped). `path` and `line` are used in errors.
    pub fn to_sentence(
        &self,
        schema: Option<&LabelSchema>,
        path: &Path,
        line: usize,
    ) -> Result<Sentence> {
        let err = |message: String| CoreError::parse(path, line, message);
        // Byte offset of every char boundary, so that char ranges slice in O(1).
        let bounds: Vec<usize> = self
            .text
            .char_indices()
            .map(|(b, _)| b)
            .chain(std::iter::once(self.text.len()))
            .collect();
        let nchars = bounds.len() - 1;
        let slice = |start: usize, end: usize| &self.text[bounds[start]..bounds[end]];
        let tokens = match &self.tokens {
            Some(tokens) => {
                let mut prev_end = 0;
                for (i, t) in tokens.iter().enumerate() {
                    if t.start >= t.end || t.end > nchars || t.start < prev_end {
                        return Err(err(format!(
                            "token {i} [{}, {}) does not fit: expected non-empty, ordered, \
                             non-overlapping char ranges inside the text's {nchars} chars",
                            t.start, t.end
                        )));
                    }
                    if slice(t.start, t.end) != t.text {
                        return Err(err(format!(
                            "token {i} says {:?} but chars [{}, {}) of the text are {:?}",
                            t.text,
                            t.start,
                            t.end,
                            slice(t.start, t.end)
                        )));
                    }
                    prev_end = t.end;
                }
                tokens.clone()
            }
            None => whitespace_tokens(&self.text),
        };
        let mut spans = Vec::with_capacity(self.entities.len());
        for (i, e) in self.entities.iter().enumerate() {
            if e.start >= e.end || e.end > nchars {
                return Err(err(format!(
                    "entity {i} [{}, {}) does not fit: expected a non-empty char range inside \
                     the text's {nchars} chars",
                    e.start, e.end
                )));
            }
            if slice(e.start, e.end) != e.text {
                return Err(err(format!(
                    "entity {i} says {:?} but chars [{}, {}) of the text are {:?}",
                    e.text,
                    e.start,
                    e.end,
                    slice(e.start, e.end)
                )));
            }
            let first = tokens.binary_search_by_key(&e.start, |t| t.start);
            let last = tokens.binary_search_by_key(&e.end, |t| t.end);
            let (Ok(first), Ok(last)) = (first, last) else {
                return Err(err(format!(
                    "entity {i} {:?} [{}, {}) does not start and end on word boundaries; \
                     expected its offsets to be a word's start and a word's end",
                    e.text, e.start, e.end
                )));
            };
            if e.label.is_empty() {
                return Err(err(format!("entity {i} has an empty label")));
            }
            check_label(schema, &e.label, path, line)?;
            spans.push(WordSpan::new(first, last + 1, e.label.as_str()));
        }
        if let Some(tags) = &self.tags {
            if tags.len() != tokens.len() {
                return Err(err(format!(
                    "{} tags for {} words; expected one tag per word",
                    tags.len(),
                    tokens.len()
                )));
            }
            if let Some(t) = tags.iter().find(|t| Tag::parse(t).is_none()) {
                return Err(err(format!(
                    "bad tag `{t}`; expected `O` or a prefix `B-`, `I-`, `E-`, `S-` followed by \
                     an entity type"
                )));
            }
        }
        Ok(Sentence {
            text: self.text.clone(),
            tokens,
            spans,
            tags: self.tags.clone(),
        })
    }
}

/// Words as the maximal runs of non-whitespace chars, with char offsets.
fn whitespace_tokens(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut n = 0;
    for (i, c) in text.chars().enumerate() {
        n = i + 1;
        if c.is_whitespace() {
            if let Some((start, word)) = current.take() {
                tokens.push(Token {
                    text: word,
                    start,
                    end: i,
                });
            }
        } else {
            current.get_or_insert_with(|| (i, String::new())).1.push(c);
        }
    }
    if let Some((start, word)) = current {
        tokens.push(Token {
            text: word,
            start,
            end: n,
        });
    }
    tokens
}

/// Reads JSONL files.
#[derive(Debug, Clone, Default)]
pub struct JsonlReader {
    schema: Option<LabelSchema>,
}

impl JsonlReader {
    /// A reader that accepts any non-empty label.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes any label that `schema` does not list a [`CoreError::UnknownLabel`].
    pub fn schema(mut self, schema: Option<LabelSchema>) -> Self {
        self.schema = schema;
        self
    }

    /// Reads a file into documents.
    pub fn read_path(&self, path: impl AsRef<Path>) -> Result<Vec<Document>> {
        let path = path.as_ref();
        self.read(open(path)?, path)
    }

    /// Reads documents from any buffered reader; `name` is the file name errors show.
    pub fn read<R: BufRead>(&self, reader: R, name: impl AsRef<Path>) -> Result<Vec<Document>> {
        let path = name.as_ref();
        let mut docs: Vec<Document> = Vec::new();
        let mut current: Option<usize> = None;
        self.for_each_record(reader, path, |line, record| {
            let sentence = record.to_sentence(self.schema.as_ref(), path, line)?;
            if current != Some(record.doc) || docs.is_empty() {
                docs.push(Document {
                    id: record.doc_id.clone(),
                    sentences: Vec::new(),
                });
                current = Some(record.doc);
            }
            if let Some(doc) = docs.last_mut() {
                doc.sentences.push(sentence);
            }
            Ok(())
        })?;
        Ok(docs)
    }

    /// Reads the raw records of a file (checked as [`JsonlReader::read`] checks them), keeping
    /// entity scores.
    pub fn read_records_path(&self, path: impl AsRef<Path>) -> Result<Vec<JsonlRecord>> {
        let path = path.as_ref();
        self.read_records(open(path)?, path)
    }

    /// Reads the raw records from any buffered reader, keeping entity scores.
    pub fn read_records<R: BufRead>(
        &self,
        reader: R,
        name: impl AsRef<Path>,
    ) -> Result<Vec<JsonlRecord>> {
        let path = name.as_ref();
        let mut out = Vec::new();
        self.for_each_record(reader, path, |line, record| {
            record.to_sentence(self.schema.as_ref(), path, line)?;
            out.push(record);
            Ok(())
        })?;
        Ok(out)
    }

    fn for_each_record<R: BufRead>(
        &self,
        reader: R,
        path: &Path,
        mut f: impl FnMut(usize, JsonlRecord) -> Result<()>,
    ) -> Result<()> {
        for_each_line(reader, path, |line_no, line| {
            if line.trim().is_empty() {
                return Ok(());
            }
            let record: JsonlRecord = serde_json::from_str(line).map_err(|e| {
                let mut msg = e.to_string();
                if let Some(at) = msg.rfind(" at line ") {
                    msg.truncate(at);
                }
                CoreError::parse(
                    path,
                    line_no,
                    format!(
                        "invalid JSONL record ({msg} at column {}); expected one JSON object \
                         per line with `text`, `tokens` and `entities`",
                        e.column()
                    ),
                )
            })?;
            f(line_no, record)
        })
    }
}

/// Reads a JSONL file with the default [`JsonlReader`].
pub fn read_jsonl(path: impl AsRef<Path>) -> Result<Vec<Document>> {
    JsonlReader::new().read_path(path)
}

/// Writes JSONL files: one compact JSON object per line.
#[derive(Debug, Clone, Default)]
pub struct JsonlWriter {}

impl JsonlWriter {
    /// A writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `docs` (gold spans as entities) to `out`; `name` is the file name errors show.
    pub fn write<W: Write>(&self, out: W, docs: &[Document], name: impl AsRef<Path>) -> Result<()> {
        let path = name.as_ref();
        let mut records = Vec::new();
        for (i, doc) in docs.iter().enumerate() {
            for s in &doc.sentences {
                records.push(JsonlRecord::from_sentence(i, doc.id.clone(), s)?);
            }
        }
        self.write_records(out, &records, path)
    }

    /// Writes records to `out`; `name` is the file name errors show.
    pub fn write_records<W: Write>(
        &self,
        out: W,
        records: &[JsonlRecord],
        name: impl AsRef<Path>,
    ) -> Result<()> {
        let path = name.as_ref();
        let mut out = out;
        for record in records {
            serde_json::to_writer(&mut out, record).map_err(|e| CoreError::Json {
                path: path.to_path_buf(),
                source: e,
            })?;
            out.write_all(b"\n").map_err(|e| io_error(path, e))?;
        }
        out.flush().map_err(|e| io_error(path, e))
    }

    /// Writes `docs` to a file (created or truncated).
    pub fn write_path(&self, path: impl AsRef<Path>, docs: &[Document]) -> Result<()> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|e| io_error(path, e))?;
        self.write(BufWriter::new(file), docs, path)
    }

    /// Writes records to a file (created or truncated).
    pub fn write_records_path(
        &self,
        path: impl AsRef<Path>,
        records: &[JsonlRecord],
    ) -> Result<()> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|e| io_error(path, e))?;
        self.write_records(BufWriter::new(file), records, path)
    }
}

/// Writes `docs` as a JSONL file.
pub fn write_jsonl(path: impl AsRef<Path>, docs: &[Document]) -> Result<()> {
    JsonlWriter::new().write_path(path, docs)
}

/// The JSONL object of a [`super::TextRecord`] (offsets in `map`'s unit), with each entity's
/// `uncertainty` and `routed` when the record carries them.
pub(crate) fn record_json(record: &super::TextRecord, map: &super::OffsetMap) -> serde_json::Value {
    let entities: Vec<serde_json::Value> = record
        .entities
        .iter()
        .map(|e| {
            let mut v = serde_json::json!({
                "start": map.from_char(e.entity.start),
                "end": map.from_char(e.entity.end),
                "text": e.entity.text,
                "label": e.entity.label,
            });
            if let Some(s) = e.entity.score {
                v["score"] = serde_json::json!(s);
            }
            if let Some(u) = e.uncertainty {
                v["uncertainty"] = serde_json::json!(u);
            }
            if let Some(r) = e.routed {
                v["routed"] = serde_json::json!(r);
            }
            v
        })
        .collect();
    let mut v = serde_json::json!({ "text": record.text, "entities": entities });
    if let Some(tokens) = &record.tokens {
        v["tokens"] = serde_json::json!(
            tokens
                .iter()
                .map(|t| serde_json::json!({
                    "text": t.text,
                    "start": map.from_char(t.start),
                    "end": map.from_char(t.end),
                }))
                .collect::<Vec<_>>()
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_default_to_whitespace_runs() {
        let t = whitespace_tokens("  Zoë\u{a0}went  to 東京 ");
        let words: Vec<(&str, usize, usize)> = t
            .iter()
            .map(|t| (t.text.as_str(), t.start, t.end))
            .collect();
        assert_eq!(
            words,
            [
                ("Zoë", 2, 5),
                ("went", 6, 10),
                ("to", 12, 14),
                ("東京", 15, 17)
            ]
        );
    }

    #[test]
    fn reads_records_into_documents() {
        let text = concat!(
            r#"{"doc":0,"doc_id":"a","text":"Hi Zoë !","entities":[{"start":3,"end":6,"text":"Zoë","label":"PER","score":0.5}]}"#,
            "\n\n",
            r#"{"doc":1,"text":"ok"}"#,
            "\n",
            r#"{"doc":1,"text":"x y","tokens":[{"text":"x","start":0,"end":1},{"text":"y","start":2,"end":3}]}"#,
            "\n"
        );
        let docs = JsonlReader::new().read(text.as_bytes(), "p.jsonl").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].id.as_deref(), Some("a"));
        assert_eq!(docs[0].sentences[0].spans, vec![WordSpan::new(1, 2, "PER")]);
        assert_eq!(docs[1].sentences.len(), 2);
        let records = JsonlReader::new()
            .read_records(text.as_bytes(), "p")
            .unwrap();
        assert_eq!(records[0].entities[0].score, Some(0.5));
    }

    #[test]
    fn misaligned_entities_are_errors() {
        let bad = [
            r#"{"text":"Hi Zoë","entities":[{"start":3,"end":5,"text":"Zo","label":"PER"}]}"#,
            r#"{"text":"Hi Zoë","entities":[{"start":3,"end":6,"text":"Zoe","label":"PER"}]}"#,
            r#"{"text":"Hi Zoë","entities":[{"start":3,"end":9,"text":"Zoë","label":"PER"}]}"#,
            r#"{"text":"Hi","tokens":[{"text":"H","start":0,"end":2}]}"#,
            r#"{"text":"Hi","tags":["O","O"]}"#,
            r#"{"text":"Hi","tags":["Q"]}"#,
            r#"{"text":"Hi","entities":[{"start":0,"end":2,"text":"Hi","label":""}]}"#,
            r#"{"txt":"Hi"}"#,
        ];
        for line in bad {
            let text = format!("{{\"text\":\"fine\"}}\n{line}\n");
            let err = JsonlReader::new()
                .read(text.as_bytes(), "p.jsonl")
                .unwrap_err();
            assert!(
                matches!(&err, CoreError::Parse { line: 2, .. }),
                "{line}: {err:?}"
            );
            assert!(err.to_string().starts_with("p.jsonl:2: "), "{err}");
        }
    }
}
