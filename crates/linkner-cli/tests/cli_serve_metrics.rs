//! `GET /metrics` of `linkner serve` scraped by a real Prometheus (Debian's `prometheus`): after
//! a few annotations, Prometheus's own query API reports the target up and at least as many
//! answered `POST /v1/annotate` requests (and timed ones, and annotated documents) as were sent.
//! Fails when Prometheus is missing (`scripts/setup-services.sh` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod serve_support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serve_support::{KillOnDrop, Served, free_port, http, percent_encode, required_program};

/// Requests sent before the scrape.
const SENT: u64 = 5;

#[test]
fn a_real_prometheus_scrapes_the_request_counters_of_linkner_serve() {
    let prometheus = required_program("prometheus", "prometheus");
    let t0 = Instant::now();
    let model = &common::tiny_fixture().1;
    let server = Served::start(&["--policy", "never", "--model", model.to_str().unwrap()]);
    let texts = [
        "Peter Blackburn met the EU .",
        "Japan beat Syria .",
        "Zoë 🎉 : BRUSSELS 1996-08-22",
        "EU rejects German call",
        "東京 and Japan",
    ];
    assert_eq!(texts.len() as u64, SENT);
    for text in texts {
        let answer = server.annotate(&json!({ "text": text }));
        assert_eq!(
            answer["annotations"][0]["sentence"]["text"], text,
            "{answer}"
        );
    }
    // The exposition itself, before Prometheus reads it.
    let metrics = http(server.addr, "GET", "/metrics", None);
    assert_eq!(metrics.status, 200, "GET /metrics: {}", metrics.body);
    assert!(
        metrics.body.contains("linkner_http_requests_total"),
        "GET /metrics has no linkner_http_requests_total:\n{}",
        metrics.body
    );

    // Prometheus on a free loopback port, scraping the server every second.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: linkner\n    scrape_interval: 1s\n    \
             scrape_timeout: 1s\n    metrics_path: /metrics\n    static_configs:\n      \
             - targets: ['{}']\n",
            server.addr
        ),
    )
    .unwrap();
    let prom_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let prom_log = dir.path().join("prometheus.log");
    let _prom = KillOnDrop(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&prom_log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", prometheus.display())),
    );
    let log = || std::fs::read_to_string(&prom_log).unwrap_or_default();

    // Until Prometheus answers with every expected value (30 s after it is ready).
    let wait_ready = Instant::now() + Duration::from_secs(60);
    while !serve_support::try_http(prom_addr, "GET", "/-/ready", None)
        .is_ok_and(|r| r.status == 200)
    {
        assert!(
            Instant::now() < wait_ready,
            "Prometheus was not ready on {prom_addr} within 60 s; its log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let ready = Instant::now();
    let queries = [
        ("up{job=\"linkner\"}", 1.0),
        (
            "sum(linkner_http_requests_total{job=\"linkner\",route=\"/v1/annotate\",status=\"200\"})",
            SENT as f64,
        ),
        (
            "sum(linkner_http_request_duration_seconds_count{job=\"linkner\",route=\"/v1/annotate\"})",
            SENT as f64,
        ),
        ("sum(linkner_documents_total{job=\"linkner\"})", SENT as f64),
    ];
    let mut last: Vec<String> = Vec::new();
    loop {
        last.clear();
        let mut all = true;
        for (query, at_least) in queries {
            let value = query_value(prom_addr, query);
            let ok = value.is_some_and(|v| v >= at_least);
            all &= ok;
            last.push(format!("{query} = {value:?} (want >= {at_least})"));
        }
        if all {
            break;
        }
        if ready.elapsed() > Duration::from_secs(30) {
            let targets = http(prom_addr, "GET", "/api/v1/targets", None).body;
            panic!(
                "Prometheus did not report the expected values within 30 s:\n  {}\ntargets: \
                 {targets}\nPrometheus log:\n{}\nserver stderr:\n{}",
                last.join("\n  "),
                log(),
                server.log()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "Prometheus saw them {:.1} s after it was ready ({:.1} s in all):\n  {}",
        ready.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        last.join("\n  ")
    );
}

/// The value of an instant query with one sample (`None` when the result is empty); panics
/// on a query error.
fn query_value(prom: SocketAddr, query: &str) -> Option<f64> {
    let path = format!("/api/v1/query?query={}", percent_encode(query));
    let answer = http(prom, "GET", &path, None);
    let body: Value = serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("Prometheus answered non-JSON ({e}): {}", answer.body));
    assert_eq!(
        (answer.status, body["status"].as_str()),
        (200, Some("success")),
        "query {query}: {}",
        answer.body
    );
    let result = body["data"]["result"].as_array().unwrap();
    assert!(
        result.len() <= 1,
        "query {query}: several series: {}",
        answer.body
    );
    result.first().map(|sample| {
        let text = sample["value"][1].as_str().unwrap();
        text.parse()
            .unwrap_or_else(|e| panic!("query {query}: value {text:?}: {e}"))
    })
}
