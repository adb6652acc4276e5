//! A real local llama.cpp server for tests, shared by `linkner-llm`'s `real_server` test and the
//! linker's `real_llm` test (which includes this file with `#[path]`).
//!
//! Resolution:
//! 1. `LINKNER_LLM_URL` (non-empty) and `LINKNER_LLM_MODEL`: that server is used, never stopped.
//! 2. Otherwise `scripts/llm-server.sh start small PORT` starts one (port from the given
//!    environment variable, or the given default) and it is stopped when the [`Server`] drops,
//!    unless it was already running.
//! 3. Only when `llama-server` or the small model is not installed (`scripts/setup-llm.sh` has
//!    not run) is `None` returned, after a loud SKIP message. An installed server that does not
//!    start fails the test.

use std::path::PathBuf;
use std::process::Command;

/// A server the test talks to.
pub struct Server {
    /// OpenAI-compatible base URL (`http://127.0.0.1:PORT/v1`).
    pub url: String,
    /// Model alias to send.
    pub model: String,
    /// The port to stop when this test started the server.
    pub own_port: Option<String>,
}

impl Server {
    /// Stops the server now when this test started it (asserting that the stop worked).
    #[allow(dead_code)] // not every test stops its server mid-run
    pub fn stop(&mut self) {
        if let Some(port) = self.own_port.take() {
            let status = Command::new("bash")
                .arg(root().join("scripts/llm-server.sh"))
                .args(["stop", &port])
                .status()
                .expect("run scripts/llm-server.sh stop");
            assert!(status.success(), "stopping the server failed");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(port) = &self.own_port {
            let _ = Command::new("bash")
                .arg(root().join("scripts/llm-server.sh"))
                .args(["stop", port])
                .status();
        }
    }
}

/// The workspace root (every crate lives two levels below it).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn skip(test: &str, why: &str) {
    eprintln!();
    eprintln!("==================================================================");
    eprintln!("SKIPPED: {test} — {why}");
    eprintln!("Run `bash scripts/setup-llm.sh small` to install llama-server and the");
    eprintln!("small model, or set LINKNER_LLM_URL / LINKNER_LLM_MODEL.");
    eprintln!("==================================================================");
}

/// Finds or starts the server for `test` (named in the SKIP message); `port_var` names the
/// environment variable that overrides `default_port`.
pub fn server(test: &str, port_var: &str, default_port: &str) -> Option<Server> {
    if let Some(url) = std::env::var("LINKNER_LLM_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        let model = std::env::var("LINKNER_LLM_MODEL").unwrap_or_else(|_| "default".into());
        return Some(Server {
            url,
            model,
            own_port: None,
        });
    }
    let cache = std::env::var_os("LINKNER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/linkner")
        });
    let stamp = cache.join("llama-venv/.linkner-llama-ok-v2");
    let model = cache.join("llm/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    let bin_ok = std::fs::read_to_string(&stamp)
        .map(|p| PathBuf::from(p.trim()).exists())
        .unwrap_or(false);
    if !bin_ok {
        skip(
            test,
            &format!(
                "llama-server is not installed ({} missing)",
                stamp.display()
            ),
        );
        return None;
    }
    if !model.exists() {
        skip(
            test,
            &format!("the small model {} is missing", model.display()),
        );
        return None;
    }
    let port = std::env::var(port_var).unwrap_or_else(|_| default_port.into());
    let out = Command::new("bash")
        .arg(root().join("scripts/llm-server.sh"))
        .args(["start", "small", &port])
        .output()
        .expect("run scripts/llm-server.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "llama-server is installed but did not start:\n{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let get = |k: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(k).map(str::to_string))
            .expect("llm-server.sh printed no URL/model")
    };
    Some(Server {
        url: get("LINKNER_LLM_URL="),
        model: get("LINKNER_LLM_MODEL="),
        // A server that was already running (reused) is left as it was.
        own_port: (!stderr.contains("reusing")).then_some(port),
    })
}
