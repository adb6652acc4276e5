//! `linkner link` and `linkner annotate` end to end with a tiny tagger trained on four CoNLL
//! sentences: the oracle, the local-only policy, a dead LLM server, plain-text annotation with
//! Unicode offsets, and the real local llama.cpp server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../../linkner-llm/tests/support/local_server.rs"]
mod local_server;

use std::path::PathBuf;

use common::{link_json, linkner};
use serde_json::Value;

/// The data file and a tagger trained on it (once for the whole file).
fn fixture() -> &'static (PathBuf, PathBuf) {
    common::tiny_fixture()
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

#[test]
fn oracle_routes_everything_to_gold_and_local_matches_eval() {
    let (data, model) = fixture();
    let v = link_json(model, data, &["--oracle", "--policy", "always"]);
    assert_eq!(v["oracle_mode"], true);
    assert_eq!(v["llm"], "oracle (gold labels)");
    let entities = f(&v, &["stats", "entities"]);
    assert_eq!(f(&v, &["stats", "routed"]), entities);
    assert_eq!(f(&v, &["stats", "failures"]), 0.0);
    // Every prediction routed to gold: nothing wrong survives.
    if f(&v, &["scores", "linked", "predicted"]) > 0.0 {
        assert_eq!(f(&v, &["scores", "linked", "precision"]), 1.0);
    }
    assert_eq!(
        f(&v, &["scores", "linked", "f1"]),
        f(&v, &["scores", "oracle", "f1"])
    );

    // The local-only score of the run is exactly what `linkner eval` measures.
    let out = linkner()
        .args(["eval", "--json", "--format", "conll", "--threads", "1"])
        .arg("--model")
        .arg(model)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success());
    let eval: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(f(&v, &["scores", "local", "f1"]), f(&eval, &["f1"]));
    assert_eq!(
        f(&v, &["scores", "local", "predicted"]),
        f(&eval, &["predicted"])
    );
}

#[test]
fn never_policy_needs_no_llm_and_default_policy_asks_for_one() {
    let (data, model) = fixture();
    let v = link_json(model, data, &["--policy", "never"]);
    assert_eq!(f(&v, &["stats", "routed"]), 0.0);
    assert_eq!(v["scores"]["local"], v["scores"]["linked"]);

    // The default policy routes (threshold 0.4): without an LLM that is a clear error.
    let out = linkner()
        .args(["link", "--threads", "1"])
        .arg("--model")
        .arg(model)
        .arg("--data")
        .arg(data)
        .env_remove("LINKNER_LLM_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--llm-url"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn dead_llm_server_keeps_every_local_label_and_counts_failures() {
    let (data, model) = fixture();
    // A port nobody listens on: connection refused on every attempt.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    // Every routed entity failed: all output is written, then exit status 3 with the counts.
    let out = linkner()
        .args(["link", "--json", "--threads", "1", "--format", "conll"])
        .args([
            "--policy",
            "always",
            "--llm-url",
            &url,
            "--llm-in-flight",
            "16",
        ])
        .arg("--model")
        .arg(model)
        .arg("--data")
        .arg(data)
        .env_remove("LINKNER_LLM_URL")
        .env_remove("LINKNER_MODEL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("routed entities") && err.contains("exit status 3"),
        "{err}"
    );
    // Plain text on a pipe: no colour codes.
    assert!(!err.contains('\u{1b}'), "{err:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entities = f(&v, &["stats", "entities"]);
    assert!(entities > 0.0, "the tiny tagger should find something: {v}");
    assert_eq!(f(&v, &["stats", "failures"]), entities);
    assert_eq!(f(&v, &["stats", "routed"]), entities);
    assert_eq!(v["scores"]["local"], v["scores"]["linked"]);
    // The backend's failures by kind are in the report, and in the exit message.
    let kinds = v["llm_stats"]["failures_by_kind"].as_object().unwrap();
    let counted: f64 = kinds.values().map(|n| n.as_f64().unwrap()).sum();
    assert_eq!(counted, entities, "{kinds:?}");
    for k in kinds.keys() {
        assert!(err.contains(k.as_str()), "{k} missing in {err}");
    }
    // `--llm-failure-limit` takes a share in (0, 1]; anything else is a usage error.
    let bad = linkner()
        .args(["link", "--llm-failure-limit", "0"])
        .arg("--model")
        .arg(model)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn annotate_answers_every_line_with_offsets_into_it() {
    let (_, model) = fixture();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let lines = [
        "Peter Blackburn met the EU in Brussels.",
        "",
        "Zoë Müller visited 東京 with Syria\u{200b}n friends 🎉 and Jose\u{301}.",
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = linkner()
        .args(["annotate", "--policy", "never", "--threads", "1", "--stats"])
        .arg("--model")
        .arg(model)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), lines.len(), "one annotation per input line");
    for (a, line) in got.iter().zip(lines) {
        assert_eq!(a["sentence"]["text"], line);
        let chars: Vec<char> = line.chars().collect();
        for e in a["entities"].as_array().unwrap() {
            let (s, t) = (
                e["entity"]["start"].as_u64().unwrap() as usize,
                e["entity"]["end"].as_u64().unwrap() as usize,
            );
            assert_eq!(
                e["entity"]["text"].as_str().unwrap(),
                chars[s..t].iter().collect::<String>()
            );
            assert_eq!(e["provenance"]["source"], "local");
        }
    }
    let stats: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stderr).lines().last().unwrap()).unwrap();
    assert_eq!(stats["documents"], 3);
}

#[test]
fn link_against_the_real_local_llm_server() {
    let Some(server) = local_server::server(
        "cli_link::link_against_the_real_local_llm_server",
        "LINKNER_CLI_LINK_TEST_PORT",
        "18183",
    ) else {
        return;
    };
    let (data, model) = fixture();
    let v = link_json(
        model,
        data,
        &[
            "--policy",
            "always",
            "--llm-url",
            &server.url,
            "--llm-model",
            &server.model,
        ],
    );
    let s = &v["stats"];
    let entities = f(&v, &["stats", "entities"]);
    assert!(entities > 0.0, "{v}");
    assert_eq!(f(&v, &["stats", "routed"]), entities);
    assert_eq!(f(&v, &["stats", "failures"]), 0.0, "{s}");
    let decided = f(&v, &["stats", "confirmed"])
        + f(&v, &["stats", "relabelled"])
        + f(&v, &["stats", "rejected"]);
    assert_eq!(decided, entities);
    assert!(f(&v, &["stats", "prompt_tokens"]) > 0.0);
    assert!(v["llm"].as_str().unwrap().starts_with("openai:"));
    assert_eq!(v["oracle_mode"], false);
    server.record_answer();
}
