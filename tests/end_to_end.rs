//! The real components end to end: a burn `SpanTagger` on the all-MiniLM-L6-v2 encoder (fresh,
//! untrained span head: its predictions are arbitrary, its offsets and distributions are real)
//! saved as a checkpoint, a JSON config that loads it with a Monte-Carlo dropout estimator, and
//! the real OpenAI-compatible backend pointed at a server that is down. Every entity must come
//! back with its local label, counted as an LLM failure, with char offsets into the input.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use linkner::core::LabelSchema;
use linkner::tagger::{DeviceSpec, HeadOptions, SpanTagger};
use linkner::{LinkConfig, Provenance};

/// The all-MiniLM-L6-v2 folder ([`linkner::tagger::default_encoder_dir`]).
fn minilm_dir() -> PathBuf {
    linkner::tagger::default_encoder_dir().unwrap_or_else(|| {
        panic!("all-MiniLM-L6-v2 not found; run scripts/setup-python.sh or set LINKNER_ENCODER")
    })
}

const TEXTS: &[&str] = &[
    "Jürgen Klopp left Liverpool for Mainz on Monday .",
    "Zoe\u{0308} and Renée flew from 東京 to São Paulo 👍 with Air France .",
    "👨‍👩‍👧 The United Nations met in Geneva , said Ban Ki-moon .",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_tagger_from_a_config_file_with_the_llm_server_down() {
    let dir = tempfile::tempdir().unwrap();
    let device = DeviceSpec::Cpu.checked_device().unwrap();
    let (tagger, _report) = SpanTagger::from_encoder_dir(
        &minilm_dir(),
        LabelSchema::conll03(),
        HeadOptions::default(),
        &device,
    )
    .unwrap();
    tagger.save(&dir.path().join("tagger")).unwrap();
    drop(tagger);

    // Port 9 (discard) on localhost: connection refused, i.e. the LLM server is down.
    let config_path = dir.path().join("link.json");
    std::fs::write(
        &config_path,
        r#"{
          "tagger": { "model": "tagger", "device": "cpu", "overlapping": true,
                      "concurrent": true },
          "estimator": { "type": "mc_dropout", "samples": 3 },
          "policy": { "type": "always" },
          "llm": { "base_url": "http://127.0.0.1:9/v1", "model": "down",
                   "max_retries": 0, "timeout_s": 5, "connect_timeout_s": 2 }
        }"#,
    )
    .unwrap();
    let pipeline = LinkConfig::from_path(&config_path)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(pipeline.predict_options().mc_samples, 3);
    assert!(pipeline.predict_options().overlapping);

    // Several tasks at once on the one (mutex-held) tagger.
    let mut handles = Vec::new();
    for t in 0..4 {
        let p = pipeline.clone();
        handles.push(tokio::spawn(async move {
            let texts: Vec<&str> = TEXTS.iter().copied().cycle().skip(t).take(3).collect();
            (texts.clone(), p.annotate_batch(&texts).await.unwrap())
        }));
    }
    let mut total = 0usize;
    for h in handles {
        let (texts, docs) = h.await.unwrap();
        assert_eq!(docs.len(), texts.len());
        for (text, doc) in texts.iter().zip(&docs) {
            assert_eq!(doc.text(), *text);
            assert!(doc.rejected.is_empty());
            for e in &doc.entities {
                total += 1;
                let covered: String = text
                    .chars()
                    .skip(e.entity.start)
                    .take(e.entity.end - e.entity.start)
                    .collect();
                assert_eq!(covered, e.entity.text);
                assert_eq!(e.entity.label, e.local_label);
                assert!((0.0..=1.0).contains(&e.uncertainty));
                assert!(
                    matches!(&e.provenance, Provenance::LlmFailed { .. }),
                    "{:?}",
                    e.provenance
                );
            }
        }
    }
    let s = pipeline.stats();
    assert!(total > 0, "the untrained head predicted no entity at all");
    assert_eq!(s.documents, 12);
    assert_eq!(s.entities, total as u64);
    assert_eq!(s.routed, s.entities);
    assert_eq!(s.failures, s.entities);
    assert!(s.tagger_time > std::time::Duration::ZERO);
}
