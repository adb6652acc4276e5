//! Helpers shared by the tagger subcommands (`train`, `predict`, `eval`, `schema`).

use std::path::Path;

use linkner::core::io::sentences;
use linkner::core::{Document, LabelSchema};
use linkner::tagger::{AnyTagger, DeviceSpec, Precision, TaggerKind};

use super::CliError;

/// Where a tagger command runs: `--device` and `--threads`, the same flags in `train`, `eval`
/// and `predict` (the pipeline commands have theirs in `PipelineArgs`, where a config file
/// may set them).
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArgs {
    /// Device: cpu (LibTorch), cuda, cuda:N, flex.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// LibTorch CPU threads (default: OMP_NUM_THREADS, else the cores available to the
    /// process; 1 is often fastest on a busy machine, see docs/tagger.md).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl DeviceArgs {
    /// The device, parsed; sets the LibTorch CPU threads when `--threads` is given.
    pub fn apply(&self) -> Result<DeviceSpec, CliError> {
        let device: DeviceSpec = self.device.parse()?;
        if let Some(n) = self.threads {
            linkner::tagger::set_threads(n)?;
        }
        Ok(device)
    }
}

/// Keeps the first `limit` sentences of `docs` (documents after them are dropped, the last one
/// kept may be cut).
pub fn truncate_sentences(docs: &mut Vec<Document>, limit: usize) {
    let mut left = limit;
    docs.retain_mut(|d| {
        if left == 0 {
            return false;
        }
        d.sentences.truncate(left);
        left -= d.sentences.len();
        true
    });
}

/// Number of sentences of `docs`.
pub fn count_sentences(docs: &[Document]) -> usize {
    docs.iter().map(|d| d.sentences.len()).sum()
}

/// Parses `--tagger-kind`.
pub fn parse_kind(s: &str) -> Result<TaggerKind, String> {
    s.parse::<TaggerKind>().map_err(|e| e.to_string())
}

/// Loads the tagger folder `model` (SpanNER checkpoint or Hugging Face token-classification
/// folder; `kind` detected when `None`), applies the wording of `schema` (a built-in name or a
/// schema file) when given, and casts it to `precision`.
pub fn load_tagger(
    model: &Path,
    kind: Option<TaggerKind>,
    schema: Option<&str>,
    device: &DeviceSpec,
    precision: Precision,
) -> Result<AnyTagger, CliError> {
    let schema = schema.map(LabelSchema::resolve).transpose()?;
    let mut tagger = AnyTagger::load(model, kind, device)?;
    if let Some(schema) = &schema {
        tagger = tagger
            .with_schema(schema)
            .map_err(|e| -> CliError { format!("--schema {}: {e}", schema.name).into() })?;
    }
    Ok(tagger.with_precision(precision)?)
}

/// The schema of a labelled file: the built-in schema whose types are exactly the file's, when
/// there is one (its descriptions are written), else one inferred from the file's tags (types
/// in order of first appearance, generic descriptions). Returns it and whether it is a built-in.
pub fn schema_from_data(
    path: &Path,
    formats: &super::formats::DataArgs,
) -> Result<(LabelSchema, bool), CliError> {
    let data = sentences(formats.read(path, None)?);
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("data")
        .to_string();
    let inferred = LabelSchema::infer(stem, &data)
        .map_err(|e| -> CliError { format!("{}: {e}", path.display()).into() })?;
    Ok(
        match LabelSchema::builtin_matching(&inferred.type_names()) {
            Some(builtin) => (builtin, true),
            None => (inferred, false),
        },
    )
}
