//! The fault matrix through the whole pipeline: the OpenAI-compatible backend against a fake HTTP
//! server (`crates/linkner-llm/tests/support/fake_server.rs`) that answers **per entity** — the
//! requests about "Acme" always get the right answer, those about "Rome" get the fault — so an
//! answer given to the wrong entity, or a lost entity, shows. For every fault: every entity is
//! present; "Acme" has the LLM's answer; "Rome" has either the right answer (a transient fault,
//! retried) or its local label with a failure of the expected kind; the failures are counted by
//! kind in the pipeline's statistics; the wall time stays within the bound the timeouts imply.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../crates/linkner-llm/tests/support/fake_server.rs"]
mod fake_server;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{ScriptedTagger, entry};
use fake_server::{FakeServer, Fault, Script, chat, ok};
use linkner::llm::{AnswerMode, FailureKind, OpenAiClassifier};
use linkner::uncertainty::builtins::Confidence;
use linkner::{Pipeline, Provenance, RoutingPolicy};

const DOCS: usize = 6;

fn docs() -> Vec<String> {
    (0..DOCS)
        .map(|i| format!("Doc {i} : Alice went to Rome for Acme ."))
        .collect()
}

/// What must happen to "Rome".
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Retried until the right answer came: LLM-confirmed LOC, no failure.
    Recovers,
    /// Fails with this kind (or, once the breaker has opened, `CircuitOpen`); local label kept.
    Fails(FailureKind),
}

struct Case {
    name: &'static str,
    /// The fault of a request about Rome, given how many times the same body was sent before.
    fault: fn(usize) -> Fault,
    expect: Expect,
    /// Upper bound of the whole run.
    bound: Duration,
}

fn http_date_in(secs: u64) -> String {
    linkner::llm::http::format_http_date(SystemTime::now() + Duration::from_secs(secs))
}

fn cases() -> Vec<Case> {
    let s = Duration::from_secs;
    vec![
        Case {
            name: "timeout on the first attempt",
            fault: |n| if n == 0 { Fault::Hang } else { ok("location") },
            expect: Expect::Recovers,
            bound: s(6),
        },
        Case {
            name: "timeout on every attempt",
            fault: |_| Fault::Hang,
            expect: Expect::Fails(FailureKind::Timeout),
            bound: s(12),
        },
        Case {
            name: "429 with Retry-After in seconds, then the answer",
            fault: |n| {
                if n == 0 {
                    Fault::status_retry_after(429, 1)
                } else {
                    ok("location")
                }
            },
            expect: Expect::Recovers,
            bound: s(6),
        },
        Case {
            name: "429 with Retry-After as an HTTP date, then the answer",
            fault: |n| {
                if n == 0 {
                    Fault::Status(429, Some(http_date_in(1)), "{}".into())
                } else {
                    ok("location")
                }
            },
            expect: Expect::Recovers,
            bound: s(8),
        },
        Case {
            name: "429 until the retries run out",
            fault: |_| Fault::Status(429, Some("0".into()), "{\"error\":\"busy\"}".into()),
            expect: Expect::Fails(FailureKind::RateLimited),
            bound: s(6),
        },
        Case {
            name: "500 then the answer",
            fault: |n| {
                if n == 0 {
                    Fault::Status(500, None, "oops".into())
                } else {
                    ok("location")
                }
            },
            expect: Expect::Recovers,
            bound: s(6),
        },
        Case {
            name: "503 on every attempt",
            fault: |_| Fault::Status(503, None, "down".into()),
            expect: Expect::Fails(FailureKind::ServerError),
            bound: s(6),
        },
        Case {
            name: "garbage body",
            fault: |_| Fault::Malformed,
            expect: Expect::Fails(FailureKind::Malformed),
            bound: s(6),
        },
        Case {
            name: "label outside the schema",
            fault: |_| ok("spaceship"),
            expect: Expect::Fails(FailureKind::OutOfSchema),
            bound: s(6),
        },
        Case {
            name: "body cut before its Content-Length, then the answer",
            fault: |n| {
                if n == 0 {
                    Fault::cut_short()
                } else {
                    ok("location")
                }
            },
            expect: Expect::Recovers,
            bound: s(6),
        },
        Case {
            name: "slow drip past the timeout on every attempt",
            fault: |_| Fault::Drip(Duration::from_millis(300)),
            expect: Expect::Fails(FailureKind::Timeout),
            bound: s(12),
        },
        Case {
            name: "connection reset, then the answer",
            fault: |n| if n == 0 { Fault::Reset } else { ok("location") },
            expect: Expect::Recovers,
            bound: s(6),
        },
        Case {
            name: "connection reset on every attempt",
            fault: |_| Fault::Reset,
            expect: Expect::Fails(FailureKind::Connection),
            bound: s(6),
        },
        Case {
            name: "a 64 MiB body with its length announced",
            fault: |_| Fault::Huge {
                bytes: 64 << 20,
                chunked: false,
            },
            expect: Expect::Fails(FailureKind::TooLarge),
            bound: s(10),
        },
        Case {
            name: "a 64 MiB chunked body",
            fault: |_| Fault::Huge {
                bytes: 64 << 20,
                chunked: true,
            },
            expect: Expect::Fails(FailureKind::TooLarge),
            bound: s(10),
        },
        Case {
            name: "content: null",
            fault: |_| {
                Fault::Ok(
                    chat("x").replace("\"content\":\"x\"", "\"content\":null"),
                    Duration::ZERO,
                )
            },
            expect: Expect::Fails(FailureKind::Malformed),
            bound: s(6),
        },
    ]
}

fn pipeline(url: &str) -> Pipeline {
    let llm = OpenAiClassifier::builder()
        .base_url(url)
        .model("fake")
        .mode(AnswerMode::FreeText)
        // The span marked `[[…]]`: the fake server tells the entities apart by it.
        .template(linkner::llm::PromptTemplate::full())
        .cache(false)
        .timeout(Duration::from_secs(1))
        .max_retries(2)
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .max_in_flight(4)
        // The breaker would (rightly) give up on a server whose first four answers all hang;
        // the matrix checks each fault's own handling. The breaker through the pipeline:
        // tests/llm_faults.rs.
        .circuit_breaker(0, Duration::from_secs(1), Duration::from_secs(1))
        .build()
        .unwrap();
    Pipeline::builder()
        .tagger(Arc::new(ScriptedTagger::new(vec![
            entry("Alice", "PER", 0.1),
            entry("Rome", "PER", 0.7),
            entry("Acme", "LOC", 0.7),
        ])))
        .estimator(Arc::new(Confidence::new()))
        .llm(Arc::new(llm))
        .policy(RoutingPolicy::threshold(0.4))
        .build()
        .unwrap()
}

/// Checks what every case keeps whatever happened to Rome's requests — the three entities in
/// order, none rejected, Alice local (never routed), Acme relabelled ORG by its own answer —
/// and returns Rome.
#[track_caller]
fn rome_of<'a>(a: &'a linkner::Annotation, case: &str) -> &'a linkner::LinkedEntity {
    let texts: Vec<&str> = a.entities.iter().map(|e| e.entity.text.as_str()).collect();
    assert_eq!(
        texts,
        ["Alice", "Rome", "Acme"],
        "{case}: an entity was lost"
    );
    assert!(a.rejected.is_empty(), "{case}");
    let [alice, rome, acme] = &a.entities[..] else {
        unreachable!()
    };
    assert_eq!(
        (alice.entity.label.as_str(), &alice.provenance),
        ("PER", &Provenance::Local)
    );
    assert_eq!(acme.entity.label, "ORG", "{case}: {:?}", acme.provenance);
    assert!(
        matches!(acme.provenance, Provenance::LlmRelabelled { .. }),
        "{case}: {:?}",
        acme.provenance
    );
    rome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_keeps_every_entity_and_is_counted_by_kind() {
    for case in cases() {
        let fault = case.fault;
        let script = Script::from_fn(move |seen| {
            if seen.body.contains("[[Acme]]") {
                ok("organization")
            } else if seen.body.contains("[[Rome]]") {
                fault(seen.repeats)
            } else {
                Fault::Status(400, None, "unexpected request".into())
            }
        });
        let server = FakeServer::start(script).await;
        let p = pipeline(&server.url);
        let started = Instant::now();
        let out = p.annotate_batch(&docs()).await.unwrap();
        let wall = started.elapsed();
        let name = case.name;
        assert!(wall < case.bound, "{name}: {wall:?} > {:?}", case.bound);
        assert_eq!(out.len(), DOCS, "{name}");
        let st = p.stats();
        assert_eq!(
            (st.entities, st.routed),
            (3 * DOCS as u64, 2 * DOCS as u64),
            "{name}"
        );
        for a in &out {
            let rome = rome_of(a, name);
            match case.expect {
                Expect::Recovers => {
                    assert_eq!(rome.entity.label, "LOC", "{name}: {:?}", rome.provenance);
                }
                Expect::Fails(kind) => {
                    assert_eq!(rome.entity.label, "PER", "{name}: local label kept");
                    match &rome.provenance {
                        Provenance::LlmFailed { kind: k, .. } => {
                            assert_eq!(*k, kind, "{name}")
                        }
                        other => panic!("{name}: expected a failure, got {other:?}"),
                    }
                }
            }
        }
        match case.expect {
            Expect::Recovers => assert_eq!(st.failures, 0, "{name}: {st:?}"),
            Expect::Fails(kind) => {
                assert_eq!(st.failures, DOCS as u64, "{name}: {st:?}");
                let counted: u64 = st.failures_by_kind.iter().map(|(_, n)| n).sum();
                assert_eq!(counted, DOCS as u64, "{name}: {st:?}");
                let of_kind = st
                    .failures_by_kind
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .map_or(0, |(_, n)| n);
                assert_eq!(of_kind, DOCS as u64, "{name}: {st:?}");
            }
        }
    }
}

/// Which clock must stop the wait for a slow answer.
#[derive(Debug, Clone, Copy)]
enum Clock {
    /// The backend's per-attempt timeout (no retries, no overall deadline).
    Attempt,
    /// The backend's per-entity deadline across retries (the attempt timeout far longer).
    EntityDeadline,
    /// The pipeline's latency budget (`RoutingBudget::latency`); the backend would wait.
    LatencyBudget,
}

impl Clock {
    /// The failure kind an overrun of this clock is, if it is a failure (a missed latency
    /// budget is not: it is counted as `deadline_missed`, provenance `budget`/`deadline`).
    fn failure_kind(self) -> Option<FailureKind> {
        match self {
            Clock::Attempt => Some(FailureKind::Timeout),
            Clock::EntityDeadline => Some(FailureKind::Deadline),
            Clock::LatencyBudget => None,
        }
    }
}

/// Deadline overruns through the pipeline: the server answers the requests about "Rome" with
/// the right label ("location"), but only after `STALL` — far beyond every limit set. For each
/// clock that can stop the wait: every entity is kept, "Rome" with its local label and the
/// overrun recorded as what it is (a `timeout` or `deadline` failure by kind, or a budget
/// `deadline` miss counted apart from the failures), "Acme" still gets its own answer, and the
/// call returns no earlier than the limit and within `limit + 2 s` (generous for a loaded
/// 2-core machine, yet far below `STALL`: a pipeline that ignored the limit under test would
/// wait for the 10 s attempt timeouts, 3 × 10 s, or for the slow answer itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_slower_than_the_deadline_keeps_every_entity_in_time() {
    use linkner::{BudgetReason, RoutingBudget};
    const STALL: Duration = Duration::from_secs(30);
    let limit = Duration::from_millis(1500);
    let slack = Duration::from_secs(2);
    for clock in [Clock::Attempt, Clock::EntityDeadline, Clock::LatencyBudget] {
        let script = Script::from_fn(|seen| {
            if seen.body.contains("[[Acme]]") {
                ok("organization")
            } else if seen.body.contains("[[Rome]]") {
                Fault::Ok(chat("location"), STALL)
            } else {
                Fault::Status(400, None, "unexpected request".into())
            }
        });
        let server = FakeServer::start(script).await;
        // Every request may be in flight at once (12 of them): a slow "Rome" never holds up
        // an "Acme", so only the clock under test decides.
        let (timeout, retries, deadline) = match clock {
            Clock::Attempt => (limit, 0, None),
            Clock::EntityDeadline => (Duration::from_secs(10), 2, Some(limit)),
            Clock::LatencyBudget => (Duration::from_secs(10), 2, None),
        };
        let llm = OpenAiClassifier::builder()
            .base_url(&server.url)
            .model("fake")
            .mode(AnswerMode::FreeText)
            .template(linkner::llm::PromptTemplate::full())
            .cache(false)
            .timeout(timeout)
            .deadline(deadline)
            .max_retries(retries)
            .backoff(Duration::from_millis(10), Duration::from_millis(50))
            .max_in_flight(16)
            .circuit_breaker(0, Duration::from_secs(1), Duration::from_secs(1))
            .build()
            .unwrap();
        let mut builder = Pipeline::builder()
            .tagger(Arc::new(ScriptedTagger::new(vec![
                entry("Alice", "PER", 0.1),
                entry("Rome", "PER", 0.7),
                entry("Acme", "LOC", 0.7),
            ])))
            .estimator(Arc::new(Confidence::new()))
            .llm(Arc::new(llm))
            .policy(RoutingPolicy::threshold(0.4));
        if let Clock::LatencyBudget = clock {
            builder = builder.budget(RoutingBudget::new().max_in_flight(16).latency(limit));
        }
        let p = builder.build().unwrap();

        let started = Instant::now();
        let out = p.annotate_batch(&docs()).await.unwrap();
        let wall = started.elapsed();
        let st = p.stats();
        // What happened to "Rome", for the messages.
        let rome: Vec<&Provenance> = out
            .iter()
            .flat_map(|a| &a.entities)
            .filter(|e| e.entity.text == "Rome")
            .map(|e| &e.provenance)
            .collect();
        assert!(
            wall < limit + slack,
            "{clock:?}: {wall:?} ≥ {:?} (the slow answer was waited for?); Rome: {rome:?}",
            limit + slack
        );
        assert!(
            wall + Duration::from_millis(50) >= limit,
            "{clock:?}: gave up after {wall:?}, before the {limit:?} limit; Rome: {rome:?}"
        );
        assert_eq!(out.len(), DOCS, "{clock:?}");
        for a in &out {
            let rome = rome_of(a, &format!("{clock:?}"));
            assert_eq!(rome.entity.label, "PER", "{clock:?}: local label kept");
            match (&rome.provenance, clock.failure_kind()) {
                (Provenance::LlmFailed { kind, .. }, Some(want)) => {
                    assert_eq!(*kind, want, "{clock:?}")
                }
                (
                    Provenance::Budget {
                        reason: BudgetReason::Deadline,
                    },
                    None,
                ) => {}
                (other, _) => panic!("{clock:?}: Rome's provenance {other:?}"),
            }
        }
        // Counted by what happened: the Rome requests were sent, and each overrun is counted
        // once, under its own kind.
        assert!(
            server.hits() >= 2 * DOCS,
            "{clock:?}: {} requests",
            server.hits()
        );
        assert_eq!(
            (st.entities, st.routed, st.relabelled),
            (3 * DOCS as u64, 2 * DOCS as u64, DOCS as u64),
            "{clock:?}: {st:?}"
        );
        let overruns = DOCS as u64;
        let (failures, missed) = match clock {
            Clock::Attempt | Clock::EntityDeadline => (overruns, 0),
            Clock::LatencyBudget => (0, overruns),
        };
        assert_eq!(
            (st.failures, st.deadline_missed, st.budget_skipped),
            (failures, missed, 0),
            "{clock:?}: {st:?}"
        );
        let counted: u64 = st.failures_by_kind.iter().map(|(_, n)| n).sum();
        assert_eq!(counted, failures, "{clock:?}: {st:?}");
        if let Some(kind) = clock.failure_kind() {
            assert_eq!(st.failures_by_kind.get(kind), failures, "{clock:?}: {st:?}");
        }
        eprintln!("{clock:?}: {wall:?}, {} requests, {st:?}", server.hits());
    }
}
