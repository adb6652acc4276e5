//! `linkner train`, `predict` and `eval` end to end on a few CoNLL sentences with the MiniLM
//! encoder of the venv (one short epoch: this checks the plumbing, not the accuracy).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TRAIN, linkner, train_tiny};

#[test]
fn train_predict_eval() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.txt");
    std::fs::write(&data, TRAIN).unwrap();
    let model = dir.path().join("model");
    let dev = data.to_str().unwrap();
    let out = train_tiny(&data, &model, &["--epochs", "1", "--dev", dev]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("epoch 1:"), "{log}");
    for f in ["model.safetensors", "tagger.json", "tokenizer.json"] {
        assert!(model.join(f).is_file(), "{f} missing");
    }

    // Raw text in, JSONL with candidates out; offsets index the input line.
    let text = dir.path().join("in.txt");
    std::fs::write(&text, "Zoë met Peter Blackburn in Brussels.\n東京 is big\n").unwrap();
    let out = linkner()
        .args([
            "predict",
            "--threads",
            "1",
            "--overlapping",
            "--mc-samples",
            "2",
        ])
        .arg("--model")
        .arg(&model)
        .arg("--input")
        .arg(&text)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["text"], "Zoë met Peter Blackburn in Brussels.");
    let words: Vec<&str> = lines[0]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        words,
        ["Zoë", "met", "Peter", "Blackburn", "in", "Brussels", "."]
    );
    for line in &lines {
        let chars: Vec<char> = line["text"].as_str().unwrap().chars().collect();
        for c in line["candidates"].as_array().unwrap() {
            let (s, e) = (
                c["entity"]["start"].as_u64().unwrap() as usize,
                c["entity"]["end"].as_u64().unwrap() as usize,
            );
            assert_eq!(
                c["entity"]["text"].as_str().unwrap(),
                chars[s..e].iter().collect::<String>()
            );
            assert_eq!(c["probs"].as_array().unwrap().len(), 5);
            assert_eq!(c["mc_probs"].as_array().unwrap().len(), 2);
        }
    }

    // CoNLL in, CoNLL out: one tag per word.
    let out = linkner()
        .args([
            "predict",
            "--input-format",
            "conll",
            "--output-format",
            "conll",
            "--threads",
            "1",
        ])
        .arg("--model")
        .arg(&model)
        .arg("--input")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conll = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        conll
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("-DOCSTART-"))
            .count(),
        12
    );

    // eval --json: the scorer's object.
    let out = linkner()
        .args(["eval", "--json", "--format", "conll", "--threads", "1"])
        .arg("--model")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["support"], 6);
    let f1 = v["f1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&f1));

    // A missing model folder is an error, not a panic.
    let out = linkner()
        .args(["eval", "--data"])
        .arg(&data)
        .arg("--model")
        .arg(dir.path().join("nope"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("error"));
}
