//! Runs `examples/quickstart.rs` against the real local llama.cpp server (the small model) with a
//! tiny tagger trained for the test; half of its entities are routed to the real server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/common/mod.rs"]
mod common;
#[path = "../crates/linkner-llm/tests/support/local_server.rs"]
mod local_server;
#[path = "../examples/quickstart.rs"]
#[allow(dead_code)]
mod quickstart;

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
    let config = |model: &std::path::Path| {
        serde_json::json!({
            "tagger": { "model": model },
            "estimator": { "type": "entropy" },
            "policy": { "type": "budget", "fraction": 0.5 },
            "llm": { "base_url": server.url, "model": server.model }
        })
    };
    let stats = quickstart::run(config(&model)).await.unwrap();
    assert_eq!(stats.documents, quickstart::TEXTS.len() as u64);
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
    // A missing model folder is a clear error naming it, not a panic.
    let missing = dir.path().join("no-such-tagger");
    let err = quickstart::run(config(&missing)).await.unwrap_err();
    assert!(err.to_string().contains("no-such-tagger"), "{err}");
    server.record_answer();
}
