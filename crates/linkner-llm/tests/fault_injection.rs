//! Fault injection: the OpenAI-compatible backend against a misbehaving local HTTP server
//! (`support/fake_server.rs`: raw HTTP over a tokio TcpListener on 127.0.0.1:0). Every fault
//! ends in a typed error or a successful retry within the configured time. Time bounds are
//! loose: these are not benchmarks.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use linkner_core::LabelSchema;
use linkner_llm::{
    AnswerMode, ApiKey, ClassifyRequest, FailureKind, LlmClassifier, LlmError, OpenAiBuilder,
    OpenAiClassifier,
};

#[path = "support/fake_server.rs"]
mod fake_server;

#[path = "support/rss.rs"]
mod rss;

use fake_server::{FakeServer, Fault, Script, chat, logprob_chat, ok};
use rss::peak_growth;

/// Starts a server whose n-th request gets `script[n]` (the last entry repeats).
async fn fake_server(script: Vec<Fault>) -> FakeServer {
    FakeServer::start(Script::seq(script)).await
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
    assert_eq!(s.hits(), 2);
    let st = c.stats().unwrap();
    assert_eq!(
        (st.calls, st.requests, st.retries, st.failures),
        (1, 2, 1, 1)
    );
}

#[tokio::test]
async fn rate_limit_honours_retry_after_then_succeeds() {
    let s = fake_server(vec![
        Fault::Status(429, Some("1".into()), "{\"error\":\"slow down\"}".into()),
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
    assert_eq!(s.hits(), 2);
    assert_eq!(c.stats().unwrap().retries, 1);
    assert_eq!(a.usage.prompt_tokens, 100);
    assert_eq!(a.usage.cached_prompt_tokens, 80);
}

#[tokio::test]
async fn service_unavailable_retry_after_is_capped() {
    let s = fake_server(vec![
        Fault::Status(503, Some("3600".into()), "busy".into()),
        ok("person"),
    ])
    .await;
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
    let s = fake_server(vec![Fault::Status(500, None, "internal error".into())]).await;
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
    assert_eq!(s.hits(), 3);
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let s = fake_server(vec![Fault::Status(
        400,
        None,
        "{\"error\":\"bad model\"}".into(),
    )])
    .await;
    let c = builder(&s.url).build().unwrap();
    let e = c.classify(&req()).await.unwrap_err();
    assert!(
        matches!(&e, LlmError::Http { status: 400, body, .. } if body.contains("bad model")),
        "{e:?}"
    );
    assert_eq!(s.hits(), 1);
}

#[tokio::test]
async fn malformed_json_is_a_typed_error() {
    let s = fake_server(vec![Fault::Malformed]).await;
    let c = builder(&s.url).build().unwrap();
    let e = c.classify(&req()).await.unwrap_err();
    assert!(matches!(e, LlmError::MalformedResponse(_)), "{e:?}");
    assert_eq!(s.hits(), 1);
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
    assert_eq!(s.hits(), 1);
}

#[tokio::test]
async fn logprob_answers_carry_a_distribution() {
    let s = fake_server(vec![Fault::Ok(
        // The full prompt's answer keys: letters (PER A, LOC B, ORG C, MISC D, none E).
        logprob_chat(&[("B", 0.6), ("C", 0.2), ("The", 0.2)]),
        Duration::ZERO,
    )])
    .await;
    let c = builder(&s.url)
        .mode(AnswerMode::default())
        .template(linkner_llm::PromptTemplate::full())
        .build()
        .unwrap();
    let a = c.classify(&req()).await.unwrap();
    assert_eq!(a.class, 2);
    let d = a.distribution.unwrap();
    assert!(
        (d[2] - 0.75).abs() < 1e-4 && (d[3] - 0.25).abs() < 1e-4,
        "{d:?}"
    );
    assert!((a.confidence.unwrap() - 0.75).abs() < 1e-4);
    // The mass on answer tokens before renormalising: B and C, not "The".
    assert!(
        (a.label_mass.unwrap() - 0.8).abs() < 1e-4,
        "{:?}",
        a.label_mass
    );
    assert_eq!(a.usage.cached_prompt_tokens, 40);
    let reqs = s.requests();
    let body = &reqs[0];
    assert!(body.contains("\"top_logprobs\":20"), "{body}");
}

#[tokio::test]
async fn connection_reset_is_retried() {
    let s = fake_server(vec![Fault::Reset, ok("organization")]).await;
    let c = builder(&s.url).build().unwrap();
    let a = c.classify(&req()).await.unwrap();
    assert_eq!(a.label, "ORG");
    assert_eq!(s.hits(), 2);

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
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
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
    let s = fake_server(vec![Fault::Drip(Duration::from_millis(100))]).await;
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
    assert_eq!(s.hits(), 1);
    let st = c.stats().unwrap();
    assert_eq!((st.calls, st.cache_hits, st.requests), (2, 1, 1));
    // A new classifier with the same file answers without the server (once the background
    // writer has written the answer).
    c.cache().unwrap().flush();
    let c2 = builder(&s.url).cache_path(&path).build().unwrap();
    let d = c2.classify(&req()).await.unwrap();
    assert!(d.cached);
    assert_eq!(d.class, 2);
    assert_eq!(s.hits(), 1);
    // A different model is a different key.
    let c3 = builder(&s.url)
        .model("other")
        .cache_path(&path)
        .build()
        .unwrap();
    assert!(!c3.classify(&req()).await.unwrap().cached);
    assert_eq!(s.hits(), 2);
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
    assert_eq!(s.max_concurrent(), 2);
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
    let r = s.requests()[0].to_ascii_lowercase();
    assert!(r.contains("authorization: bearer sk-test-42"), "{r}");
    assert!(!format!("{c:?}").contains("sk-test-42"));
}

#[tokio::test]
async fn invalid_requests_never_reach_the_server() {
    // An invalid request cannot be built (valid by construction), so no backend sees one; the
    // valid one beside it reaches the server exactly once.
    let s = fake_server(vec![ok("person")]).await;
    let c = builder(&s.url).build().unwrap();
    let valid = req();
    let e = ClassifyRequest::new(valid.sentence(), 0, 1000, valid.schema().clone()).unwrap_err();
    assert!(matches!(e, LlmError::InvalidRequest(_)), "{e:?}");
    c.classify(&valid).await.unwrap();
    assert_eq!(s.hits(), 1);
}

// ---- issue 13: transport failures, body cap, deadline, breaker ----

#[tokio::test]
async fn a_body_cut_before_its_length_is_a_retryable_connection_error() {
    // The first attempt of every request is cut mid-body; the retry succeeds: no failure.
    let s = FakeServer::start(Script::first_attempt(Fault::cut_short(), ok("person"))).await;
    let c = builder(&s.url).build().unwrap();
    let a = c.classify(&req()).await.unwrap();
    assert_eq!(a.label, "PER");
    assert_eq!(s.hits(), 2);
    let st = c.stats().unwrap();
    assert_eq!((st.failures, st.retries), (0, 1));

    // Without retries the cut is a typed, retryable connection error, not a malformed answer.
    let s = FakeServer::start(Script::always(Fault::cut_short())).await;
    let c = builder(&s.url).max_retries(0).build().unwrap();
    let e = c.classify(&req()).await.unwrap_err();
    assert!(matches!(e, LlmError::Connection(_)), "{e:?}");
    assert_eq!(e.kind(), FailureKind::Connection);
    assert!(e.is_retryable());
}

#[tokio::test]
async fn many_entities_with_every_first_attempt_cut_all_succeed() {
    let s = FakeServer::start(Script::first_attempt(Fault::cut_short(), ok("location"))).await;
    let c = builder(&s.url).max_in_flight(4).build().unwrap();
    let schema = Arc::new(LabelSchema::conll03());
    let reqs: Vec<ClassifyRequest> = (0..40)
        .map(|i| {
            ClassifyRequest::find(
                format!("We met in Town{i} ."),
                &format!("Town{i}"),
                schema.clone(),
            )
            .unwrap()
        })
        .collect();
    let out = c.classify_batch(&reqs).await;
    assert!(
        out.iter()
            .all(|r| r.as_ref().is_ok_and(|a| a.label == "LOC")),
        "{out:?}"
    );
    assert_eq!(s.hits(), 80);
    assert_eq!(c.stats().unwrap().failures, 0);
    // The cut attempts never opened the breaker (each entity's retry succeeded in between).
    assert_eq!(c.stats().unwrap().breaker_trips, 0);
}

#[tokio::test]
async fn a_huge_body_is_abandoned_with_a_typed_error_and_flat_memory() {
    const HUGE: u64 = 64 << 20;
    for chunked in [false, true] {
        let s = FakeServer::start(Script::always(Fault::Huge {
            bytes: HUGE,
            chunked,
        }))
        .await;
        let c = builder(&s.url)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let t = Instant::now();
        let (r, growth) = peak_growth(c.classify(&req())).await;
        eprintln!("chunked {chunked}: peak memory growth {} KiB", growth >> 10);
        let e = r.unwrap_err();
        assert!(
            matches!(e, LlmError::ResponseTooLarge { limit } if limit == 4 << 20),
            "chunked {chunked}: {e:?}"
        );
        assert_eq!(e.kind(), FailureKind::TooLarge);
        // Not retried: the same request would get the same body.
        assert_eq!(s.hits(), 1);
        // Reading it whole would take at least 64 MiB; the cap is 4 MiB.
        assert!(
            growth < 24 << 20,
            "chunked {chunked}: memory grew by {} MiB",
            growth >> 20
        );
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    }
    // The cap is a setting: a smaller one refuses a normal answer.
    let s = fake_server(vec![ok("person")]).await;
    let c = builder(&s.url).max_response_bytes(16).build().unwrap();
    let e = c.classify(&req()).await.unwrap_err();
    assert!(
        matches!(e, LlmError::ResponseTooLarge { limit: 16 }),
        "{e:?}"
    );
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let at = SystemTime::now() + Duration::from_secs(2);
    let date = linkner_llm::http::format_http_date(at);
    let s = fake_server(vec![
        Fault::Status(429, Some(date.clone()), "{}".into()),
        ok("person"),
    ])
    .await;
    let c = builder(&s.url).build().unwrap();
    let t = Instant::now();
    let a = c.classify(&req()).await.unwrap();
    assert_eq!(a.class, 1);
    // The date has a one-second resolution: between 1 and 2 s from now.
    let el = t.elapsed();
    assert!(
        el >= Duration::from_millis(900) && el < Duration::from_secs(4),
        "{date}: {el:?}"
    );
}

#[tokio::test]
async fn the_deadline_bounds_one_entity_across_retries() {
    let s = fake_server(vec![Fault::Hang]).await;
    let c = builder(&s.url)
        .timeout(Duration::from_millis(300))
        .max_retries(10)
        .circuit_breaker(0, Duration::from_secs(1), Duration::from_secs(1))
        .deadline(Some(Duration::from_millis(800)))
        .build()
        .unwrap();
    let t = Instant::now();
    let e = c.classify(&req()).await.unwrap_err();
    assert!(matches!(e, LlmError::DeadlineExceeded(_)), "{e:?}");
    assert_eq!(e.kind(), FailureKind::Deadline);
    let el = t.elapsed();
    assert!(
        el >= Duration::from_millis(780) && el < Duration::from_secs(3),
        "{el:?}"
    );
    assert!(s.hits() <= 3, "{}", s.hits());
}

/// Requests for `n` distinct entities.
fn many(n: usize) -> Vec<ClassifyRequest> {
    let schema = Arc::new(LabelSchema::conll03());
    (0..n)
        .map(|i| {
            ClassifyRequest::find(
                format!("Mr Smith{i} spoke ."),
                &format!("Smith{i}"),
                schema.clone(),
            )
            .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_hung_server_costs_one_timeout_per_slot_then_the_breaker_fails_fast() {
    // Defaults (4 in flight, 3 retries, breaker after 4) with a 1 s timeout.
    let s = fake_server(vec![Fault::Hang]).await;
    let c = OpenAiClassifier::builder()
        .base_url(&s.url)
        .mode(AnswerMode::FreeText)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let t = Instant::now();
    let out = c.classify_batch(&many(40)).await;
    let el = t.elapsed();
    assert!(out.iter().all(|r| r.is_err()));
    // One round of 4 timeouts, then every call fails fast: not 40 × 4 timeouts.
    assert_eq!(s.hits(), 4);
    assert!(el < Duration::from_secs(4), "{el:?}");
    let st = c.stats().unwrap();
    assert_eq!(st.breaker_trips, 1);
    assert_eq!(st.failures, 40);
    assert_eq!(
        st.failures_by_kind.get(&FailureKind::CircuitOpen),
        Some(&40)
    );
    let e = out[39].as_ref().unwrap_err();
    assert!(e.to_string().contains("circuit breaker open"), "{e}");
}

#[tokio::test]
async fn a_hung_server_with_every_default_setting_ends_within_about_one_timeout() {
    // The real defaults: 60 s per attempt, 3 retries, 4 in flight, breaker after 4, 120 s
    // deadline. Before the breaker, 40 entities would have taken 40 × 4 × 60 s / 4 ≈ 40 min.
    let s = fake_server(vec![Fault::Hang]).await;
    let c = OpenAiClassifier::builder()
        .base_url(&s.url)
        .build()
        .unwrap();
    assert_eq!(c.config().timeout_s, 60.0);
    let t = Instant::now();
    let out = c.classify_batch(&many(40)).await;
    let el = t.elapsed();
    assert!(out.iter().all(|r| r.is_err()));
    assert_eq!(s.hits(), 4);
    assert!(
        el >= Duration::from_secs(59) && el < Duration::from_secs(75),
        "{el:?}"
    );
    let st = c.stats().unwrap();
    assert_eq!((st.breaker_trips, st.failures), (1, 40));
}

#[tokio::test]
async fn the_breaker_probes_again_after_its_cool_down() {
    // Refused connections (fast failures) open the breaker; the server comes back.
    let s = fake_server(vec![Fault::Close, Fault::Close, ok("person")]).await;
    let c = builder(&s.url)
        .max_retries(0)
        .circuit_breaker(2, Duration::from_millis(300), Duration::from_secs(2))
        .build()
        .unwrap();
    for _ in 0..2 {
        assert_eq!(
            c.classify(&req()).await.unwrap_err().kind(),
            FailureKind::Connection
        );
    }
    assert_eq!(
        c.classify(&req()).await.unwrap_err().kind(),
        FailureKind::CircuitOpen
    );
    assert_eq!(s.hits(), 2);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(c.classify(&req()).await.unwrap().class, 1);
    assert_eq!(s.hits(), 3);
}

#[cfg(unix)]
#[tokio::test]
async fn a_cache_file_that_cannot_be_written_never_fails_an_answer() {
    let s = fake_server(vec![ok("location")]).await;
    // /dev/full accepts the open, then fails every write (no space left on device).
    let c = builder(&s.url).cache_path("/dev/full").build().unwrap();
    let a = c.classify(&req()).await.unwrap();
    assert_eq!(a.label, "LOC");
    assert!(c.classify(&req()).await.unwrap().cached);
    let cache = c.cache().unwrap().clone();
    tokio::task::spawn_blocking(move || cache.flush())
        .await
        .unwrap();
    let st = c.stats().unwrap();
    assert_eq!(st.failures, 0);
    assert!(st.cache_write_failures >= 1, "{st:?}");
}

#[tokio::test]
async fn rate_limits_keep_the_in_flight_bound() {
    let s = FakeServer::start(Script::first_attempt(
        Fault::status_retry_after(429, 0),
        Fault::Ok(chat("person"), Duration::from_millis(50)),
    ))
    .await;
    let c = builder(&s.url).max_in_flight(3).build().unwrap();
    let out = c.classify_batch(&many(12)).await;
    assert!(out.iter().all(|r| r.is_ok()));
    assert!(s.max_concurrent() <= 3, "{}", s.max_concurrent());
    assert_eq!(s.hits(), 24);
}

#[tokio::test]
async fn a_mixed_30_percent_of_faults_loses_no_entity() {
    let faults = vec![
        Fault::Reset,
        Fault::cut_short(),
        Fault::Status(503, None, "busy".into()),
        Fault::status_retry_after(429, 0),
        Fault::Close,
    ];
    // Each entity has an answer of its own (from its number in the prompt), so that an answer
    // given to the wrong entity (a retry answered out of turn, a batch reordered) is caught.
    const ANSWERS: [(&str, &str); 3] = [
        ("person", "PER"),
        ("location", "LOC"),
        ("organization", "ORG"),
    ];
    let answer_of = |body: &str| -> usize {
        let at = body.find("Smith").expect("the entity in the prompt") + 5;
        let digits: String = body[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<usize>().expect("its number") % 3
    };
    let s = FakeServer::start(Script::mixed_with(0.3, 7, faults, move |seen| {
        ok(ANSWERS[answer_of(&seen.body)].0)
    }))
    .await;
    let c = builder(&s.url).max_retries(6).build().unwrap();
    let out = c.classify_batch(&many(60)).await;
    let failed: Vec<_> = out.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(s.hits() > 60);
    for (i, r) in out.iter().enumerate() {
        let label = &r.as_ref().unwrap().label;
        assert_eq!(
            label,
            ANSWERS[i % 3].1,
            "entity {i} got another entity's answer"
        );
    }
}
