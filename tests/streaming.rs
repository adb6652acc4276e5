//! The stream path (`Pipeline::stream`) and the routing budget, with scripted components and
//! tokio's paused clock: micro-batches close by size and by time, ids pass through, input
//! order and as-completed order, backpressure, cancellation on drop, budget priority, deadline
//! misses, and stream results equal to the batch calls without a budget.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Reply, ScriptedLlm, ScriptedTagger, entry};
use futures_util::StreamExt;
use linkner::core::{Candidate, LabelSchema, Sentence};
use linkner::core::{LocalTagger, PredictOptions, TaggerError};
use linkner::uncertainty::builtins::Confidence;
use linkner::{
    BudgetReason, Pipeline, Provenance, RoutingBudget, RoutingPolicy, StreamOptions, StreamOrder,
    Streamed,
};
use tokio::sync::mpsc;

/// A tagger that records the size of every batch it is given.
struct BatchRecorder {
    inner: ScriptedTagger,
    sizes: Arc<Mutex<Vec<usize>>>,
}

impl LocalTagger for BatchRecorder {
    fn schema(&self) -> &LabelSchema {
        self.inner.schema()
    }
    fn tag_sentences(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>, TaggerError> {
        self.sizes.lock().unwrap().push(sentences.len());
        self.inner.tag_sentences(sentences, options)
    }
}

fn options(chunk: usize, wait_ms: u64) -> StreamOptions {
    StreamOptions {
        chunk_size: chunk,
        max_wait: Duration::from_millis(wait_ms),
        ..StreamOptions::default()
    }
}

/// A stream fed by the test through a channel (a live input).
fn live<T: Send + 'static>() -> (mpsc::Sender<T>, impl futures_util::Stream<Item = T>) {
    let (tx, rx) = mpsc::channel::<T>(1024);
    let s =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    (tx, s)
}

fn recorder() -> (BatchRecorder, Arc<Mutex<Vec<usize>>>) {
    let sizes = Arc::new(Mutex::new(Vec::new()));
    (
        BatchRecorder {
            inner: ScriptedTagger::new(vec![entry("Alice", "PER", 0.1)]),
            sizes: sizes.clone(),
        },
        sizes,
    )
}

#[tokio::test(start_paused = true)]
async fn a_busy_input_fills_batches_up_to_max_batch() {
    let (tagger, sizes) = recorder();
    let pipeline = Pipeline::builder()
        .exclusive_tagger(tagger)
        .estimator(Arc::new(Confidence::new()))
        .policy(RoutingPolicy::Never)
        .stream_options(options(4, 50))
        .build()
        .unwrap();
    let input = futures_util::stream::iter((0..10).map(|i| (i, format!("Alice {i}"))));
    let out: Vec<Streamed<i32>> = pipeline.stream(input).unwrap().collect().await;
    assert_eq!(out.len(), 10);
    assert_eq!(*sizes.lock().unwrap(), vec![4, 4, 2]);
    for (i, item) in out.iter().enumerate() {
        assert_eq!(item.id, i as i32);
        assert_eq!(item.index, i as u64);
        let a = item.result.as_ref().unwrap();
        assert_eq!(a.text(), format!("Alice {i}"));
        let t = a.timings.expect("streamed annotations carry timings");
        assert!(
            t.total_ms >= t.tagging_ms && t.total_ms >= t.queued_ms,
            "{t:?}"
        );
    }
}

/// A tagger whose first batch takes 300 ms of real time (a busy tagger).
struct SlowFirstBatch {
    inner: BatchRecorder,
    calls: AtomicUsize,
}

impl LocalTagger for SlowFirstBatch {
    fn schema(&self) -> &LabelSchema {
        self.inner.schema()
    }
    fn tag_sentences(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>, TaggerError> {
        let out = self.inner.tag_sentences(sentences, options);
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_tagger_is_busy_the_next_batch_keeps_filling() {
    let (recorder, sizes) = recorder();
    let tagger = SlowFirstBatch {
        inner: recorder,
        calls: AtomicUsize::new(0),
    };
    let pipeline = Pipeline::builder()
        .exclusive_tagger(tagger)
        .estimator(Arc::new(Confidence::new()))
        .policy(RoutingPolicy::Never)
        .stream_options(StreamOptions {
            chunks_in_flight: 1,
            ..options(32, 0)
        })
        .build()
        .unwrap();
    let (tx, input) = live::<(usize, String)>();
    let mut out = pipeline.stream(input).unwrap();
    tx.send((0, "Alice".into())).await.unwrap();
    // The first document goes at once (max_wait 0, the slot is free) ...
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(*sizes.lock().unwrap(), vec![1]);
    // ... and the ten that come while it is tagged wait for the slot in one batch, not in
    // ten batches of one queued behind it.
    for i in 1..=10 {
        tx.send((i, format!("Alice {i}"))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(tx);
    let mut ids = Vec::new();
    while let Some(item) = out.next().await {
        assert!(item.result.is_ok());
        ids.push(item.id);
    }
    assert_eq!(ids, (0..=10).collect::<Vec<_>>());
    assert_eq!(*sizes.lock().unwrap(), vec![1, 10]);
}

#[tokio::test(start_paused = true)]
async fn a_quiet_input_closes_the_batch_after_max_wait_and_writes_before_the_input_ends() {
    let (tagger, sizes) = recorder();
    let pipeline = Pipeline::builder()
        .exclusive_tagger(tagger)
        .estimator(Arc::new(Confidence::new()))
        .policy(RoutingPolicy::Never)
        .stream_options(options(32, 50))
        .build()
        .unwrap();
    let (tx, input) = live::<(String, String)>();
    let mut out = pipeline.stream(input).unwrap();
    tx.send(("a".into(), "Alice came".into())).await.unwrap();
    tx.send(("b".into(), "and Alice went".into()))
        .await
        .unwrap();
    // Before max_wait nothing is tagged (the batch could still grow).
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(sizes.lock().unwrap().is_empty());
    // After it, the two documents come out while the input is still open.
    let first = tokio::time::timeout(Duration::from_millis(100), out.next())
        .await
        .expect("the first annotation comes before the input ends")
        .unwrap();
    assert_eq!(first.id, "a");
    assert_eq!(out.next().await.unwrap().id, "b");
    assert_eq!(*sizes.lock().unwrap(), vec![2]);
    // One more document later: its own batch.
    tx.send(("c".into(), "Alice".into())).await.unwrap();
    let third = out.next().await.unwrap();
    assert_eq!((third.id.as_str(), third.index), ("c", 2));
    let a = third.result.unwrap();
    let queued = a.timings.unwrap().queued_ms;
    assert!(
        (50.0..60.0).contains(&queued),
        "waited {queued} ms for its batch"
    );
    drop(tx);
    assert!(out.next().await.is_none());
    assert_eq!(*sizes.lock().unwrap(), vec![2, 1]);
}

/// Documents 0 and 2 have an entity the LLM is asked about (slow); 1 and 3 do not.
fn slow_llm_pipeline(order: StreamOrder) -> Pipeline {
    Pipeline::builder()
        .tagger(Arc::new(ScriptedTagger::new(vec![
            entry("Rome", "LOC", 0.7),
            entry("Alice", "PER", 0.1),
        ])))
        .estimator(Arc::new(Confidence::new()))
        .llm(Arc::new(
            ScriptedLlm::new(&[("Rome", Reply::Class(3))]).with_delay(Duration::from_millis(200)),
        ))
        .policy(RoutingPolicy::threshold(0.4))
        .stream_options(StreamOptions {
            order,
            ..options(4, 5)
        })
        .build()
        .unwrap()
}

const MIXED: [&str; 4] = ["Rome is big", "Alice", "Rome again", "Alice again"];

#[tokio::test(start_paused = true)]
async fn as_completed_lets_local_documents_overtake_llm_ones_and_input_order_does_not() {
    let input = || futures_util::stream::iter(MIXED.iter().enumerate().map(|(i, t)| (i, *t)));
    let completed: Vec<usize> = slow_llm_pipeline(StreamOrder::Completed)
        .stream(input())
        .unwrap()
        .map(|s| s.id)
        .collect()
        .await;
    assert_eq!(
        &completed[..2],
        &[1, 3],
        "local-only documents first: {completed:?}"
    );
    let mut rest = completed[2..].to_vec();
    rest.sort();
    assert_eq!(rest, vec![0, 2]);

    let items: Vec<Streamed<usize>> = slow_llm_pipeline(StreamOrder::Input)
        .stream(input())
        .unwrap()
        .collect()
        .await;
    assert_eq!(
        items.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    let rome = items[0].result.as_ref().unwrap();
    assert_eq!(
        rome.entities[0].entity.label, "ORG",
        "the LLM's answer is used"
    );
    let t = rome.timings.unwrap();
    assert!(t.llm_ms >= 200.0, "{t:?}");
    assert_eq!(
        items[1].result.as_ref().unwrap().timings.unwrap().llm_ms,
        0.0
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_consumer_bounds_what_is_read() {
    let read = Arc::new(AtomicUsize::new(0));
    let pipeline = Pipeline::builder()
        .tagger(Arc::new(ScriptedTagger::new(vec![entry(
            "Alice", "PER", 0.1,
        )])))
        .estimator(Arc::new(Confidence::new()))
        .policy(RoutingPolicy::Never)
        .stream_options(StreamOptions {
            max_pending: 8,
            channel_capacity: 2,
            ..options(4, 5)
        })
        .build()
        .unwrap();
    let counter = read.clone();
    let input = futures_util::stream::iter(0..1000u32).map(move |i| {
        counter.fetch_add(1, Ordering::SeqCst);
        (i, "Alice")
    });
    let mut out = pipeline.stream(input).unwrap();
    // Nobody reads the output for a while: the reader stops at the bound.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = read.load(Ordering::SeqCst);
    assert!(before <= 8, "{before} documents read with max_pending 8");
    assert!(before >= 4, "the stream did not start ({before})");
    let mut n = 0;
    while let Some(item) = out.next().await {
        assert_eq!(item.index, n);
        n += 1;
    }
    assert_eq!(n, 1000);
    assert_eq!(read.load(Ordering::SeqCst), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_output_stops_reading_and_tagging() {
    let read = Arc::new(AtomicUsize::new(0));
    let tagger = Arc::new(ScriptedTagger::new(vec![entry("Alice", "PER", 0.1)]));
    let pipeline = Pipeline::builder()
        .tagger(tagger.clone())
        .estimator(Arc::new(Confidence::new()))
        .policy(RoutingPolicy::Never)
        .stream_options(options(4, 1))
        .build()
        .unwrap();
    let counter = read.clone();
    // An endless input.
    let input = futures_util::stream::iter(0u64..).map(move |i| {
        counter.fetch_add(1, Ordering::SeqCst);
        (i, "Alice")
    });
    let mut out = pipeline.stream(input).unwrap();
    for _ in 0..10 {
        out.next().await.unwrap().result.unwrap();
    }
    drop(out);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (read_then, tagged_then) = (
        read.load(Ordering::SeqCst),
        tagger.calls.load(Ordering::SeqCst),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(read.load(Ordering::SeqCst), read_then, "still reading");
    assert_eq!(
        tagger.calls.load(Ordering::SeqCst),
        tagged_then,
        "still tagging"
    );
    assert!(read_then < 10 + 512 + 8, "read {read_then}");
}

/// One document with four routed entities of different uncertainty; the LLM relabels each to
/// ORG after 100 ms.
fn budget_pipeline(budget: RoutingBudget) -> (Pipeline, Arc<ScriptedLlm>) {
    let llm = Arc::new(
        ScriptedLlm::new(&[
            ("Alpha", Reply::Class(3)),
            ("Bravo", Reply::Class(3)),
            ("Charlie", Reply::Class(3)),
            ("Delta", Reply::Class(3)),
        ])
        .with_delay(Duration::from_millis(100)),
    );
    let pipeline = Pipeline::builder()
        .tagger(Arc::new(ScriptedTagger::new(vec![
            entry("Alpha", "PER", 0.45),
            entry("Bravo", "PER", 0.75),
            entry("Charlie", "PER", 0.6),
            entry("Delta", "PER", 0.5),
        ])))
        .estimator(Arc::new(Confidence::new()))
        .llm(llm.clone())
        .policy(RoutingPolicy::threshold(0.4))
        .budget(budget)
        .stream_options(options(4, 1))
        .build()
        .unwrap();
    (pipeline, llm)
}

fn provenance_of(a: &linkner::Annotation, text: &str) -> Provenance {
    a.entities
        .iter()
        .chain(&a.rejected)
        .find(|e| e.entity.text == text)
        .unwrap()
        .provenance
        .clone()
}

#[tokio::test(start_paused = true)]
async fn under_a_budget_the_most_uncertain_entities_go_first_and_the_rest_say_budget() {
    // One call at a time, 100 ms each, 250 ms per document: two calls fit.
    let (pipeline, llm) = budget_pipeline(
        RoutingBudget::new()
            .max_in_flight(1)
            .latency(Duration::from_millis(250)),
    );
    let input = futures_util::stream::iter([(0, "Alpha Bravo Charlie Delta")]);
    let items: Vec<_> = pipeline.stream(input).unwrap().collect().await;
    let a = items[0].result.as_ref().unwrap();
    let relabelled = Provenance::LlmRelabelled { from: "PER".into() };
    let skipped = Provenance::Budget {
        reason: BudgetReason::Capacity,
    };
    assert_eq!(provenance_of(a, "Bravo"), relabelled, "0.75: sent first");
    assert_eq!(provenance_of(a, "Charlie"), relabelled, "0.6: sent second");
    assert_eq!(provenance_of(a, "Delta"), skipped, "0.5: no time left");
    assert_eq!(provenance_of(a, "Alpha"), skipped, "0.45: no time left");
    for name in ["Alpha", "Delta"] {
        let e = a.entities.iter().find(|e| e.entity.text == name).unwrap();
        assert_eq!(e.entity.label, "PER", "{name} keeps its local label");
    }
    assert_eq!(llm.calls.load(Ordering::SeqCst), 2);
    let s = pipeline.stats();
    assert_eq!((s.routed, s.llm_requests, s.budget_skipped), (4, 4, 2));
    assert_eq!(s.relabelled, 2);
    assert_eq!(
        s.routed,
        s.confirmed + s.relabelled + s.rejected + s.failures + s.budget_skipped + s.deadline_missed
    );
    assert!(a.timings.unwrap().total_ms <= 250.0 + 1.0);
    assert_eq!(pipeline.llm_load(), (0, 0), "every slot came back");
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_misses_the_deadline_is_dropped_and_counted_never_waited_for() {
    // 100 ms answers, 60 ms per document.
    let (pipeline, llm) = budget_pipeline(
        RoutingBudget::new()
            .max_in_flight(4)
            .latency(Duration::from_millis(60)),
    );
    let input = futures_util::stream::iter([(0, "Alpha Bravo"), (1, "Charlie")]);
    let started = tokio::time::Instant::now();
    let items: Vec<_> = pipeline.stream(input).unwrap().collect().await;
    assert!(
        started.elapsed() < Duration::from_millis(80),
        "waited for late answers"
    );
    let missed = Provenance::Budget {
        reason: BudgetReason::Deadline,
    };
    let a0 = items[0].result.as_ref().unwrap();
    assert_eq!(provenance_of(a0, "Alpha"), missed);
    assert_eq!(provenance_of(a0, "Bravo"), missed);
    assert_eq!(a0.entities.len(), 2, "nothing lost");
    assert_eq!(a0.entities[0].entity.label, "PER");
    assert_eq!(pipeline.stats().deadline_missed, 3);
    // The late calls finish in the background and give their slots back.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(llm.calls.load(Ordering::SeqCst), 3);
    assert_eq!(pipeline.llm_load(), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn the_batch_calls_keep_to_the_budget_too() {
    let (pipeline, _llm) = budget_pipeline(
        RoutingBudget::new()
            .max_in_flight(1)
            .latency(Duration::from_millis(250)),
    );
    let a = pipeline
        .annotate("Alpha Bravo Charlie Delta")
        .await
        .unwrap();
    assert!(matches!(
        provenance_of(&a, "Bravo"),
        Provenance::LlmRelabelled { .. }
    ));
    assert!(matches!(
        provenance_of(&a, "Alpha"),
        Provenance::Budget { .. }
    ));
    assert_eq!(a.timings, None, "batch calls carry no stream timings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_budget_a_stream_gives_the_batch_results() {
    let entries = vec![
        entry("Rome", "LOC", 0.7),
        entry("Alice", "PER", 0.1),
        entry("Acme", "ORG", 0.55),
        entry("Bob", "PER", 0.45),
    ];
    let llm = || {
        Arc::new(ScriptedLlm::new(&[
            ("Rome", Reply::Class(3)),
            ("Acme", Reply::Class(0)),
            ("Bob", Reply::Fail),
        ]))
    };
    let build = |llm| {
        Pipeline::builder()
            .tagger(Arc::new(ScriptedTagger::new(entries.clone())))
            .estimator(Arc::new(Confidence::new()))
            .llm(llm)
            .policy(RoutingPolicy::threshold(0.4))
            .stream_options(options(7, 2))
            .build()
            .unwrap()
    };
    let texts: Vec<String> = (0..50)
        .map(|i| match i % 4 {
            0 => format!("Rome and Alice {i}"),
            1 => format!("Acme hired Bob {i}"),
            2 => format!("nothing here {i}"),
            _ => format!("Bob , Rome , Acme {i}"),
        })
        .collect();
    let batch = build(llm()).annotate_batch(&texts).await.unwrap();
    let streamed = build(llm());
    let input = futures_util::stream::iter(texts.clone().into_iter().enumerate());
    let items: Vec<_> = streamed.stream(input).unwrap().collect().await;
    assert_eq!(items.len(), batch.len());
    for (b, s) in batch.iter().zip(&items) {
        let mut s = s.result.as_ref().unwrap().clone();
        assert!(s.timings.take().is_some());
        assert_eq!(&s, b);
    }
    let provenances: std::collections::BTreeSet<&str> = batch
        .iter()
        .flat_map(|a| a.entities.iter().chain(&a.rejected))
        .map(|e| e.provenance.name())
        .collect();
    assert_eq!(
        provenances,
        ["llm_failed", "llm_rejected", "llm_relabelled", "local"].into(),
        "the comparison covers every outcome"
    );
    assert_eq!(streamed.stats().budget_skipped, 0);
}
