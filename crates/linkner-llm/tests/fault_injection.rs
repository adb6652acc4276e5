//! Fault injection: the OpenAI-compatible backend against a misbehaving local HTTP server
//! written here (raw HTTP over a tokio TcpListener on 127.0.0.1:0). Every fault ends in a typed
//! error or a successful retry within the configured time. Time bounds are loose: these are not
//! benchmarks.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use linkner_core::LabelSchema;
use linkner_llm::{
    AnswerMode, ApiKey, ClassifyRequest, LlmClassifier, LlmError, OpenAiBuilder, OpenAiClassifier,
};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// What the fake server does with one request.
#[derive(Clone, Debug)]
enum Fault {
    /// 200 with this JSON body, after an optional delay.
    Ok(String, Duration),
    /// This status, optional `Retry-After`, this body.
    Status(u16, Option<&'static str>, &'static str),
    /// Read the request and never answer.
    Hang,
    /// Read the request and reset the connection.
    Reset,
    /// Send headers announcing a body, then one byte every 100 ms.
    Drip,
    /// 200 with a body that is not JSON.
    Malformed,
}

struct FakeServer {
    url: String,
    hits: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    max_concurrent: Arc<AtomicUsize>,
}

/// Starts a server whose n-th request gets `script[n]` (the last entry repeats).
async fn fake_server(script: Vec<Fault>) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let current = Arc::new(AtomicUsize::new(0));
    let max_concurrent = Arc::new(AtomicUsize::new(0));
    let (h, r, c, m) = (
        hits.clone(),
        requests.clone(),
        current.clone(),
        max_concurrent.clone(),
    );
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let (h, r, c, m, script) = (h.clone(), r.clone(), c.clone(), m.clone(), script.clone());
            tokio::spawn(async move {
                let Some(req) = read_request(&sock).await else {
                    return;
                };
                let n = h.fetch_add(1, Ordering::SeqCst);
                r.lock().unwrap().push(req);
                let now = c.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                let fault = script[n.min(script.len() - 1)].clone();
                respond(sock, fault).await;
                c.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    FakeServer {
        url: format!("http://{addr}/v1"),
        hits,
        requests,
        max_concurrent,
    }
}

/// Reads one HTTP request (headers and Content-Length body) as text.
async fn read_request(sock: &TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        sock.readable().await.ok()?;
        match sock.try_read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return None,
        }
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(text);
            }
        }
    }
}

async fn respond(mut sock: TcpStream, fault: Fault) {
    match fault {
        Fault::Ok(body, delay) => {
            tokio::time::sleep(delay).await;
            let _ = sock.write_all(http(200, None, &body).as_bytes()).await;
        }
        Fault::Status(code, retry_after, body) => {
            let _ = sock
                .write_all(http(code, retry_after, body).as_bytes())
                .await;
        }
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Fault::Reset => {
            // Linger 0: closing sends a TCP reset (it does not block with a zero timeout).
            #[allow(deprecated)]
            let _ = sock.set_linger(Some(Duration::ZERO));
            drop(sock);
            return;
        }
        Fault::Drip => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n";
            let _ = sock.write_all(head.as_bytes()).await;
            for _ in 0..1000 {
                if sock.write_all(b" ").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Fault::Malformed => {
            let _ = sock
                .write_all(http(200, None, "{\"choices\": [ {\"message\": ").as_bytes())
                .await;
        }
    }
    let _ = sock.shutdown().await;
}

fn http(code: u16, retry_after: Option<&str>, body: &str) -> String {
    let ra = retry_after
        .map(|s| format!("Retry-After: {s}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\n{ra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn chat(content: &str) -> String {
    json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 3,
                  "prompt_tokens_details": {"cached_tokens": 80}},
    })
    .to_string()
}

fn ok(content: &str) -> Fault {
    Fault::Ok(chat(content), Duration::ZERO)
}

fn logprob_chat(tops: &[(&str, f64)]) -> String {
    let top: Vec<_> = tops
        .iter()
        .map(|(t, p)| json!({"token": t, "logprob": p.ln()}))
        .collect();
    json!({
        "choices": [{"message": {"content": tops[0].0},
                     "logprobs": {"content": [{"token": tops[0].0, "logprob": tops[0].1.ln(),
                                               "top_logprobs": top}]}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 1},
        "timings": {"cache_n": 40},
    })
    .to_string()
}

fn req() -> ClassifyRequest {
    ClassifyRequest::find(
        "Rome is the capital of Italy .",
        "Rome",
        Arc::new(LabelSchema::conll03()),
    )
    .unwrap()
}

fn builder(url: &str) -> OpenAiBuilder {
    OpenAiClassifier::builder()
        .base_url(url)
        .model("fake")
        .mode(AnswerMode::FreeText)
        .timeout(Duration::from_millis(400))
        .backoff(Duration::from_millis(20), Duration::from_millis(80))
        .max_retries(2)
        .cache(false)
}

#[tokio::test]
async fn hanging_server_times_out_then_gives_up() {
    let s = fake_server(vec![Fault::Hang]).await;
    let c = builder(&s.url).max_retries(1).build().unwrap();
    let t = Instant::now();
    let e = c.classify(&req()).await.unwrap_err();
    assert!(
        matches!(&e, LlmError::RetriesExhausted { attempts: 2, last } if matches!(**last, LlmError::Timeout(_))),
        "{e:?}"
    );
    assert!(e.root().is_retryable());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(t.elapsed() >= Duration::from_millis(800));
    assert_eq!(s.hits.load(Ordering::SeqCst), 2);
    let st = c.stats().unwrap();
    assert_eq!(
        (st.calls, st.requests, st.retries, st.failures),
        (1, 2, 1, 1)
    );
}

#[tokio::test]
async fn rate_limit_honours_retry_after_then_succeeds() {
    let s = fake_server(vec![
        Fault::Status(429, Some("1"), "{\"error\":\"slow down\"}"),
        ok("location"),
    ])
    .await;
    let c = builder(&s.url).build().unwrap();
    let t = Instant::now();
    let a = c.classify(&req()).await.unwrap();
    let el = t.elapsed();
    assert_eq!(a.label, "LOC");
    assert!(
        el >= Duration::from_millis(950),
        "Retry-After ignored: {el:?}"
    );
    assert!(el < Duration::from_secs(5), "{el:?}");
    assert_eq!(s.hits.load(Ordering::SeqCst), 2);
    assert_eq!(c.stats().unwrap().retries, 1);
    assert_eq!(a.usage.prompt_tokens, 100);
    assert_eq!(a.usage.cached_prompt_tokens, 80);
}

#[tokio::test]
async fn service_unavailable_retry_after_is_capped() {
    let s = fake_server(vec![Fault::Status(503, Some("3600"), "busy"), ok("person")]).await;
    let c = builder(&s.url)
        .max_retry_after(Duration::from_millis(300))
        .build()
        .unwrap();
    let t = Instant::now();
    let a = c.classify(&req()).await.unwrap();
    assert_eq!(a.class, 1);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test]
async fn server_errors_exhaust_retries() {
    let s = fake_server(vec![Fault::Status(500, None, "internal error")]).await;
    let c = builder(&s.url).build().unwrap();
    let t = Instant::now();
    let e = c.classify(&req()).await.unwrap_err();
    match &e {
        LlmError::RetriesExhausted { attempts: 3, last } => {
            assert!(
                matches!(**last, LlmError::Http { status: 500, .. }),
                "{last:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.hits.load(Ordering::SeqCst), 3);
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let s = fake_server(vec![Fault::Status(400, None, "{\"error\":\"bad model\"}")]).await;
    let c = builder(&s.url).build().unwrap();
    let e = c.classify(&req()).await.unwrap_err();
    assert!(
        matches!(&e, LlmError::Http { status: 400, body, .. } if body.contains("bad model")),
        "{e:?}"
    );
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn malformed_json_is_a_typed_error() {
    let s = fake_server(vec![Fault::Malformed]).await;
    let c = builder(&s.url).build().unwrap();
    let e = c.classify(&req()).await.unwrap_err();
    assert!(matches!(e, LlmError::MalformedResponse(_)), "{e:?}");
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);
    // A JSON body of the wrong shape too.
    let s = fake_server(vec![Fault::Ok("{\"choices\": []}".into(), Duration::ZERO)]).await;
    let c = builder(&s.url).build().unwrap();
    let e = c.classify(&req()).await.unwrap_err();
    assert!(matches!(e, LlmError::MalformedResponse(_)), "{e:?}");
}

#[tokio::test]
async fn labels_outside_the_set_are_parse_failures_in_every_mode() {
    let s = fake_server(vec![ok("banana")]).await;
    let c = builder(&s.url).build().unwrap();
    let e = c.classify(&req()).await.unwrap_err();
    assert!(matches!(e, LlmError::LabelOutsideSchema { .. }), "{e:?}");

    let s = fake_server(vec![ok("{\"label\": \"city\"}")]).await;
    let c = builder(&s.url)
        .mode(AnswerMode::Constrained)
        .build()
        .unwrap();
    let e = c.classify(&req()).await.unwrap_err();
    assert!(matches!(e, LlmError::LabelOutsideSchema { .. }), "{e:?}");

    let s = fake_server(vec![Fault::Ok(
        logprob_chat(&[("The", 0.9), ("It", 0.1)]),
        Duration::ZERO,
    )])
    .await;
    let c = builder(&s.url).mode(AnswerMode::default()).build().unwrap();
    let e = c.classify(&req()).await.unwrap_err();
    assert!(matches!(e, LlmError::LabelOutsideSchema { .. }), "{e:?}");
    assert_eq!(c.stats().unwrap().failures, 1);
    // A parse failure is not retried (temperature 0 would answer the same).
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn logprob_answers_carry_a_distribution() {
    let s = fake_server(vec![Fault::Ok(
        logprob_chat(&[("location", 0.6), ("organization", 0.2), ("The", 0.2)]),
        Duration::ZERO,
    )])
    .await;
    let c = builder(&s.url).mode(AnswerMode::default()).build().unwrap();
    let a = c.classify(&req()).await.unwrap();
    assert_eq!(a.class, 2);
    let d = a.distribution.unwrap();
    assert!(
        (d[2] - 0.75).abs() < 1e-4 && (d[3] - 0.25).abs() < 1e-4,
        "{d:?}"
    );
    assert!((a.confidence.unwrap() - 0.75).abs() < 1e-4);
    assert_eq!(a.usage.cached_prompt_tokens, 40);
    let body = &s.requests.lock().unwrap()[0];
    assert!(body.contains("\"top_logprobs\":20"), "{body}");
}

#[tokio::test]
async fn connection_reset_is_retried() {
    let s = fake_server(vec![Fault::Reset, ok("organization")]).await;
    let c = builder(&s.url).build().unwrap();
    let a = c.classify(&req()).await.unwrap();
    assert_eq!(a.label, "ORG");
    assert_eq!(s.hits.load(Ordering::SeqCst), 2);

    let s = fake_server(vec![Fault::Reset]).await;
    let c = builder(&s.url).max_retries(1).build().unwrap();
    let e = c.classify(&req()).await.unwrap_err();
    assert!(
        matches!(&e, LlmError::RetriesExhausted { last, .. } if matches!(**last, LlmError::Connection(_))),
        "{e:?}"
    );
}

#[tokio::test]
async fn refused_connection_is_a_typed_error() {
    // Bind then drop: nothing listens on the port any more.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let c = builder(&format!("http://127.0.0.1:{port}/v1"))
        .max_retries(1)
        .build()
        .unwrap();
    let t = Instant::now();
    let e = c.classify(&req()).await.unwrap_err();
    assert!(
        matches!(&e, LlmError::RetriesExhausted { last, .. } if matches!(**last, LlmError::Connection(_))),
        "{e:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn dripping_server_hits_the_timeout() {
    let s = fake_server(vec![Fault::Drip]).await;
    let c = builder(&s.url).max_retries(0).build().unwrap();
    let t = Instant::now();
    let e = c.classify(&req()).await.unwrap_err();
    assert!(matches!(e, LlmError::Timeout(_)), "{e:?}");
    let el = t.elapsed();
    assert!(
        el >= Duration::from_millis(350) && el < Duration::from_secs(3),
        "{el:?}"
    );
}

#[tokio::test]
async fn slow_first_answer_then_retry_succeeds_within_budget() {
    let s = fake_server(vec![
        Fault::Ok(chat("person"), Duration::from_secs(5)),
        ok("person"),
    ])
    .await;
    let c = builder(&s.url).build().unwrap();
    let t = Instant::now();
    let a = c.classify(&req()).await.unwrap();
    assert_eq!(a.class, 1);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test]
async fn cache_answers_repeats_in_memory_and_from_disk() {
    let s = fake_server(vec![ok("location")]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("answers.jsonl");
    let c = builder(&s.url).cache_path(&path).build().unwrap();
    let a = c.classify(&req()).await.unwrap();
    let b = c.classify(&req()).await.unwrap();
    assert!(!a.cached && b.cached);
    assert_eq!(a.class, b.class);
    assert_eq!(b.usage.prompt_tokens, 0);
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);
    let st = c.stats().unwrap();
    assert_eq!((st.calls, st.cache_hits, st.requests), (2, 1, 1));
    // A new classifier with the same file answers without the server.
    let c2 = builder(&s.url).cache_path(&path).build().unwrap();
    let d = c2.classify(&req()).await.unwrap();
    assert!(d.cached);
    assert_eq!(d.class, 2);
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);
    // A different model is a different key.
    let c3 = builder(&s.url)
        .model("other")
        .cache_path(&path)
        .build()
        .unwrap();
    assert!(!c3.classify(&req()).await.unwrap().cached);
    assert_eq!(s.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn in_flight_requests_are_bounded() {
    let s = fake_server(vec![Fault::Ok(chat("person"), Duration::from_millis(150))]).await;
    let c = builder(&s.url)
        .max_in_flight(2)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let schema = Arc::new(LabelSchema::conll03());
    let reqs: Vec<ClassifyRequest> = (0..6)
        .map(|i| {
            ClassifyRequest::find(
                format!("Mr Smith{i} spoke ."),
                &format!("Smith{i}"),
                schema.clone(),
            )
            .unwrap()
        })
        .collect();
    let t = Instant::now();
    let out = c.classify_batch(&reqs).await;
    assert_eq!(out.len(), 6);
    assert!(out.iter().all(|r| r.as_ref().is_ok_and(|a| a.class == 1)));
    assert_eq!(s.max_concurrent.load(Ordering::SeqCst), 2);
    // 6 requests, 2 at a time, 150 ms each: at least 3 rounds.
    assert!(
        t.elapsed() >= Duration::from_millis(440),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn api_key_is_sent_as_bearer_and_never_logged() {
    let s = fake_server(vec![ok("person")]).await;
    let c = builder(&s.url)
        .api_key(ApiKey::new("sk-test-42"))
        .build()
        .unwrap();
    c.classify(&req()).await.unwrap();
    let r = s.requests.lock().unwrap()[0].to_ascii_lowercase();
    assert!(r.contains("authorization: bearer sk-test-42"), "{r}");
    assert!(!format!("{c:?}").contains("sk-test-42"));
}

#[tokio::test]
async fn invalid_requests_never_reach_the_server() {
    let s = fake_server(vec![ok("person")]).await;
    let c = builder(&s.url).build().unwrap();
    let mut r = req();
    r.end = 1000;
    let e = c.classify(&r).await.unwrap_err();
    assert!(matches!(e, LlmError::InvalidRequest(_)), "{e:?}");
    assert_eq!(s.hits.load(Ordering::SeqCst), 0);
}
