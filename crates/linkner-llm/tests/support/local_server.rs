//! A real local llama.cpp server for tests, shared by `linkner-llm`'s `real_server` test, the
//! linker's `real_llm` test, the CLI's `cli_link` and `cli_report` tests and the `quickstart` and
//! `openai` examples (which include this file with `#[path]`).
//!
//! Resolution:
//! 1. [`server`]: `LINKNER_LLM_URL` (non-empty) and `LINKNER_LLM_MODEL`: that server is used,
//!    never stopped. [`own_server`] ignores them: a test that stops its server mid-run needs one
//!    of its own.
//! 2. Otherwise `scripts/llm-server.sh start small PORT` starts one (port from the given
//!    environment variable, or the given default). The test owns it — also when a stale server
//!    of ours from a killed run still held the port and was reused — and it is stopped when the
//!    [`Server`] drops.
//! 3. When `llama-server` or the small model is not installed (`scripts/setup-llm.sh` has not
//!    run), the test SKIPs loudly — unless `LINKNER_REQUIRE_LLM=1` (set by `scripts/test.sh`,
//!    so CI), where that is a test FAILURE. An installed server that does not start always
//!    fails the test.
//!
//! The server binary is found the way the scripts find it: `LLAMA_SERVER`, else the stamp in
//! `$LINKNER_LLAMA_VENV` (default `$LINKNER_CACHE/llama-venv`).
//!
//! A test that got real answers from the server calls [`Server::record_answer`]: with
//! `LINKNER_LLM_TEST_RECORD` set (scripts/test.sh sets it), one line naming the test is appended
//! to that file, so that the test command can count the real-LLM tests that really ran.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;

/// A server the test talks to.
pub struct Server {
    /// OpenAI-compatible base URL (`http://127.0.0.1:PORT/v1`).
    pub url: String,
    /// Model alias to send.
    pub model: String,
    /// The port to stop when this test owns the server.
    pub own_port: Option<String>,
    /// The test's name (what [`Server::record_answer`] writes).
    test: String,
}

impl Server {
    /// Stops the server now when this test owns it (asserting that the stop worked).
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

    /// Records that this test got real answers from the server: appends the test's name to
    /// the file named by `LINKNER_LLM_TEST_RECORD`, when that variable is set. Call it only
    /// after asserting that the answers came from the server.
    pub fn record_answer(&self) {
        let Some(path) = std::env::var_os("LINKNER_LLM_TEST_RECORD").filter(|p| !p.is_empty())
        else {
            return;
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("LINKNER_LLM_TEST_RECORD {path:?}: {e}"));
        // One short write per line: appends from parallel tests do not interleave.
        f.write_all(format!("{}\t{}\n", self.test, self.url).as_bytes())
            .unwrap_or_else(|e| panic!("LINKNER_LLM_TEST_RECORD {path:?}: {e}"));
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

/// The workspace root (every crate lives two levels below it). The crate folder is read at run
/// time (`cargo test` sets `CARGO_MANIFEST_DIR`), falling back to the compile-time one: clones
/// that share one cargo build folder (scripts/env.sh) can otherwise run a test binary built in
/// another clone, whose compiled-in path may no longer exist.
fn root() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../..")
}

/// Whether a missing server or model fails the test (`LINKNER_REQUIRE_LLM` set, not `0`).
pub fn required() -> bool {
    std::env::var("LINKNER_REQUIRE_LLM").is_ok_and(|v| !v.trim().is_empty() && v.trim() != "0")
}

fn skip(test: &str, why: &str) {
    let help = "Run `bash scripts/setup-llm.sh small` to install llama-server and the small \
                model, or set LINKNER_LLM_URL / LINKNER_LLM_MODEL.";
    assert!(
        !required(),
        "{test}: {why}. LINKNER_REQUIRE_LLM is set, so this is a failure, not a skip. {help}"
    );
    eprintln!();
    eprintln!("==================================================================");
    eprintln!("SKIPPED: {test} — {why}");
    eprintln!("{help}");
    eprintln!("==================================================================");
}

/// The llama-server binary the scripts would use: `LLAMA_SERVER`, else the path in the stamp of
/// `$LINKNER_LLAMA_VENV` (default `$LINKNER_CACHE/llama-venv`). `Err` says what is missing.
pub fn llama_server_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("LLAMA_SERVER").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("LLAMA_SERVER={} does not exist", bin.display()))
        };
    }
    let venv = std::env::var_os("LINKNER_LLAMA_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cache().join("llama-venv"));
    let stamp = venv.join(".linkner-llama-ok-v2");
    let text = std::fs::read_to_string(&stamp).map_err(|_| {
        format!(
            "llama-server is not installed ({} missing)",
            stamp.display()
        )
    })?;
    let bin = PathBuf::from(text.trim());
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "llama-server {} (named by {}) does not exist",
            bin.display(),
            stamp.display()
        ))
    }
}

fn cache() -> PathBuf {
    std::env::var_os("LINKNER_CACHE")
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/linkner")
        })
}

/// Finds or starts the server for `test` (named in the SKIP message and the record);
/// `port_var` names the environment variable that overrides `default_port`. An exported
/// `LINKNER_LLM_URL` is used as it is.
#[allow(dead_code)] // the test that stops its server mid-run uses `own_server` only
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
            test: test.to_string(),
        });
    }
    own_server(test, port_var, default_port)
}

/// Starts a server that this test owns, whatever `LINKNER_LLM_URL` says: on the port of
/// `port_var` (else `default_port`), reusing a stale server of ours found there (and then
/// owning it). `None` only after a SKIP (never with `LINKNER_REQUIRE_LLM=1`).
pub fn own_server(test: &str, port_var: &str, default_port: &str) -> Option<Server> {
    let bin = match llama_server_binary() {
        Ok(bin) => bin,
        Err(why) => {
            skip(test, &why);
            return None;
        }
    };
    let model = cache().join("llm/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    if !model.exists() {
        skip(
            test,
            &format!("the small model {} is missing", model.display()),
        );
        return None;
    }
    let port = std::env::var(port_var)
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| default_port.into());
    let out = Command::new("bash")
        .arg(root().join("scripts/llm-server.sh"))
        .args(["start", "small", &port])
        .env("LLAMA_SERVER", &bin)
        .output()
        .expect("run scripts/llm-server.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{test}: llama-server is installed but did not start on port {port}:\n{stderr}"
    );
    if stderr.contains("reusing") {
        eprintln!("{test}: a stale server of ours held port {port}; this test owns it now");
    }
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
        own_port: Some(port),
        test: test.to_string(),
    })
}
