//! Parquet rows as JSON records (the Hugging Face Hub serves datasets as Parquet), through the
//! `parquet` crate's record API (no Arrow), with the `ClassLabel` names that `datasets` keeps
//! in the file's `huggingface` key-value metadata.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::{io_error, open};
use crate::error::{CoreError, Result};

/// Rows as JSON records with their 1-based numbers, and the tag field's label names.
type Rows = (Vec<(usize, Value)>, Option<Vec<String>>);

/// Whether `path` starts with Parquet's magic bytes `PAR1`.
pub(crate) fn is_parquet(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 4];
    let mut f = open(path)?;
    let mut got = 0;
    while got < 4 {
        let n = f.read(&mut magic[got..]).map_err(|e| io_error(path, e))?;
        if n == 0 {
            return Ok(false);
        }
        got += n;
    }
    Ok(&magic == b"PAR1")
}

/// The rows of a Parquet file as JSON objects (each with its 1-based row number in place of a
/// line), and the tag field's label names from the file's `huggingface` metadata.
#[cfg(feature = "parquet")]
pub(crate) fn read_rows(path: &Path) -> Result<Rows> {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let bad = |e: parquet::errors::ParquetError| {
        CoreError::parse(path, 1, format!("not a readable Parquet file: {e}"))
    };
    let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(bad)?;
    let names = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == "huggingface"))
        .and_then(|k| k.value.as_deref())
        .and_then(|v| serde_json::from_str::<Value>(v).ok())
        .and_then(|v| super::hf::features_names(&v["info"]["features"]));
    let mut rows = Vec::new();
    for (i, row) in reader.get_row_iter(None).map_err(bad)?.enumerate() {
        let row = row.map_err(|e| {
            CoreError::parse(path, i + 1, format!("row {}: cannot decode: {e}", i + 1))
        })?;
        rows.push((i + 1, row.to_json_value()));
    }
    Ok((rows, names))
}

/// Without the `parquet` feature a Parquet file is an error that says so.
#[cfg(not(feature = "parquet"))]
pub(crate) fn read_rows(path: &Path) -> Result<Rows> {
    Err(CoreError::parse(
        path,
        1,
        "a Parquet file, but linkner-core was built without its `parquet` feature; expected \
         JSON lines (datasets' `to_json`) or a build with the feature on",
    ))
}
