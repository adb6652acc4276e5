//! `linkner score`, run as the built binary: every gold file of the data folder against itself
//! (F1 1.0 and the entity counts its SOURCE.md states), cross-format comparisons, a JSONL
//! prediction file, and the error cases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::path::PathBuf;
use std::process::{Command, Output};

use linkner::core::io::{read_conll, write_jsonl};
use linkner::core::score::{Mode, score_documents};
use serde_json::Value;

fn data_dir() -> PathBuf {
    match std::env::var_os("LINKNER_DATA") {
        Some(d) => PathBuf::from(d),
        None => std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../../../shared/data"),
    }
}

fn data(rel: &str) -> PathBuf {
    let p = data_dir().join(rel);
    assert!(
        p.exists(),
        "{} not found: the tests need the datasets (set LINKNER_DATA to the shared data folder)",
        p.display()
    );
    p
}

fn linkner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_linkner"))
        .args(args)
        .output()
        .expect("the linkner binary runs")
}

fn score_json(args: &[&str]) -> Value {
    let mut all = vec!["score", "--json"];
    all.extend_from_slice(args);
    let out = linkner(&all);
    assert!(
        out.status.success(),
        "linkner {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "not one JSON line: {stdout}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"))
}

/// Every gold file and the entity counts its SOURCE.md gives (total, then per type).
/// Entity counts per type.
type TypeCounts = &'static [(&'static str, u64)];

const GOLD: &[(&str, usize, TypeCounts)] = &[
    ("conll03/conll/train.txt", 23_499, CONLL_TRAIN),
    ("conll03/conll/dev.txt", 5_942, CONLL_DEV),
    ("conll03/conll/test.txt", 5_648, CONLL_TEST),
    ("conll03/conll_4col/train.txt", 23_499, CONLL_TRAIN),
    ("conll03/conll_4col/dev.txt", 5_942, CONLL_DEV),
    ("conll03/conll_4col/test.txt", 5_648, CONLL_TEST),
    ("conll03/conllpp/conllpp_test.txt", 5_702, CONLLPP),
    ("conll03/robustness_conll/typos/test.txt", 5_559, TYPOS),
    ("conll03/robustness_conll/typos/ori_test.txt", 5_559, TYPOS),
    ("conll03/robustness_conll/oov/test.txt", 5_648, CONLL_TEST),
    (
        "conll03/robustness_conll/oov/ori_test.txt",
        5_648,
        CONLL_TEST,
    ),
    ("conll03/spanner/spanner.train", 23_499, CONLL_TRAIN),
    ("conll03/spanner/spanner.dev", 5_942, CONLL_DEV),
    ("conll03/spanner/spanner.test", 5_648, CONLL_TEST),
    ("conll03/spanner/typos/spanner.test", 5_559, TYPOS),
    ("conll03/spanner/oov/spanner.test", 5_648, CONLL_TEST),
    ("conll03/spanner/ood/spanner.test", 3_558, WIKIGOLD),
    ("wikigold/wikigold.conll.txt", 3_558, WIKIGOLD),
    ("wnut17/wnut17train.conll", 1_975, WNUT_TRAIN),
    ("wnut17/emerging.dev.conll", 836, WNUT_DEV),
    ("wnut17/emerging.test.annotated", 1_079, WNUT_TEST),
    ("twitterner/train.txt", 6_363, TWITTER_TRAIN),
    ("twitterner/dev.txt", 1_600, TWITTER_DEV),
    ("twitterner/test.txt", 5_215, TWITTER_TEST),
];

const CONLL_TRAIN: TypeCounts = &[("PER", 6600), ("LOC", 7140), ("ORG", 6321), ("MISC", 3438)];
const CONLL_DEV: TypeCounts = &[("PER", 1842), ("LOC", 1837), ("ORG", 1341), ("MISC", 922)];
const CONLL_TEST: TypeCounts = &[("PER", 1617), ("LOC", 1668), ("ORG", 1661), ("MISC", 702)];
const TYPOS: TypeCounts = &[("PER", 1590), ("LOC", 1655), ("ORG", 1625), ("MISC", 689)];
const CONLLPP: TypeCounts = &[("PER", 1618), ("LOC", 1646), ("ORG", 1715), ("MISC", 723)];
const WIKIGOLD: TypeCounts = &[("PER", 934), ("LOC", 1014), ("ORG", 898), ("MISC", 712)];
const WNUT_TRAIN: TypeCounts = &[
    ("person", 660),
    ("location", 548),
    ("group", 264),
    ("corporation", 221),
    ("product", 142),
    ("creative-work", 140),
];
const WNUT_DEV: TypeCounts = &[
    ("person", 470),
    ("location", 74),
    ("group", 39),
    ("corporation", 34),
    ("product", 114),
    ("creative-work", 105),
];
const WNUT_TEST: TypeCounts = &[
    ("person", 429),
    ("location", 150),
    ("group", 165),
    ("corporation", 66),
    ("product", 127),
    ("creative-work", 142),
];
const TWITTER_TRAIN: TypeCounts = &[("PER", 2285), ("LOC", 2135), ("ORG", 958), ("OTHER", 985)];
const TWITTER_DEV: TypeCounts = &[("PER", 567), ("LOC", 543), ("ORG", 251), ("OTHER", 239)];
const TWITTER_TEST: TypeCounts = &[("PER", 1873), ("LOC", 1720), ("ORG", 860), ("OTHER", 762)];

#[test]
fn every_gold_file_scores_one_against_itself() {
    for &(rel, total, per_type) in GOLD {
        let path = data(rel);
        let p = path.to_str().unwrap();
        let v = score_json(&["--gold", p, "--pred", p]);
        for k in ["precision", "recall", "f1"] {
            assert_eq!(v[k], 1.0, "{rel}: {k} in {v}");
        }
        assert_eq!(v["support"], total as u64, "{rel}: support");
        assert_eq!(v["correct"], total as u64, "{rel}: correct");
        let labels = v["per_label"].as_object().unwrap();
        assert_eq!(labels.len(), per_type.len(), "{rel}: types {labels:?}");
        for &(ty, n) in per_type {
            assert_eq!(v["per_label"][ty]["support"], n, "{rel}: {ty}");
            assert_eq!(v["per_label"][ty]["f1"], 1.0, "{rel}: {ty}");
        }
    }
}

#[test]
fn formats_agree_with_each_other() {
    // The spanner files hold exactly the CoNLL files' entities (SOURCE.md).
    let pairs = [
        ("conll03/conll/test.txt", "conll03/spanner/spanner.test"),
        ("conll03/conll_4col/dev.txt", "conll03/spanner/spanner.dev"),
        (
            "wikigold/wikigold.conll.txt",
            "conll03/spanner/ood/spanner.test",
        ),
        (
            "conll03/robustness_conll/oov/test.txt",
            "conll03/spanner/oov/spanner.test",
        ),
    ];
    for (gold, pred) in pairs {
        let (g, p) = (data(gold), data(pred));
        let v = score_json(&["--gold", g.to_str().unwrap(), "--pred", p.to_str().unwrap()]);
        assert_eq!(v["f1"], 1.0, "{gold} vs {pred}: {v}");
    }
    // CoNLL++ corrects 186 sentences of the same test set: close to, but below, 1.0.
    let (g, p) = (
        data("conll03/conll/test.txt"),
        data("conll03/conllpp/conllpp_test.txt"),
    );
    let v = score_json(&["--gold", g.to_str().unwrap(), "--pred", p.to_str().unwrap()]);
    let f1 = v["f1"].as_f64().unwrap();
    assert!(f1 > 0.95 && f1 < 1.0, "conll++ vs conll: {v}");
}

#[test]
fn strict_mode_drops_ill_formed_gold_chunks() {
    // TwitterNER has orphan `I-` tags (137 in test): strict IOB2 does not count them.
    let p = data("twitterner/test.txt");
    let p = p.to_str().unwrap();
    let v = score_json(&[
        "--gold", p, "--pred", p, "--mode", "strict", "--scheme", "iob2",
    ]);
    let support = v["support"].as_u64().unwrap();
    assert!(support < 5_215 && support > 5_000, "{v}");
    assert_eq!(v["f1"], 1.0);
    // CoNLL-03 is clean IOB2: strict mode finds every entity.
    let p = data("conll03/conll/test.txt");
    let p = p.to_str().unwrap();
    let v = score_json(&["--gold", p, "--pred", p, "--mode", "strict"]);
    assert_eq!(v["support"], 5_648);
}

#[test]
fn jsonl_predictions_score_like_the_library() {
    // Gold CoNLL test set; predictions: the same sentences with every 7th entity dropped and
    // every 5th relabelled, written as JSONL (spans, no tags).
    let gold_path = data("conll03/conll/test.txt");
    let gold = read_conll(&gold_path).unwrap();
    let mut pred = gold.clone();
    let mut k = 0usize;
    for s in pred.iter_mut().flat_map(|d| d.sentences.iter_mut()) {
        s.tags = None;
        s.spans.retain_mut(|span| {
            k += 1;
            if k.is_multiple_of(5) {
                span.label = if span.label == "PER" { "ORG" } else { "PER" }.into();
            }
            !k.is_multiple_of(7)
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let pred_path = dir.path().join("pred.jsonl");
    write_jsonl(&pred_path, &pred).unwrap();
    let want = score_documents(&gold, &pred, Mode::Conlleval).unwrap();
    assert!(want.f1 < 0.9 && want.f1 > 0.5, "{want:?}");

    let v = score_json(&[
        "--gold",
        gold_path.to_str().unwrap(),
        "--pred",
        pred_path.to_str().unwrap(),
    ]);
    assert_same_scores(&v, &serde_json::to_value(&want).unwrap());

    // The table names every type, the micro line and the counts.
    let out = linkner(&[
        "score",
        "--gold",
        gold_path.to_str().unwrap(),
        "--pred",
        pred_path.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "PER",
        "LOC",
        "ORG",
        "MISC",
        "micro avg",
        "support",
        "(jsonl)",
    ] {
        assert!(table.contains(needle), "`{needle}` missing from:\n{table}");
    }
    assert!(
        table.contains(&format!("{:.4}", want.f1)),
        "micro F1 {:.4} missing from:\n{table}",
        want.f1
    );
}

/// Equal counts and types, scores equal up to float parsing.
fn assert_same_scores(got: &Value, want: &Value) {
    let close = |a: &Value, b: &Value| {
        for k in ["precision", "recall", "f1"] {
            let (x, y) = (a[k].as_f64().unwrap(), b[k].as_f64().unwrap());
            assert!((x - y).abs() < 1e-12, "{k}: {got} != {want}");
        }
        for k in ["support", "predicted", "correct"] {
            assert_eq!(a[k], b[k], "{k}: {got} != {want}");
        }
    };
    close(got, want);
    let (g, w) = (
        got["per_label"].as_object().unwrap(),
        want["per_label"].as_object().unwrap(),
    );
    assert_eq!(g.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>());
    for (k, v) in g {
        close(v, &w[k]);
    }
}

fn assert_fails(args: &[&str], needles: &[&str]) {
    let out = linkner(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    for n in needles {
        assert!(
            stderr.contains(n),
            "{args:?}: `{n}` missing from stderr: {stderr}"
        );
    }
}

#[test]
fn errors_are_messages_not_panics() {
    let gold = data("conll03/conll/test.txt");
    let gold = gold.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.txt");
    assert_fails(
        &["score", "--gold", gold, "--pred", missing.to_str().unwrap()],
        &["nope.txt"],
    );

    // Different numbers of sentences.
    let dev = data("conll03/conll/dev.txt");
    assert_fails(
        &["score", "--gold", gold, "--pred", dev.to_str().unwrap()],
        &["3453 sentences", "3250 sentences"],
    );

    // Same sentence count, one word missing in the second sentence.
    let g = dir.path().join("g.txt");
    let p = dir.path().join("p.txt");
    std::fs::write(&g, "EU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn I-PER\n").unwrap();
    std::fs::write(&p, "EU B-ORG\nrejects O\n\nPeter B-PER\n").unwrap();
    assert_fails(
        &[
            "score",
            "--gold",
            g.to_str().unwrap(),
            "--pred",
            p.to_str().unwrap(),
        ],
        &["sentence 2", "2 words", "1"],
    );

    // A BIOES tag under strict IOB2.
    std::fs::write(&p, "EU S-ORG\nrejects O\n\nPeter B-PER\nBlackburn E-PER\n").unwrap();
    assert_fails(
        &[
            "score",
            "--gold",
            g.to_str().unwrap(),
            "--pred",
            p.to_str().unwrap(),
            "--mode",
            "strict",
        ],
        &["S-ORG", "iob2"],
    );

    // A malformed prediction file names its line.
    std::fs::write(&p, "EU B-ORG\nrejects\n").unwrap();
    assert_fails(
        &[
            "score",
            "--gold",
            g.to_str().unwrap(),
            "--pred",
            p.to_str().unwrap(),
        ],
        &["p.txt:2"],
    );
}

/// The `linkner` binary's figures against Python `seqeval` (the venv's, pinned 1.2.2) directly,
/// not against the library's scorer: the whole WNUT-17 test set with predictions made from its
/// gold tags by a fixed perturbation (every 3rd entity relabelled, every 5th shortened or
/// lengthened by a word, every 7th dropped, a spurious entity every 40 words).
#[test]
fn the_binary_agrees_with_seqeval_on_a_whole_test_set() {
    let gold_path = data("wnut17/emerging.test.annotated");
    let docs = read_conll(&gold_path).unwrap();
    let types = [
        "person",
        "location",
        "corporation",
        "product",
        "creative-work",
        "group",
    ];
    let dir = tempfile::tempdir().unwrap();
    let (mut gold_lines, mut pred_lines) = (String::new(), String::new());
    let mut k = 0usize;
    let mut word = 0usize;
    for s in docs.iter().flat_map(|d| d.sentences.iter()) {
        let gold = s.tags.clone().unwrap();
        let mut pred = vec!["O".to_string(); gold.len()];
        for span in &s.spans {
            k += 1;
            if k.is_multiple_of(7) {
                continue;
            }
            let label = if k.is_multiple_of(3) {
                types[(types.iter().position(|t| *t == span.label).unwrap_or(0) + 1) % 6]
            } else {
                span.label.as_str()
            };
            let end = match k % 5 {
                0 if span.end - span.start > 1 => span.end - 1,
                0 => (span.end + 1).min(gold.len()),
                _ => span.end,
            };
            for (i, tag) in pred.iter_mut().enumerate().take(end).skip(span.start) {
                let p = if i == span.start { "B" } else { "I" };
                *tag = format!("{p}-{label}");
            }
        }
        for (i, p) in pred.iter_mut().enumerate() {
            word += 1;
            if word.is_multiple_of(40) && p == "O" && (i == 0 || gold[i - 1] == "O") {
                *p = "B-product".to_string();
            }
        }
        for ((w, g), p) in s.words().iter().zip(&gold).zip(&pred) {
            gold_lines.push_str(&format!("{w}\t{g}\n"));
            pred_lines.push_str(&format!("{w}\t{p}\n"));
        }
        gold_lines.push('\n');
        pred_lines.push('\n');
    }
    let (g, p) = (dir.path().join("gold.conll"), dir.path().join("pred.conll"));
    std::fs::write(&g, &gold_lines).unwrap();
    std::fs::write(&p, &pred_lines).unwrap();
    let out = linkner(&[
        "score",
        "--json",
        "--gold",
        g.to_str().unwrap(),
        "--pred",
        p.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours: Value = serde_json::from_slice(&out.stdout).unwrap();
    let venv = std::env::var_os("LINKNER_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("LINKNER_CACHE").map(|c| PathBuf::from(c).join("venv")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/linkner/venv")))
        .unwrap();
    let script = r#"
import json, sys
from seqeval.metrics import classification_report
def tags(path):
    out, cur = [], []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line:
            if cur: out.append(cur); cur = []
            continue
        cur.append(line.split("\t")[-1])
    if cur: out.append(cur)
    return out
r = classification_report(tags(sys.argv[1]), tags(sys.argv[2]), output_dict=True, digits=10)
json.dump(r, sys.stdout, default=lambda o: o.item())
"#;
    let py = Command::new(venv.join("bin/python"))
        .args(["-c", script, g.to_str().unwrap(), p.to_str().unwrap()])
        .output()
        .expect("the venv's python (scripts/setup-python.sh)");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let theirs: Value = serde_json::from_slice(&py.stdout).unwrap();
    let close = |a: &Value, b: &Value| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-9;
    let micro = &theirs["micro avg"];
    for (ours_key, their_key) in [
        ("precision", "precision"),
        ("recall", "recall"),
        ("f1", "f1-score"),
    ] {
        assert!(
            close(&ours[ours_key], &micro[their_key]),
            "{ours_key}: linkner {} vs seqeval {}",
            ours[ours_key],
            micro[their_key]
        );
    }
    assert_eq!(ours["support"].as_u64(), micro["support"].as_u64());
    let f1 = ours["f1"].as_f64().unwrap();
    assert!(
        f1 > 0.3 && f1 < 0.9,
        "the perturbation must leave errors: F1 {f1}"
    );
    for t in types {
        let (o, s) = (&ours["per_label"][t], &theirs[t]);
        assert!(close(&o["f1"], &s["f1-score"]), "{t}: {o} vs {s}");
        assert_eq!(o["support"].as_u64(), s["support"].as_u64(), "{t}");
    }
}
