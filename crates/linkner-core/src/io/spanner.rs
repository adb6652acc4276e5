//! The LinkNER "spanner" JSON format.
//!
//! A file is one JSON array of records
//! `{"context": "tok tok ...", "span_posLabel": {"s;e": "LAB", ...}}`: `context` is the
//! sentence's words joined by single ASCII spaces, and each key `s;e` names the entity of words
//! `s..=e` (0-based, **inclusive** end). Records whose context is `-DOCSTART-` separate
//! documents and are not sentences. Other fields of a record are ignored.
//!
//! Errors name the file, the line where the offending record (or span key) starts, and the
//! record's 0-based index in the JSON array (which counts `-DOCSTART-` records).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::entity::WordSpan;
use crate::error::{CoreError, Result};
use crate::schema::LabelSchema;
use crate::text::{Document, Sentence};

use super::conll::DOCSTART;
use super::{check_label, decode_all, io_error, open};

/// One record as stored in the file.
#[derive(Debug, Deserialize)]
struct RawRecord {
    context: String,
    #[serde(rename = "span_posLabel", default)]
    spans: BTreeMap<String, String>,
}

/// One record as written.
#[derive(Debug, Serialize)]
struct OutRecord<'a> {
    context: String,
    #[serde(rename = "span_posLabel")]
    spans: BTreeMap<String, &'a str>,
}

/// The layout of a record, shown when the file is not a JSON array of records.
const RECORD_LAYOUT: &str = r#"{"context": "tok tok ...", "span_posLabel": {"s;e": "LABEL"}}"#;

/// Parses the file's top-level JSON array of records.
fn parse_records(text: &str, path: &Path) -> Result<Vec<RawRecord>> {
    serde_json::from_str(text).map_err(|e| {
        CoreError::parse(
            path,
            e.line(),
            format!("invalid spanner JSON ({e}); expected an array of records {RECORD_LAYOUT}"),
        )
    })
}

/// Reads LinkNER spanner JSON files.
#[derive(Debug, Clone, Default)]
pub struct SpannerReader {
    schema: Option<LabelSchema>,
}

impl SpannerReader {
    /// A reader that accepts any non-empty label.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes any label that `schema` does not list a [`CoreError::UnknownLabel`].
    pub fn schema(mut self, schema: Option<LabelSchema>) -> Self {
        self.schema = schema;
        self
    }

    /// Reads a file.
    pub fn read_path(&self, path: impl AsRef<Path>) -> Result<Vec<Document>> {
        let path = path.as_ref();
        self.read(open(path)?, path)
    }

    /// Reads from any reader; `name` is the file name errors show.
    pub fn read<R: Read>(&self, reader: R, name: impl AsRef<Path>) -> Result<Vec<Document>> {
        let path = name.as_ref();
        let mut reader = reader;
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(path, e))?;
        self.read_bytes(&bytes, path)
    }

    /// Reads an in-memory file; `name` is the file name errors show.
    pub fn read_bytes(&self, bytes: &[u8], name: impl AsRef<Path>) -> Result<Vec<Document>> {
        let path = name.as_ref();
        let text = decode_all(bytes, path)?;
        let records = parse_records(text, path)?;
        self.documents(records, text, path)
    }

    /// Groups the records into documents (a `-DOCSTART-` record closes the open one) and turns
    /// every other record into a checked sentence; `text` is the file, for error lines.
    fn documents(&self, records: Vec<RawRecord>, text: &str, path: &Path) -> Result<Vec<Document>> {
        let mut docs = Vec::new();
        let mut doc = Document::default();
        for (index, record) in records.into_iter().enumerate() {
            if record.context == DOCSTART {
                if !doc.sentences.is_empty() {
                    docs.push(std::mem::take(&mut doc));
                }
                continue;
            }
            let sentence = self
                .sentence(&record)
                .map_err(|e| e.into_error(path, text, index, self.schema.as_ref()))?;
            doc.sentences.push(sentence);
        }
        if !doc.sentences.is_empty() {
            docs.push(doc);
        }
        Ok(docs)
    }

    fn sentence(&self, record: &RawRecord) -> std::result::Result<Sentence, RecordError> {
        let words: Vec<&str> = record.context.split(' ').collect();
        if words.iter().any(|w| w.is_empty()) {
            return Err(RecordError::new(
                None,
                format!(
                    "context {:?} has an empty word (a leading, trailing or double space); \
                     expected words joined by single ASCII spaces",
                    record.context
                ),
            ));
        }
        let n = words.len();
        let mut sentence = Sentence::from_words(&words);
        for (key, label) in &record.spans {
            let Some((s, e)) = key
                .split_once(';')
                .and_then(|(s, e)| Some((s.parse::<usize>().ok()?, e.parse::<usize>().ok()?)))
            else {
                return Err(RecordError::new(
                    Some(key),
                    format!(
                        "bad span key `{key}`; expected `start;end` with 0-based inclusive word \
                         indices"
                    ),
                ));
            };
            if s > e || e >= n {
                return Err(RecordError::new(
                    Some(key),
                    format!(
                        "span `{key}` does not fit the sentence's {n} words; expected \
                         start <= end < {n}"
                    ),
                ));
            }
            if label.is_empty() {
                return Err(RecordError::new(
                    Some(key),
                    format!("span `{key}` has an empty label; expected an entity type"),
                ));
            }
            if let Some(schema) = &self.schema
                && !matches!(schema.class_of(label), Some(c) if c > 0)
            {
                return Err(RecordError {
                    key: Some(key.clone()),
                    kind: RecordErrorKind::UnknownLabel(label.clone()),
                });
            }
            sentence.spans.push(WordSpan::new(s, e + 1, label.as_str()));
        }
        sentence.spans.sort();
        Ok(sentence)
    }
}

/// What went wrong in one record, before the file position is known.
struct RecordError {
    /// The span key at fault, if any (used to find the line).
    key: Option<String>,
    kind: RecordErrorKind,
}

enum RecordErrorKind {
    Message(String),
    UnknownLabel(String),
}

impl RecordError {
    fn new(key: Option<&String>, message: String) -> Self {
        RecordError {
            key: key.cloned(),
            kind: RecordErrorKind::Message(message),
        }
    }

    fn into_error(
        self,
        path: &Path,
        text: &str,
        index: usize,
        schema: Option<&LabelSchema>,
    ) -> CoreError {
        let line = record_line(text, index, self.key.as_deref());
        match self.kind {
            RecordErrorKind::Message(m) => {
                CoreError::parse(path, line, format!("record {index}: {m}"))
            }
            RecordErrorKind::UnknownLabel(label) => match check_label(schema, &label, path, line) {
                Err(e) => e,
                Ok(()) => CoreError::parse(
                    path,
                    line,
                    format!("record {index}: label `{label}` is not an entity type"),
                ),
            },
        }
    }
}

/// The 1-based line where element `index` of the top-level JSON array starts, or where `"key"`
/// appears inside it when given. Only called on the error path.
fn record_line(text: &str, index: usize, key: Option<&str>) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut expect_value = false;
    let mut count = 0usize;
    let mut start = None;
    let mut end = bytes.len();
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        if depth == 1 && expect_value && !b.is_ascii_whitespace() && b != b',' && b != b']' {
            expect_value = false;
            if count == index {
                start = Some(i);
            } else if count == index + 1 {
                end = i;
                break;
            }
            count += 1;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth == 1 {
                    expect_value = true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => expect_value = true,
            _ => {}
        }
    }
    let Some(start) = start else {
        return 1 + bytes.iter().filter(|&&b| b == b'\n').count();
    };
    let at = key
        .and_then(|k| text[start..end].find(&format!("\"{k}\"")))
        .map_or(start, |off| start + off);
    1 + bytes[..at].iter().filter(|&&b| b == b'\n').count()
}

/// Reads a spanner file with the default [`SpannerReader`].
pub fn read_spanner(path: impl AsRef<Path>) -> Result<Vec<Document>> {
    SpannerReader::new().read_path(path)
}

/// Writes LinkNER spanner JSON: a pretty-printed array (indent 2, keys of `span_posLabel` in
/// string order, as LinkNER's own files are), with a `-DOCSTART-` record before each document
/// unless turned off. Words are joined by single spaces, so a word that is empty or contains an
/// ASCII space gives a [`CoreError::Write`].
#[derive(Debug, Clone)]
pub struct SpannerWriter {
    docstart: bool,
}

impl Default for SpannerWriter {
    fn default() -> Self {
        SpannerWriter { docstart: true }
    }
}

impl SpannerWriter {
    /// A writer with `-DOCSTART-` records.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes a `-DOCSTART-` record before every document when `on` (default).
    pub fn docstart(mut self, on: bool) -> Self {
        self.docstart = on;
        self
    }

    /// Writes `docs` to `out`; `name` is the file name errors show.
    pub fn write<W: Write>(&self, out: W, docs: &[Document], name: impl AsRef<Path>) -> Result<()> {
        let path = name.as_ref();
        let mut records = Vec::new();
        for doc in docs {
            if self.docstart {
                records.push(OutRecord {
                    context: DOCSTART.to_string(),
                    spans: BTreeMap::new(),
                });
            }
            for sentence in &doc.sentences {
                records.push(out_record(sentence, path)?);
            }
        }
        let mut out = out;
        serde_json::to_writer_pretty(&mut out, &records).map_err(|e| CoreError::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        out.flush().map_err(|e| io_error(path, e))
    }

    /// Writes `docs` to a file (created or truncated).
    pub fn write_path(&self, path: impl AsRef<Path>, docs: &[Document]) -> Result<()> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|e| io_error(path, e))?;
        self.write(BufWriter::new(file), docs, path)
    }
}

fn out_record<'a>(sentence: &'a Sentence, path: &Path) -> Result<OutRecord<'a>> {
    let n = sentence.tokens.len();
    let unwritable = |message: String| CoreError::Write {
        path: path.to_path_buf(),
        message,
    };
    if let Some(t) = sentence
        .tokens
        .iter()
        .find(|t| t.text.is_empty() || t.text.contains(' '))
    {
        return Err(unwritable(format!(
            "word {:?} of sentence {:?}: expected a non-empty word without ASCII spaces",
            t.text, sentence.text
        )));
    }
    if n == 0 {
        return Err(unwritable(
            "a sentence without words cannot be a spanner record".into(),
        ));
    }
    let mut spans = BTreeMap::new();
    for s in &sentence.spans {
        if s.start >= s.end || s.end > n || s.label.is_empty() {
            return Err(unwritable(format!(
                "span [{}, {}) `{}` does not fit a sentence of {n} words",
                s.start, s.end, s.label
            )));
        }
        spans.insert(format!("{};{}", s.start, s.end - 1), s.label.as_str());
    }
    Ok(OutRecord {
        context: sentence.words().join(" "),
        spans,
    })
}

/// Writes `docs` as a spanner JSON file with `-DOCSTART-` records.
pub fn write_spanner(path: impl AsRef<Path>, docs: &[Document]) -> Result<()> {
    SpannerWriter::new().write_path(path, docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"[
  {
    "context": "-DOCSTART-",
    "span_posLabel": {}
  },
  {
    "context": "EU rejects German call",
    "span_posLabel": {
      "2;2": "MISC",
      "0;0": "ORG"
    }
  },
  {
    "context": "-DOCSTART-",
    "span_posLabel": {}
  },
  {
    "context": "Peter Blackburn",
    "span_posLabel": {
      "0;1": "PER"
    }
  }
]"#;

    #[test]
    fn reads_documents_and_inclusive_spans() {
        let docs = SpannerReader::new()
            .read_bytes(FILE.as_bytes(), "f")
            .unwrap();
        assert_eq!(docs.len(), 2);
        let s = &docs[0].sentences[0];
        assert_eq!(s.text, "EU rejects German call");
        assert_eq!(
            s.spans,
            vec![WordSpan::new(0, 1, "ORG"), WordSpan::new(2, 3, "MISC")]
        );
        assert_eq!(docs[1].sentences[0].spans, vec![WordSpan::new(0, 2, "PER")]);
    }

    #[test]
    fn errors_point_at_the_record_line() {
        let bad = FILE.replace("\"0;1\"", "\"0;2\"");
        let err = SpannerReader::new()
            .read_bytes(bad.as_bytes(), "f")
            .unwrap_err();
        match &err {
            CoreError::Parse { line, message, .. } => {
                assert_eq!(*line, 20, "{err}");
                assert!(message.starts_with("record 3:"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let bad = FILE.replace("\"MISC\"", "\"MISCELLANEOUS\"");
        let err = SpannerReader::new()
            .schema(Some(LabelSchema::conll03()))
            .read_bytes(bad.as_bytes(), "f")
            .unwrap_err();
        assert!(
            matches!(&err, CoreError::UnknownLabel { line: 9, label, .. } if label == "MISCELLANEOUS"),
            "{err:?}"
        );
    }

    #[test]
    fn record_line_skips_strings_with_brackets() {
        let text = "[\n{\"a\": \"[,{\"},\n\n {\"b\": 1}]";
        assert_eq!(record_line(text, 0, None), 2);
        assert_eq!(record_line(text, 1, Some("b")), 4);
        assert_eq!(record_line(text, 7, None), 4);
    }

    #[test]
    fn writer_reproduces_the_layout() {
        let docs = SpannerReader::new()
            .read_bytes(FILE.as_bytes(), "f")
            .unwrap();
        let mut out = Vec::new();
        SpannerWriter::new().write(&mut out, &docs, "o").unwrap();
        let expected = FILE.replace(
            "      \"2;2\": \"MISC\",\n      \"0;0\": \"ORG\"",
            "      \"0;0\": \"ORG\",\n      \"2;2\": \"MISC\"",
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}
