//! Input that says where it went wrong: the name of an input for messages, and config values
//! checked against the file they came from (lines are read by [`super::annotate`]).

use std::path::Path;

use linkner::LinkConfig;

use super::CliError;

/// The name of an input for messages: the file's path, or `standard input`.
pub fn source_name(path: Option<&Path>) -> String {
    path.map_or_else(|| "standard input".into(), |p| p.display().to_string())
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
