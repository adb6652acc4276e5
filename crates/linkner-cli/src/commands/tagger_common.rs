//! Helpers shared by the tagger subcommands (`train`, `predict`, `eval`).

use std::path::Path;

use linkner::core::io::{DataFormat, read_dataset, read_documents};
use linkner::core::{Document, LabelSchema};

use super::CliError;

/// The format of a data file: `format` (a name), else from the extension (`.json` spanner,
/// `.jsonl` jsonl); `None` lets the reader guess from the first character.
fn format_of(path: &Path, format: Option<&str>) -> Result<Option<DataFormat>, CliError> {
    Ok(match format {
        Some(f) => Some(f.parse::<DataFormat>()?),
        None => match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Some(DataFormat::Spanner),
            Some("jsonl" | "ndjson") => Some(DataFormat::Jsonl),
            _ => None,
        },
    })
}

/// Reads a labelled or unlabelled dataset: format from `format` (a name), else from the
/// extension (`.json` spanner, `.jsonl` jsonl), else from the first character.
pub fn read_docs(
    path: &Path,
    format: Option<&str>,
    schema: Option<LabelSchema>,
) -> Result<Vec<Document>, CliError> {
    Ok(read_dataset(path, format_of(path, format)?, schema)?)
}

/// Like [`read_docs`], for document context: a file that marks no documents (no `-DOCSTART-`,
/// no JSONL `doc`) gives one document per sentence
/// ([`linkner::core::io::read_documents`]).
pub fn read_documents_of(
    path: &Path,
    format: Option<&str>,
    schema: Option<LabelSchema>,
) -> Result<Vec<Document>, CliError> {
    Ok(read_documents(path, format_of(path, format)?, schema)?)
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
