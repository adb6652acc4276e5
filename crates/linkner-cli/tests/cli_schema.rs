//! A user with their own labels, from the CLI alone: a dataset whose types are in no built-in
//! schema — WNUT-17 (from `$LINKNER_DATA`, made at test time) with its types renamed and
//! `group` + `corporation` merged — is trained on (a few dozen sentences: the plumbing, not the
//! accuracy), evaluated, predicted and linked, once with the schema inferred from the data and
//! once with a schema file; the checkpoint reloads with its schema, labels outside it are errors
//! naming the file and the line, and bad schema files name the field. Also the
//! token-classification kind through `predict`, `eval` and `link`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../../linkner-llm/tests/support/local_server.rs"]
mod local_server;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{eval_json, link_json, linkner, run_ok, train_tiny};
use serde_json::Value;

/// WNUT-17's types → ours: renamed, and two merged.
const RENAME: &[(&str, &str)] = &[
    ("person", "human"),
    ("location", "geo-loc"),
    ("group", "collective"),
    ("corporation", "collective"),
    ("product", "artifact"),
    ("creative-work", "opus"),
];

fn wnut(file: &str) -> PathBuf {
    let data = std::env::var_os("LINKNER_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../../shared/data")
        });
    let p = data.join("wnut17").join(file);
    assert!(
        p.is_file(),
        "{} not found: the tests need the datasets (set LINKNER_DATA)",
        p.display()
    );
    p
}

/// The first `n` sentences with an entity of `file`, types renamed, keeping only sentences
/// whose types are all in `allowed` (when given); CoNLL text.
fn custom_conll(file: &str, n: usize, allowed: Option<&[&str]>) -> String {
    let text = std::fs::read_to_string(wnut(file)).unwrap();
    let mut out = String::new();
    let mut kept = 0;
    for block in text.split("\n\n").flat_map(|b| b.split("\n\t\n")) {
        let mut lines = Vec::new();
        let mut types = Vec::new();
        for line in block.lines().filter(|l| !l.trim().is_empty()) {
            let (word, tag) = line.rsplit_once('\t').unwrap();
            let word = word.trim_matches('\u{feff}');
            let tag = match tag.split_once('-') {
                Some((p, t)) => {
                    let new = RENAME.iter().find(|(o, _)| *o == t).unwrap().1;
                    types.push(new);
                    format!("{p}-{new}")
                }
                None => tag.to_string(),
            };
            if word.is_empty() || word.contains(char::is_whitespace) {
                lines.clear();
                break;
            }
            lines.push(format!("{word}\t{tag}"));
        }
        if lines.is_empty() || types.is_empty() {
            continue;
        }
        if let Some(allowed) = allowed
            && !types.iter().all(|t| allowed.contains(t))
        {
            continue;
        }
        out.push_str(&lines.join("\n"));
        out.push_str("\n\n");
        kept += 1;
        if kept == n {
            break;
        }
    }
    assert_eq!(kept, n, "{file} has fewer than {n} usable sentences");
    out
}

struct Fixture {
    dir: PathBuf,
    train: PathBuf,
    dev: PathBuf,
    /// Trained without --schema.
    inferred: PathBuf,
    /// The stderr of that training.
    inferred_log: String,
    /// Trained with --schema schema.toml.
    with_file: PathBuf,
    schema_file: PathBuf,
}

const TRAIN_ARGS: &[&str] = &["--epochs", "3", "--lr", "2e-4", "--patience", "0"];

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = common::fixture_dir(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            env!("CARGO_CRATE_NAME"),
            "custom",
        );
        let train = dir.join("train.conll");
        std::fs::write(&train, custom_conll("wnut17train.conll", 40, None)).unwrap();
        // `linkner schema --from-data` infers the schema; its types are the train file's.
        let out = run_ok(
            linkner()
                .args(["schema", "--json", "--from-data"])
                .arg(&train)
                .output()
                .unwrap(),
        );
        let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
        let types = type_names(&printed);
        assert_eq!(types, first_appearance(&train));
        let allowed: Vec<&str> = types.iter().map(String::as_str).collect();
        let dev = dir.join("dev.conll");
        std::fs::write(&dev, custom_conll("emerging.dev.conll", 16, Some(&allowed))).unwrap();
        // The user's schema file: a better LLM name and description for one type, the
        // defaults for the others.
        let schema_file = dir.join("schema.toml");
        let mut toml = String::new();
        for t in &types {
            toml.push_str(&format!("[[types]]\nname = \"{t}\"\n"));
            if t == "geo-loc" {
                toml.push_str(
                    "llm_name = \"place\"\ndescription = \"Names of places, real or fictional.\"\n",
                );
            }
        }
        std::fs::write(&schema_file, toml).unwrap();

        let inferred = dir.join("inferred");
        let mut args = TRAIN_ARGS.to_vec();
        args.extend(["--dev", dev.to_str().unwrap()]);
        let out = train_tiny(&train, &inferred, &args);
        let inferred_log = String::from_utf8_lossy(&out.stderr).into_owned();
        let with_file = dir.join("with-file");
        args.extend(["--schema", schema_file.to_str().unwrap()]);
        train_tiny(&train, &with_file, &args);
        Fixture {
            dir,
            train,
            dev,
            inferred,
            inferred_log,
            with_file,
            schema_file,
        }
    })
}

fn stored_schema(model: &Path) -> Value {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("tagger.json")).unwrap()).unwrap();
    v["schema"].clone()
}

fn type_names(schema: &Value) -> Vec<String> {
    schema["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// The types of the training file, in order of first appearance.
fn first_appearance(train: &Path) -> Vec<String> {
    let mut seen = Vec::new();
    for line in std::fs::read_to_string(train).unwrap().lines() {
        if let Some((_, tag)) = line.split_once('\t')
            && let Some((_, t)) = tag.split_once('-')
            && !seen.iter().any(|s| s == t)
        {
            seen.push(t.to_string());
        }
    }
    seen
}

/// Predicts `data` (CoNLL) and returns the labels of every predicted entity.
fn predicted_labels(model: &Path, data: &Path, extra: &[&str]) -> Vec<String> {
    let out = run_ok(
        linkner()
            .args(["predict", "--threads", "1", "--input-format", "conll"])
            .arg("--model")
            .arg(model)
            .arg("--input")
            .arg(data)
            .args(extra)
            .output()
            .unwrap(),
    );
    let mut labels = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        for c in v["candidates"].as_array().unwrap() {
            labels.push(c["span"]["label"].as_str().unwrap().to_string());
        }
    }
    labels
}

#[test]
fn an_inferred_schema_is_stored_and_used_by_every_command() {
    let f = fixture();
    // The notice says how to write better descriptions.
    assert!(
        f.inferred_log.contains("inferred schema"),
        "{}",
        f.inferred_log
    );
    assert!(
        f.inferred_log.contains("linkner schema --from-data"),
        "{}",
        f.inferred_log
    );
    let schema = stored_schema(&f.inferred);
    let types = type_names(&schema);
    assert_eq!(types, first_appearance(&f.train));
    assert!(types.iter().any(|t| t == "collective"), "{types:?}");
    assert!(!types.iter().any(|t| t == "group" || t == "person"));
    let geo = schema["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "geo-loc")
        .unwrap();
    assert_eq!(geo["llm_name"], "geo loc");

    // The checkpoint reloads with its schema.
    let out = run_ok(
        linkner()
            .args(["schema", "--json"])
            .arg(&f.inferred)
            .output()
            .unwrap(),
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, schema);

    let v = eval_json(&f.inferred, &f.dev, &[]);
    assert!(v["support"].as_u64().unwrap() > 0, "{v}");
    for label in v["per_label"].as_object().unwrap().keys() {
        assert!(types.contains(label), "{label} not in {types:?}");
    }
    let labels = predicted_labels(&f.inferred, &f.dev, &[]);
    assert!(!labels.is_empty(), "the tiny model predicts some entities");
    for l in &labels {
        assert!(types.contains(l), "{l}");
    }
    let v = link_json(&f.inferred, &f.dev, &["--oracle", "--policy", "always"]);
    assert_eq!(v["oracle_mode"], true);
    assert!(v["stats"]["entities"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["stats"]["failures"], 0);
    // Linking with a schema file of the same types replaces the wording only.
    let v = link_json(
        &f.inferred,
        &f.dev,
        &[
            "--oracle",
            "--policy",
            "always",
            "--schema",
            f.schema_file.to_str().unwrap(),
        ],
    );
    assert_eq!(v["stats"]["failures"], 0);
}

#[test]
fn a_schema_file_gives_the_wording_stored_in_the_checkpoint() {
    let f = fixture();
    let schema = stored_schema(&f.with_file);
    assert_eq!(type_names(&schema), first_appearance(&f.train));
    let geo = schema["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "geo-loc")
        .unwrap();
    assert_eq!(geo["llm_name"], "place");
    assert_eq!(geo["description"], "Names of places, real or fictional.");
    // A schema file without `name` is named after the file.
    assert_eq!(schema["name"], "schema");

    let v = eval_json(
        &f.with_file,
        &f.dev,
        &["--schema", f.schema_file.to_str().unwrap()],
    );
    assert!(v["support"].as_u64().unwrap() > 0);
    let v = link_json(&f.with_file, &f.dev, &["--oracle", "--policy", "always"]);
    assert!(v["stats"]["entities"].as_u64().unwrap() > 0, "{v}");

    // A built-in schema with other types does not fit the model.
    let out = linkner()
        .args([
            "link",
            "--oracle",
            "--threads",
            "1",
            "--schema",
            "wnut17",
            "--format",
            "conll",
        ])
        .arg("--model")
        .arg(&f.with_file)
        .arg("--data")
        .arg(&f.dev)
        .env_remove("LINKNER_LLM_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing: ") && err.contains("geo-loc"),
        "{err}"
    );
}

#[test]
fn labels_outside_the_model_schema_name_the_file_line_and_label() {
    let f = fixture();
    let bad = f.dir.join("bad.conll");
    std::fs::write(&bad, "Elon\tB-human\nMusk\tI-human\n\nMars\tB-planet\n").unwrap();
    for args in [
        &["eval", "--threads", "1", "--format", "conll"][..],
        &[
            "link",
            "--threads",
            "1",
            "--format",
            "conll",
            "--policy",
            "never",
        ][..],
    ] {
        let out = linkner()
            .args(args)
            .arg("--model")
            .arg(&f.inferred)
            .arg("--data")
            .arg(&bad)
            .env_remove("LINKNER_LLM_URL")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad.conll:4: unknown label `planet`"),
            "{args:?}: {err}"
        );
    }
    // Training with a schema file checks the training file the same way.
    let out = linkner()
        .args([
            "train",
            "--threads",
            "1",
            "--epochs",
            "1",
            "--format",
            "conll",
        ])
        .arg("--schema")
        .arg(&f.schema_file)
        .arg("--train")
        .arg(&bad)
        .arg("--out")
        .arg(f.dir.join("never"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.conll:4: unknown label `planet`"), "{err}");
}

#[test]
fn bad_schema_files_name_the_field() {
    let f = fixture();
    let cases = [
        (
            "dup.toml",
            "[[types]]\nname = \"a\"\n[[types]]\nname = \"b\"\nllm_name = \"A\"\n",
            "types[1].llm_name",
        ),
        (
            "shape.json",
            r#"{"types": [{"name": "a", "description": 7}]}"#,
            "types[0].description",
        ),
        (
            "space.toml",
            "[[types]]\nname = \"geo loc\"\n",
            "types[0].name",
        ),
    ];
    for (name, text, field) in cases {
        let path = f.dir.join(name);
        std::fs::write(&path, text).unwrap();
        for args in [
            vec!["schema".to_string(), path.to_str().unwrap().to_string()],
            vec![
                "train".into(),
                "--schema".into(),
                path.to_str().unwrap().into(),
                "--train".into(),
                f.train.to_str().unwrap().into(),
                "--out".into(),
                f.dir.join("never").to_str().unwrap().into(),
            ],
        ] {
            let out = linkner().args(&args).output().unwrap();
            assert!(!out.status.success(), "{args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(name), "{err}");
            assert!(err.contains(&format!("schema field `{field}`")), "{err}");
        }
    }
    // An unknown name is neither a built-in nor a file.
    let out = linkner()
        .args(["schema", "no-such-schema"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("conll03, wnut17"), "{err}");
}

#[test]
fn link_with_a_schema_file_against_the_real_local_llm_server() {
    let Some(server) = local_server::server(
        "cli_schema::link_with_a_schema_file_against_the_real_local_llm_server",
        "LINKNER_CLI_LINK_TEST_PORT",
        "18183",
    ) else {
        return;
    };
    let f = fixture();
    let v = link_json(
        &f.with_file,
        &f.dev,
        &[
            "--policy",
            "always",
            "--llm-url",
            &server.url,
            "--llm-model",
            &server.model,
            "--examples-from",
            f.train.to_str().unwrap(),
        ],
    );
    assert_eq!(v["oracle_mode"], false);
    let routed = v["stats"]["routed"].as_u64().unwrap();
    assert!(routed > 0, "{v}");
    assert_eq!(v["stats"]["failures"], 0, "{v}");
    assert_eq!(
        routed,
        ["confirmed", "relabelled", "rejected", "failures"]
            .iter()
            .map(|k| v["stats"][k].as_u64().unwrap())
            .sum::<u64>()
    );
    server.record_answer();
}

/// all-MiniLM-L6-v2 fine-tuned as a `BertForTokenClassification` by `transformers` (a real Hugging
/// Face checkpoint, made at test time).
fn hf_checkpoint() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = common::fixture_dir(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            env!("CARGO_CRATE_NAME"),
            "hf",
        )
        .join("ner");
        let venv = std::env::var_os("LINKNER_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| linkner::tagger::locate::cache_dir().join("venv"));
        let script = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../linkner-tagger/tests/support/make_token_class.py");
        run_ok(
            std::process::Command::new(venv.join("bin/python"))
                .arg(script)
                .arg("finetune")
                .arg(&dir)
                .arg(common::minilm())
                .output()
                .unwrap(),
        );
        dir
    })
}

#[test]
fn a_hugging_face_token_classification_folder_works_in_every_command() {
    let model = hf_checkpoint();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.conll");
    std::fs::write(&data, common::TRAIN).unwrap();
    // Its schema comes from id2label (CoNLL-03's types: the built-in wording).
    let out = run_ok(
        linkner()
            .args(["schema", "--json"])
            .arg(model)
            .output()
            .unwrap(),
    );
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(type_names(&schema), ["PER", "ORG", "LOC", "MISC"]);
    assert_eq!(schema["types"][0]["llm_name"], "person");

    let v = eval_json(model, &data, &["--estimator", "all"]);
    // It memorised sentences like these: real entities, scored against gold.
    assert!(v["f1"].as_f64().unwrap() > 0.5, "{v}");
    let skipped: Vec<&str> = v["skipped_estimators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        skipped.iter().all(|s| s.starts_with("evidential")),
        "{skipped:?}"
    );
    assert!(v["estimators"].as_array().unwrap().len() >= 5, "{v}");

    let labels = predicted_labels(model, &data, &["--mc-samples", "2"]);
    assert!(labels.len() >= 4, "{labels:?}");
    let v = link_json(
        model,
        &data,
        &[
            "--oracle",
            "--policy",
            "always",
            "--tagger-kind",
            "token_classification",
        ],
    );
    assert!(v["stats"]["entities"].as_u64().unwrap() >= 4, "{v}");
    assert_eq!(v["scores"]["oracle"]["precision"], 1.0);

    // Forcing the other kind is a clear error.
    let out = linkner()
        .args(["eval", "--tagger-kind", "span", "--format", "conll"])
        .arg("--model")
        .arg(model)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tagger.json"));
}
