//! `linkner serve` end to end: every route and every limit, in process (tower's `oneshot`)
//! and over a real socket (reqwest), with a scripted tagger and LLM (fault injection: delays
//! and failures on demand). The real tagger, the real LLM server, Chromium and Prometheus are
//! in the CLI's tests (crates/linkner-cli/tests/cli_serve*.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Reply, ScriptedLlm, ScriptedTagger, entry};
use linkner::core::{Candidate, LabelSchema, Sentence};
use linkner::core::{LocalTagger, PredictOptions, TaggerError};
use linkner::uncertainty::builtins::Confidence;
use linkner::{Pipeline, RoutingBudget, RoutingPolicy, StreamOptions};
use linkner_serve::{ServeConfig, Server};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A scripted tagger that sleeps before each batch (a slow model).
struct Slow(ScriptedTagger, Duration);

impl LocalTagger for Slow {
    fn schema(&self) -> &LabelSchema {
        &self.0.schema
    }
    fn tag_sentences(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>, TaggerError> {
        std::thread::sleep(self.1);
        self.0.tag_sentences(sentences, options)
    }
}

fn tagger() -> ScriptedTagger {
    // Köln: sure; Acme: uncertain (routed at 0.4); Zoë: uncertain.
    ScriptedTagger::new(vec![
        entry("Köln", "LOC", 0.05),
        entry("Acme", "ORG", 0.6),
        entry("Zoë", "PER", 0.5),
    ])
}

struct Setup {
    llm_delay: Duration,
    tagger_delay: Duration,
    max_wait_ms: u64,
    config: ServeConfig,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            llm_delay: Duration::ZERO,
            tagger_delay: Duration::ZERO,
            max_wait_ms: 5,
            config: ServeConfig::default(),
        }
    }
}

/// A pipeline: threshold 0.4; the LLM relabels Acme as PER (class 1) and rejects Zoë.
fn pipeline(setup: &Setup) -> (Pipeline, Arc<ScriptedLlm>) {
    let schema = LabelSchema::conll03();
    let per = schema.class_of("PER").unwrap();
    let llm = Arc::new(
        ScriptedLlm::new(&[("Acme", Reply::Class(per)), ("Zoë", Reply::Class(0))])
            .with_delay(setup.llm_delay),
    );
    let p = Pipeline::builder()
        .tagger(Arc::new(Slow(tagger(), setup.tagger_delay)))
        .estimator(Arc::new(Confidence::new()))
        .llm(llm.clone())
        .policy(RoutingPolicy::Threshold { threshold: 0.4 })
        .budget(RoutingBudget::new())
        .stream_options(StreamOptions {
            max_wait: Duration::from_millis(setup.max_wait_ms),
            ..StreamOptions::default()
        })
        .build()
        .unwrap();
    (p, llm)
}

fn server(setup: &Setup) -> (Server, Arc<ScriptedLlm>) {
    let (p, llm) = pipeline(setup);
    let s = Server::builder(p)
        .config(setup.config.clone())
        .build()
        .unwrap();
    (s, llm)
}

/// One request in process: status, headers, body as JSON (or text in `{"text": …}`).
async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    body: impl Into<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({"text": String::from_utf8_lossy(&bytes)}));
    (status, headers, v)
}

fn entities(a: &Value) -> Vec<(u64, u64, String, String)> {
    a["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["entity"]["start"].as_u64().unwrap(),
                e["entity"]["end"].as_u64().unwrap(),
                e["entity"]["label"].as_str().unwrap().to_string(),
                e["provenance"]["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotate_one_text_batches_and_documents_with_char_offsets() {
    let (s, _) = server(&Setup::default());
    let app = s.router();
    // Emoji (2 UTF-16 units, 4 bytes), CJK, combining mark, RTL before the entities.
    let text = "👩‍👧 東京 é\u{301} שלום Acme in Köln";
    let (st, _, v) = call(
        &app,
        "POST",
        "/v1/annotate",
        json!({"text": text}).to_string(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let a = &v["annotations"][0];
    let chars: Vec<char> = text.chars().collect();
    let got = entities(a);
    assert_eq!(got.len(), 2, "{a}");
    for (start, end, _, _) in &got {
        let s: String = chars[*start as usize..*end as usize].iter().collect();
        assert!(s == "Acme" || s == "Köln", "offsets point at {s:?}");
    }
    assert_eq!(got[0].2, "PER", "Acme relabelled by the LLM");
    assert_eq!(got[0].3, "llm_relabelled");
    assert_eq!(got[1].3, "local");
    assert!(a["timings"]["total_ms"].as_f64().unwrap() >= 0.0);
    assert!(a["timings"]["batch_size"].as_u64().unwrap() >= 1);
    assert!(v["timings"]["total_ms"].is_number());

    // A batch keeps request order; documents keep their ids; LLM off keeps local labels.
    let body = json!({"documents": [{"id": "a", "text": "Zoë"}, {"id": 2, "text": "Acme"},
                                    {"text": "nothing here"}],
                      "options": {"llm": false}});
    let (st, _, v) = call(&app, "POST", "/v1/annotate", body.to_string()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let anns = v["annotations"].as_array().unwrap();
    assert_eq!(anns.len(), 3);
    assert_eq!(anns[0]["id"], json!("a"));
    assert_eq!(anns[1]["id"], json!(2));
    assert!(anns[2].get("id").is_none());
    assert_eq!(
        entities(&anns[0]),
        vec![(0, 3, "PER".into(), "local".into())]
    );
    assert_eq!(
        entities(&anns[1]),
        vec![(0, 4, "ORG".into(), "local".into())]
    );
    // With the LLM, Zoë is rejected: gone from entities, kept in `rejected`.
    let (_, _, v) = call(&app, "POST", "/v1/annotate", r#"{"texts": ["Zoë"]}"#).await;
    assert!(
        v["annotations"][0]["entities"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        v["annotations"][0]["rejected"][0]["provenance"]["source"],
        "llm_rejected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_and_malformed_body_gets_a_json_error() {
    let setup = Setup {
        config: ServeConfig {
            max_body_bytes: 200,
            max_text_chars: 10,
            max_batch: 2,
            ..ServeConfig::default()
        },
        ..Setup::default()
    };
    let (s, _) = server(&setup);
    let app = s.router();
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or("").to_string();
    let msg = |v: &Value| v["error"]["message"].as_str().unwrap_or("").to_string();

    let big = json!({"text": "x".repeat(300)}).to_string();
    let (st, _, v) = call(&app, "POST", "/v1/annotate", big).await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    assert!(msg(&v).contains("200 bytes"), "{v}");

    let long = json!({"texts": ["ok", "ééééééééééé"]}).to_string();
    let (st, _, v) = call(&app, "POST", "/v1/annotate", long).await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "text_too_long")
    );
    assert!(
        msg(&v).contains("texts[1]") && msg(&v).contains("11 chars"),
        "{v}"
    );

    let many = json!({"texts": ["a", "b", "c"]}).to_string();
    let (st, _, v) = call(&app, "POST", "/v1/annotate", many).await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "batch_too_large")
    );

    let (st, _, v) = call(&app, "POST", "/v1/annotate", r#"{"text": "a",}"#).await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );
    assert!(msg(&v).contains("column"), "{v}");
    let (st, _, v) = call(
        &app,
        "POST",
        "/v1/annotate",
        r#"{"options": {"llm": "no"}, "text": "a"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(msg(&v).contains("options.llm"), "{v}");

    let mut bad = br#"{"text": "K"#.to_vec();
    bad.extend_from_slice(&[0xC3, 0x28]);
    bad.extend_from_slice(br#"ln"}"#);
    let (st, _, v) = call(&app, "POST", "/v1/annotate", bad).await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_utf8")
    );
    assert!(msg(&v).contains("byte 11"), "{v}");

    let (st, _, v) = call(&app, "GET", "/v2/nothing", "").await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_too_many_gets_503_with_retry_after() {
    let setup = Setup {
        llm_delay: Duration::from_millis(600),
        config: ServeConfig {
            max_concurrent_requests: 1,
            retry_after_s: 3,
            ..ServeConfig::default()
        },
        ..Setup::default()
    };
    let (s, _) = server(&setup);
    let app = s.router();
    let slow = {
        let app = app.clone();
        tokio::spawn(async move { call(&app, "POST", "/v1/annotate", r#"{"text": "Acme"}"#).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (st, headers, v) = call(&app, "POST", "/v1/annotate", r#"{"text": "Köln"}"#).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "overloaded");
    assert_eq!(headers.get("retry-after").unwrap(), "3");
    // The health routes are not limited.
    assert_eq!(call(&app, "GET", "/healthz", "").await.0, StatusCode::OK);
    let (st, _, v) = slow.await.unwrap();
    assert_eq!(st, StatusCode::OK, "{v}");
    // And the slot is free again.
    assert_eq!(
        call(&app, "POST", "/v1/annotate", r#"{"text": "Köln"}"#)
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_returns_the_local_labels_marked_when_the_llm_is_slow() {
    let setup = Setup {
        llm_delay: Duration::from_millis(3000),
        config: ServeConfig {
            request_timeout_ms: 400,
            ..ServeConfig::default()
        },
        ..Setup::default()
    };
    let (s, _) = server(&setup);
    let app = s.router();
    let t0 = Instant::now();
    let (st, _, v) = call(&app, "POST", "/v1/annotate", r#"{"text": "Acme in Köln"}"#).await;
    let took = t0.elapsed();
    assert_eq!(st, StatusCode::GATEWAY_TIMEOUT, "{v}");
    assert_eq!(v["error"]["code"], "timeout");
    assert_eq!(v["partial"], true);
    let got = entities(&v["annotations"][0]);
    assert_eq!(
        got[0],
        (0, 4, "ORG".into(), "budget".into()),
        "local label kept, marked"
    );
    assert_eq!(got[1].3, "local");
    assert!(
        took < Duration::from_millis(2000),
        "answered at the timeout, took {took:?}"
    );
    // A caller's own budget below the timeout is not an error: 200 with `budget` marks.
    let body = r#"{"text": "Acme", "options": {"latency_budget_ms": 100}}"#;
    let (st, _, v) = call(&app, "POST", "/v1/annotate", body).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(entities(&v["annotations"][0])[0].3, "budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_tagger_gives_504_without_annotations() {
    let setup = Setup {
        tagger_delay: Duration::from_millis(1500),
        config: ServeConfig {
            request_timeout_ms: 200,
            ..ServeConfig::default()
        },
        ..Setup::default()
    };
    let (s, _) = server(&setup);
    let (st, _, v) = call(&s.router(), "POST", "/v1/annotate", r#"{"text": "Köln"}"#).await;
    assert_eq!(st, StatusCode::GATEWAY_TIMEOUT, "{v}");
    assert_eq!(v["error"]["code"], "timeout");
    assert!(v.get("annotations").is_none(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_tagger_batches() {
    let setup = Setup {
        max_wait_ms: 150,
        ..Setup::default()
    };
    let (s, _) = server(&setup);
    let app = s.router();
    let mut jobs = Vec::new();
    for i in 0..8 {
        let app = app.clone();
        jobs.push(tokio::spawn(async move {
            let body = json!({"text": format!("Köln {i}"), "options": {"llm": false}});
            call(&app, "POST", "/v1/annotate", body.to_string()).await
        }));
    }
    let mut sizes = Vec::new();
    for j in jobs {
        let (st, _, v) = j.await.unwrap();
        assert_eq!(st, StatusCode::OK);
        sizes.push(
            v["annotations"][0]["timings"]["batch_size"]
                .as_u64()
                .unwrap(),
        );
    }
    // Eight requests within the 150 ms window: at least two share a tagger batch.
    assert!(sizes.iter().any(|&n| n >= 2), "batch sizes {sizes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_openapi() {
    let (s, _) = server(&Setup::default());
    let app = s.router();
    let (st, _, v) = call(&app, "GET", "/healthz", "").await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    // No URL given: the LLM is not probed.
    let (st, _, v) = call(&app, "GET", "/readyz", "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["llm"]["status"], "not_probed");
    // A URL where nothing listens: degraded, said why.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let (p, _) = pipeline(&Setup::default());
    let s2 = Server::builder(p)
        .llm_url(format!("http://127.0.0.1:{port}/v1"))
        .build()
        .unwrap();
    let (st, _, v) = call(&s2.router(), "GET", "/readyz", "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["status"], "degraded", "{v}");
    assert_eq!(v["llm"]["status"], "unreachable");
    assert!(v["llm"]["error"].as_str().unwrap().contains("/v1/models"));
    // A server that answers /v1/models: reachable.
    let models = axum::Router::new().route(
        "/v1/models",
        axum::routing::get(|| async { axum::Json(json!({"data": []})) }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, models).await });
    let (p, _) = pipeline(&Setup::default());
    let s3 = Server::builder(p).llm_url(url).build().unwrap();
    let (_, _, v) = call(&s3.router(), "GET", "/readyz", "").await;
    assert_eq!(v["status"], "ready", "{v}");
    assert_eq!(v["llm"]["status"], "reachable");

    // Metrics after two annotate calls (one routed entity).
    call(&app, "POST", "/v1/annotate", r#"{"text": "Acme"}"#).await;
    call(&app, "POST", "/v1/annotate", r#"{"text": "Köln"}"#).await;
    let (st, _, v) = call(&app, "GET", "/metrics", "").await;
    assert_eq!(st, StatusCode::OK);
    let text = v["text"].as_str().unwrap();
    for needle in [
        "linkner_http_requests_total{route=\"/v1/annotate\",status=\"200\"}",
        "linkner_http_request_duration_seconds_bucket{route=\"/v1/annotate\"",
        "linkner_tagger_batch_size_bucket",
        "linkner_document_duration_seconds_count",
        "linkner_routed_total",
        "linkner_llm_requests_total",
        "linkner_budget_skipped_total",
        "linkner_llm_in_flight",
        "linkner_http_requests_in_flight",
    ] {
        assert!(
            text.contains(needle),
            "{needle} missing from /metrics:\n{text}"
        );
    }

    // Every documented route answers (no 404/405), and undocumented ones do not.
    let (st, _, doc) = call(&app, "GET", "/openapi.json", "").await;
    assert_eq!(st, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 7);
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let body = if path == "/v1/annotate" {
                r#"{"text": "Köln"}"#
            } else {
                ""
            };
            let (st, _, v) = call(&app, &method.to_uppercase(), path, body).await;
            assert!(st.is_success(), "{method} {path} -> {st} {v}");
        }
    }
    let (st, _, _) = call(&app, "GET", "/v1/annotate", "").await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    let (st, _, page) = call(&app, "GET", "/", "").await;
    assert_eq!(st, StatusCode::OK);
    assert!(page["text"].as_str().unwrap().contains("<html"));
}

/// A real server on a socket, stopped through the returned sender.
async fn spawn_socket(
    server: Server,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = tokio::spawn(async move {
        server
            .serve(l, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (base, tx, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_stream_over_a_socket_answers_each_line_before_the_next_is_sent() {
    let (s, _) = server(&Setup::default());
    let (base, stop, handle) = spawn_socket(s).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|x| (x, rx))
    }));
    let client = reqwest::Client::new();
    let send = client
        .post(format!("{base}/v1/annotate/stream"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send();
    tx.send(Ok(
        b"{\"id\": 1, \"text\": \"Acme in K\xc3\xb6ln\"}\n".to_vec()
    ))
    .await
    .unwrap();
    let mut res = send.await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    // The first record arrives while the request body is still open.
    let first = tokio::time::timeout(Duration::from_secs(5), res.chunk())
        .await
        .expect("first record before the body ends")
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!((v["id"].clone(), v["line"].clone()), (json!(1), json!(1)));
    assert_eq!(entities(&v).len(), 2);
    // Bad lines get error records in place; the stream goes on.
    tx.send(Ok(
        b"not json\n{\"id\": \"x\"}\n{\"id\": 4, \"text\": \"Z\xc3\xb6e\"}\n".to_vec(),
    ))
    .await
    .unwrap();
    tx.send(Ok(b"{\"text\": \"Zo\xc3\xab\"}".to_vec()))
        .await
        .unwrap();
    drop(tx);
    let mut rest = Vec::new();
    while let Some(c) = res.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    let records: Vec<Value> = rest
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4, "{records:?}");
    let by_line = |n: u64| records.iter().find(|r| r["line"] == json!(n)).unwrap();
    assert_eq!(by_line(2)["error"]["code"], "invalid_json");
    assert_eq!(by_line(3)["error"]["code"], "invalid_json");
    assert_eq!(by_line(3)["id"], json!("x"));
    assert_eq!(by_line(4)["id"], json!(4));
    assert!(by_line(5)["rejected"].as_array().is_some());
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_requests_in_flight() {
    let setup = Setup {
        llm_delay: Duration::from_millis(800),
        ..Setup::default()
    };
    let (s, llm) = server(&setup);
    let (base, stop, handle) = spawn_socket(s).await;
    let client = reqwest::Client::new();
    let mut jobs = Vec::new();
    for i in 0..4 {
        let req = client
            .post(format!("{base}/v1/annotate"))
            .json(&json!({"text": format!("Acme {i}")}));
        jobs.push(tokio::spawn(req.send()));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    for j in jobs {
        let res = j.await.unwrap().unwrap();
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        assert_eq!(entities(&v["annotations"][0])[0].3, "llm_relabelled", "{v}");
    }
    assert_eq!(llm.calls.load(std::sync::atomic::Ordering::SeqCst), 4);
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("serve returns once the requests are done")
        .unwrap();
    // Nothing listens any more.
    assert!(client.get(format!("{base}/healthz")).send().await.is_err());
}

/// An LLM that answers through the scripted one and reports fixed counters, as a backend with
/// a shared answer store would.
struct WithStats(Arc<ScriptedLlm>);

#[async_trait::async_trait]
impl linkner::llm::LlmClassifier for WithStats {
    fn name(&self) -> String {
        "with-stats".into()
    }
    async fn classify(
        &self,
        request: &linkner::llm::ClassifyRequest,
    ) -> linkner::llm::Result<linkner::llm::Answer> {
        linkner::llm::LlmClassifier::classify(&*self.0, request).await
    }
    fn stats(&self) -> Option<linkner::llm::Stats> {
        Some(linkner::llm::Stats {
            cache_hits: 7,
            shared_cache_hits: 3,
            shared_cache_misses: 5,
            shared_cache_errors: 2,
            ..Default::default()
        })
    }
}

#[tokio::test]
async fn metrics_export_the_llm_backends_cache_counters() {
    let (_, scripted) = pipeline(&Setup::default());
    let p = Pipeline::builder()
        .tagger(Arc::new(tagger()))
        .estimator(Arc::new(Confidence::new()))
        .llm(Arc::new(WithStats(scripted)))
        .policy(RoutingPolicy::Threshold { threshold: 0.4 })
        .budget(RoutingBudget::new())
        .build()
        .unwrap();
    let app = Server::builder(p).build().unwrap().router();
    let (st, _, v) = call(&app, "GET", "/metrics", "").await;
    assert_eq!(st, StatusCode::OK);
    let text = v["text"].as_str().unwrap();
    for line in [
        "linkner_llm_cache_hits_total 7",
        "linkner_llm_shared_cache_hits_total 3",
        "linkner_llm_shared_cache_misses_total 5",
        "linkner_llm_shared_cache_errors_total 2",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing from /metrics:\n{text}"
        );
    }
}
