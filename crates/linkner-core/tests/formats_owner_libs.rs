//! Every exchange format against the library that owns it, installed in the project's venv
//! (`scripts/setup-python.sh`): Hugging Face `datasets` (JSON lines and Parquet), spaCy (`Doc.to_json`
//! and DocBin), the Label Studio SDK and `pybrat`
//! (a brat standoff parser). Both ways, on held-out text: the WNUT-17 test set (tweets: emoji,
//! accents, odd spelling) and texts with CJK, emoji with ZWJ, combining marks, zero-width chars,
//! right-to-left script and runs of odd whitespace.
//!
//! - linkner writes → the owner library reads the same texts and entities (char offsets
//!   compared in Python's code point indices; Label Studio's UTF-16 converted there).
//! - the owner library writes → linkner reads the same entities.
//! - Label Studio: `annotate`-style predictions (uncertainty as region `score`) pass the SDK's
//!   validation of tasks and predictions against the NER labeling config.
//!
//! The venv is required: a missing one fails the test and says how to create it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions too

use std::path::{Path, PathBuf};
use std::process::Command;

use linkner_core::io::{
    ConllReader, DataFormat, ReadOptions, RecordEntity, TextRecord, WriteOptions,
    read_dataset_with, record_writer_to_path,
};
use linkner_core::{Entity, Sentence, sentence_from_text};
use serde_json::{Value, json};

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("LINKNER_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("LINKNER_CACHE").map(|c| PathBuf::from(c).join("venv")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/linkner/venv")))
        .expect("neither LINKNER_VENV, LINKNER_CACHE nor HOME is set");
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} not found: the owner-library format tests need the project venv; run \
         `bash scripts/setup-python.sh` (or set LINKNER_VENV)",
        python.display()
    );
    python
}

fn data_dir() -> PathBuf {
    std::env::var_os("LINKNER_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

fn owner(args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/owner_libs.py");
    let out = Command::new(venv_python())
        .arg(&script)
        .args(args)
        .env("HF_DATASETS_OFFLINE", "1")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("run the venv's python");
    assert!(
        out.status.success(),
        "owner_libs.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("owner_libs.py prints JSON")
}

/// Texts a tokenizer finds hard, with entities on some of their words.
const UNICODE_TEXTS: &[&str] = &[
    "Zoë Müller met José Ñúñez in Zürich .",
    "東京 と 大阪 で 山田太郎 に 会った",
    "👩\u{200d}💻 Ada Lovelace 🎉 at Google 🇫🇷 today",
    "Cafe\u{301} de Flore is in Paris",
    "Zero\u{200b}width Berlin\u{200d}er and Rome",
    "שלום from ירושלים and القاهرة .",
    "  leading  and\ttabs\nnewline  Oslo  ",
];

/// The held-out sample: WNUT-17 test sentences with entities, then the Unicode texts with every
/// other word of at least 2 chars labelled.
fn sample() -> Vec<TextRecord> {
    let path = data_dir().join("wnut17/emerging.test.annotated");
    let docs = ConllReader::new()
        .read_path(&path)
        .unwrap_or_else(|e| panic!("{e} (set LINKNER_DATA to the data folder)"));
    let mut out: Vec<TextRecord> = docs
        .iter()
        .flat_map(|d| d.sentences.iter())
        .filter(|s| !s.spans.is_empty())
        .take(60)
        .enumerate()
        .map(|(i, s)| TextRecord::gold(Some(format!("wnut-{i}")), s).unwrap())
        .collect();
    assert_eq!(out.len(), 60, "{}: too few sentences", path.display());
    let labels = ["PER", "LOC", "ORG"];
    for (i, text) in UNICODE_TEXTS.iter().enumerate() {
        let mut s: Sentence = sentence_from_text(text);
        let entities: Vec<RecordEntity> = s
            .tokens
            .iter()
            .enumerate()
            .filter(|(k, t)| k % 2 == 0 && t.end - t.start >= 2)
            .map(|(k, t)| {
                RecordEntity::from(Entity {
                    start: t.start,
                    end: t.end,
                    text: t.text.clone(),
                    label: labels[k % 3].to_string(),
                    score: None,
                })
            })
            .collect();
        s.spans.clear();
        out.push(TextRecord {
            id: Some(format!("uni-{i}")),
            text: text.to_string(),
            tokens: Some(s.tokens),
            entities,
            predicted: false,
        });
    }
    out
}

/// What a text looks like in the owner's output: text and `[start, end, label, surface]`.
fn char_view(r: &TextRecord) -> Value {
    json!({
        "text": r.text,
        "entities": r.entities.iter().map(|e| json!([e.entity.start, e.entity.end, e.entity.label, e.entity.text])).collect::<Vec<_>>(),
    })
}

/// The same for a token format: the words joined by one space.
fn word_view(r: &TextRecord) -> Value {
    let s = r.sentence().unwrap();
    let text = s.words().join(" ");
    let mut starts = Vec::new();
    let mut pos = 0;
    for t in &s.tokens {
        starts.push(pos);
        pos += t.text.chars().count() + 1;
    }
    let entities: Vec<Value> = s
        .spans
        .iter()
        .map(|sp| {
            let a = starts[sp.start];
            let last = &s.tokens[sp.end - 1];
            let b = starts[sp.end - 1] + last.text.chars().count();
            let surface: String = text.chars().skip(a).take(b - a).collect();
            json!([a, b, sp.label, surface])
        })
        .collect();
    json!({ "text": text, "entities": entities })
}

fn strip_ids(v: &Value) -> Vec<Value> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| json!({ "text": x["text"], "entities": x["entities"] }))
        .collect()
}

fn write(format: DataFormat, path: &Path, records: &[TextRecord]) {
    let mut w = record_writer_to_path(format, path, &WriteOptions::default()).unwrap();
    for r in records {
        w.write(r).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn what_linkner_writes_the_owner_libraries_read() {
    let dir = tempfile::tempdir().unwrap();
    let records = sample();
    for (format, file, view) in [
        (
            DataFormat::Hf,
            "out.jsonl",
            word_view as fn(&TextRecord) -> Value,
        ),
        (DataFormat::Spacy, "out.spacy.jsonl", char_view),
        // A path ending in .spacy: a DocBin, read back with DocBin().from_disk.
        (DataFormat::Spacy, "out.spacy", char_view),
        (DataFormat::LabelStudio, "out.ls.json", char_view),
        (DataFormat::Brat, "brat", char_view),
    ] {
        let path = dir.path().join(file);
        write(format, &path, &records);
        let kind = if file.ends_with(".spacy") {
            "spacy-docbin"
        } else {
            format.name()
        };
        let got = owner(&["read", kind, path.to_str().unwrap()]);
        let mut want: Vec<Value> = records.iter().map(view).collect();
        if format == DataFormat::Brat {
            // A folder has no order: pybrat gives the files by name (the record ids).
            let mut keyed: Vec<(String, Value)> = records
                .iter()
                .map(|r| r.id.clone().unwrap())
                .zip(want)
                .collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            let ids: Vec<Value> = got
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["id"].clone())
                .collect();
            let names: Vec<Value> = keyed.iter().map(|k| json!(k.0)).collect();
            assert_eq!(ids, names, "brat: file names");
            want = keyed.into_iter().map(|k| k.1).collect();
        }
        let got = strip_ids(&got);
        assert_eq!(got.len(), want.len(), "{format}: number of texts");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{format}: the owner library read something else");
        }
    }
}

#[test]
fn what_the_owner_libraries_write_linkner_reads() {
    let dir = tempfile::tempdir().unwrap();
    let records = sample();
    let sample: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "text": r.text,
                "words": r.tokens.as_ref().unwrap().iter().map(|t| json!([t.start, t.end])).collect::<Vec<_>>(),
                "entities": r.entities.iter().map(|e| json!([e.entity.start, e.entity.end, e.entity.label])).collect::<Vec<_>>(),
            })
        })
        .collect();
    let sample_path = dir.path().join("sample.json");
    std::fs::write(&sample_path, serde_json::to_string(&sample).unwrap()).unwrap();
    for (kind, file, format, words) in [
        ("hf", "train.parquet", DataFormat::Hf, true),
        ("hf-json", "json/train.jsonl", DataFormat::Hf, true),
        ("spacy", "docs.jsonl", DataFormat::Spacy, false),
        ("spacy-docbin", "train.spacy", DataFormat::Spacy, false),
        (
            "label-studio",
            "export.json",
            DataFormat::LabelStudio,
            false,
        ),
    ] {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let wrote = owner(&[
            "write",
            kind,
            sample_path.to_str().unwrap(),
            path.to_str().unwrap(),
        ]);
        // Detected from the file, as a user who names no format gets it.
        assert_eq!(
            DataFormat::detect(&path).unwrap(),
            format,
            "{kind}: detected format"
        );
        let docs = read_dataset_with(&path, None, &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let read: Vec<Value> = docs
            .iter()
            .flat_map(|d| d.sentences.iter())
            .map(|s| {
                let r = TextRecord::gold(None, s).unwrap();
                if words { word_view(&r) } else { char_view(&r) }
            })
            .collect();
        let wrote = strip_ids(&wrote);
        assert_eq!(read.len(), wrote.len(), "{kind}: number of texts");
        for (r, w) in read.iter().zip(&wrote) {
            assert_eq!(r, w, "{kind}: linkner read something else than was written");
        }
    }
}

#[test]
fn label_studio_predictions_pass_the_sdk_validation() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = sample();
    for (i, r) in records.iter_mut().enumerate() {
        r.predicted = true;
        for (k, e) in r.entities.iter_mut().enumerate() {
            e.uncertainty = Some(((i * 7 + k * 3) % 10) as f64 / 10.0);
            e.entity.score = Some(0.5);
        }
    }
    let path = dir.path().join("predictions.json");
    write(DataFormat::LabelStudio, &path, &records);
    let labels = [
        "PER",
        "LOC",
        "ORG",
        "person",
        "location",
        "corporation",
        "product",
        "creative-work",
        "group",
    ];
    let mut args = vec!["validate-ls", path.to_str().unwrap()];
    args.extend(labels);
    let report = owner(&args);
    assert_eq!(report["tasks"], json!(records.len()));
    assert_eq!(
        report["errors"],
        json!([]),
        "the SDK rejects linkner's tasks"
    );
    // The check can fail: a label outside the config is reported.
    let report = owner(&["validate-ls", path.to_str().unwrap(), "PER"]);
    assert_ne!(report["errors"], json!([]));
    // Each region's score is the entity's uncertainty, the prediction's the task's highest.
    let tasks: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let p = &tasks[0]["predictions"][0];
    let scores: Vec<f64> = p["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    let want: Vec<f64> = records[0]
        .entities
        .iter()
        .map(|e| e.uncertainty.unwrap())
        .collect();
    assert_eq!(scores, want);
    assert_eq!(
        p["score"].as_f64().unwrap(),
        want.iter().cloned().fold(0.0, f64::max)
    );
}
