//! `linkner serve` as a child process with the real (tiny) tagger: SIGTERM with requests in
//! flight finishes them and exits 0, and the real local LLM server answers through the
//! service (counted by scripts/test.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../../linkner-llm/tests/support/fake_server.rs"]
mod fake_server;
#[path = "../../linkner-llm/tests/support/local_server.rs"]
mod local_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::linkner;
use fake_server::{FakeServer, Fault, Script, chat};
use serde_json::{Value, json};

/// `linkner serve` on the tiny model on a free port; returns the child and its address
/// (read from the line it prints on stderr).
fn serve(args: &[&str]) -> (Child, String) {
    let mut child = linkner()
        .env_remove("LINKNER_LLM_URL")
        .env_remove("LINKNER_MODEL")
        .args(["serve", "--threads", "1", "--port", "0", "--model"])
        .arg(&common::tiny_fixture().1)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[serve] {line}");
            if let Some(addr) = line.strip_prefix("linkner serve: listening on http://") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(300))
        .expect("linkner serve printed its address");
    (child, addr)
}

/// One HTTP/1.1 request (connection closed after it): status and JSON body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn sources(a: &Value) -> Vec<String> {
    a["entities"]
        .as_array()
        .unwrap()
        .iter()
        .chain(a["rejected"].as_array().unwrap())
        .map(|e| e["provenance"]["source"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn sigterm_with_requests_in_flight_answers_them_all_and_exits_0() {
    // Every LLM answer takes 1.5 s: the requests are in flight when the signal comes.
    let server = FakeServer::start_in_thread(Script::always(Fault::Ok(
        chat("person"),
        Duration::from_millis(1500),
    )));
    let (mut child, addr) = serve(&[
        "--policy",
        "always",
        "--llm-mode",
        "free_text",
        "--llm-url",
        &server.url,
    ]);
    let texts = ["Peter Blackburn met the EU .", "Japan beat Syria ."];
    let jobs: Vec<_> = texts
        .iter()
        .map(|t| {
            let addr = addr.clone();
            let body = json!({"text": t}).to_string();
            std::thread::spawn(move || http(&addr, "POST", "/v1/annotate", &body))
        })
        .collect();
    let t0 = Instant::now();
    while server.hits() < 2 && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.hits() >= 2, "the documents never reached the LLM");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for j in jobs {
        let (status, v) = j.join().unwrap();
        assert_eq!(status, 200, "{v}");
        let s = sources(&v["annotations"][0]);
        assert!(!s.is_empty(), "{v}");
        assert!(
            s.iter().all(|s| s.starts_with("llm_")),
            "answered, not cut: {s:?}"
        );
    }
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(0), "a graceful stop exits 0");
    // Nothing listens any more.
    assert!(TcpStream::connect(&addr).is_err());
}

#[test]
fn serve_with_the_real_local_llm_server() {
    let Some(server) = local_server::server(
        "cli_serve::serve_with_the_real_local_llm_server",
        "LINKNER_SERVE_TEST_PORT",
        "18188",
    ) else {
        return;
    };
    let (mut child, addr) = serve(&[
        "--policy",
        "always",
        "--llm-url",
        &server.url,
        "--llm-model",
        &server.model,
        "--llm-timeout",
        "120",
        "--request-timeout-ms",
        "120000",
    ]);
    let (status, ready) = http(&addr, "GET", "/readyz", "");
    assert_eq!(status, 200);
    assert_eq!(ready["llm"]["status"], "reachable", "{ready}");
    let body = json!({"documents": [{"id": 1, "text": "Peter Blackburn met the EU ."},
                                    {"id": 2, "text": "Japan beat Syria ."}]});
    let (status, v) = http(&addr, "POST", "/v1/annotate", &body.to_string());
    assert_eq!(status, 200, "{v}");
    let anns = v["annotations"].as_array().unwrap();
    assert_eq!(anns.len(), 2);
    assert_eq!(
        (anns[0]["id"].clone(), anns[1]["id"].clone()),
        (json!(1), json!(2))
    );
    let all: Vec<String> = anns.iter().flat_map(sources).collect();
    assert!(
        all.iter().any(|s| s.starts_with("llm_")),
        "no answer from the server: {all:?}"
    );
    assert!(
        all.iter().all(|s| s != "llm_failed" && s != "local"),
        "{all:?}"
    );
    // LLM off for one request: local labels only, no new LLM call.
    let body = json!({"text": "Japan beat Syria .", "options": {"llm": false}});
    let (status, v) = http(&addr, "POST", "/v1/annotate", &body.to_string());
    assert_eq!(status, 200);
    assert!(sources(&v["annotations"][0]).iter().all(|s| s == "local"));
    server.record_answer();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
