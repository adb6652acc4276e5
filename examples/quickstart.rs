//! The embedded default: the trained MiniLM tagger + a local llama.cpp server, no API key.
//!
//! ```sh
//! bash scripts/main.sh                      # once: sets up, trains the default tagger
//! eval "$(bash scripts/llm-server.sh start quality 8080)"; export LINKNER_LLM_URL LINKNER_LLM_MODEL
//! cargo run -p linkner --example quickstart
//! ```
//!
//! The whole pipeline is one JSON config (the same file `linkner link --config` takes):
//! tagger folder, estimator, routing policy, LLM endpoint. Environment: `LINKNER_MODEL` (default
//! `$LINKNER_CACHE/models/conll03-minilm-doc`), `LINKNER_LLM_URL` (default
//! `http://127.0.0.1:8080/v1`), `LINKNER_LLM_MODEL`.

mod common;

use std::path::Path;

use linkner::{LinkConfig, StatsSnapshot};

const TEXTS: &[&str] = &[
    "Angela Merkel met Emmanuel Macron in Paris on Tuesday.",
    "Zoë Müller joined Siemens AG in München after leaving the Bundesbank.",
    "Manchester United beat Real Madrid 2-1 at Old Trafford 🎉.",
];

/// Builds the pipeline from a config (routing `policy`, e.g. LinkNER's threshold 0.4) and
/// annotates [`TEXTS`]; returns the run statistics.
async fn run(
    model: &Path,
    llm_url: &str,
    llm_model: &str,
    policy: serde_json::Value,
) -> Result<StatsSnapshot, Box<dyn std::error::Error>> {
    if !model.join("tagger.json").is_file() {
        return Err(format!(
            "no trained tagger in {} — run `bash scripts/main.sh` (trains the default) or set \
             LINKNER_MODEL",
            model.display()
        )
        .into());
    }
    let config = LinkConfig::from_json(
        &serde_json::json!({
            "tagger": { "model": model, "device": "cpu" },
            "estimator": { "type": "entropy" },
            "policy": policy,
            "llm": { "base_url": llm_url, "model": llm_model }
        })
        .to_string(),
    )?;
    let pipeline = config.build()?;
    for doc in pipeline.annotate_batch(TEXTS).await? {
        println!("{}", doc.text());
        for e in doc.entities.iter().chain(&doc.rejected) {
            println!(
                "  chars [{:>2}, {:>2}) {:<18} {:<5} uncertainty {:.2}  {}",
                e.entity.start,
                e.entity.end,
                e.entity.text,
                e.entity.label,
                e.uncertainty,
                e.provenance.name()
            );
        }
    }
    let s = pipeline.stats();
    println!(
        "{} entities, {} routed to {} ({} confirmed, {} relabelled, {} rejected, {} failed)",
        s.entities,
        s.routed,
        pipeline.llm_name().unwrap_or_default(),
        s.confirmed,
        s.relabelled,
        s.rejected,
        s.failures
    );
    if s.failures > 0 {
        println!("(failed calls kept the local label: is the LLM server running at {llm_url}?)");
    }
    Ok(s)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |k: &str, default: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    let model = linkner::tagger::default_model_dir();
    run(
        &model,
        &var("LINKNER_LLM_URL", "http://127.0.0.1:8080/v1"),
        &var("LINKNER_LLM_MODEL", "default"),
        serde_json::json!({ "type": "threshold", "threshold": 0.4 }),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
#[path = "../crates/linkner-llm/tests/support/local_server.rs"]
mod local_server;

// `cargo test` runs the example against the real local llama.cpp server (the small model) with
// a tiny tagger trained for the test; half of its entities are routed to the real server.
#[tokio::test(flavor = "multi_thread")]
async fn example_runs() {
    let Some(server) = local_server::server(
        "example_quickstart::example_runs",
        "LINKNER_QUICKSTART_TEST_PORT",
        "18184",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_tagger(dir.path()).unwrap();
    // The more uncertain half of the entities goes to the server: the LLM path really runs.
    let half = serde_json::json!({ "type": "budget", "fraction": 0.5 });
    let stats = run(&model, &server.url, &server.model, half.clone())
        .await
        .unwrap();
    assert_eq!(stats.documents, TEXTS.len() as u64);
    assert!(stats.entities >= 2, "too few entities: {stats:?}");
    assert_eq!(stats.routed, stats.entities / 2, "{stats:?}");
    assert_eq!(
        stats.routed,
        stats.confirmed + stats.relabelled + stats.rejected + stats.failures
    );
    assert_eq!(
        stats.failures, 0,
        "the real server answered every routed entity"
    );
    assert!(
        stats.prompt_tokens > 0,
        "no token reached the server: {stats:?}"
    );
    // A missing model folder is a clear error, not a panic.
    let err = run(&dir.path().join("nope"), &server.url, &server.model, half)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("scripts/main.sh"), "{err}");
    server.record_answer();
}
