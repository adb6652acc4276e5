//! The embedded default: the trained MiniLM tagger + a local llama.cpp server, no API key.
//!
//! ```sh
//! bash scripts/main.sh   # once: sets up and trains the default tagger
//! eval "$(bash scripts/llm-server.sh start quality 8080)"; export LINKNER_LLM_URL LINKNER_LLM_MODEL
//! cargo run -p linkner --example quickstart
//! ```
//! The pipeline is one JSON config, the file `linkner link --config` takes. Environment:
//! `LINKNER_MODEL` (the tagger folder), `LINKNER_LLM_URL`, `LINKNER_LLM_MODEL`.
use linkner::{LinkConfig, StatsSnapshot};
use serde_json::{Value, json};

/// The texts it annotates (accents, emoji: offsets are chars of these strings).
pub const TEXTS: &[&str] = &[
    "Angela Merkel met Emmanuel Macron in Paris on Tuesday.",
    "Zoë Müller joined Siemens AG in München after leaving the Bundesbank.",
    "Manchester United beat Real Madrid 2-1 at Old Trafford 🎉.",
];

/// Builds the pipeline from `config` (the JSON of `linkner link --config`), annotates [`TEXTS`].
pub async fn run(config: Value) -> linkner::Result<StatsSnapshot> {
    let pipeline = LinkConfig::from_json(&config.to_string())?.build()?;
    for doc in pipeline.annotate_batch(TEXTS).await? {
        println!("{}", doc.text());
        for e in doc.entities.iter().chain(&doc.rejected) {
            let (x, u, how) = (&e.entity, e.uncertainty, e.provenance.name());
            let (at, t, l) = (format!("[{}, {})", x.start, x.end), &x.text, &x.label);
            println!("  chars {at:<8} {t:<18} {l:<5} uncertainty {u:.2} {how}");
        }
    }
    let s = pipeline.stats();
    let (n, r, f) = (s.entities, s.routed, s.failures);
    println!("{n} entities, {r} routed to the LLM, {f} failed (they keep the local label)");
    Ok(s)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    run(json!({
        "tagger": { "model": linkner::tagger::default_model_dir() }, // $LINKNER_MODEL or default
        "estimator": { "type": "entropy" },
        "policy": { "type": "threshold", "threshold": 0.4 }, // LinkNER's rule
        "llm": { "base_url": var("LINKNER_LLM_URL", "http://127.0.0.1:8080/v1"),
                 "model": var("LINKNER_LLM_MODEL", "default") }
    }))
    .await?;
    Ok(())
}
