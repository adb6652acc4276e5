//! Helpers shared by the tagger subcommands (`train`, `predict`, `eval`).

use std::path::Path;

use linkner::core::io::{DataFormat, read_dataset};
use linkner::core::{Document, LabelSchema};

use super::CliError;

/// Reads a labelled or unlabelled dataset: format from `format` (a name), else from the
/// extension (`.json` spanner, `.jsonl` jsonl), else from the first character.
pub fn read_docs(
    path: &Path,
    format: Option<&str>,
    schema: Option<LabelSchema>,
) -> Result<Vec<Document>, CliError> {
    let format = match format {
        Some(f) => Some(f.parse::<DataFormat>()?),
        None => match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Some(DataFormat::Spanner),
            Some("jsonl" | "ndjson") => Some(DataFormat::Jsonl),
            _ => None,
        },
    };
    Ok(read_dataset(path, format, schema)?)
}
