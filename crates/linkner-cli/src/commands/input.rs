//! Input that says where it went wrong: text lines read with their source and line number
//! (invalid UTF-8 names both), and config values checked against the file they came from.

use std::io::BufRead;
use std::path::Path;

use linkner::LinkConfig;

use super::CliError;

/// One input line: its text, or why it cannot be read (naming the source and the line).
pub type Line = Result<String, String>;

/// The name of an input for messages: the file's path, or `standard input`.
pub fn source_name(path: Option<&Path>) -> String {
    path.map_or_else(|| "standard input".into(), |p| p.display().to_string())
}

/// Reads `path` (standard input when `None`) line by line (`\n` or `\r\n`). A line that is not
/// UTF-8 becomes an `Err` naming the source, the line and the byte; a read error stops with an
/// error naming the source.
pub fn read_lines(path: Option<&Path>) -> Result<Vec<Line>, CliError> {
    let name = source_name(path);
    match path {
        Some(p) => {
            let file = std::fs::File::open(p).map_err(|e| format!("{name}: {e}"))?;
            lines_of(std::io::BufReader::new(file), &name)
        }
        None => lines_of(std::io::stdin().lock(), &name),
    }
}

/// The lines of `reader` (see [`read_lines`]); `name` is the source in messages.
pub fn lines_of(mut reader: impl BufRead, name: &str) -> Result<Vec<Line>, CliError> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| format!("{name}: line {}: {e}", out.len() + 1))?;
        if n == 0 {
            break;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        let line = out.len() + 1;
        out.push(match String::from_utf8(std::mem::take(&mut buf)) {
            Ok(s) => Ok(s),
            Err(e) => Err(format!(
                "{name}: line {line}: invalid UTF-8 at byte {} of the line",
                e.utf8_error().valid_up_to() + 1
            )),
        });
    }
    Ok(out)
}

/// Checks the values of a config read from `path`, naming the file and the field of the first
/// bad one (`config.json: llm.timeout_s: must be a positive number of seconds, got 0`).
pub fn check_config_values(path: &Path, config: &LinkConfig) -> Result<(), CliError> {
    let at = |field: &str, e: &dyn std::fmt::Display| -> CliError {
        format!("{}: {field}: {e}", path.display()).into()
    };
    config
        .tagger
        .device()
        .map_err(|e| at("tagger.device", &e))?;
    if config.tagger.batch_size == 0 {
        return Err(at("tagger.batch_size", &"must be at least 1"));
    }
    config.estimator.build().map_err(|e| at("estimator", &e))?;
    config.policy.validate(None).map_err(|e| at("policy", &e))?;
    if let Some(llm) = &config.llm {
        match llm.validate() {
            Ok(()) => {}
            Err(linkner::llm::LlmError::InvalidSetting { field, message }) => {
                return Err(at(&format!("llm.{field}"), &message));
            }
            Err(e) => return Err(at("llm", &e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_names_the_source_the_line_and_the_byte() {
        let input: &[u8] = b"first\r\nsecond caf\xe9\nthird\n\nlast";
        let lines = lines_of(input, "standard input").unwrap();
        assert_eq!(lines.len(), 5);
        let ok = |s: &str| Ok::<String, String>(s.to_string());
        assert_eq!(lines[0], ok("first"));
        assert_eq!(
            lines[1],
            Err("standard input: line 2: invalid UTF-8 at byte 11 of the line".to_string())
        );
        assert_eq!(lines[2], ok("third"));
        assert_eq!(lines[3], ok(""));
        assert_eq!(lines[4], ok("last"));
        assert!(lines_of(&b""[..], "x").unwrap().is_empty());
    }

    #[test]
    fn config_value_errors_name_the_file_and_the_field() {
        let config =
            LinkConfig::from_json(r#"{"tagger": {"model": "m"}, "llm": {"timeout_s": 0}}"#)
                .unwrap();
        let e = check_config_values(Path::new("pipeline.json"), &config)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("pipeline.json: llm.timeout_s: "), "{e}");
        let config = LinkConfig::from_json(
            r#"{"tagger": {"model": "m", "batch_size": 0}, "policy": {"type": "never"}}"#,
        )
        .unwrap();
        let e = check_config_values(Path::new("p.json"), &config)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.json: tagger.batch_size"), "{e}");
        let ok = LinkConfig::from_json(r#"{"tagger": {"model": "m"}, "llm": {}}"#).unwrap();
        assert!(check_config_values(Path::new("p.json"), &ok).is_ok());
    }
}
