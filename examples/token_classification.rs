//! Link an existing Hugging Face token-classification checkpoint to an LLM, without retraining:
//! any `BertForTokenClassification` / `RobertaForTokenClassification` folder (`config.json` with
//! `id2label`, `model.safetensors`, `tokenizer.json`), the kind people run with
//! `pipeline("ner")`. Its labels become the schema; uncertain entities go to the LLM.
//!
//! ```sh
//! eval "$(bash scripts/llm-server.sh start quality 8080)"; export LINKNER_LLM_URL LINKNER_LLM_MODEL
//! cargo run -p linkner --example token_classification -- path/to/ner-checkpoint "Some text."
//! ```

use linkner::{LinkConfig, StatsSnapshot};

type Error = Box<dyn std::error::Error>;

/// Annotates `texts` with the checkpoint in `model` linked to the LLM at `url`; entities whose
/// uncertainty is above `threshold` go to the LLM.
async fn run(
    model: &str,
    url: &str,
    llm: &str,
    texts: &[String],
    threshold: f32,
) -> Result<StatsSnapshot, Error> {
    let config = serde_json::json!({
        "tagger": { "model": model, "kind": "token_classification" },
        "estimator": { "type": "mc_dropout", "samples": 8 },
        "policy": { "type": "threshold", "threshold": threshold },
        "llm": { "base_url": url, "model": llm }
    });
    let pipeline = LinkConfig::from_json(&config.to_string())?.build()?;
    for doc in pipeline.annotate_batch(texts).await? {
        println!("{}", doc.text());
        for e in doc.entities.iter().chain(&doc.rejected) {
            let (s, how) = (&e.entity, e.provenance.name());
            println!("  {:<20} {:<6} {:.2} {how}", s.text, s.label, e.uncertainty);
        }
    }
    Ok(pipeline.stats())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .ok_or("usage: token_classification DIR [TEXT ...]")?;
    let mut texts: Vec<String> = args.collect();
    if texts.is_empty() {
        texts.push("Angela Merkel met Emmanuel Macron in Paris on Tuesday .".into());
    }
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let url = env("LINKNER_LLM_URL", "http://127.0.0.1:8080/v1");
    let stats = run(
        &model,
        &url,
        &env("LINKNER_LLM_MODEL", "default"),
        &texts,
        0.3,
    )
    .await?;
    println!(
        "{} entities, {} routed to the LLM",
        stats.entities, stats.routed
    );
    Ok(())
}

#[cfg(test)]
#[path = "../crates/linkner-llm/tests/support/local_server.rs"]
mod local_server;

// `cargo test` fine-tunes MiniLM as a BertForTokenClassification on eight sentences with Python
// `transformers` (a real Hugging Face checkpoint, made locally) and links it to the real local
// llama.cpp server.
#[tokio::test(flavor = "multi_thread")]
async fn example_runs() {
    let Some(server) = local_server::server(
        "example_token_classification::example_runs",
        "LINKNER_QUICKSTART_TEST_PORT",
        "18184",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("ner");
    let venv = std::env::var_os("LINKNER_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| linkner::tagger::locate::cache_dir().join("venv"));
    let out = std::process::Command::new(venv.join("bin/python"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../linkner-tagger/tests/support/make_token_class.py"
        ))
        .arg("finetune")
        .arg(&model)
        .arg(linkner::tagger::default_encoder_dir().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let texts = vec![
        "Peter Blackburn met Angela Merkel in Brussels .".to_string(),
        "Zoë Müller joined Siemens AG in München .".to_string(),
    ];
    // Every entity routed (a negative threshold routes everything): the run must reach the LLM.
    let stats = run(
        model.to_str().unwrap(),
        &server.url,
        &server.model,
        &texts,
        -1.0,
    )
    .await
    .unwrap();
    assert_eq!(stats.documents, 2);
    assert!(stats.entities >= 4, "{stats:?}");
    assert_eq!(stats.failures, 0);
    assert_eq!(stats.routed, stats.entities, "{stats:?}");
    // Each routed entity got an answer from the server: confirmed, relabelled or rejected.
    assert_eq!(
        stats.confirmed + stats.relabelled + stats.rejected,
        stats.routed,
        "{stats:?}"
    );
    assert!(
        stats.llm_requests + stats.cache_hits >= stats.routed,
        "{stats:?}"
    );
    assert!(
        stats.prompt_tokens > 0,
        "the server counted no tokens: {stats:?}"
    );
    server.record_answer();
    // A folder that is not a checkpoint is a clear error, not a panic.
    let err = run("/nonexistent", &server.url, &server.model, &texts, 0.3)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
}
