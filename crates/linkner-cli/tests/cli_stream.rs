//! `linkner annotate` as a stream, run as a child process: the first annotation comes out
//! before the input ends, ids pass through, bad lines get located error records (or stop the
//! run), SIGTERM finishes and writes what is in flight and exits 143, and the real local LLM
//! server answers under a latency budget.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../../linkner-llm/tests/support/fake_server.rs"]
mod fake_server;
#[path = "../../linkner-llm/tests/support/local_server.rs"]
mod local_server;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::linkner;
use fake_server::{FakeServer, Fault, Script, chat};
use serde_json::Value;

/// A tagger trained on the four sentences (once for the whole file).
fn model() -> &'static PathBuf {
    &common::tiny_fixture().1
}

/// `linkner annotate` on the tiny model with `args`, its standard streams piped.
fn spawn(args: &[&str]) -> Child {
    linkner()
        .env_remove("LINKNER_LLM_URL")
        .env_remove("LINKNER_MODEL")
        .args(["annotate", "--threads", "1", "--model"])
        .arg(model())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The child's output lines as they come (a thread reads them into a channel).
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    rx
}

fn send(stdin: &mut ChildStdin, line: &[u8]) {
    stdin.write_all(line).unwrap();
    stdin.write_all(b"\n").unwrap();
    stdin.flush().unwrap();
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[test]
fn the_first_annotation_comes_out_before_the_input_ends_with_its_id() {
    let mut child = spawn(&["--policy", "never", "--input-format", "jsonl"]);
    let out = lines_of(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    send(
        &mut stdin,
        br#"{"id": "tweet-1", "text": "Peter Blackburn met the EU ."}"#,
    );
    // The input stays open: the first line must still come out (model loading included).
    let first = out
        .recv_timeout(Duration::from_secs(120))
        .expect("no annotation while the input is still open");
    let first = json(&first);
    assert_eq!(first["id"], "tweet-1");
    assert_eq!(first["line"], 1);
    assert_eq!(first["sentence"]["text"], "Peter Blackburn met the EU .");
    assert!(
        first["timings"]["total_ms"].as_f64().unwrap() > 0.0,
        "{first}"
    );
    // A second line a little later comes out on its own.
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    send(&mut stdin, br#"{"id": 2, "text": "Japan beat Syria ."}"#);
    let second = json(&out.recv_timeout(Duration::from_secs(30)).unwrap());
    assert!(sent.elapsed() < Duration::from_secs(10));
    assert_eq!(
        (second["id"].clone(), second["line"].clone()),
        (2.into(), 2.into())
    );
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(
        out.recv_timeout(Duration::from_secs(5)).is_err(),
        "one line per document"
    );
}

/// Lines 2 to 5 are bad in four ways; 1 and 6 are good.
fn hostile_input() -> Vec<u8> {
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"id\": 1, \"text\": \"Peter Blackburn met the EU .\"}\n");
    input.extend_from_slice(b"{\"id\": 2, \"text\": \"Japan beat Syr\xffia .\"}\n");
    input.extend_from_slice(b"{\"id\": 3, \"text\": \"unclosed\n");
    input.extend_from_slice(b"\n");
    input.extend_from_slice(b"{\"id\": 5, \"text\": \"");
    input.extend(std::iter::repeat_n(b'a', 1 << 20));
    input.extend_from_slice(b"\"}\n");
    input.extend_from_slice(b"{\"id\": 6, \"text\": \"BRUSSELS 1996-08-22\"}\n");
    input
}

#[test]
fn bad_lines_get_located_error_records_and_the_stream_goes_on() {
    let mut child = spawn(&[
        "--policy",
        "never",
        "--input-format",
        "jsonl",
        "--on-error",
        "skip",
    ]);
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || stdin.write_all(&hostile_input()).unwrap());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(json)
        .collect();
    assert_eq!(lines.len(), 6, "one record per input line");
    assert_eq!(lines[0]["id"], 1);
    let error = |i: usize| lines[i]["error"]["message"].as_str().unwrap().to_string();
    for (i, want) in [
        (1, "line 2: invalid UTF-8"),
        (2, "line 3: not JSON"),
        (3, "line 4: empty line"),
        (4, "line 5: longer than 262144 bytes"),
    ] {
        assert_eq!(lines[i]["error"]["line"], i + 1);
        assert!(error(i).contains(want), "{}", error(i));
        assert!(error(i).starts_with("standard input: "), "{}", error(i));
    }
    assert_eq!(lines[5]["sentence"]["text"], "BRUSSELS 1996-08-22");
    assert_eq!(lines[5]["id"], 6);

    // `fail`: everything before the bad line is written, then the error, status 1.
    let mut child = spawn(&["--policy", "never", "--input-format", "jsonl"]);
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&hostile_input());
    });
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("standard input: line 2: invalid UTF-8"),
        "{err}"
    );
}

#[test]
fn sigterm_finishes_the_documents_in_flight_writes_them_and_exits_143() {
    // Every LLM answer takes 1.5 s: the documents are in flight when the signal comes.
    let server = FakeServer::start_in_thread(Script::always(Fault::Ok(
        chat("person"),
        Duration::from_millis(1500),
    )));
    let mut child = spawn(&[
        "--policy",
        "always",
        "--llm-mode",
        "free_text",
        "--llm-url",
        &server.url,
    ]);
    let out = lines_of(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    for line in ["Peter Blackburn met the EU .", "Japan beat Syria ."] {
        send(&mut stdin, line.as_bytes());
    }
    // Wait until the requests reach the server, then stop the process.
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
    let code = child.wait().unwrap().code();
    let written: Vec<Value> = out.try_iter().map(|l| json(&l)).collect();
    assert_eq!(code, Some(143), "the conventional status for SIGTERM");
    assert_eq!(written.len(), 2, "both documents in flight were written");
    for a in &written {
        for e in a["entities"].as_array().unwrap() {
            assert_ne!(e["provenance"]["source"], "llm_failed", "{e}");
            assert_ne!(e["provenance"]["source"], "local", "{e}");
        }
    }
    drop(stdin);
}

#[test]
fn annotate_streams_through_the_real_local_llm_server_under_a_latency_budget() {
    let Some(server) = local_server::server(
        "cli_stream::annotate_streams_through_the_real_local_llm_server_under_a_latency_budget",
        "LINKNER_STREAM_TEST_PORT",
        "18187",
    ) else {
        return;
    };
    let mut child = spawn(&[
        "--policy",
        "always",
        "--llm-url",
        &server.url,
        "--llm-model",
        &server.model,
        "--llm-timeout",
        "120",
        // Generous: the server may be cold and the machine busy; what is checked is that
        // answers arrive through the budgeted path.
        "--latency-budget-ms",
        "60000",
        "--llm-budget",
        "2",
        "--order",
        "completed",
        "--stats",
    ]);
    let out = lines_of(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    let inputs = [
        "Peter Blackburn met the EU .",
        "Japan beat Syria .",
        "EU rejects German call .",
    ];
    for line in inputs {
        send(&mut stdin, line.as_bytes());
    }
    drop(stdin);
    let status = child.wait().unwrap();
    let lines: Vec<Value> = out.try_iter().map(|l| json(&l)).collect();
    assert!(status.success(), "{status:?}");
    assert_eq!(lines.len(), 3);
    let mut seen: Vec<u64> = lines.iter().map(|l| l["line"].as_u64().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, vec![1, 2, 3]);
    let mut answered = 0;
    for l in &lines {
        for e in l["entities"]
            .as_array()
            .unwrap()
            .iter()
            .chain(l["rejected"].as_array().unwrap())
        {
            let source = e["provenance"]["source"].as_str().unwrap();
            assert!(
                ["llm_confirmed", "llm_relabelled", "llm_rejected", "budget"].contains(&source),
                "{e}"
            );
            answered += usize::from(source.starts_with("llm_"));
        }
    }
    assert!(answered > 0, "no answer from the server: {lines:?}");
    server.record_answer();
}
