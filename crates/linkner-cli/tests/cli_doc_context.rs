//! Document context through the CLI (the switch is stored in the checkpoint, files with and
//! without `-DOCSTART-`), the typed error of `--device cuda` without a GPU, and the CUDA branch
//! of the Python peers of `linkner bench`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{TRAIN, linkner, train_tiny};

/// Two documents of the tiny training set.
fn with_docstart() -> String {
    let sentences: Vec<&str> = TRAIN.split("\n\n").collect();
    format!(
        "-DOCSTART- O\n\n{}\n\n{}\n\n-DOCSTART- O\n\n{}\n\n{}\n",
        sentences[0],
        sentences[1],
        sentences[2],
        sentences[3].trim_end()
    )
}

fn config(model: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(model.join("tagger.json")).unwrap()).unwrap()
}

#[test]
fn document_context_is_stored_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.txt");
    std::fs::write(&docs, with_docstart()).unwrap();
    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, TRAIN).unwrap();

    let with = dir.path().join("with");
    let out = train_tiny(
        &docs,
        &with,
        &["--epochs", "1", "--dev", docs.to_str().unwrap()],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("4 training sentences in 2 documents; document context on"),
        "{log}"
    );
    assert_eq!(config(&with)["document_context"]["enabled"], true);

    let without = dir.path().join("without");
    let out = train_tiny(&plain, &without, &["--epochs", "1", "--no-doc-context"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("the file marks none"), "{log}");
    assert!(log.contains("document context off"), "{log}");
    assert_eq!(config(&without)["document_context"]["enabled"], false);

    // Inference on a file with documents, with the model's context and without: both score all
    // six gold entities and write one tag per word.
    for extra in [&[][..], &["--no-doc-context"][..]] {
        let out = linkner()
            .args(["eval", "--json", "--format", "conll", "--threads", "1"])
            .args(extra)
            .arg("--model")
            .arg(&with)
            .arg("--data")
            .arg(&docs)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["support"], 6);
    }
    let out = linkner()
        .args([
            "predict",
            "--input-format",
            "conll",
            "--output-format",
            "conll",
        ])
        .args(["--threads", "1"])
        .arg("--model")
        .arg(&with)
        .arg("--input")
        .arg(&docs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let words = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("-DOCSTART-"))
        .count();
    assert_eq!(words, 12);
}

#[test]
fn cuda_without_a_gpu_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.txt");
    std::fs::write(&data, TRAIN).unwrap();
    let out = linkner()
        .args([
            "train", "--format", "conll", "--epochs", "1", "--device", "cuda",
        ])
        .arg("--train")
        .arg(&data)
        .arg("--encoder")
        .arg(common::minilm())
        .arg("--out")
        .arg(dir.path().join("m"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if linkner::tagger::cuda_device_count() == 0 {
        assert!(!out.status.success());
        assert!(
            err.contains("device `cuda:0`: LibTorch sees 0 CUDA device"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    } else {
        assert!(out.status.success(), "{err}");
    }
    // An index past the last device is refused everywhere.
    let out = linkner()
        .args(["eval", "--device", "cuda:99", "--data"])
        .arg(&data)
        .arg("--model")
        .arg(dir.path().join("m"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cuda:99"));
}

/// The venv's Python (as `linkner bench` finds it).
fn python() -> PathBuf {
    std::env::var_os("LINKNER_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| linkner::tagger::locate::cache_dir().join("venv"))
        .join("bin/python")
}

#[test]
fn peer_scripts_compile_and_check_cuda() {
    let scripts = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../scripts");
    let peers = ["bench_tagger_peer.py", "bench_train_peer.py"];
    let out = std::process::Command::new(python())
        .args([
            "-c",
            "import ast, sys; [ast.parse(open(p).read(), p) for p in sys.argv[1:]]",
        ])
        .args(peers.iter().map(|p| scripts.join(p)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cuda = std::process::Command::new(python())
        .args(["-c", "import torch; print(torch.cuda.is_available())"])
        .output()
        .unwrap();
    let has_cuda = String::from_utf8_lossy(&cuda.stdout).trim() == "True";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.txt");
    std::fs::write(&data, TRAIN).unwrap();
    for peer in peers {
        let out = std::process::Command::new(python())
            .arg(scripts.join(peer))
            .arg("--encoder")
            .arg(common::minilm())
            .arg("--data")
            .arg(&data)
            .args([
                "--device",
                "cuda",
                "--threads",
                "1",
                "--limit",
                "4",
                "--batch-size",
                "2",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if has_cuda {
            assert!(out.status.success(), "{peer}: {err}");
            let line = String::from_utf8_lossy(&out.stdout);
            let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
            assert!(v["device"].as_str().unwrap().starts_with("cuda"));
        } else {
            assert_eq!(out.status.code(), Some(2), "{peer}: {err}");
            assert!(err.contains("torch sees no CUDA device"), "{peer}: {err}");
        }
    }
}
