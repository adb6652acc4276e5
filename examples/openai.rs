//! Any OpenAI-compatible endpoint from environment variables: OpenAI, vLLM, llama.cpp's
//! `llama-server`, Ollama (`http://localhost:11434/v1`), a hosted gateway.
//!
//! ```sh
//! export OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_MODEL=gpt-4o-mini OPENAI_API_KEY=sk-...
//! cargo run -p linkner --example openai -- "Text to annotate." ["More text." ...]
//! ```
//!
//! `OPENAI_BASE_URL` (default `https://api.openai.com/v1`), `OPENAI_MODEL` (default
//! `gpt-4o-mini`), `OPENAI_API_KEY` (read at each request; not sent when unset, as local servers
//! need none), `LINKNER_MODEL` (the tagger; default the one `scripts/main.sh` trains). The
//! backend retries 429/5xx with back-off (honouring `Retry-After`), caches answers, and keeps
//! the local label when a call fails.

use std::path::Path;

use linkner::core::LabelSchema;
use linkner::llm::{AnswerMode, OpenAiBuilder};
use linkner::tagger::{DeviceSpec, SpanTagger, default_model_dir};
use linkner::uncertainty::EstimatorConfig;
use linkner::{Annotation, Pipeline, RoutingPolicy};
use std::sync::Arc;

/// Annotates `texts` with the tagger in `model` and the endpoint `(base_url, model_name)`,
/// routing by `policy`; the API key is read from the environment variable `key_env`.
async fn run(
    model: &Path,
    base_url: &str,
    model_name: &str,
    key_env: &str,
    texts: &[String],
    policy: RoutingPolicy,
) -> Result<(Vec<Annotation>, Pipeline), Box<dyn std::error::Error>> {
    let tagger = SpanTagger::load(model, &DeviceSpec::Cpu)?;
    let schema: LabelSchema = tagger.config().schema.clone();
    let llm = OpenAiBuilder::new()
        .base_url(base_url)
        .model(model_name)
        .api_key_env(key_env)
        .mode(AnswerMode::Logprobs { top_logprobs: 20 })
        .max_in_flight(4)
        .build()?;
    println!(
        "LLM: {} (schema {})",
        llm_name(base_url, model_name),
        schema.name
    );
    let pipeline = Pipeline::builder()
        .exclusive_tagger(tagger)
        .estimator(Arc::from(EstimatorConfig::default().build()?))
        .policy(policy)
        .llm(Arc::new(llm))
        .build()?;
    let annotations = pipeline.annotate_batch(texts).await?;
    Ok((annotations, pipeline))
}

fn llm_name(base_url: &str, model: &str) -> String {
    format!("{model} at {base_url}")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |k: &str, default: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    let mut texts: Vec<String> = std::env::args().skip(1).collect();
    if texts.is_empty() {
        texts.push("Tim Cook presented the new iPhone in Cupertino on Tuesday.".into());
    }
    let (annotations, pipeline) = run(
        &default_model_dir(),
        &var("OPENAI_BASE_URL", "https://api.openai.com/v1"),
        &var("OPENAI_MODEL", "gpt-4o-mini"),
        "OPENAI_API_KEY",
        &texts,
        RoutingPolicy::threshold(0.4),
    )
    .await?;
    for a in &annotations {
        println!("{}", serde_json::to_string(a)?);
    }
    eprintln!("{}", serde_json::to_string(&pipeline.stats())?);
    Ok(())
}

#[cfg(test)]
#[path = "../crates/linkner-llm/tests/support/local_server.rs"]
mod local_server;

#[cfg(test)]
#[path = "common/mod.rs"]
mod common;

// `cargo test` points the example at the real local llama.cpp server, which speaks the same
// API (no key: the variable named is unset).
#[tokio::test(flavor = "multi_thread")]
async fn example_runs() {
    let Some(server) = local_server::server(
        "example_openai::example_runs",
        "LINKNER_OPENAI_TEST_PORT",
        "18185",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_tagger(dir.path()).unwrap();
    let texts = vec![
        "Peter Blackburn met the EU in Brussels.".to_string(),
        "Japan beat Syria.".to_string(),
    ];
    let (annotations, pipeline) = run(
        &model,
        &server.url,
        &server.model,
        "LINKNER_EXAMPLE_UNSET_KEY",
        &texts,
        // The more uncertain half of the entities goes to the server: the LLM path really runs.
        RoutingPolicy::budget(0.5),
    )
    .await
    .unwrap();
    assert_eq!(annotations.len(), 2);
    let s = pipeline.stats();
    assert!(s.entities >= 2, "too few entities: {s:?}");
    assert_eq!(s.routed, s.entities / 2, "{s:?}");
    assert_eq!(s.failures, 0, "{s:?}");
    assert_eq!(s.confirmed + s.relabelled + s.rejected, s.routed, "{s:?}");
    assert!(s.prompt_tokens > 0, "no token reached the server: {s:?}");
    // Exactly the routed entities say that the LLM decided them.
    let decided = annotations
        .iter()
        .flat_map(|a| a.entities.iter().chain(&a.rejected))
        .filter(|e| e.provenance.name() != "local")
        .count();
    assert_eq!(decided as u64, s.routed);
    server.record_answer();
}
