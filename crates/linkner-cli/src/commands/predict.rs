//! `linkner predict`: runs a trained tagger on raw text or a dataset file.
//!
//! ```text
//! linkner predict --model DIR [--tagger-kind span|token_classification] [--schema NAME|FILE]
//!                 [--input FILE] [--input-format text|conll|spanner|jsonl|hf|spacy|label-studio|doccano|brat]
//!                 [--output FILE] [--output-format jsonl|conll|hf|spacy|label-studio|doccano|brat]
//!                 [--offsets chars|utf16] [--mc-samples N] [--overlapping]
//! ```
//!
//! Text input is one text per line (split into words with exact char offsets). JSONL output
//! has one line per sentence: the `linkner score`-compatible record (text, tokens, entities
//! with scores) plus `candidates`, each with its full label distribution.

use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use linkner::core::io::{
    ConllWriter, DataFormat, JsonlRecord, RecordEntity, TextRecord, marks_documents,
};
use linkner::core::{Candidate, Document, Sentence};
use linkner::core::{LocalTagger, PredictOptions, sentence_from_text};
use linkner::tagger::{AnyTagger, Precision, TaggerKind};
use serde::Serialize;

use super::CliError;
use super::tagger_common::load_tagger;

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// One raw text per line.
    Text,
    /// CoNLL column file.
    Conll,
    /// LinkNER spanner JSON.
    Spanner,
    /// JSONL with char offsets.
    Jsonl,
    /// Hugging Face datasets (tokens + ner_tags; JSON lines or Parquet).
    Hf,
    /// spaCy Doc.to_json documents.
    Spacy,
    /// Label Studio tasks.
    LabelStudio,
    /// doccano JSONL.
    Doccano,
    /// brat standoff folder.
    Brat,
}

impl InputFormat {
    /// The dataset format, `None` for raw text.
    fn data_format(self) -> Option<DataFormat> {
        Some(match self {
            InputFormat::Text => return None,
            InputFormat::Conll => DataFormat::Conll,
            InputFormat::Spanner => DataFormat::Spanner,
            InputFormat::Jsonl => DataFormat::Jsonl,
            InputFormat::Hf => DataFormat::Hf,
            InputFormat::Spacy => DataFormat::Spacy,
            InputFormat::LabelStudio => DataFormat::LabelStudio,
            InputFormat::Doccano => DataFormat::Doccano,
            InputFormat::Brat => DataFormat::Brat,
        })
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per sentence, with candidates and their label distributions.
    Jsonl,
    /// CoNLL (word and predicted IOB2 tag).
    Conll,
    /// Hugging Face datasets JSON lines (tokens + ner_tags).
    Hf,
    /// spaCy Doc.to_json documents.
    Spacy,
    /// Label Studio tasks with predictions.
    LabelStudio,
    /// doccano JSONL.
    Doccano,
    /// brat standoff folder (needs --output DIR).
    Brat,
}

/// Arguments of `linkner predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Tagger folder: a checkpoint from `linkner train`, or a Hugging Face token-classification
    /// folder (`config.json` with `id2label`, `model.safetensors`, `tokenizer.json`).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The folder's kind (`span` or `token_classification`); detected by default.
    #[arg(long, value_name = "KIND", value_parser = super::pipeline_args::kind_parser())]
    pub tagger_kind: Option<TaggerKind>,
    /// A label schema (built-in name or JSON/TOML file) with the model's types, whose names and
    /// descriptions replace the stored ones; the labels of `--input` are checked against it.
    #[arg(long, value_name = "NAME|FILE")]
    pub schema: Option<String>,
    /// Input file; standard input when absent.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Input format.
    #[arg(long, value_enum, default_value_t = InputFormat::Text)]
    pub input_format: InputFormat,
    /// Output file; standard output when absent.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Jsonl)]
    pub output_format: OutputFormat,
    /// The unit of written offsets (default: the format's own; utf16 for label-studio).
    #[arg(long, value_enum, value_name = "UNIT")]
    pub offsets: Option<super::formats::OffsetsArg>,
    /// How a dataset input is read (CoNLL columns, offsets, label names).
    #[command(flatten)]
    pub reader: super::formats::ReaderArgs,
    /// Monte-Carlo dropout passes per sentence (0: none).
    #[arg(long, default_value_t = 0)]
    pub mc_samples: usize,
    /// Return overlapping candidates too (no greedy non-overlap selection).
    #[arg(long)]
    pub overlapping: bool,
    /// Sentences per forward pass (default: 32 on the CPU, 256 on CUDA).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Where the tagger runs (`--device`, `--threads`).
    #[command(flatten)]
    pub run_on: super::tagger_common::DeviceArgs,
}

#[derive(Serialize)]
struct PredLine<'a> {
    #[serde(flatten)]
    record: JsonlRecord,
    candidates: &'a [Candidate],
}

/// Runs `linkner predict`.
pub fn run(args: PredictArgs) -> Result<(), CliError> {
    let device = args.run_on.apply()?;
    let tagger = load_tagger(
        &args.model,
        args.tagger_kind,
        args.schema.as_deref(),
        &device,
        Precision::F32,
    )?;
    let (docs, marked) = read_input(&args, &tagger)?;
    let options = PredictOptions {
        mc_samples: args.mc_samples,
        overlapping: args.overlapping,
        batch_size: args
            .batch_size
            .unwrap_or_else(|| linkner::tagger::default_batch_size(&device)),
        ..PredictOptions::default()
    };
    let (out_docs, lines) = tag_all(&tagger, docs, marked, &options)?;
    if let Some(format) = record_format(args.output_format) {
        return write_records(&args, format, &out_docs, &lines);
    }
    write_plain(&args, &out_docs, &lines)
}

/// A tagged sentence: its document's index, the sentence with the predicted spans, and the
/// candidates.
type Line = (usize, Sentence, Vec<Candidate>);

/// The documents of `--input` (or standard input), and whether the sentences of a document are
/// read together (document context): only for a file that marks its documents; raw text lines
/// are tagged one by one.
fn read_input(args: &PredictArgs, tagger: &AnyTagger) -> Result<(Vec<Document>, bool), CliError> {
    let mut marked = false;
    let docs: Vec<Document> = match args.input_format {
        InputFormat::Text => {
            let mut text = String::new();
            match &args.input {
                Some(p) => {
                    text =
                        std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                }
                None => {
                    std::io::stdin().lock().read_to_string(&mut text)?;
                }
            }
            let sentences: Vec<Sentence> = text.lines().map(sentence_from_text).collect();
            vec![Document {
                id: None,
                sentences,
            }]
        }
        other => {
            let path = args
                .input
                .clone()
                .ok_or("--input is required for a dataset input (any format but text)")?;
            let format = other.data_format();
            marked = marks_documents(&path, format)?;
            // Gold labels, if the file has any, must be the model's.
            let options = args.reader.read_options(Some(tagger.schema().clone()))?;
            linkner::core::io::read_dataset_with(&path, format, &options)?
        }
    };
    Ok((docs, marked))
}

/// Tags the documents (whole documents when `marked`, else sentence by sentence): the
/// documents with their predicted spans, and one [`Line`] per sentence.
fn tag_all(
    tagger: &AnyTagger,
    docs: Vec<Document>,
    marked: bool,
    options: &PredictOptions,
) -> Result<(Vec<Document>, Vec<Line>), CliError> {
    let mut out_docs = Vec::with_capacity(docs.len());
    let mut lines: Vec<Line> = Vec::new();
    let tagged: Vec<Vec<Vec<Candidate>>> = if marked {
        tagger.tag_documents(&docs, options)?
    } else {
        docs.iter()
            .map(|d| tagger.tag_sentences(&d.sentences, options))
            .collect::<Result<_, _>>()?
    };
    for ((d, doc), cands) in docs.into_iter().enumerate().zip(tagged) {
        let mut sentences = Vec::with_capacity(doc.sentences.len());
        for (mut s, c) in doc.sentences.into_iter().zip(cands) {
            s.spans = c.iter().map(|c| c.span.clone()).collect();
            s.tags = None;
            sentences.push(s.clone());
            lines.push((d, s, c));
        }
        out_docs.push(Document {
            id: doc.id,
            sentences,
        });
    }
    Ok((out_docs, lines))
}

/// Writes JSONL (one line per sentence, with the candidates) or CoNLL to `--output` or
/// standard output.
fn write_plain(args: &PredictArgs, out_docs: &[Document], lines: &[Line]) -> Result<(), CliError> {
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    match args.output_format {
        OutputFormat::Jsonl => {
            for (d, s, c) in lines {
                let entities = c.iter().map(|c| c.entity.clone()).collect();
                let line = PredLine {
                    record: JsonlRecord::with_entities(*d, s, entities),
                    candidates: c,
                };
                serde_json::to_writer(&mut out, &line)?;
                out.write_all(b"\n")?;
            }
        }
        OutputFormat::Conll => {
            ConllWriter::new().write(&mut out, out_docs, "<output>")?;
        }
        _ => unreachable!("written by write_records"),
    }
    out.flush()?;
    Ok(())
}

/// The record format of an output format written through linkner-core's record writers.
fn record_format(f: OutputFormat) -> Option<DataFormat> {
    match f {
        OutputFormat::Jsonl | OutputFormat::Conll => None,
        OutputFormat::Hf => Some(DataFormat::Hf),
        OutputFormat::Spacy => Some(DataFormat::Spacy),
        OutputFormat::LabelStudio => Some(DataFormat::LabelStudio),
        OutputFormat::Doccano => Some(DataFormat::Doccano),
        OutputFormat::Brat => Some(DataFormat::Brat),
    }
}

/// Writes the predictions as records of `format` (one per sentence).
fn write_records(
    args: &PredictArgs,
    format: DataFormat,
    docs: &[Document],
    lines: &[Line],
) -> Result<(), CliError> {
    let mut writer =
        super::formats::open_record_writer(format, args.output.as_deref(), args.offsets)?;
    let mut seen = vec![0usize; docs.len()];
    for (d, s, c) in lines {
        let base = docs[*d].id.clone().unwrap_or_else(|| format!("doc{d}"));
        let id = if docs[*d].sentences.len() == 1 {
            base
        } else {
            format!("{base}-{}", seen[*d])
        };
        seen[*d] += 1;
        let record = TextRecord {
            id: Some(id),
            text: s.text.clone(),
            tokens: Some(s.tokens.clone()),
            entities: c
                .iter()
                .map(|c| RecordEntity::from(c.entity.clone()))
                .collect(),
            predicted: true,
        };
        writer.write(&record)?;
    }
    writer.finish()?;
    Ok(())
}
