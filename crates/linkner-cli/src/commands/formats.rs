//! The data-format flags every command shares: `--input-format` and its reader options on the
//! way in, `--output-format` and `--offsets` on the way out (linkner-core's readers and
//! writers, [`linkner::core::io`]).

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use linkner::core::io::{DataFormat, OffsetUnit, ReadOptions, WriteOptions};
use linkner::core::{Document, LabelSchema};

use super::CliError;

/// A dataset format (the closed list of [`DataFormat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// CoNLL columns: word first, tag last (see --word-column, --tag-column).
    #[value(alias = "conll03", alias = "bio", alias = "txt")]
    Conll,
    /// LinkNER's spanner JSON.
    #[value(alias = "json")]
    Spanner,
    /// linkner's JSON lines (text, tokens, entities with char offsets).
    #[value(alias = "ndjson")]
    Jsonl,
    /// Hugging Face datasets: tokens + ner_tags, JSON lines or Parquet.
    #[value(alias = "huggingface", alias = "parquet")]
    Hf,
    /// spaCy Doc.to_json documents, one per line.
    Spacy,
    /// Label Studio tasks (JSON export / import).
    #[value(alias = "labelstudio")]
    LabelStudio,
    /// doccano sequence-labeling JSONL.
    Doccano,
    /// brat standoff: a folder of .txt + .ann files.
    #[value(alias = "standoff")]
    Brat,
}

impl From<FormatArg> for DataFormat {
    fn from(f: FormatArg) -> DataFormat {
        match f {
            FormatArg::Conll => DataFormat::Conll,
            FormatArg::Spanner => DataFormat::Spanner,
            FormatArg::Jsonl => DataFormat::Jsonl,
            FormatArg::Hf => DataFormat::Hf,
            FormatArg::Spacy => DataFormat::Spacy,
            FormatArg::LabelStudio => DataFormat::LabelStudio,
            FormatArg::Doccano => DataFormat::Doccano,
            FormatArg::Brat => DataFormat::Brat,
        }
    }
}

/// A unit of offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OffsetsArg {
    /// Unicode code points (Python str indices; linkner's own).
    Chars,
    /// UTF-16 code units (JavaScript; Label Studio's editor).
    Utf16,
}

impl From<OffsetsArg> for OffsetUnit {
    fn from(o: OffsetsArg) -> OffsetUnit {
        match o {
            OffsetsArg::Chars => OffsetUnit::Chars,
            OffsetsArg::Utf16 => OffsetUnit::Utf16,
        }
    }
}

/// How the data files of a command are read.
#[derive(Debug, Clone, Default, Args)]
pub struct DataArgs {
    /// Format of the data files; detected from the file when absent (a folder or .ann is brat,
    /// Parquet is hf, JSON by its keys, else CoNLL).
    #[arg(
        long = "input-format",
        alias = "format",
        value_enum,
        value_name = "FORMAT"
    )]
    pub input_format: Option<FormatArg>,
    /// The reader's options.
    #[command(flatten)]
    pub reader: ReaderArgs,
}

/// The options of the readers (what some formats need beyond their name).
#[derive(Debug, Clone, Default, Args)]
pub struct ReaderArgs {
    /// CoNLL: the 1-based column of the word (default: the first).
    #[arg(long, value_name = "N")]
    pub word_column: Option<usize>,
    /// CoNLL: the 1-based column of the tag (default: the last), e.g. OntoNotes' NER column.
    #[arg(long, value_name = "N")]
    pub tag_column: Option<usize>,
    /// The unit of the input's offsets (default: the format's own; utf16 for label-studio).
    #[arg(long, value_enum, value_name = "UNIT")]
    pub input_offsets: Option<OffsetsArg>,
    /// hf: a file of tag names, one per line, in the order of the integer tags (default: the
    /// dataset's own metadata).
    #[arg(long, value_name = "FILE")]
    pub label_names: Option<PathBuf>,
}

impl DataArgs {
    /// The reader options, labels checked against `schema`.
    pub fn read_options(&self, schema: Option<LabelSchema>) -> Result<ReadOptions, CliError> {
        self.reader.read_options(schema)
    }

    /// Reads a dataset (sentences grouped as the file groups them).
    pub fn read(
        &self,
        path: &Path,
        schema: Option<LabelSchema>,
    ) -> Result<Vec<Document>, CliError> {
        let format = self.format_of(path)?;
        Ok(linkner::core::io::read_dataset_with(
            path,
            format,
            &self.read_options(schema)?,
        )?)
    }

    /// Reads a dataset for document context (a file that marks no documents gives one document
    /// per sentence).
    pub fn read_documents(
        &self,
        path: &Path,
        schema: Option<LabelSchema>,
    ) -> Result<Vec<Document>, CliError> {
        let format = self.format_of(path)?;
        Ok(linkner::core::io::read_documents_with(
            path,
            format,
            &self.read_options(schema)?,
        )?)
    }

    /// The format of `path`: the one given, else `.json` spanner and `.jsonl` JSONL unless the
    /// keys say otherwise, else detected.
    pub fn format_of(&self, path: &Path) -> Result<Option<DataFormat>, CliError> {
        if let Some(f) = self.input_format {
            return Ok(Some(f.into()));
        }
        let detected = DataFormat::detect(path)?;
        // A JSON file the keys do not tell apart goes by its extension, as before.
        let ext = path.extension().and_then(|e| e.to_str());
        Ok(Some(match (detected, ext) {
            (DataFormat::Conll, Some("json")) => DataFormat::Spanner,
            (DataFormat::Conll, Some("jsonl" | "ndjson")) => DataFormat::Jsonl,
            (f, _) => f,
        }))
    }
}

impl ReaderArgs {
    /// The reader options, labels checked against `schema`.
    pub fn read_options(&self, schema: Option<LabelSchema>) -> Result<ReadOptions, CliError> {
        let label_names = match &self.label_names {
            None => None,
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                let names: Vec<String> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
                if names.is_empty() {
                    return Err(format!("{}: no label names (one per line)", p.display()).into());
                }
                Some(names)
            }
        };
        Ok(ReadOptions {
            schema,
            offsets: self.input_offsets.map(Into::into),
            word_column: self.word_column,
            tag_column: self.tag_column,
            label_names,
        })
    }
}

/// The record writer of `format` at `output` (a file, or a folder for brat), or on standard
/// output when `None`; written offsets in `offsets` (the format's own unit when `None`).
pub fn open_record_writer(
    format: DataFormat,
    output: Option<&Path>,
    offsets: Option<OffsetsArg>,
) -> Result<Box<dyn linkner::core::io::RecordWriter>, CliError> {
    let options = write_options(offsets);
    Ok(match output {
        Some(p) => linkner::core::io::record_writer_to_path(format, p, &options)?,
        None if format == DataFormat::Brat => {
            return Err("--output-format brat writes a folder: give --output DIR".into());
        }
        None => linkner::core::io::record_writer(
            format,
            Box::new(std::io::BufWriter::new(std::io::stdout())),
            "<stdout>",
            &options,
        )?,
    })
}

/// The writer options of `--offsets`.
pub fn write_options(offsets: Option<OffsetsArg>) -> WriteOptions {
    WriteOptions {
        offsets: offsets.map(Into::into),
        ..Default::default()
    }
}
