//! The formats on the command line: `convert` between them (CoNLL ⇄ Label Studio ⇄ brat ⇄
//! spaCy ⇄ Hugging Face, the tag in another column), `annotate --output-format label-studio
//! --only routed` checked by the Label Studio SDK and against the JSONL annotations of the same
//! run, and `--help` listing every closed choice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../../linkner-llm/tests/support/fake_server.rs"]
mod fake_server;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TRAIN, linkner, run_ok};
use fake_server::{FakeServer, Fault, Script, chat};
use serde_json::Value;

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("LINKNER_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("LINKNER_CACHE").map(|c| PathBuf::from(c).join("venv")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/linkner/venv")))
        .unwrap();
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{}: run scripts/setup-python.sh",
        python.display()
    );
    python
}

/// The Label Studio SDK's verdict on a tasks file for a NER config with `labels`.
fn ls_validate(path: &Path, labels: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../linkner-core/tests/owner_libs.py");
    let out = Command::new(venv_python())
        .arg(script)
        .arg("validate-ls")
        .arg(path)
        .args(labels)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn convert(input: &Path, extra: &[&str], output: &Path, format: &str) {
    run_ok(
        linkner()
            .arg("convert")
            .arg("--input")
            .arg(input)
            .args(extra)
            .arg("--output")
            .arg(output)
            .args(["--output-format", format])
            .output()
            .unwrap(),
    );
}

/// The `(word, tag)` lines of a CoNLL text (blank lines kept as `("", "")`).
fn conll_pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| {
            let mut c = l.split_whitespace();
            (
                c.next().unwrap_or("").to_string(),
                c.last().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn convert_round_trips_through_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let conll = dir.path().join("train.conll");
    std::fs::write(&conll, TRAIN).unwrap();
    // CoNLL → label-studio → brat → spaCy → hf → doccano → CoNLL: the same words and tags.
    let hops = [
        ("ls.json", "label-studio"),
        ("brat", "brat"),
        ("docs.spacy.jsonl", "spacy"),
        ("hf.jsonl", "hf"),
        ("doccano.jsonl", "doccano"),
        ("back.conll", "conll"),
    ];
    let mut from = conll.clone();
    for (file, format) in hops {
        let to = dir.path().join(file);
        // The formats are detected from the files: no --input-format.
        convert(&from, &[], &to, format);
        from = to;
    }
    let back = std::fs::read_to_string(&from).unwrap();
    let want: Vec<(String, String)> = conll_pairs(TRAIN)
        .into_iter()
        .filter(|p| !p.0.is_empty())
        .collect();
    let got: Vec<(String, String)> = conll_pairs(&back)
        .into_iter()
        .filter(|p| !p.0.is_empty())
        .collect();
    assert_eq!(got, want);
    let report = ls_validate(&dir.path().join("ls.json"), &["ORG", "MISC", "PER", "LOC"]);
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert_eq!(report["tasks"], 4);
}

#[test]
fn convert_reads_the_tag_from_the_column_given() {
    let dir = tempfile::tempdir().unwrap();
    let onto = dir.path().join("onto.txt");
    // word, NER tag, chunk tag: the default (tag last) would read the chunk tags.
    std::fs::write(
        &onto,
        "# doc 1\nZoë B-PER B-NP\nMüller I-PER I-NP\nflew O B-VP\nto O B-PP\n東京 B-LOC B-NP\n",
    )
    .unwrap();
    let out = dir.path().join("out.conll");
    convert(
        &onto,
        &["--input-format", "conll", "--tag-column", "2"],
        &out,
        "conll",
    );
    let got = conll_pairs(&std::fs::read_to_string(&out).unwrap());
    let tags: Vec<&str> = got
        .iter()
        .map(|p| p.1.as_str())
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(tags, ["B-PER", "I-PER", "O", "O", "B-LOC"]);
    // A column that is not there is a located error.
    let o = linkner()
        .args([
            "convert",
            "--tag-column",
            "5",
            "--input-format",
            "conll",
            "--input",
        ])
        .arg(&onto)
        .arg("--output")
        .arg(&out)
        .args(["--output-format", "conll"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("onto.txt:2:") && err.contains("column 5"),
        "{err}"
    );
}

#[test]
fn help_lists_every_closed_choice() {
    for (cmd, flag, names) in [
        (
            "convert",
            "--input-format",
            "conll, spanner, jsonl, hf, spacy, label-studio, doccano, brat",
        ),
        (
            "convert",
            "--output-format",
            "conll, jsonl, hf, spacy, label-studio, doccano, brat",
        ),
        (
            "link",
            "--input-format",
            "conll, spanner, jsonl, hf, spacy, label-studio, doccano, brat",
        ),
        (
            "annotate",
            "--output-format",
            "jsonl, text, label-studio, spacy, doccano, hf, conll, brat",
        ),
        ("annotate", "--only", "all, routed"),
        ("predict", "--offsets", "chars, utf16"),
        ("annotate", "--precision", "f32, bf16"),
        ("eval", "--tagger-kind", "span, token_classification"),
        ("link", "--llm-mode", "logprobs, constrained, free_text"),
    ] {
        // `-h` is the short help: every choice listed on the flag's line.
        let out = run_ok(linkner().args([cmd, "-h"]).output().unwrap());
        let help = String::from_utf8_lossy(&out.stdout);
        let at = help
            .find(flag)
            .unwrap_or_else(|| panic!("{cmd} --help has no {flag}:\n{help}"));
        let rest = &help[at..];
        let end = rest[1..].find("\n  -").map_or(rest.len(), |e| e + 1);
        assert!(
            rest[..end].contains(&format!("[possible values: {names}]")),
            "{cmd} {flag}:\n{}",
            &rest[..end]
        );
    }
}

#[test]
fn tune_help_groups_its_research_switches() {
    let out = run_ok(linkner().args(["tune", "--help"]).output().unwrap());
    let help = String::from_utf8_lossy(&out.stdout);
    let at = help
        .find("Search space (research switches")
        .unwrap_or_else(|| panic!("no research heading:\n{help}"));
    let (before, after) = help.split_at(at);
    for flag in [
        "--estimators",
        "--prompts",
        "--floor",
        "--step",
        "--retrieve-k",
        "--no-per-type",
        "--no-calibration",
    ] {
        assert!(
            after.contains(flag) && !before.contains(flag),
            "{flag}:\n{help}"
        );
    }
    // What a user tuning for their data needs stays in the main list.
    for flag in ["--dev", "--out", "--sample"] {
        assert!(before.contains(flag), "{flag}:\n{help}");
    }
}

#[test]
fn annotate_writes_the_routed_entities_as_label_studio_tasks() {
    let model = &common::tiny_fixture().1;
    let server = FakeServer::start_in_thread(Script::always(Fault::Ok(
        chat("person"),
        Duration::from_millis(0),
    )));
    let input = "Peter Blackburn met the EU in Japan .\nJapan beat Syria .\nit rained .\n";
    let run = |extra: &[&str]| -> String {
        let mut child = linkner()
            .env_remove("LINKNER_LLM_URL")
            .env_remove("LINKNER_MODEL")
            .args(["annotate", "--threads", "1", "--model"])
            .arg(model)
            .args([
                "--policy",
                "budget:0.5",
                "--llm-mode",
                "free_text",
                "--llm-url",
            ])
            .arg(&server.url)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = run_ok(child.wait_with_output().unwrap());
        String::from_utf8(out.stdout).unwrap()
    };
    // The JSONL annotations of the same input: which entities were routed, and their labels.
    let jsonl = run(&[]);
    let mut routed: Vec<(u64, u64, String, f64)> = Vec::new();
    let mut total = 0;
    for line in jsonl.lines() {
        let a: Value = serde_json::from_str(line).unwrap();
        for e in a["entities"].as_array().unwrap() {
            total += 1;
            if e["provenance"]["source"] != "local" {
                routed.push((
                    a["line"].as_u64().unwrap(),
                    e["entity"]["start"].as_u64().unwrap(),
                    e["entity"]["label"].as_str().unwrap().to_string(),
                    e["uncertainty"].as_f64().unwrap(),
                ));
            }
        }
    }
    assert!(
        !routed.is_empty() && routed.len() < total,
        "the test needs some entities routed and some not: {jsonl}"
    );
    let dir = tempfile::tempdir().unwrap();
    let tasks_path = dir.path().join("review.json");
    let out = run(&[
        "--output-format",
        "label-studio",
        "--only",
        "routed",
        "--output",
        tasks_path.to_str().unwrap(),
    ]);
    assert!(out.is_empty(), "{out}");
    let tasks: Value =
        serde_json::from_str(&std::fs::read_to_string(&tasks_path).unwrap()).unwrap();
    let mut got = Vec::new();
    for t in tasks.as_array().unwrap() {
        let line: u64 = t["data"]["id"]
            .as_str()
            .unwrap()
            .trim_start_matches("line")
            .parse()
            .unwrap();
        for r in t["predictions"][0]["result"].as_array().unwrap() {
            got.push((
                line,
                r["value"]["start"].as_u64().unwrap(),
                r["value"]["labels"][0].as_str().unwrap().to_string(),
                r["score"].as_f64().unwrap(),
            ));
        }
    }
    let close = |a: &[(u64, u64, String, f64)], b: &[(u64, u64, String, f64)]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && x.1 == y.1 && x.2 == y.2 && (x.3 - y.3).abs() < 1e-6)
    };
    assert!(close(&got, &routed), "{got:?} vs {routed:?}");
    // Documents without a routed entity are not tasks.
    assert!(tasks.as_array().unwrap().len() < 3);
    let report = ls_validate(&tasks_path, &["PER", "ORG", "LOC", "MISC"]);
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
}

/// The goal of the formats: a Hugging Face dataset's Parquet file (written by `datasets`, integer
/// tags named by its own metadata) trains a tagger, and a Label Studio export (UTF-16 offsets)
/// evaluates it, with no converter in between.
#[test]
fn train_on_a_hugging_face_parquet_file_and_evaluate_on_a_label_studio_export() {
    use linkner::core::io::{ConllReader, TextRecord};
    let dir = tempfile::tempdir().unwrap();
    let docs = ConllReader::new()
        .read(TRAIN.as_bytes(), "<train>")
        .unwrap();
    let sample: Vec<Value> = docs
        .iter()
        .flat_map(|d| d.sentences.iter())
        .map(|s| {
            let r = TextRecord::gold(None, s).unwrap();
            serde_json::json!({
                "text": r.text,
                "words": s.tokens.iter().map(|t| [t.start, t.end]).collect::<Vec<_>>(),
                "entities": r.entities.iter().map(|e| serde_json::json!([e.entity.start, e.entity.end, e.entity.label])).collect::<Vec<_>>(),
            })
        })
        .collect();
    let sample_path = dir.path().join("sample.json");
    std::fs::write(&sample_path, serde_json::to_string(&sample).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../linkner-core/tests/owner_libs.py");
    for (kind, file) in [("hf", "train.parquet"), ("label-studio", "export.json")] {
        let out = Command::new(venv_python())
            .arg(&script)
            .args(["write", kind])
            .arg(&sample_path)
            .arg(dir.path().join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let model = dir.path().join("model");
    common::train_tiny_from(
        &dir.path().join("train.parquet"),
        &model,
        &["--epochs", "20", "--lr", "2e-4", "--patience", "0"],
    );
    let report = common::eval_json(&model, &dir.path().join("export.json"), &[]);
    assert_eq!(report["support"], 6, "all six gold entities read: {report}");
    assert!(
        report["f1"].as_f64().unwrap() > 0.99,
        "the memorised training set, read from Label Studio: {report}"
    );
}
