//! A Hugging Face token-classification checkpoint as the local tagger of the linker: every
//! built-in estimator on its candidates (the conformance checks, Monte-Carlo dropout included;
//! the evidential ones refuse with a typed error), and the whole pipeline from a JSON config
//! (kind detected from the folder, wording from a schema file) against an LLM server that is
//! down and against the real local llama.cpp server.
//!
//! The checkpoint is all-MiniLM-L6-v2 fine-tuned as a `BertForTokenClassification` (CoNLL-03
//! IOB2 labels) on eight sentences by `transformers` (`make_token_class.py finetune`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use linkner::core::Sentence;
use linkner::core::{LocalTagger, PredictOptions};
use linkner::tagger::{AnyTagger, DeviceSpec, TaggerKind};
use linkner::uncertainty::{EstimatorConfig, UncertaintyError, conformance};
use linkner::{LinkConfig, Provenance};

#[path = "../crates/linkner-llm/tests/support/local_server.rs"]
mod local_server;

#[path = "common/fixture_dir.rs"]
mod fixture_dir;

fn python() -> PathBuf {
    let venv = std::env::var_os("LINKNER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| linkner::tagger::locate::cache_dir().join("venv"));
    venv.join("bin/python")
}

/// The fine-tuned checkpoint, made once per test binary.
fn checkpoint() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = fixture_dir::fixture_dir(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            env!("CARGO_CRATE_NAME"),
            "hf",
        )
        .join("ner");
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../linkner-tagger/tests/support/make_token_class.py");
        let encoder = linkner::tagger::default_encoder_dir()
            .expect("all-MiniLM-L6-v2 (run scripts/setup-python.sh)");
        let out = Command::new(python())
            .arg(&script)
            .arg("finetune")
            .arg(&dir)
            .arg(&encoder)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make_token_class.py finetune failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

const TEXTS: &[&str] = &[
    "Peter Blackburn met Angela Merkel in Brussels .",
    "Zoë Müller joined Siemens AG in München 🎉 .",
    "Japan beat Syria in the Asian Cup final in Tokyo .",
    "Emmanuel Macron visited Paris and Berlin with Jürgen Klopp .",
];

#[test]
fn every_builtin_estimator_works_on_its_candidates() {
    let tagger = AnyTagger::load(checkpoint(), None, &DeviceSpec::Cpu).unwrap();
    assert_eq!(tagger.kind(), TaggerKind::TokenClassification);
    let sentences: Vec<Sentence> = TEXTS
        .iter()
        .map(|t| linkner::core::sentence_from_text(t))
        .collect();
    let mut scored = 0;
    for config in EstimatorConfig::all() {
        let estimator = config.build().unwrap();
        let needs = estimator.requirements();
        let options = PredictOptions {
            mc_samples: needs.mc_samples,
            ..PredictOptions::default()
        };
        let cands: Vec<_> = tagger
            .tag_sentences(&sentences, &options)
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        assert!(
            cands.len() >= 8,
            "the fine-tuned model finds entities: {cands:?}"
        );
        for c in &cands {
            if needs.needs_alpha {
                // A cross-entropy head has no Dirichlet parameters: a typed error, never a score.
                assert!(matches!(
                    estimator.score(c),
                    Err(UncertaintyError::MissingAlpha { .. })
                ));
                continue;
            }
            assert_eq!(c.mc_probs.len(), needs.mc_samples);
            let score = conformance::check_candidate(estimator.as_ref(), c, &c.entity.text)
                .unwrap_or_else(|v| panic!("{}: {v:?}", estimator.name()));
            assert!((0.0..=1.0).contains(&score));
            scored += 1;
        }
    }
    assert!(scored > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_from_a_config_with_the_llm_server_down() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("conll.toml");
    std::fs::write(
        &schema,
        r#"
name = "my-conll"
[[types]]
name = "PER"
llm_name = "human being"
description = "People."
[[types]]
name = "LOC"
description = "Places."
[[types]]
name = "ORG"
description = "Organisations."
[[types]]
name = "MISC"
description = "Other names."
"#,
    )
    .unwrap();
    let config = serde_json::json!({
        "tagger": { "model": checkpoint(), "schema": schema, "concurrent": true },
        "estimator": { "type": "mc_dropout", "samples": 3 },
        "policy": { "type": "always" },
        "llm": { "base_url": "http://127.0.0.1:9/v1", "model": "down",
                 "max_retries": 0, "timeout_s": 5, "connect_timeout_s": 2 }
    });
    let config = LinkConfig::from_json(&config.to_string()).unwrap();
    assert_eq!(config.tagger.kind, None, "detected from the folder");
    let pipeline = config.build().unwrap();
    // The schema file's wording, in the checkpoint's class order.
    assert_eq!(pipeline.schema().name, "my-conll");
    assert_eq!(
        pipeline.schema().type_names(),
        ["PER", "ORG", "LOC", "MISC"]
    );
    assert_eq!(pipeline.schema().types[0].llm_name, "human being");
    let docs = pipeline.annotate_batch(TEXTS).await.unwrap();
    let mut total = 0;
    for (text, doc) in TEXTS.iter().zip(&docs) {
        assert_eq!(doc.text(), *text);
        for e in &doc.entities {
            total += 1;
            let covered: String = text
                .chars()
                .skip(e.entity.start)
                .take(e.entity.end - e.entity.start)
                .collect();
            assert_eq!(covered, e.entity.text);
            assert_eq!(e.entity.label, e.local_label);
            assert!(matches!(e.provenance, Provenance::LlmFailed { .. }));
        }
    }
    let s = pipeline.stats();
    assert!(total >= 8, "{total}");
    assert_eq!(s.routed, s.entities);
    assert_eq!(s.failures, s.entities);

    // A schema file whose types are not the model's is refused when the pipeline is built.
    let bad = LinkConfig::from_json(
        &serde_json::json!({
            "tagger": { "model": checkpoint(), "schema": "wnut17" },
            "policy": { "type": "never" }
        })
        .to_string(),
    )
    .unwrap();
    let err = bad.build().unwrap_err().to_string();
    assert!(err.contains("missing: PER, ORG, LOC, MISC"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_with_the_real_local_llm_server() {
    let Some(server) = local_server::server(
        "token_classification::pipeline_with_the_real_local_llm_server",
        "LINKNER_LINK_TEST_PORT",
        "18182",
    ) else {
        return;
    };
    let config = serde_json::json!({
        "tagger": { "model": checkpoint(), "kind": "token_classification" },
        "estimator": { "type": "entropy" },
        "policy": { "type": "always" },
        "llm": { "base_url": server.url, "model": server.model }
    });
    let pipeline = LinkConfig::from_json(&config.to_string())
        .unwrap()
        .build()
        .unwrap();
    let docs = pipeline.annotate_batch(TEXTS).await.unwrap();
    let schema = pipeline.schema().clone();
    for doc in &docs {
        for e in doc.entities.iter().chain(&doc.rejected) {
            assert!(
                !matches!(e.provenance, Provenance::LlmFailed { .. }),
                "{:?}",
                e.provenance
            );
            assert!(schema.class_of(&e.entity.label).is_some());
        }
    }
    let s = pipeline.stats();
    assert!(s.routed >= 8, "{s:?}");
    assert_eq!(s.failures, 0);
    assert_eq!(
        s.routed,
        s.confirmed + s.relabelled + s.rejected + s.failures
    );
    server.record_answer();
}
