//! Shared helpers of the integration tests: the venv's Python, the MiniLM folder and the
//! reference outputs made by `support/make_refs.py` with Hugging Face `transformers`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The venv (`LINKNER_VENV`, else `$LINKNER_CACHE/venv`, else `~/.cache/linkner/venv`).
pub fn venv() -> PathBuf {
    if let Some(v) = std::env::var_os("LINKNER_VENV") {
        return PathBuf::from(v);
    }
    let cache = std::env::var_os("LINKNER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/linkner")
        });
    cache.join("venv")
}

/// The venv's python.
pub fn python() -> PathBuf {
    venv().join("bin/python")
}

/// The all-MiniLM-L6-v2 folder ([`linkner_tagger::default_encoder_dir`]).
pub fn minilm_dir() -> PathBuf {
    linkner_tagger::default_encoder_dir().unwrap_or_else(|| {
        panic!("all-MiniLM-L6-v2 not found; run scripts/setup-python.sh or set LINKNER_ENCODER")
    })
}

/// Reference folder made once per test binary.
pub struct Refs {
    pub _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub json: serde_json::Value,
}

static REFS: OnceLock<Refs> = OnceLock::new();

/// Runs `make_refs.py` once (tiny BERT, tiny RoBERTa, broken BERT, MiniLM references).
pub fn refs() -> &'static Refs {
    REFS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let script = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("tests/support/make_refs.py");
        let out = Command::new(python())
            .arg(&script)
            .arg(dir.path())
            .arg(minilm_dir())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()));
        assert!(
            out.status.success(),
            "make_refs.py failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(dir.path().join("refs.json")).unwrap();
        Refs {
            root: dir.path().to_path_buf(),
            json: serde_json::from_str(&text).unwrap(),
            _dir: dir,
        }
    })
}

/// A 2-D integer array of a JSON value.
pub fn ints2(v: &serde_json::Value) -> Vec<Vec<i64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect()
        })
        .collect()
}

/// A 3-D float array of a JSON value, flattened.
pub fn floats3(v: &serde_json::Value) -> (Vec<f32>, [usize; 3]) {
    let a = v.as_array().unwrap();
    let b = a[0].as_array().unwrap();
    let c = b[0].as_array().unwrap();
    let mut out = Vec::new();
    for x in a {
        for y in x.as_array().unwrap() {
            for z in y.as_array().unwrap() {
                out.push(z.as_f64().unwrap() as f32);
            }
        }
    }
    (out, [a.len(), b.len(), c.len()])
}
