//! Smoke tests of the commands that produce the published figures, on tiny data with a tiny
//! tagger trained on four CoNLL sentences: `linkner bench tagger` and `linkner bench train`
//! (with `--no-python`, and with the Python/PyTorch peer of the venv), and `linkner report`
//! against the real local llama.cpp server (the report needs an LLM; there is no oracle mode).
//! They check what the outputs say, not only that the commands exit 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../../linkner-llm/tests/support/local_server.rs"]
mod local_server;

use std::path::{Path, PathBuf};

use common::{json_ok, linkner, minilm};
use serde_json::Value;

/// The data file and a tagger trained on it (once for the whole file).
fn fixture() -> &'static (PathBuf, PathBuf) {
    common::tiny_fixture()
}

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("LINKNER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("LINKNER_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/linkner")
                });
            cache.join("venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "{} missing: run scripts/setup-python.sh",
        python.display()
    );
    python
}

fn run_json(args: &[&str], paths: &[(&str, &Path)]) -> Value {
    let mut cmd = linkner();
    cmd.args(args);
    for (flag, path) in paths {
        cmd.arg(flag).arg(path);
    }
    json_ok(cmd.output().unwrap())
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The linkner side of every setting: timed, positive throughput, F1 of the labelled data (the
/// tagger memorised it), the same predictions whatever the batching.
fn check_linkner_side(v: &Value) -> Vec<Value> {
    assert_eq!(v["sentences"], 4);
    assert!(num(&v["tokens"]) > 4.0 * 3.0, "{v}");
    assert!(
        num(&v["spans"]) > 0.0 && num(&v["encoder_gflop"]) > 0.0,
        "{v}"
    );
    let settings = v["settings"].as_array().unwrap().clone();
    let keys: Vec<&str> = settings
        .iter()
        .map(|s| s["setting"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["as_given", "length_sorted", "bf16"]);
    for s in &settings[..2] {
        let l = &s["linkner"];
        assert!(
            num(&l["seconds"]) > 0.0 && num(&l["sentences_per_s"]) > 0.0,
            "{s}"
        );
        assert!(num(&l["peak_rss_mb"]) > 10.0, "{s}");
        assert!(
            num(&l["f1"]) >= 0.5,
            "the memorised data is tagged badly: {s}"
        );
    }
    // Batch order changes nothing in what is predicted.
    assert_eq!(settings[0]["linkner"]["f1"], settings[1]["linkner"]["f1"]);
    // bf16 either ran (with an F1) or says why not.
    let bf16 = &settings[2]["linkner"];
    assert!(
        bf16["f1"].is_number() || bf16["unavailable"].is_string(),
        "{bf16}"
    );
    settings
}

#[test]
fn bench_tagger_without_and_with_the_python_peer() {
    let (data, model) = fixture();
    let base = [
        "bench",
        "tagger",
        "--json",
        "--threads",
        "1",
        "--batch-size",
        "2",
    ];

    let mut args = base.to_vec();
    args.push("--no-python");
    let v = run_json(&args, &[("--model", model), ("--data", data)]);
    let settings = check_linkner_side(&v);
    assert_eq!(v["python_skipped"], "--no-python");
    for s in &settings {
        assert_eq!(s["python"]["unavailable"], "--no-python", "{s}");
        assert!(s["ratio"].is_null(), "{s}");
    }

    // With the peer: it must really run (a failing peer is reported, not an error, so check).
    let python = venv_python();
    let encoder = minilm();
    let v = run_json(
        &base,
        &[
            ("--model", model),
            ("--data", data),
            ("--python", &python),
            ("--encoder", &encoder),
        ],
    );
    let settings = check_linkner_side(&v);
    assert!(v["python_skipped"].is_null(), "the peer did not run: {v}");
    assert!(
        v["python_versions"]
            .as_str()
            .is_some_and(|s| s.contains("torch 2.9")),
        "{v}"
    );
    // Both programs tokenized the same words into the same number of tokens.
    assert_eq!(v["python_tokens"], v["tokens"], "{v}");
    for s in &settings[..2] {
        let p = &s["python"];
        assert!(num(&p["sentences_per_s"]) > 0.0, "{s}");
        let ratio = num(&s["ratio"]);
        let expect = num(&s["linkner"]["sentences_per_s"]) / num(&p["sentences_per_s"]);
        assert!((ratio - expect).abs() <= 1e-9 * expect.max(1.0), "{s}");
    }
    assert!(
        num(&v["target_ratio"]) > 0.0 && num(&v["goal_ratio"]) > 0.0,
        "{v}"
    );
}

#[test]
fn bench_train_without_and_with_the_python_peer() {
    let (data, _) = fixture();
    let encoder = minilm();
    let base = [
        "bench",
        "train",
        "--json",
        "--threads",
        "1",
        "--batch-size",
        "2",
        "--limit",
        "4",
        "--epoch-sentences",
        "400",
    ];
    let mut args = base.to_vec();
    args.push("--no-python");
    let v = run_json(&args, &[("--data", data), ("--encoder", &encoder)]);
    assert_eq!(v["sentences"], 4);
    let l = &v["linkner"];
    let secs = num(&l["seconds"]);
    assert!(secs > 0.0 && num(&l["loss"]) > 0.0, "{v}");
    // The extrapolation is linear: 400 sentences = 100 × the 4 timed.
    assert!((num(&l["extrapolated_epoch_seconds"]) - 100.0 * secs).abs() < 1e-6 * secs.max(1.0));
    assert_eq!(v["python"]["unavailable"], "--no-python");
    assert!(v["time_ratio"].is_null(), "{v}");

    let python = venv_python();
    let v = run_json(
        &base,
        &[
            ("--data", data),
            ("--encoder", &encoder),
            ("--python", &python),
        ],
    );
    let p = &v["python"];
    assert!(p["unavailable"].is_null(), "the peer did not run: {v}");
    assert!(
        num(&p["seconds"]) > 0.0 && num(&p["sentences_per_s"]) > 0.0,
        "{v}"
    );
    assert!(num(&p["loss"]).is_finite(), "{v}");
    assert!(num(&v["time_ratio"]) > 0.0, "{v}");
}

/// PNG width and height.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    (
        u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
        u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
    )
}

/// `linkner tune` on a labelled file with the real local server writes a config; `linkner
/// report` with that config on the same file (as its "test" set) reproduces the tuned dev F1 to
/// the digit (the answers come from the shared cache: the pipeline's routing, prompt and merge
/// are exactly those the tuning replayed), and reports Δ with its interval, the oracle ceiling,
/// the accuracy on routed entities and an ablation table.
#[test]
fn tune_then_report_on_tiny_data_with_the_real_local_llm() {
    let Some(server) = local_server::server(
        "cli_bench_report::report_on_tiny_data_with_the_real_local_llm",
        "LINKNER_REPORT_TEST_PORT",
        "18186",
    ) else {
        return;
    };
    let (data, model) = fixture();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir_all(root.join("conll03/conll_4col")).unwrap();
    std::fs::copy(data, root.join("conll03/conll_4col/test.txt")).unwrap();
    let configs = dir.path().join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    let cache = dir.path().join("answers.jsonl");
    let tune_json = dir.path().join("tune");
    std::fs::create_dir_all(&tune_json).unwrap();
    let llm = |cmd: &mut std::process::Command| {
        cmd.args(["--llm-url", &server.url, "--llm-model", &server.model])
            .args(["--llm-timeout", "300", "--threads", "1"])
            .arg("--llm-cache")
            .arg(&cache)
            .arg("--examples-from")
            .arg(data)
            .env_remove("LINKNER_LLM_URL")
            .env_remove("LINKNER_MODEL");
    };

    // 1. Tune: two prompt variants (one LLM pass each), two estimators, every entity above a
    //    floor of 0 in the pass (this tagger is confident about what it memorised).
    let mut cmd = linkner();
    cmd.args([
        "tune",
        "--prompts",
        "plain,full-retrieve",
        "--estimators",
        "confidence,entropy",
    ])
    // `--no-guard`: the best dev setting is written even when 4 sentences cannot show its
    // gain, so that the report below reproduces a setting that routes.
    .args([
        "--floor",
        "0",
        "--step",
        "0.25",
        "--no-per-type",
        "--no-guard",
    ])
    .arg("--model")
    .arg(model)
    .arg("--dev")
    .arg(data)
    .arg("--out")
    .arg(configs.join("conll03.json"))
    .arg("--json-out")
    .arg(tune_json.join("conll03.json"));
    llm(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "tune: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tuned: Value =
        serde_json::from_str(&std::fs::read_to_string(tune_json.join("conll03.json")).unwrap())
            .unwrap();
    check_tuning_provenance(&tuned, data, &server.model);
    check_the_guard(&tuned, &mut linkner(), &llm, model, data, dir.path());
    let best_f1 = num(&tuned["best"]["f1"]);
    let local_f1 = num(&tuned["local_f1"]);
    assert!(
        best_f1 >= local_f1,
        "the search includes routing nothing: {tuned}"
    );
    let trials = tuned["trials"].as_array().unwrap();
    for prompt in ["plain", "full-retrieve"] {
        assert!(
            trials.iter().any(|t| t["prompt"] == prompt),
            "no trial of prompt {prompt}: {:?}",
            trials
                .iter()
                .filter_map(|t| t["prompt"].as_str())
                .collect::<std::collections::BTreeSet<_>>()
        );
    }
    let answers_after_tune = std::fs::read_to_string(&cache).unwrap().lines().count();
    assert!(answers_after_tune > 0, "tune cached no LLM answer");

    // 2. An ablation folder: the paper's rule and log-linear fusion, both routing every entity
    //    (threshold 0) with the default prompt (the `plain` variant).
    let ablation = dir.path().join("ablation");
    std::fs::create_dir_all(&ablation).unwrap();
    for (name, merge) in [
        ("a-replace", serde_json::json!({"type": "replace"})),
        ("b-fuse", serde_json::json!({"type": "fuse", "weight": 0.5})),
    ] {
        let config = serde_json::json!({
            "tagger": {"model": model},
            "estimator": {"type": "entropy"},
            "policy": {"type": "threshold", "threshold": 0.0},
            "merge": merge,
            "llm": {"base_url": server.url, "model": server.model}
        });
        std::fs::write(ablation.join(format!("{name}.json")), config.to_string()).unwrap();
    }

    // 3. Report with the tuned config on the same file.
    let out_md = dir.path().join("docs/results.md");
    let plots = dir.path().join("docs/plots");
    let json = dir.path().join("report.json");
    let mut cmd = linkner();
    cmd.args(["report", "--resamples", "200", "--ablation-set", "conll03"])
        .arg("--ablation")
        .arg(&ablation)
        .arg("--tune-json")
        .arg(&tune_json)
        .arg("--configs")
        .arg(&configs)
        .arg("--data-dir")
        .arg(&root)
        .arg("--out")
        .arg(&out_md)
        .arg("--plots")
        .arg(&plots)
        .arg("--json-out")
        .arg(&json);
    llm(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let sets = v["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 1, "{v}");
    let s = &sets[0];
    assert_eq!(s["name"], "conll03");
    assert_eq!(
        (num(&s["sentences"]), num(&s["sentences_in_file"])),
        (4.0, 4.0)
    );
    let run = &s["run"];
    let scores = &run["scores"];
    // The tuned setting reproduces its dev F1, and the local F1 is the tuning's.
    assert_eq!(num(&scores["linked"]["f1"]), best_f1, "{run}\n{tuned}");
    assert_eq!(num(&scores["local"]["f1"]), local_f1, "{run}");
    let delta = &run["delta"];
    let d = num(&delta["delta"]);
    assert!((d - (best_f1 - local_f1)).abs() < 1e-9, "{delta}");
    assert!(
        num(&delta["low"]) <= d + 1e-12 && d <= num(&delta["high"]) + 1e-12,
        "{delta}"
    );
    assert!(num(&scores["oracle"]["f1"]) >= num(&scores["linked"]["f1"]) - 1e-12);
    let st = &run["stats"];
    assert_eq!(num(&st["failures"]), 0.0, "{st}");
    let acc = &run["accuracy"];
    assert_eq!(num(&acc["answered"]), num(&st["routed"]), "{run}");
    assert!(num(&acc["llm_correct"]) <= num(&acc["answered"]));

    // The ablation routes every entity through the real server, under both merge policies.
    let ab = v["ablation"].as_array().unwrap();
    assert_eq!(ab.len(), 2, "{v}");
    for (a, merge) in ab.iter().zip(["replace", "fuse"]) {
        let st = &a["stats"];
        assert!(num(&st["entities"]) > 0.0, "{a}");
        assert_eq!(num(&st["routed"]), num(&st["entities"]), "{a}");
        assert_eq!(num(&st["failures"]), 0.0, "{a}");
        assert!(
            num(&st["prompt_tokens"]) > 0.0 || num(&st["cache_hits"]) > 0.0,
            "{a}"
        );
        assert!(a["setting"].as_str().unwrap().contains(merge), "{a}");
        assert_eq!(num(&a["accuracy"]["answered"]), num(&st["routed"]), "{a}");
    }
    // The replace run is one of the settings the tuning replayed: same F1, to the digit (the
    // ablation configs leave the prompt at its default, the `plain` variant).
    let replayed = trials
        .iter()
        .find(|t| {
            t["prompt"] == "plain"
                && t["estimator"] == "entropy"
                && t["calibrate"] == false
                && t["merge"]["type"] == "replace"
                && t["policy"]["type"] == "threshold"
                && num(&t["policy"]["threshold"]) == 0.0
        })
        .unwrap_or_else(|| panic!("no replace trial at threshold 0: {tuned}"));
    assert_eq!(
        num(&ab[0]["scores"]["linked"]["f1"]),
        num(&replayed["f1"]),
        "{}\n{replayed}",
        ab[0]
    );
    assert_eq!(v["skipped"].as_array().unwrap().len(), 5, "{v}");

    // The Markdown: the row with these figures, the skipped sets, the ablation, the dev plot.
    let md = std::fs::read_to_string(&out_md).unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with("| CoNLL-03 test | 4 |"))
        .unwrap_or_else(|| panic!("no CoNLL-03 row:\n{md}"));
    let linked = format!("**{:.2}**", 100.0 * best_f1);
    assert!(row.contains(&linked), "{row} lacks {linked}");
    for title in [
        "CoNLL-03 Typos",
        "CoNLL-03 OOV",
        "WikiGold",
        "WNUT-17",
        "TwitterNER",
    ] {
        assert!(
            md.lines()
                .any(|l| l.starts_with(&format!("| {title}")) && l.contains("skipped")),
            "{title} not listed as skipped:\n{md}"
        );
    }
    assert!(
        md.contains("| a-replace |") && md.contains("| b-fuse |"),
        "{md}"
    );
    let plot = s["plot"].as_str().unwrap();
    assert!(md.contains(&format!("]({plot})")), "plot not linked:\n{md}");
    // The interval's unit: the copied file marks one document or none; either way the row
    // names what was resampled, and the report says where its figures came from.
    assert!(
        row.contains(" documents)") || row.contains(" sentences)"),
        "no resampling unit in {row}"
    );
    assert!(
        md.contains("Provenance: linkner ") && md.contains(&format!("LLM `{}`", server.model)),
        "{md}"
    );
    let data_hash = &v["provenance"]["files"][0];
    assert_eq!(data_hash["role"], "data:conll03", "{}", v["provenance"]);
    assert_eq!(data_hash["sha256"].as_str().unwrap().len(), 64);
    let png = std::fs::read(out_md.parent().unwrap().join(plot)).unwrap();
    assert_eq!(png_size(&png), (900, 600));
    check_fresh_runs(&json, &configs, &root, &llm, dir.path(), best_f1);
    server.record_answer();
}

/// `--fresh-runs DIR` reads the report's own JSON (two copies of the run above stand for two
/// fresh runs of `scripts/fresh-runs.sh`) and states their spread: the same linked F1 twice,
/// range 0.00.
fn check_fresh_runs(
    report_json: &Path,
    configs: &Path,
    root: &Path,
    llm: &dyn Fn(&mut std::process::Command),
    dir: &Path,
    best_f1: f64,
) {
    let runs = dir.join("fresh");
    std::fs::create_dir_all(&runs).unwrap();
    for i in [1, 2] {
        std::fs::copy(report_json, runs.join(format!("run{i}.json"))).unwrap();
    }
    let out_md = dir.join("fresh.md");
    let mut cmd = linkner();
    cmd.args(["report", "--resamples", "200", "--sets", "conll03"])
        .arg("--configs")
        .arg(configs)
        .arg("--data-dir")
        .arg(root)
        .arg("--out")
        .arg(&out_md)
        .arg("--fresh-runs")
        .arg(&runs);
    llm(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "report --fresh-runs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(&out_md).unwrap();
    let f1 = format!("{:.2}", 100.0 * best_f1);
    let row = md
        .lines()
        .find(|l| l.starts_with("| CoNLL-03 test | 4 of 4 |"))
        .unwrap_or_else(|| panic!("no fresh-run row:\n{md}"));
    assert!(md.contains("## Run-to-run spread of fresh runs"), "{md}");
    assert!(
        row.contains(&format!("| {f1} / {f1} | **0.00** |")),
        "{row}"
    );
    // A folder that is not one of fresh runs is an error that names it.
    let mut cmd = linkner();
    cmd.args(["report", "--sets", "conll03", "--configs"])
        .arg(configs)
        .arg("--data-dir")
        .arg(root)
        .arg("--out")
        .arg(dir.join("bad.md"))
        .arg("--fresh-runs")
        .arg(dir.join("no-such-folder"));
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no-such-folder"),
        "{err}"
    );
}

/// The tuning record says what produced it: the command line, version, the dev and examples
/// files with their SHA-256 (checked against a hash computed here), the LLM the server
/// reported, the answer cache and its format.
fn check_tuning_provenance(tuned: &Value, dev: &std::path::Path, model: &str) {
    let p = &tuned["provenance"];
    assert!(
        p["command_line"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "tune"),
        "{p}"
    );
    assert!(!p["linkner_version"].as_str().unwrap().is_empty(), "{p}");
    let files = p["files"].as_array().unwrap();
    let dev_hash = files.iter().find(|f| f["role"] == "dev").expect("dev file");
    let bytes = std::fs::read(dev).unwrap();
    assert_eq!(num(&dev_hash["bytes"]), bytes.len() as f64, "{p}");
    assert_eq!(dev_hash["sha256"].as_str().unwrap().len(), 64, "{p}");
    assert!(files.iter().any(|f| f["role"] == "examples"), "{p}");
    let ids = p["llm"]["server"]["model_ids"].as_array().unwrap();
    assert!(ids.iter().any(|i| i == model), "{p}");
    assert!(p["answer_cache"].as_str().is_some(), "{p}");
    assert_eq!(num(&p["answer_format"]), 2.0, "{p}");
}

/// The same tuning with the guard on (every answer now comes from the cache): when the
/// `--no-guard` record's verdict was "do not route", the guarded config routes nothing and the
/// summary says why; when it was "route", the guarded config is the same setting.
fn check_the_guard(
    unguarded: &Value,
    cmd: &mut std::process::Command,
    llm: &dyn Fn(&mut std::process::Command),
    model: &std::path::Path,
    data: &std::path::Path,
    dir: &std::path::Path,
) {
    let out_cfg = dir.join("guarded.json");
    cmd.args(["tune", "--prompts", "plain,full-retrieve"])
        .args(["--estimators", "confidence,entropy"])
        .args(["--floor", "0", "--step", "0.25", "--no-per-type"])
        .arg("--model")
        .arg(model)
        .arg("--dev")
        .arg(data)
        .arg("--out")
        .arg(&out_cfg);
    llm(cmd);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let guarded: Value = serde_json::from_str(&std::fs::read_to_string(&out_cfg).unwrap()).unwrap();
    // The run's answer cache is not written into the config other machines load.
    assert!(
        guarded["llm"]["reliability"]["cache_path"].is_null(),
        "{guarded}"
    );
    let best_routes = unguarded["best"]["policy"]["type"] != "never";
    match &unguarded["guard"] {
        Value::Null => assert!(!best_routes, "a setting that routes has no verdict"),
        g => {
            assert!(best_routes, "{g}");
            assert!(g["reason"].as_str().unwrap().contains("interval"), "{g}");
            assert_eq!(unguarded["guard_overridden"], true);
            let note = guarded["note"].as_str().unwrap();
            if g["routes"] == true {
                assert_eq!(guarded["policy"], unguarded["best"]["policy"], "{stdout}");
                assert!(note.contains("guard: dev gain"), "{note}");
            } else {
                assert_eq!(guarded["policy"]["type"], "never", "{stdout}");
                assert!(stdout.contains("routes nothing"), "{stdout}");
                // The config itself says why it routes nothing.
                assert!(
                    note.contains("routes nothing") && note.contains("interval"),
                    "{note}"
                );
            }
        }
    }
}
