//! Dataset readers and writers.
//!
//! - [`conll`]: CoNLL column files (word first, tag last; 2, 4 or more columns separated by
//!   ASCII spaces or TABs; `-DOCSTART-` lines; IOB1, IOB2 and BIOES tags) — [`ConllReader`],
//!   [`ConllWriter`].
//! - [`spanner`]: the LinkNER "spanner" JSON format
//!   (`[{"context": "tok tok ...", "span_posLabel": {"s;e": "LAB"}}]`) — [`SpannerReader`],
//!   [`SpannerWriter`].
//! - [`jsonl`]: one JSON object per sentence with char offsets (text, tokens, entities with
//!   optional scores) — [`JsonlReader`], [`JsonlWriter`]; the format predictions are written in.
//! - [`hf`]: Hugging Face `datasets` token classification (`tokens` + `ner_tags`, integer tags
//!   named by the dataset's features), JSON lines or Parquet — [`HfReader`].
//! - [`spacy`]: spaCy's `Doc.to_json` documents — [`SpacyReader`].
//! - [`label_studio`]: Label Studio tasks (annotations in, predictions out; UTF-16 offsets) —
//!   [`LabelStudioReader`].
//! - [`doccano`]: doccano's sequence-labeling JSONL — [`DoccanoReader`].
//! - [`brat`]: brat standoff `.txt` + `.ann` folders — [`BratReader`], [`BratWriter`].
//!
//! Every format is written through [`record_writer`] ([`TextRecord`]s, streamed; offsets in the
//! unit of [`WriteOptions::offsets`], see [`offsets`]); every format is read through
//! [`read_dataset_with`] and its [`ReadOptions`]. The formats that store entities as char
//! offsets into a text cut words where an entity starts or ends inside one ([`align`]).
//!
//! Every reader returns [`Document`]s whose [`Sentence`]s carry char offsets (see the crate docs)
//! and gold entities as word spans. Readers take any [`BufRead`] plus a display name used in
//! errors, or a path. Malformed input gives a typed [`CoreError`] naming the file, the 1-based
//! line and what was expected; no input makes a reader panic.
//!
//! ```
//! use linkner_core::io::{ConllReader, ConllWriter};
//! use linkner_core::{LabelSchema, TagScheme};
//!
//! let text = "-DOCSTART- O\n\nEU B-ORG\nrejects O\nGerman B-MISC\ncall O\n";
//! let docs = ConllReader::new()
//!     .schema(Some(LabelSchema::conll03()))
//!     .read(text.as_bytes(), "<example>")?;
//! let s = &docs[0].sentences[0];
//! assert_eq!(s.text, "EU rejects German call");
//! assert_eq!(s.entities()?[1].text, "German");
//! let bioes = ConllWriter::new().scheme(TagScheme::Bioes).write_string(&docs)?;
//! assert!(bioes.contains("EU\tS-ORG\n"));
//! # Ok::<(), linkner_core::CoreError>(())
//! ```

pub mod align;
pub mod brat;
pub mod conll;
pub mod doccano;
pub mod hf;
mod json_records;
pub mod jsonl;
pub mod label_studio;
pub mod offsets;
mod parquet;
pub mod record;
pub mod spacy;
mod spacy_symbols;
pub mod spanner;

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use align::{CharSpan, sentence_from_char_spans};
pub use brat::{BratReader, BratWriter};
pub use conll::{ConllReader, ConllWriter, Separator, read_conll, write_conll};
pub use doccano::DoccanoReader;
pub use hf::HfReader;
pub use jsonl::{JsonlReader, JsonlRecord, JsonlWriter, read_jsonl, write_jsonl};
pub use label_studio::LabelStudioReader;
pub use offsets::{OffsetMap, OffsetUnit};
pub use record::{
    RecordEntity, RecordWriter, TextRecord, WriteOptions, gold_records, record_writer,
    record_writer_to_path, write_records_string,
};
pub use spacy::SpacyReader;
pub use spanner::{SpannerReader, SpannerWriter, read_spanner, write_spanner};

use crate::error::{CoreError, Result};
use crate::schema::LabelSchema;
use crate::text::{Document, Sentence};

/// The dataset formats linkner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// CoNLL column file ([`conll`]).
    Conll,
    /// LinkNER "spanner" JSON ([`spanner`]).
    Spanner,
    /// One JSON object per sentence ([`jsonl`]).
    Jsonl,
    /// Hugging Face `datasets` token classification ([`hf`]).
    Hf,
    /// spaCy `Doc.to_json` documents ([`spacy`]).
    Spacy,
    /// Label Studio tasks ([`label_studio`]).
    #[serde(rename = "label-studio")]
    LabelStudio,
    /// doccano sequence-labeling JSONL ([`doccano`]).
    Doccano,
    /// brat standoff folders ([`brat`]).
    Brat,
}

impl DataFormat {
    /// Names accepted by [`DataFormat::from_str`].
    pub const NAMES: &'static [&'static str] = &[
        "conll",
        "spanner",
        "jsonl",
        "hf",
        "spacy",
        "label-studio",
        "doccano",
        "brat",
    ];

    /// Every format, in the order of [`DataFormat::NAMES`].
    pub const ALL: &'static [DataFormat] = &[
        DataFormat::Conll,
        DataFormat::Spanner,
        DataFormat::Jsonl,
        DataFormat::Hf,
        DataFormat::Spacy,
        DataFormat::LabelStudio,
        DataFormat::Doccano,
        DataFormat::Brat,
    ];

    /// The format's name (`conll`, `spanner`, `jsonl`, `hf`, `spacy`, `label-studio`,
    /// `doccano`, `brat`).
    pub fn name(self) -> &'static str {
        match self {
            DataFormat::Conll => "conll",
            DataFormat::Spanner => "spanner",
            DataFormat::Jsonl => "jsonl",
            DataFormat::Hf => "hf",
            DataFormat::Spacy => "spacy",
            DataFormat::LabelStudio => "label-studio",
            DataFormat::Doccano => "doccano",
            DataFormat::Brat => "brat",
        }
    }

    /// Guesses the format of a path: a folder or an `.ann` file is brat, a file that starts with
    /// `PAR1` is Parquet (Hugging Face), a `.spacy` file or a zlib stream a spaCy DocBin; otherwise the first record's keys tell JSON formats
    /// apart ([`DataFormat::sniff_json`]), and without them the first non-whitespace byte: `[`
    /// is spanner JSON, `{` is JSONL, anything else (or an empty file) is CoNLL.
    pub fn detect(path: impl AsRef<Path>) -> Result<DataFormat> {
        let path = path.as_ref();
        if path.is_dir() || path.extension().is_some_and(|e| e == "ann") {
            return Ok(DataFormat::Brat);
        }
        if parquet::is_parquet(path)? {
            return Ok(DataFormat::Hf);
        }
        if spacy::is_docbin(path)? {
            return Ok(DataFormat::Spacy);
        }
        let mut head = Vec::new();
        open(path)?
            .take(64 * 1024)
            .read_to_end(&mut head)
            .map_err(|e| io_error(path, e))?;
        if let Some(f) = Self::sniff_json(&String::from_utf8_lossy(&head)) {
            return Ok(f);
        }
        let mut reader = open(path)?;
        let mut buf = [0u8; 4096];
        loop {
            let n = reader.read(&mut buf).map_err(|e| io_error(path, e))?;
            if n == 0 {
                return Ok(DataFormat::Conll);
            }
            if let Some(&b) = buf[..n]
                .iter()
                .find(|b| !b.is_ascii_whitespace() && !matches!(b, 0xEF | 0xBB | 0xBF))
            {
                return Ok(match b {
                    b'[' => DataFormat::Spanner,
                    b'{' => DataFormat::Jsonl,
                    _ => DataFormat::Conll,
                });
            }
        }
    }
}

impl DataFormat {
    /// The JSON format whose keys the start of a file shows, if any: `"context"` spanner,
    /// `"data"` with `"annotations"` or `"predictions"` Label Studio, `"ents"` spaCy,
    /// `"start_offset"` or `"label": [[` doccano, `"tokens"` with `"ner_tags"` (or `"tags"`, …)
    /// and no `"entities"` Hugging Face.
    pub fn sniff_json(head: &str) -> Option<DataFormat> {
        let t = head.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
        if !t.starts_with(['[', '{']) {
            return None;
        }
        let first = match t.find('\n') {
            Some(n) if t.starts_with('{') => &t[..n],
            _ => t,
        };
        let has = |k: &str| first.contains(&format!("\"{k}\""));
        let compact: String = first.chars().filter(|c| !c.is_whitespace()).collect();
        if has("context") && has("span_posLabel") {
            Some(DataFormat::Spanner)
        } else if has("data") && (has("annotations") || has("predictions")) {
            Some(DataFormat::LabelStudio)
        } else if has("ents") && has("text") {
            Some(DataFormat::Spacy)
        } else if has("start_offset") || compact.contains("\"label\":[[") {
            Some(DataFormat::Doccano)
        } else if TAG_FIELDS_OF_HF.iter().any(|k| has(k))
            && (has("tokens") || has("words"))
            && !has("entities")
        {
            Some(DataFormat::Hf)
        } else {
            None
        }
    }
}

const TAG_FIELDS_OF_HF: &[&str] = hf::TAG_FIELDS;

impl fmt::Display for DataFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DataFormat {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "conll" | "conll03" | "bio" | "txt" => Ok(DataFormat::Conll),
            "spanner" | "json" => Ok(DataFormat::Spanner),
            "jsonl" | "ndjson" => Ok(DataFormat::Jsonl),
            "hf" | "huggingface" | "hugging-face" | "datasets" | "parquet" => Ok(DataFormat::Hf),
            "spacy" => Ok(DataFormat::Spacy),
            "label-studio" | "labelstudio" | "label_studio" => Ok(DataFormat::LabelStudio),
            "doccano" => Ok(DataFormat::Doccano),
            "brat" | "standoff" => Ok(DataFormat::Brat),
            _ => Err(CoreError::UnknownName {
                kind: "data format",
                name: s.to_string(),
                expected: Self::NAMES.join(", "),
            }),
        }
    }
}

/// Options of [`read_dataset_with`] beyond the format: what each reader may need.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Labels must be this schema's types.
    pub schema: Option<LabelSchema>,
    /// The unit of the file's offsets (formats that store offsets); `None` is the format's
    /// convention (UTF-16 for Label Studio, chars for the others).
    pub offsets: Option<OffsetUnit>,
    /// CoNLL: the 1-based column of the word (first by default).
    pub word_column: Option<usize>,
    /// CoNLL: the 1-based column of the tag (last by default).
    pub tag_column: Option<usize>,
    /// Hugging Face: the names of integer tags, overriding the dataset's metadata.
    pub label_names: Option<Vec<String>>,
}

impl ReadOptions {
    /// Options that only check labels against `schema`.
    pub fn with_schema(schema: Option<LabelSchema>) -> Self {
        ReadOptions {
            schema,
            ..Default::default()
        }
    }
}

/// Reads a dataset file of `format` (guessed with [`DataFormat::detect`] when `None`) with the
/// default options of its reader, checking labels against `schema` when one is given.
pub fn read_dataset(
    path: impl AsRef<Path>,
    format: Option<DataFormat>,
    schema: Option<LabelSchema>,
) -> Result<Vec<Document>> {
    read_dataset_with(path, format, &ReadOptions::with_schema(schema))
}

/// Reads a dataset file (or brat folder) of `format` (guessed when `None`) with `options`.
pub fn read_dataset_with(
    path: impl AsRef<Path>,
    format: Option<DataFormat>,
    options: &ReadOptions,
) -> Result<Vec<Document>> {
    let path = path.as_ref();
    let format = match format {
        Some(f) => f,
        None => DataFormat::detect(path)?,
    };
    let schema = options.schema.clone();
    let unit = |default| options.offsets.unwrap_or(default);
    match format {
        DataFormat::Conll => ConllReader::new()
            .schema(schema)
            .columns(options.word_column, options.tag_column)
            .read_path(path),
        DataFormat::Spanner => SpannerReader::new().schema(schema).read_path(path),
        DataFormat::Jsonl => JsonlReader::new().schema(schema).read_path(path),
        DataFormat::Hf => HfReader::new()
            .schema(schema)
            .label_names(options.label_names.clone())
            .read_path(path),
        DataFormat::Spacy => SpacyReader::new()
            .schema(schema)
            .offsets(unit(OffsetUnit::Chars))
            .read_path(path),
        DataFormat::LabelStudio => LabelStudioReader::new()
            .schema(schema)
            .offsets(unit(OffsetUnit::Utf16))
            .read_path(path),
        DataFormat::Doccano => DoccanoReader::new()
            .schema(schema)
            .offsets(unit(OffsetUnit::Chars))
            .read_path(path),
        DataFormat::Brat => BratReader::new().schema(schema).read_path(path),
    }
}

/// Whether a dataset file marks where its documents begin: a `-DOCSTART-` line (CoNLL) or
/// record (spanner), or for JSONL a `doc_id` or more than one `doc` value.
///
/// A file that marks none is read as one [`Document`] holding every sentence, which says
/// nothing about where documents begin; [`read_documents`] then gives each sentence a
/// document of its own.
pub fn marks_documents(path: impl AsRef<Path>, format: Option<DataFormat>) -> Result<bool> {
    let path = path.as_ref();
    let format = match format {
        Some(f) => f,
        None => DataFormat::detect(path)?,
    };
    match format {
        DataFormat::Conll => {
            let mut found = false;
            for_each_line(open(path)?, path, |_, line| {
                found |= line.split([' ', '\t']).find(|c| !c.is_empty()) == Some(conll::DOCSTART);
                Ok(())
            })?;
            Ok(found)
        }
        DataFormat::Spanner => {
            let docs = SpannerReader::new().read_path(path)?;
            if docs.len() > 1 {
                return Ok(true);
            }
            let mut bytes = Vec::new();
            open(path)?
                .read_to_end(&mut bytes)
                .map_err(|e| io_error(path, e))?;
            let text = decode_all(&bytes, path)?;
            #[derive(Deserialize)]
            struct Context {
                context: String,
            }
            let records: Vec<Context> = serde_json::from_str(text)
                .map_err(|e| CoreError::parse(path, e.line(), e.to_string()))?;
            Ok(records.iter().any(|r| r.context == conll::DOCSTART))
        }
        DataFormat::Jsonl => {
            let docs = JsonlReader::new().read_path(path)?;
            Ok(docs.len() > 1 || docs.iter().any(|d| d.id.is_some()))
        }
        // One sentence per record, no document boundaries.
        DataFormat::Hf => Ok(false),
        // Every record (a spaCy Doc, a task, a line, a .txt file) is a document.
        DataFormat::Spacy | DataFormat::LabelStudio | DataFormat::Doccano | DataFormat::Brat => {
            Ok(true)
        }
    }
}

/// Reads a dataset as documents for a tagger that reads the sentences of a document together
/// (document context): like [`read_dataset`], but when the file does not mark its documents
/// ([`marks_documents`]) every sentence becomes a document of its own, so that no sentence is
/// given unrelated neighbours as context.
pub fn read_documents(
    path: impl AsRef<Path>,
    format: Option<DataFormat>,
    schema: Option<LabelSchema>,
) -> Result<Vec<Document>> {
    read_documents_with(path, format, &ReadOptions::with_schema(schema))
}

/// [`read_documents`] with [`ReadOptions`].
pub fn read_documents_with(
    path: impl AsRef<Path>,
    format: Option<DataFormat>,
    options: &ReadOptions,
) -> Result<Vec<Document>> {
    let path = path.as_ref();
    let format = match format {
        Some(f) => f,
        None => DataFormat::detect(path)?,
    };
    let docs = read_dataset_with(path, Some(format), options)?;
    if marks_documents(path, Some(format))? {
        return Ok(docs);
    }
    Ok(sentences(docs)
        .into_iter()
        .map(|s| Document {
            id: None,
            sentences: vec![s],
        })
        .collect())
}

/// All sentences of `docs`, in order (document boundaries dropped).
pub fn sentences(docs: Vec<Document>) -> Vec<Sentence> {
    docs.into_iter().flat_map(|d| d.sentences).collect()
}

/// The error of an offset that does not fall on a char boundary of the text in `unit`.
pub(crate) fn unit_error(
    path: &Path,
    line: usize,
    what: &str,
    offset: usize,
    unit: OffsetUnit,
    len: usize,
) -> CoreError {
    let hint = match unit {
        OffsetUnit::Utf16 if offset <= len => {
            " (it falls inside a char outside the Basic Multilingual Plane: are the offsets chars?)"
        }
        _ => "",
    };
    CoreError::parse(
        path,
        line,
        format!(
            "{what}: offset {offset} is not a char boundary of the text ({len} {unit} long){hint}"
        ),
    )
}

/// A JSON id (string or number) as a string.
pub(crate) fn id_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Opens a file for buffered reading.
pub(crate) fn open(path: &Path) -> Result<BufReader<File>> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| io_error(path, e))
}

/// Wraps an I/O error with its file.
pub(crate) fn io_error(path: &Path, source: std::io::Error) -> CoreError {
    CoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads lines as raw bytes and hands each one, decoded, to `f` with its 1-based number.
///
/// The line end (`\n` or `\r\n`) is removed; a UTF-8 byte-order mark at the very start of the
/// input is dropped (it is an encoding marker, not text). Anything that is not UTF-8 is a
/// [`CoreError::InvalidUtf8`] naming the line and the byte offset inside it.
pub(crate) fn for_each_line<R: BufRead>(
    mut reader: R,
    path: &Path,
    mut f: impl FnMut(usize, &str) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::with_capacity(256);
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| io_error(path, e))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        let mut bytes = buf.as_slice();
        if let Some(b) = bytes.strip_suffix(b"\n") {
            bytes = b;
        }
        if let Some(b) = bytes.strip_suffix(b"\r") {
            bytes = b;
        }
        let line = decode_line(bytes, path, line_no)?;
        let line = if line_no == 1 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        f(line_no, line)?;
    }
}

/// Decodes one line, or names the first invalid byte.
pub(crate) fn decode_line<'a>(bytes: &'a [u8], path: &Path, line: usize) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| CoreError::InvalidUtf8 {
        path: path.to_path_buf(),
        line,
        byte_offset: e.valid_up_to(),
    })
}

/// Decodes a whole buffer; on failure names the line of the first invalid byte and its offset in
/// that line.
pub(crate) fn decode_all<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        let bad = e.valid_up_to();
        let before = &bytes[..bad];
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        CoreError::InvalidUtf8 {
            path: path.to_path_buf(),
            line,
            byte_offset: bad - line_start,
        }
    })
}

/// Checks a label against an optional schema: it must be one of the schema's entity types.
pub(crate) fn check_label(
    schema: Option<&LabelSchema>,
    label: &str,
    path: &Path,
    line: usize,
) -> Result<()> {
    if let Some(schema) = schema
        && !matches!(schema.class_of(label), Some(c) if c > 0)
    {
        return Err(CoreError::UnknownLabel {
            path: path.to_path_buf(),
            line,
            label: label.to_string(),
            schema: schema.name.clone(),
            expected: schema.type_names().join(", "),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_parse_and_print() {
        for name in DataFormat::NAMES {
            let f: DataFormat = name.parse().unwrap();
            assert_eq!(f.to_string(), *name);
        }
        let err = "xml".parse::<DataFormat>().unwrap_err();
        assert!(err.to_string().contains("conll, spanner, jsonl"), "{err}");
        assert_eq!(DataFormat::ALL.len(), DataFormat::NAMES.len());
        for (f, n) in DataFormat::ALL.iter().zip(DataFormat::NAMES) {
            assert_eq!(f.name(), *n);
            let json = serde_json::to_string(f).unwrap();
            assert_eq!(json, format!("\"{n}\""));
        }
    }

    #[test]
    fn json_formats_are_told_apart_by_their_keys() {
        let cases = [
            (
                r#"[{"context": "a b", "span_posLabel": {}}]"#,
                Some(DataFormat::Spanner),
            ),
            (
                r#"[{"id": 1, "data": {"text": "a"}, "annotations": []}]"#,
                Some(DataFormat::LabelStudio),
            ),
            (
                r#"{"text": "a", "ents": [], "tokens": []}"#,
                Some(DataFormat::Spacy),
            ),
            (
                r#"{"text": "a", "label": [[0, 1, "X"]]}"#,
                Some(DataFormat::Doccano),
            ),
            (
                r#"{"tokens": ["a"], "ner_tags": [0]}"#,
                Some(DataFormat::Hf),
            ),
            (r#"{"text": "a", "entities": []}"#, None),
            // linkner's own JSONL of a tagged file has tokens and tags too.
            (
                r#"{"text": "a", "tokens": [{"text": "a", "start": 0, "end": 1}], "entities": [], "tags": ["O"]}"#,
                None,
            ),
            ("EU B-ORG", None),
        ];
        for (head, want) in cases {
            assert_eq!(DataFormat::sniff_json(head), want, "{head}");
        }
    }

    #[test]
    fn decode_all_names_line_and_offset() {
        let err = decode_all(b"ab\ncd\nx\xffy\n", Path::new("f.txt")).unwrap_err();
        match err {
            CoreError::InvalidUtf8 {
                line, byte_offset, ..
            } => assert_eq!((line, byte_offset), (3, 1)),
            other => panic!("wrong error {other:?}"),
        }
    }

    #[test]
    fn lines_drop_crlf_and_leading_bom_only() {
        let mut seen = Vec::new();
        for_each_line(
            "\u{feff}a\r\n\u{feff}b\nc".as_bytes(),
            Path::new("m"),
            |n, l| {
                seen.push((n, l.to_string()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (1, "a".to_string()),
                (2, "\u{feff}b".to_string()),
                (3, "c".to_string())
            ]
        );
    }
}
