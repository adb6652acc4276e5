//! The CLI against hostile input and a failing LLM: errors that say where (source and line of
//! invalid UTF-8, the file and field of a bad config value, an empty data file), each printed
//! once and without colour codes; `annotate --on-error skip` keeping output lines in step with
//! input lines; and exit status 3 with every output line written when every LLM call fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../../linkner-llm/tests/support/fake_server.rs"]
mod fake_server;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{TRAIN, linkner, stderr};
use fake_server::{FakeServer, Fault, Script};
use serde_json::Value;

/// A tagger trained on the four sentences (once for the whole file).
fn model() -> &'static PathBuf {
    &common::tiny_fixture().1
}

/// Runs `cmd` with `stdin` on its standard input.
fn run_with_stdin(mut cmd: Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .env_remove("LINKNER_LLM_URL")
        .env_remove("LINKNER_MODEL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// The error printed once: one `error:` line, no repeated `caused by:` line, no colour codes.
fn assert_one_clean_error(err: &str) {
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(!err.contains("caused by"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn an_empty_data_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("empty.txt");
    std::fs::write(&data, "").unwrap();
    let out = linkner()
        .args(["link", "--policy", "never", "--model", "/nonexistent"])
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("empty.txt") && err.contains("no sentences"),
        "{err}"
    );
    assert_one_clean_error(&err);
}

#[test]
fn config_value_errors_name_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.txt");
    std::fs::write(&data, TRAIN).unwrap();
    let config = dir.path().join("pipeline.json");
    std::fs::write(
        &config,
        r#"{"tagger": {"model": "m"}, "llm": {"base_url": "http://127.0.0.1:9/v1", "timeout_s": 0}}"#,
    )
    .unwrap();
    let out = linkner()
        .args(["link", "--format", "conll"])
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("pipeline.json: llm.timeout_s:"), "{err}");
    assert_one_clean_error(&err);

    // A JSON error is printed once too (its message already holds the parser's).
    std::fs::write(
        &config,
        r#"{"tagger": {"model": "m"}, "llm": {"url": "x"}}"#,
    )
    .unwrap();
    let out = linkner()
        .args(["link", "--format", "conll"])
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("pipeline.json") && err.contains("`url`"),
        "{err}"
    );
    assert_one_clean_error(&err);
}

#[test]
fn invalid_utf8_names_the_source_and_the_line() {
    let input = b"Peter Blackburn met the EU .\nJapan beat Syr\xffia .\n";
    // A stream loads its model before it reads: the lines before the bad one are written.
    let mut cmd = linkner();
    cmd.args(["annotate", "--policy", "never", "--threads", "1", "--model"])
        .arg(model());
    let out = run_with_stdin(cmd, input);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("standard input: line 2: invalid UTF-8"),
        "{err}"
    );
    assert_one_clean_error(&err);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.txt");
    std::fs::write(&file, input).unwrap();
    let out = linkner()
        .args(["annotate", "--policy", "never", "--threads", "1", "--model"])
        .arg(model())
        .arg("--input")
        .arg(&file)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(err.contains("in.txt: line 2: invalid UTF-8"), "{err}");
}

#[test]
fn on_error_skip_writes_one_record_per_bad_line() {
    let input = b"Peter Blackburn met the EU .\nJapan beat Syr\xffia .\n\nBRUSSELS 1996-08-22\n";
    let mut cmd = linkner();
    cmd.args([
        "annotate",
        "--policy",
        "never",
        "--threads",
        "1",
        "--on-error",
        "skip",
    ])
    .arg("--model")
    .arg(model());
    let out = run_with_stdin(cmd, input);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "one output line per input line");
    assert_eq!(lines[0]["sentence"]["text"], "Peter Blackburn met the EU .");
    assert_eq!(lines[1]["error"]["line"], 2);
    let msg = lines[1]["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("standard input: line 2: invalid UTF-8"),
        "{msg}"
    );
    assert_eq!(lines[2]["sentence"]["text"], "");
    assert_eq!(lines[3]["sentence"]["text"], "BRUSSELS 1996-08-22");
}

#[test]
fn annotate_writes_every_line_then_exits_3_when_every_llm_call_fails() {
    // A server that answers every request with 500: all routed entities fail.
    let server = FakeServer::start_in_thread(Script::always(Fault::Status(
        500,
        None,
        "{\"error\":\"down\"}".into(),
    )));
    let input = "Peter Blackburn met the EU in Brussels .\nJapan beat Syria .\n\nEU rejects German call .\n";
    let mut cmd = linkner();
    cmd.args([
        "annotate",
        "--policy",
        "always",
        "--threads",
        "1",
        "--stats",
    ])
    .args(["--llm-mode", "free_text", "--llm-url", &server.url])
    .arg("--model")
    .arg(model());
    let out = run_with_stdin(cmd, input.as_bytes());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "every input line answered before the exit");
    let mut failed = 0;
    for l in &lines {
        for e in l["entities"].as_array().unwrap() {
            assert_eq!(e["provenance"]["source"], "llm_failed", "{e}");
            failed += 1;
        }
    }
    assert!(failed > 0, "the tiny tagger should find something");
    assert!(
        err.contains(&format!("{failed} of {failed} routed entities"))
            && err.contains("server_error"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(server.hits() >= failed);

    // Nothing routed: nothing failed, status 0.
    let mut cmd = linkner();
    cmd.args(["annotate", "--policy", "never", "--threads", "1"])
        .args(["--llm-url", &server.url])
        .arg("--model")
        .arg(model());
    let out = run_with_stdin(cmd, input.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
}
