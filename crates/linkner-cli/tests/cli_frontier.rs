//! `linkner report --frontier-only` on a hand-made tuning record: no tagger, LLM or data. The
//! Markdown table must hold the frontier's numbers, and the plot must be a PNG.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{linkner, run_ok, stderr};

/// 20 dev sentences, 40 local entities: `conf` routes 10 at the floor, `ent` 20, so the pass
/// made 30 calls. Per call, 1,000 / 20 = 50 calls per 1,000 sentences.
const RECORD: &str = r#"{
  "dev": "dev.txt", "sentences": 20, "sentences_in_file": 50, "floor": 0.05,
  "local_f1": 0.70,
  "best": {"prompt": "plain", "estimator": "ent", "calibrate": false,
           "policy": {"type": "threshold", "threshold": 0.4},
           "merge": {"type": "fuse", "weight": 0.6}, "f1": 0.80, "routed_fraction": 0.3},
  "trials": [
    {"prompt": "plain", "estimator": "ent", "calibrate": false,
     "policy": {"type": "threshold", "threshold": 0.4},
     "merge": {"type": "fuse", "weight": 0.6}, "f1": 0.80, "routed_fraction": 0.3},
    {"prompt": "plain", "estimator": "ent", "calibrate": true,
     "policy": {"type": "threshold", "threshold": 0.05},
     "merge": {"type": "replace"}, "f1": 0.79, "routed_fraction": 0.5},
    {"prompt": "plain", "estimator": "conf", "calibrate": false,
     "policy": {"type": "threshold", "threshold": 0.3},
     "merge": {"type": "replace"}, "f1": 0.76, "routed_fraction": 0.15},
    {"prompt": "plain", "estimator": "conf", "calibrate": false,
     "policy": {"type": "threshold", "threshold": 0.2},
     "merge": {"type": "replace"}, "f1": 0.755, "routed_fraction": 0.2},
    {"prompt": "plain", "estimator": "conf", "calibrate": false,
     "policy": {"type": "threshold", "threshold": 0.05},
     "merge": {"type": "replace"}, "f1": 0.74, "routed_fraction": 0.25},
    {"prompt": "plain", "estimator": "conf", "calibrate": false,
     "policy": {"type": "threshold", "threshold": 0.5},
     "merge": {"type": "replace"}, "f1": 0.72, "routed_fraction": 0.05},
    {"prompt": "plain", "estimator": "conf", "calibrate": false,
     "policy": {"type": "never"},
     "merge": {"type": "replace"}, "f1": 0.70, "routed_fraction": 0.0}
  ],
  "llm_calls": {"plain": [30, 25]},
  "wall_seconds": 12.5,
  "config": "configs/set.json"
}"#;

/// Asserts that `path` is a PNG of `width` × `height`: the signature, an IHDR chunk first and
/// an IEND chunk last.
fn assert_png(path: &Path, width: u32, height: u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is no PNG",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), (width, height));
    assert_eq!(&bytes[bytes.len() - 8..bytes.len() - 4], b"IEND");
    assert!(bytes.len() > 5_000, "a suspiciously small plot");
}

/// The table rows of the Markdown, as cells.
fn rows(md: &str) -> Vec<Vec<String>> {
    md.lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| estimator"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn frontier_only_writes_the_table_and_the_plot_from_a_tuning_record() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("tuning");
    std::fs::create_dir(&records).unwrap();
    std::fs::write(records.join("twitterner.json"), RECORD).unwrap();
    std::fs::write(records.join("notes.txt"), "not a record").unwrap();
    // The default --out and --plots: frontier.md and plots/ in the working directory (no
    // folder of this repository is assumed).
    let out = run_ok(
        linkner()
            .current_dir(dir.path())
            .args(["dev", "report", "--frontier-only", "--tune-json", "tuning"])
            .env_remove("LINKNER_LLM_URL")
            .output()
            .unwrap(),
    );
    assert!(
        stderr(&out).contains("frontier written to frontier.md"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("results.md").exists());
    assert!(!dir.path().join("docs").exists());
    let md = std::fs::read_to_string(dir.path().join("frontier.md")).unwrap();
    assert!(
        md.contains("### TwitterNER (`tuning/twitterner.json`: 20 dev sentences, 40 local entities, local dev F1 70.00)"),
        "{md}"
    );
    assert!(md.contains("![TwitterNER: dev F1 vs LLM calls](plots/frontier-twitterner.png)"));
    assert!(md.contains("| prompt tokens |") && md.contains("not recorded"));
    // estimator, calls per 1k, F1, Δ, routed, prompt tokens, prompt (then policy, merge).
    let got: Vec<Vec<String>> = rows(&md)
        .into_iter()
        .map(|r| r.into_iter().take(7).collect())
        .collect();
    let want: Vec<Vec<&str>> = vec![
        vec![
            "conf",
            "0.0",
            "70.00",
            "+0.00",
            "0 of 40 (0.0 %)",
            "not recorded",
            "—",
        ],
        vec![
            "conf",
            "100.0",
            "72.00",
            "+2.00",
            "2 of 40 (5.0 %)",
            "not recorded",
            "plain, calibration off",
        ],
        vec![
            "conf",
            "300.0",
            "76.00",
            "+6.00",
            "6 of 40 (15.0 %)",
            "not recorded",
            "plain, calibration off",
        ],
        vec![
            "ent",
            "0.0",
            "70.00",
            "+0.00",
            "0 of 40 (0.0 %)",
            "not recorded",
            "—",
        ],
        vec![
            "ent",
            "600.0",
            "80.00",
            "+10.00",
            "12 of 40 (30.0 %)",
            "not recorded",
            "plain, calibration off",
        ],
    ];
    assert_eq!(got, want, "{md}");
    // Route nothing, and the tuned settings' policy and merge.
    assert!(md.contains("| route nothing | — |"));
    assert!(md.contains("| `threshold:0.4` | `fuse:0.6` |"), "{md}");
    assert_png(&dir.path().join("plots/frontier-twitterner.png"), 900, 600);
}

#[test]
fn dev_report_assumes_no_repository_layout() {
    let dir = tempfile::tempdir().unwrap();
    // The frontier needs its records named: no `configs/tuning` is guessed.
    let out = linkner()
        .current_dir(dir.path())
        .args(["dev", "report", "--frontier-only"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--tune-json"), "{}", stderr(&out));
    // The whole-set report needs its configs named.
    let out = linkner()
        .current_dir(dir.path())
        .args(["dev", "report"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--configs"), "{}", stderr(&out));
    // And its data: no `../shared/data` is guessed when LINKNER_DATA is unset.
    std::fs::create_dir(dir.path().join("cfg")).unwrap();
    let out = linkner()
        .current_dir(dir.path())
        .args(["dev", "report", "--configs", "cfg"])
        .env_remove("LINKNER_DATA")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pass --data-dir DIR or set LINKNER_DATA"),
        "{}",
        stderr(&out)
    );
    // The benchmarks too: a tagger benchmark without --data names the variable.
    let out = linkner()
        .current_dir(dir.path())
        .args(["dev", "bench", "train", "--no-python", "--encoder", "enc"])
        .env_remove("LINKNER_DATA")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pass --data FILE or set LINKNER_DATA"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("results.md").exists());
}

#[test]
fn frontier_only_honours_sets_out_and_plots_and_refuses_a_record_without_calls() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.json"), RECORD).unwrap();
    std::fs::write(
        dir.path().join("b.json"),
        RECORD.replace("[30, 25]", "[31, 25]"),
    )
    .unwrap();
    let md = dir.path().join("out/frontier.md");
    let plots = dir.path().join("pngs");
    let json = dir.path().join("frontier.json");
    run_ok(
        linkner()
            .args(["report", "--frontier-only", "--sets", "a", "--tune-json"])
            .arg(dir.path())
            .arg("--out")
            .arg(&md)
            .arg("--plots")
            .arg(&plots)
            .arg("--json-out")
            .arg(&json)
            .output()
            .unwrap(),
    );
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.contains("### a ("), "{text}");
    assert!(!text.contains("### b ("));
    assert_png(&plots.join("frontier-a.png"), 900, 600);
    assert!(!plots.join("frontier-b.png").exists());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v[0]["frontier"]["entities"], 40);
    assert_eq!(v[0]["frontier"]["estimators"][1]["points"][1]["calls"], 12);
    // 31 calls cannot be 10 + 20 routed of a whole number of entities.
    let bad = linkner()
        .args(["report", "--frontier-only", "--sets", "b", "--tune-json"])
        .arg(dir.path())
        .arg("--out")
        .arg(&md)
        .arg("--plots")
        .arg(&plots)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("not a whole number"),
        "{}",
        stderr(&bad)
    );
    // A set with no record is an error, not an empty report.
    let missing = linkner()
        .args(["report", "--frontier-only", "--sets", "c", "--tune-json"])
        .arg(dir.path())
        .arg("--out")
        .arg(&md)
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("no such tuning record"));
}
