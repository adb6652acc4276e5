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

pub mod conll;
pub mod jsonl;
pub mod spanner;

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use conll::{ConllReader, ConllWriter, Separator, read_conll, write_conll};
pub use jsonl::{JsonlReader, JsonlRecord, JsonlWriter, read_jsonl, write_jsonl};
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
}

impl DataFormat {
    /// Names accepted by [`DataFormat::from_str`].
    pub const NAMES: &'static [&'static str] = &["conll", "spanner", "jsonl"];

    /// The format's name (`conll`, `spanner`, `jsonl`).
    pub fn name(self) -> &'static str {
        match self {
            DataFormat::Conll => "conll",
            DataFormat::Spanner => "spanner",
            DataFormat::Jsonl => "jsonl",
        }
    }

    /// Guesses the format of a file from its first non-whitespace byte: `[` is spanner JSON,
    /// `{` is JSONL, anything else (or an empty file) is CoNLL.
    pub fn detect(path: impl AsRef<Path>) -> Result<DataFormat> {
        let path = path.as_ref();
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
            _ => Err(CoreError::UnknownName {
                kind: "data format",
                name: s.to_string(),
                expected: Self::NAMES.join(", "),
            }),
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
    let path = path.as_ref();
    let format = match format {
        Some(f) => f,
        None => DataFormat::detect(path)?,
    };
    match format {
        DataFormat::Conll => ConllReader::new().schema(schema).read_path(path),
        DataFormat::Spanner => SpannerReader::new().schema(schema).read_path(path),
        DataFormat::Jsonl => JsonlReader::new().schema(schema).read_path(path),
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
    let path = path.as_ref();
    let format = match format {
        Some(f) => f,
        None => DataFormat::detect(path)?,
    };
    let docs = read_dataset(path, Some(format), schema)?;
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
