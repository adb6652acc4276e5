//! Helpers shared by the CLI's end-to-end tests: the MiniLM encoder of the venv, a tiny CoNLL
//! training set and the built `linkner` binary.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../../../tests/common/fixture_dir.rs"]
mod fixture_dir;
pub use fixture_dir::fixture_dir;

/// The all-MiniLM-L6-v2 folder ([`linkner::tagger::default_encoder_dir`]).
pub fn minilm() -> PathBuf {
    linkner::tagger::default_encoder_dir()
        .expect("all-MiniLM-L6-v2 in the venv (or LINKNER_ENCODER); run scripts/setup-python.sh")
}

/// Four CoNLL sentences (IOB2, one TAB-separated line).
pub const TRAIN: &str = "EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n\nPeter B-PER\nBlackburn I-PER\n\n\
BRUSSELS B-LOC\n1996-08-22 O\n\nJapan B-LOC\nbeat O\nSyria B-LOC\n.\tO\n";

/// The `linkner` binary built for these tests.
pub fn linkner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_linkner"))
}

/// Runs `linkner train` on the CoNLL file `data` (batch 2, one thread, the MiniLM encoder) into
/// `out` with `extra` arguments (epochs, learning rate, loss, dev file…); asserts that it
/// succeeded and returns its output (the log is on stderr).
pub fn train_tiny(
    data: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec!["--format", "conll"];
    args.extend_from_slice(extra);
    train_tiny_from(data, out, &args)
}

/// Like [`train_tiny`] for a data file of any format (detected from the file).
pub fn train_tiny_from(
    data: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    let output = linkner()
        .args(["train", "--batch-size", "2", "--threads", "1"])
        .args(extra)
        .arg("--train")
        .arg(data)
        .arg("--encoder")
        .arg(minilm())
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// [`TRAIN`] written to a file and a tagger trained on it with enough epochs to memorise the
/// four sentences (the tests need entities): once per test binary.
pub fn tiny_fixture() -> &'static (PathBuf, PathBuf) {
    static FIXTURE: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = fixture_dir(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            env!("CARGO_CRATE_NAME"),
            "tiny",
        );
        let data = dir.join("data.txt");
        std::fs::write(&data, TRAIN).unwrap();
        let model = dir.join("model");
        train_tiny(
            &data,
            &model,
            &["--epochs", "20", "--lr", "2e-4", "--patience", "0"],
        );
        (data, model)
    })
}

/// Asserts that a finished `linkner` run succeeded (its stderr in the message) and returns it.
pub fn run_ok(out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "linkner failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The stdout of a successful run parsed as JSON (the stdout in the message when it is not).
pub fn json_ok(out: std::process::Output) -> serde_json::Value {
    let out = run_ok(out);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The standard error of a run, as text.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `linkner ARGS --model MODEL --data DATA EXTRA…`, not yet run.
fn on_model_and_data(
    args: &[&str],
    model: &std::path::Path,
    data: &std::path::Path,
    extra: &[&str],
) -> Command {
    let mut cmd = linkner();
    cmd.args(args)
        .arg("--model")
        .arg(model)
        .arg("--data")
        .arg(data)
        .args(extra);
    cmd
}

/// `linkner link --json` on CoNLL `data` with one thread, without the LLM URL or model of the
/// environment; asserts success and returns the report.
pub fn link_json(
    model: &std::path::Path,
    data: &std::path::Path,
    extra: &[&str],
) -> serde_json::Value {
    let args = ["link", "--json", "--threads", "1", "--format", "conll"];
    json_ok(
        on_model_and_data(&args, model, data, extra)
            .env_remove("LINKNER_LLM_URL")
            .env_remove("LINKNER_MODEL")
            .output()
            .unwrap(),
    )
}

/// `linkner eval --json` with one thread; asserts success and returns the report.
pub fn eval_json(
    model: &std::path::Path,
    data: &std::path::Path,
    extra: &[&str],
) -> serde_json::Value {
    let args = ["eval", "--json", "--threads", "1"];
    json_ok(
        on_model_and_data(&args, model, data, extra)
            .output()
            .unwrap(),
    )
}
