//! `linkner convert`: a labelled dataset from one format to another.
//!
//! ```text
//! linkner convert --input train.parquet --output train.conll --output-format conll
//! linkner convert --input export.json --input-format label-studio --output brat/ --output-format brat
//! linkner convert --input onto.conll --tag-column 4 --output onto.spacy.jsonl --output-format spacy
//! ```
//!
//! Every sentence of the input becomes one record of the output, its gold entities kept (char
//! offsets into its text; words cut where an entity boundary falls inside one). The formats and
//! their conventions are those of `linkner_core::io`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use linkner::core::io::{DataFormat, gold_records};

use super::CliError;
use super::formats::{DataArgs, OffsetsArg, open_record_writer};

/// The formats `convert` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConvertFormat {
    /// CoNLL (word and IOB2 tag).
    Conll,
    /// linkner's JSON lines.
    Jsonl,
    /// Hugging Face datasets JSON lines (tokens + ner_tags).
    Hf,
    /// spaCy Doc.to_json documents.
    Spacy,
    /// Label Studio tasks with annotations.
    LabelStudio,
    /// doccano JSONL.
    Doccano,
    /// brat standoff folder (--output is a folder).
    Brat,
}

impl From<ConvertFormat> for DataFormat {
    fn from(f: ConvertFormat) -> DataFormat {
        match f {
            ConvertFormat::Conll => DataFormat::Conll,
            ConvertFormat::Jsonl => DataFormat::Jsonl,
            ConvertFormat::Hf => DataFormat::Hf,
            ConvertFormat::Spacy => DataFormat::Spacy,
            ConvertFormat::LabelStudio => DataFormat::LabelStudio,
            ConvertFormat::Doccano => DataFormat::Doccano,
            ConvertFormat::Brat => DataFormat::Brat,
        }
    }
}

/// Arguments of `linkner convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The labelled input (a file, or a brat folder).
    #[arg(long, value_name = "PATH")]
    pub input: PathBuf,
    /// How the input is read.
    #[command(flatten)]
    pub formats: DataArgs,
    /// Where to write (a folder for brat); `-` for standard output.
    #[arg(long, value_name = "PATH")]
    pub output: PathBuf,
    /// The output format.
    #[arg(long, value_enum)]
    pub output_format: ConvertFormat,
    /// The unit of written offsets (default: the format's own; utf16 for label-studio).
    #[arg(long, value_enum, value_name = "UNIT")]
    pub offsets: Option<OffsetsArg>,
}

/// Runs `linkner convert`; prints how many records and entities were written to stderr.
pub fn run(args: ConvertArgs) -> Result<(), CliError> {
    let docs = args.formats.read(&args.input, None)?;
    let records = gold_records(&docs)?;
    let format: DataFormat = args.output_format.into();
    let output = Some(args.output.as_path()).filter(|p| p.as_os_str() != "-");
    let mut writer = open_record_writer(format, output, args.offsets)?;
    for r in &records {
        writer.write(r)?;
    }
    writer.finish()?;
    let entities: usize = records.iter().map(|r| r.entities.len()).sum();
    if !super::quiet() {
        eprintln!(
            "{}: {} records, {entities} entities written as {format}",
            args.output.display(),
            records.len()
        );
    }
    Ok(())
}
