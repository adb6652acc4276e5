//! Annotated texts on their way out: [`TextRecord`] and the [`RecordWriter`]s of every format.
//!
//! A [`TextRecord`] is one text (a document, a line of `annotate`'s input, a sentence of a
//! dataset) with its entities as char offsets, and for predictions their scores and
//! uncertainties. [`record_writer`] gives the streaming writer of a [`DataFormat`]: records go
//! out one at a time (an `annotate` stream never waits for its end), [`RecordWriter::finish`]
//! closes what the format needs closed (the `]` of a Label Studio array). Offsets are written in
//! the unit of [`WriteOptions::offsets`] (chars unless a format's convention says otherwise).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::align::{CharSpan, sentence_from_char_spans};
use super::offsets::{OffsetMap, OffsetUnit};
use super::{DataFormat, io_error};
use crate::entity::Entity;
use crate::error::{CoreError, Result};
use crate::tags::{TagScheme, spans_to_tags};
use crate::text::{Document, Sentence, Token};

/// One entity of a [`TextRecord`]: char offsets, label, and what a model said about it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordEntity {
    /// The entity (char offsets into the record's text; `score` is the label's confidence).
    pub entity: Entity,
    /// The uncertainty the estimator gave it, for predictions.
    pub uncertainty: Option<f64>,
    /// Whether the router sent it to the LLM, for predictions.
    pub routed: Option<bool>,
}

impl From<Entity> for RecordEntity {
    fn from(entity: Entity) -> Self {
        RecordEntity {
            entity,
            uncertainty: None,
            routed: None,
        }
    }
}

/// One annotated text, as the writers take it.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRecord {
    /// The text's id, when it has one (a document id, the caller's id of an input line).
    pub id: Option<String>,
    /// The original text.
    pub text: String,
    /// Its words with char offsets, when known (otherwise the writers split the text).
    pub tokens: Option<Vec<Token>>,
    /// The entities, in text order.
    pub entities: Vec<RecordEntity>,
    /// `true` for a model's predictions, `false` for gold annotations (formats that tell the two
    /// apart, like Label Studio's `predictions` and `annotations`, use it).
    pub predicted: bool,
}

impl TextRecord {
    /// The gold record of `sentence` (its spans as entities).
    pub fn gold(id: Option<String>, sentence: &Sentence) -> Result<TextRecord> {
        Ok(TextRecord {
            id,
            text: sentence.text.clone(),
            tokens: Some(sentence.tokens.clone()),
            entities: sentence
                .entities()?
                .into_iter()
                .map(RecordEntity::from)
                .collect(),
            predicted: false,
        })
    }

    /// The words and entities of the record as a [`Sentence`] (words cut at entity boundaries).
    pub fn sentence(&self) -> std::result::Result<Sentence, String> {
        let ranges: Option<Vec<(usize, usize)>> = self
            .tokens
            .as_ref()
            .map(|t| t.iter().map(|t| (t.start, t.end)).collect());
        let spans: Vec<CharSpan> = self
            .entities
            .iter()
            .map(|e| CharSpan::new(e.entity.start, e.entity.end, e.entity.label.as_str()))
            .collect();
        sentence_from_char_spans(&self.text, ranges.as_deref(), &spans)
    }
}

/// The gold records of `docs`: one per sentence, with ids `<doc id or doc index>` and, for a
/// document of several sentences, `-<sentence index>` after it.
pub fn gold_records(docs: &[Document]) -> Result<Vec<TextRecord>> {
    let mut out = Vec::new();
    for (d, doc) in docs.iter().enumerate() {
        let base = doc.id.clone().unwrap_or_else(|| format!("doc{d}"));
        for (s, sentence) in doc.sentences.iter().enumerate() {
            let id = if doc.sentences.len() == 1 {
                base.clone()
            } else {
                format!("{base}-{s}")
            };
            out.push(TextRecord::gold(Some(id), sentence)?);
        }
    }
    Ok(out)
}

/// Options of the record writers.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// The unit of written offsets; `None` is the format's convention (UTF-16 for Label Studio,
    /// whose editor counts in JavaScript string units; chars for every other format).
    pub offsets: Option<OffsetUnit>,
    /// The tag scheme of tag-per-word formats (CoNLL, Hugging Face); IOB2 by default.
    pub scheme: TagScheme,
}

impl WriteOptions {
    /// The offset unit written for `format`.
    pub fn offsets_for(&self, format: DataFormat) -> OffsetUnit {
        self.offsets.unwrap_or(match format {
            DataFormat::LabelStudio => OffsetUnit::Utf16,
            _ => OffsetUnit::Chars,
        })
    }
}

/// Writes [`TextRecord`]s of one format, one at a time.
pub trait RecordWriter: Send {
    /// Writes one record.
    fn write(&mut self, record: &TextRecord) -> Result<()>;
    /// Closes the output (writes what the format needs at its end) and flushes it.
    fn finish(&mut self) -> Result<()>;
}

/// The streaming writer of `format` on `out` (`name` is what errors show). Brat writes a
/// directory: use [`record_writer_to_path`].
pub fn record_writer(
    format: DataFormat,
    out: Box<dyn Write + Send>,
    name: impl Into<PathBuf>,
    options: &WriteOptions,
) -> Result<Box<dyn RecordWriter>> {
    let path = name.into();
    let offsets = options.offsets_for(format);
    if format == DataFormat::Brat {
        return Err(CoreError::Write {
            path,
            message: "brat writes a directory of .txt and .ann files; give a directory path".into(),
        });
    }
    if format == DataFormat::Spanner {
        return Err(CoreError::Write {
            path,
            message: "the spanner format is written from documents (ConllReader + \
                      SpannerWriter); pick jsonl, conll, hf, spacy, label-studio or doccano"
                .into(),
        });
    }
    Ok(Box::new(LineWriter {
        out,
        path,
        format,
        offsets,
        scheme: options.scheme,
        count: 0,
    }))
}

/// The writer of `format` at `path`: a file (created or truncated), or for brat a directory
/// (created when missing) that gets `<id>.txt` and `<id>.ann` per record; spaCy to a path
/// ending in `.spacy` is a DocBin (written whole at [`RecordWriter::finish`]).
pub fn record_writer_to_path(
    format: DataFormat,
    path: impl AsRef<Path>,
    options: &WriteOptions,
) -> Result<Box<dyn RecordWriter>> {
    let path = path.as_ref();
    if format == DataFormat::Brat {
        return Ok(Box::new(super::brat::BratWriter::create(path)?));
    }
    if format == DataFormat::Spacy && path.extension().is_some_and(|e| e == "spacy") {
        return Ok(Box::new(super::spacy::docbin::DocBinWriter::new(path)));
    }
    let file = File::create(path).map_err(|e| io_error(path, e))?;
    record_writer(format, Box::new(BufWriter::new(file)), path, options)
}

/// The writer of every one-file format.
struct LineWriter {
    out: Box<dyn Write + Send>,
    path: PathBuf,
    format: DataFormat,
    offsets: OffsetUnit,
    scheme: TagScheme,
    count: usize,
}

impl LineWriter {
    fn put(&mut self, s: &str) -> Result<()> {
        self.out
            .write_all(s.as_bytes())
            .map_err(|e| io_error(&self.path, e))
    }

    fn bad(&self, message: String) -> CoreError {
        CoreError::Write {
            path: self.path.clone(),
            message: format!("record {}: {message}", self.count + 1),
        }
    }

    fn words(&self, record: &TextRecord) -> Result<Sentence> {
        record.sentence().map_err(|m| self.bad(m))
    }

    fn json(&self, value: &Value) -> Result<String> {
        serde_json::to_string(value).map_err(|e| CoreError::Json {
            path: self.path.clone(),
            source: e,
        })
    }

    fn conll(&self, record: &TextRecord) -> Result<String> {
        let s = self.words(record)?;
        let tags = spans_to_tags(&s.spans, s.tokens.len(), self.scheme);
        let mut out = String::new();
        for (t, tag) in s.tokens.iter().zip(&tags) {
            if t.text.contains([' ', '\t', '\n', '\r']) {
                return Err(self.bad(format!(
                    "word {:?} holds whitespace; a CoNLL column file cannot hold it",
                    t.text
                )));
            }
            out.push_str(&t.text);
            out.push('\t');
            out.push_str(tag);
            out.push('\n');
        }
        out.push('\n');
        Ok(out)
    }
}

impl RecordWriter for LineWriter {
    fn write(&mut self, record: &TextRecord) -> Result<()> {
        let map = OffsetMap::new(&record.text, self.offsets);
        let line = match self.format {
            DataFormat::Conll => self.conll(record)?,
            DataFormat::Jsonl => {
                // Words are always written: a reader must not re-split them differently.
                let words = self.words(record)?;
                let with_words = TextRecord {
                    tokens: Some(words.tokens),
                    ..record.clone()
                };
                let mut v = super::jsonl::record_json(&with_words, &map);
                if let Some(id) = &record.id {
                    v["doc_id"] = json!(id);
                }
                v["doc"] = json!(self.count);
                self.json(&v)? + "\n"
            }
            DataFormat::Hf => {
                let s = self.words(record)?;
                self.json(&super::hf::record_json(record, &s, self.scheme))? + "\n"
            }
            DataFormat::Spacy => {
                let s = self.words(record)?;
                self.json(&super::spacy::record_json(record, &s, &map))? + "\n"
            }
            DataFormat::Doccano => self.json(&super::doccano::record_json(record, &map))? + "\n",
            DataFormat::LabelStudio => {
                let v = super::label_studio::task_json(record, self.count, &map);
                let sep = if self.count == 0 { "[\n" } else { ",\n" };
                format!("{sep}{}", self.json(&v)?)
            }
            DataFormat::Spanner | DataFormat::Brat => unreachable!("refused by record_writer"),
        };
        self.put(&line)?;
        self.count += 1;
        if self.format != DataFormat::LabelStudio {
            // Line formats are flushed per record: a stream's reader sees each as it is done.
            self.out.flush().map_err(|e| io_error(&self.path, e))?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if self.format == DataFormat::LabelStudio {
            let end = if self.count == 0 { "[]\n" } else { "\n]\n" };
            self.put(end)?;
        }
        self.out.flush().map_err(|e| io_error(&self.path, e))
    }
}

/// Writes records into a string (all but brat).
pub fn write_records_string(
    format: DataFormat,
    records: &[TextRecord],
    options: &WriteOptions,
) -> Result<String> {
    let buf = SharedBuf::default();
    let mut w = record_writer(format, Box::new(buf.clone()), "<memory>", options)?;
    for r in records {
        w.write(r)?;
    }
    w.finish()?;
    let bytes = buf.0.lock().map(|b| b.clone()).unwrap_or_default();
    String::from_utf8(bytes).map_err(|e| CoreError::Write {
        path: "<memory>".into(),
        message: e.to_string(),
    })
}

/// A `Write` into a shared buffer (the writer owns its output; the caller keeps a handle).
#[derive(Clone, Default)]
struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut b = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("buffer poisoned"))?;
        b.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
