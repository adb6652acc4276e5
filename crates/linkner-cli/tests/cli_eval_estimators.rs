//! `linkner eval --estimator all --json --plot` end to end: a tiny tagger trained for a few short
//! epochs on a handful of CoNLL sentences (this checks the plumbing, not the accuracy).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

mod common;

use common::{TRAIN, linkner, train_tiny};

/// Trains a tagger with `loss` for `epochs` epochs (a high learning rate and a light
/// non-entity weight, so that a few epochs on four sentences already predict entities).
fn train(dir: &Path, data: &Path, loss: &str, epochs: usize) -> PathBuf {
    let model = dir.join(format!("model-{loss}"));
    let epochs = epochs.to_string();
    let dev = data.to_str().unwrap();
    train_tiny(
        data,
        &model,
        &[
            "--lr",
            "1e-3",
            "--non-entity-weight",
            "0.1",
            "--patience",
            "100",
            "--loss",
            loss,
            "--epochs",
            &epochs,
            "--dev",
            dev,
        ],
    );
    model
}

fn eval(model: &Path, data: &Path, extra: &[&str]) -> std::process::Output {
    linkner()
        .args(["eval", "--format", "conll", "--threads", "1"])
        .args(extra)
        .arg("--model")
        .arg(model)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap()
}

fn check_report(v: &serde_json::Value) {
    let name = v["name"].as_str().unwrap();
    match &v["auroc"] {
        serde_json::Value::Null => {}
        a => {
            let a = a.as_f64().unwrap();
            assert!((0.0..=1.0).contains(&a), "{name}: auroc {a}");
        }
    }
    let aurc = v["aurc"].as_f64().unwrap();
    assert!(aurc >= 0.0, "{name}: aurc {aurc}");
    let ece = v["ece"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ece), "{name}: ece {ece}");
    let curve = v["curve"].as_array().unwrap();
    assert!(!curve.is_empty(), "{name}: empty curve");
    let xs: Vec<f64> = curve
        .iter()
        .map(|p| p["routed_fraction"].as_f64().unwrap())
        .collect();
    assert!(xs.windows(2).all(|w| w[0] <= w[1]), "{name}: {xs:?}");
    assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)), "{name}: {xs:?}");
    for p in curve {
        for key in ["local_f1", "oracle_f1"] {
            let f = p[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&f), "{name}: {key} {f}");
        }
    }
}

#[test]
fn eval_estimators_json_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.txt");
    std::fs::write(&data, TRAIN).unwrap();
    // Evidential-trained, so that every built-in (the evidential ones included) is evaluated.
    let model = train(dir.path(), &data, "evidential", 6);
    let png = dir.path().join("rc.png");
    let out = linkner()
        .args(["eval", "--format", "conll", "--threads", "1", "--json"])
        .args(["--estimator", "all", "--mc-samples", "3"])
        .arg("--model")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--plot")
        .arg(&png)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The scorer's fields are kept.
    assert_eq!(v["support"], 6);
    let reports = v["estimators"].as_array().unwrap();
    let skipped = v["skipped_estimators"].as_array().unwrap();
    let mut names: Vec<&str> = reports
        .iter()
        .chain(skipped)
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "confidence",
            "entropy",
            "evidential:dissonance",
            "evidential:vacuity",
            "mc_dropout:mutual_information",
            "mc_dropout:predictive_entropy",
            "mc_dropout:variance",
        ]
    );
    // An evidential-trained model that predicts entities: every estimator is evaluated, none
    // is skipped (all of them skipped would leave nothing checked below).
    assert!(skipped.is_empty(), "estimators skipped: {skipped:?}");
    assert_eq!(reports.len(), 7, "{reports:?}");
    assert!(v["predicted"].as_u64().unwrap() > 0, "{v}");
    for r in reports {
        check_report(r);
    }
    let timing = &v["timing"];
    assert_eq!(timing["mc_samples"], 3);
    assert!(timing["deterministic_ms_per_sentence"].as_f64().unwrap() > 0.0);
    assert!(timing["mc_ms_per_sentence"].as_f64().unwrap() > 0.0);

    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.len() > 100);
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");

    // A cross-entropy model: the evidential estimators are skipped with a note, not an error.
    let ce = train(dir.path(), &data, "ce", 1);
    let out = eval(&ce, &data, &["--estimator", "entropy,evidential"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("skipped evidential:vacuity"), "{table}");
    let out = eval(
        &ce,
        &data,
        &["--json", "--estimator", "evidential:dissonance"],
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["estimators"].as_array().unwrap().len(), 0);
    assert_eq!(v["skipped_estimators"][0]["name"], "evidential:dissonance");

    // An unknown estimator is an error.
    let out = eval(&ce, &data, &["--estimator", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown estimator"));
}
