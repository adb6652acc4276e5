//! JSON records of a file with their line numbers: a JSON array of objects, or JSON lines.

use std::io::Read;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{decode_all, io_error, open};
use crate::error::{CoreError, Result};

/// The records of `path`: the elements of a top-level JSON array, or one JSON value per
/// non-blank line (JSON lines); each with the 1-based line it starts on.
pub(crate) fn read_json_records(path: &Path) -> Result<Vec<(usize, Value)>> {
    let mut bytes = Vec::new();
    open(path)?
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, e))?;
    let text = decode_all(&bytes, path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    json_records(text, path)
}

/// [`read_json_records`] of a text.
pub(crate) fn json_records(text: &str, path: &Path) -> Result<Vec<(usize, Value)>> {
    if text.trim_start().starts_with('[') {
        let values: Vec<Value> = serde_json::from_str(text).map_err(|e| {
            CoreError::parse(path, e.line(), format!("not a JSON array of records: {e}"))
        })?;
        let lines = element_lines(text);
        return Ok(values
            .into_iter()
            .enumerate()
            .map(|(i, v)| (lines.get(i).copied().unwrap_or(1), v))
            .collect());
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| {
            CoreError::parse(path, i + 1, format!("not a JSON object (JSON lines): {e}"))
        })?;
        out.push((i + 1, value));
    }
    Ok(out)
}

/// The 1-based line on which each element of a top-level JSON array starts.
fn element_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let (mut depth, mut line) = (0usize, 1usize);
    let (mut in_string, mut escaped, mut expect) = (false, false, false);
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if expect && !c.is_whitespace() && c != ']' {
            lines.push(line);
            expect = false;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' => {
                depth += 1;
                expect = depth == 1;
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 1 => expect = true,
            _ => {}
        }
    }
    lines
}

/// Deserialises one record into `T`, naming the file, the line and the field at fault.
pub(crate) fn record_as<T: DeserializeOwned>(
    value: Value,
    path: &Path,
    line: usize,
    what: &str,
) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let at = if field == "." {
            String::new()
        } else {
            format!(" at `{field}`")
        };
        CoreError::parse(path, line, format!("not a {what}{at}: {}", e.into_inner()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_and_lines_give_each_record_its_line() {
        let text = "[\n {\"a\": \"x,[{\\\"\"},\n\n {\"a\": [1,\n 2]}, {\"a\": 3}\n]";
        let recs = json_records(text, Path::new("f")).unwrap();
        let lines: Vec<usize> = recs.iter().map(|r| r.0).collect();
        assert_eq!(lines, [2, 4, 5]);
        let recs = json_records("{\"a\":1}\n\n{\"a\":2}\n", Path::new("f")).unwrap();
        assert_eq!(recs.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 3]);
        let err = json_records("{\"a\":1}\n{oops\n", Path::new("f")).unwrap_err();
        assert!(err.to_string().starts_with("f:2: "), "{err}");
    }
}
