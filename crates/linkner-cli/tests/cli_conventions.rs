//! Command-line conventions: an environment variable that replaces a config value says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

/// A pipeline config whose tagger model is `/models/from-the-file` (which does not exist).
fn config_naming_a_model(dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("pipeline.json");
    std::fs::write(
        &config,
        r#"{"tagger": {"model": "/models/from-the-file"}, "policy": {"type": "never"}}"#,
    )
    .unwrap();
    config
}

#[test]
fn an_exported_variable_that_replaces_the_config_model_is_announced() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_naming_a_model(dir.path());
    let run = |env_model: Option<&str>| {
        let mut cmd = common::linkner();
        cmd.env_remove("LINKNER_MODEL")
            .env_remove("LINKNER_LLM_URL");
        if let Some(m) = env_model {
            cmd.env("LINKNER_MODEL", m);
        }
        let out = cmd
            .args(["annotate", "--config"])
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run(Some("/models/from-the-environment"));
    assert!(
        err.contains("note: LINKNER_MODEL=\"/models/from-the-environment\" (environment) replaces the config's tagger.model \"/models/from-the-file\""),
        "{err}"
    );
    // Both runs then fail to load a model that does not exist; only the first says why the
    // path differs from the file's.
    assert!(!run(None).contains("note: LINKNER_MODEL"));
}

#[test]
fn quiet_silences_the_note_and_the_error_still_shows() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_naming_a_model(dir.path());
    let out = common::linkner()
        .env_remove("LINKNER_LOG")
        .env("LINKNER_MODEL", "/models/from-the-environment")
        .args(["-q", "annotate", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("note:"), "{err}");
    assert!(err.contains("error:"), "an error is never silenced: {err}");
    assert_eq!(out.status.code(), Some(1));
    // -q and -v together are a usage error.
    let both = common::linkner()
        .args(["-q", "-v", "schema", "conll03"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
}

#[test]
fn with_json_an_error_is_one_json_object_on_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-gold.txt");
    let out = common::linkner()
        .args(["score", "--json", "--gold"])
        .arg(&missing)
        .arg("--pred")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("stdout is not one JSON object ({e}): {stdout:?}");
    });
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("no-such-gold.txt"), "{v}");
    assert_eq!(v["error"]["exit_code"], 1);
    assert!(v["error"]["causes"].is_array(), "{v}");
    // Without --json the same failure prints nothing on standard output.
    let plain = common::linkner()
        .args(["score", "--gold"])
        .arg(&missing)
        .arg("--pred")
        .arg(&missing)
        .output()
        .unwrap();
    assert!(plain.stdout.is_empty());
    assert!(String::from_utf8_lossy(&plain.stderr).contains("no-such-gold.txt"));
}
