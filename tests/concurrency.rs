//! Many tasks, one pipeline: 1,000 documents through `annotate_batch` from 32 concurrent tasks,
//! every document answered exactly once; the same through a stream; a tagger that is only
//! `Send` (behind the pipeline's mutex). The fakes measure the concurrency too (see
//! `common/overlap.rs`): the tasks' calls overlap in the tagger (a shared one) and in the LLM,
//! an exclusive tagger never runs twice at once while the LLM calls of other tasks go on, and a
//! stream tags up to `chunks_in_flight` chunks at once while the LLM side of earlier chunks
//! runs. A pipeline that served one call, chunk or LLM request at a time fails them.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/overlap.rs"]
mod overlap;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Reply, ScriptedLlm, ScriptedTagger, entry};
use linkner::uncertainty::builtins::Confidence;
use linkner::{Pipeline, Provenance, RoutingPolicy};
use overlap::{ObservedLlm, Overlap, SlowTagger};

const DOCS: usize = 1000;
const TASKS: usize = 32;
/// Documents per task (the last task gets the rest).
const PER_TASK: usize = DOCS.div_ceil(TASKS);
/// Each tagger call takes this long (a blocking sleep), so that calls that run at the same
/// time are seen to.
const TAGGER_DELAY: Duration = Duration::from_millis(2);
/// Each LLM request takes this long on top of the scripted LLM's 1 ms: longer than a tagger
/// call, so that with an exclusive tagger one task's requests are still in flight when the
/// next task has had its turn.
const LLM_DELAY: Duration = Duration::from_millis(4);

fn entries() -> Vec<common::Entry> {
    vec![
        entry("Alice", "PER", 0.1),
        entry("Rome", "LOC", 0.7),
        entry("Acme", "ORG", 0.7),
    ]
}

fn llm() -> ScriptedLlm {
    // Rome is confirmed, Acme rejected; a 1 ms delay interleaves the tasks.
    ScriptedLlm::new(&[("Rome", Reply::Class(2)), ("Acme", Reply::Class(0))])
        .with_delay(Duration::from_millis(1))
}

/// The index `i` of the document a request comes from (its sentence starts `doc-{i:04}:`).
fn doc_index(request: &linkner::llm::ClassifyRequest) -> usize {
    request
        .sentence()
        .strip_prefix("doc-")
        .and_then(|rest| rest.get(..4))
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("not a test document: {}", request.sentence()))
}

/// What the fakes measured: tagger calls, and LLM calls keyed by `key` (which task or which
/// document a request comes from) and counted in `met` when they start during a tagger call.
struct Observed {
    tagger: Arc<Overlap>,
    llm: Arc<Overlap>,
}

impl Observed {
    fn new() -> Observed {
        Observed {
            tagger: Overlap::new(),
            llm: Overlap::new(),
        }
    }

    /// A scripted tagger whose calls take [`TAGGER_DELAY`] and are counted.
    fn tagger(&self) -> SlowTagger<ScriptedTagger> {
        SlowTagger::new(ScriptedTagger::new(entries()), TAGGER_DELAY, &self.tagger)
            .beside(&self.llm)
    }

    /// [`llm`] with its calls counted under `key(document index)`.
    fn llm(&self, key: fn(usize) -> usize) -> ObservedLlm<ScriptedLlm> {
        ObservedLlm::new(llm(), &self.llm)
            .with_delay(LLM_DELAY)
            .beside(&self.tagger)
            .keyed(move |r| key(doc_index(r)) as u64)
    }

    /// LLM calls that started during a tagger call, or tagger calls during an LLM call: the
    /// LLM side of one call (or chunk) overlapped the tagging of another.
    fn llm_beside_tagger(&self) -> usize {
        self.tagger.met() + self.llm.met()
    }

    /// The LLM requests of two tasks were in flight at once, and so were two of one call.
    #[track_caller]
    fn assert_llm_calls_of_tasks_and_of_one_call_overlap(&self) {
        assert!(
            self.llm.max_keys() >= 2,
            "LLM requests of two tasks were never in flight at once: the calls ran one at a time"
        );
        assert!(
            self.llm.max_per_key() >= 2,
            "the LLM requests of one call (2 to 5 routed entities per batch of 7) were sent one \
             at a time"
        );
    }

    fn report(&self, what: &str) {
        eprintln!(
            "{what}: {} tagger calls, at most {} at once; {} LLM calls, at most {} at once from \
             {} keys, at most {} of one key; {} started beside a call of the other",
            self.tagger.calls(),
            self.tagger.max(),
            self.llm.calls(),
            self.llm.max(),
            self.llm.max_keys(),
            self.llm.max_per_key(),
            self.llm_beside_tagger()
        );
    }
}

/// Document `i`: a unique id and, depending on `i`, 0 to 3 entities.
fn doc(i: usize) -> String {
    let mut s = format!("doc-{i:04}:");
    if i.is_multiple_of(2) {
        s.push_str(" Alice");
    }
    if i.is_multiple_of(3) {
        s.push_str(" went to Rome");
    }
    if i.is_multiple_of(5) {
        s.push_str(" for Acme");
    }
    s
}

fn expected_entities(i: usize) -> (usize, usize) {
    let kept = usize::from(i.is_multiple_of(2)) + usize::from(i.is_multiple_of(3));
    let rejected = usize::from(i.is_multiple_of(5));
    (kept, rejected)
}

fn assert_doc(i: usize, a: &linkner::Annotation) {
    assert_eq!(a.text(), doc(i));
    let (kept, rejected) = expected_entities(i);
    assert_eq!(a.entities.len(), kept, "{}", a.text());
    assert_eq!(a.rejected.len(), rejected, "{}", a.text());
    for e in &a.entities {
        match e.entity.text.as_str() {
            "Alice" => assert_eq!(e.provenance, Provenance::Local),
            "Rome" => assert_eq!(e.provenance, Provenance::LlmConfirmed),
            other => panic!("unexpected entity {other}"),
        }
    }
}

async fn run_32_tasks(pipeline: Pipeline) {
    let docs: Vec<String> = (0..DOCS).map(doc).collect();
    let per_task = PER_TASK;
    let mut handles = Vec::new();
    for (t, chunk) in docs.chunks(per_task).enumerate() {
        let p = pipeline.clone();
        let chunk = chunk.to_vec();
        handles.push(tokio::spawn(async move {
            // Each task sends its share in small batches.
            let mut out = Vec::new();
            for batch in chunk.chunks(7) {
                out.extend(p.annotate_batch(batch).await.unwrap());
            }
            (t, out)
        }));
    }
    assert_eq!(handles.len(), TASKS);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for h in handles {
        let (t, annotations) = h.await.expect("no task panics");
        let start = t * per_task;
        for (k, a) in annotations.iter().enumerate() {
            assert_doc(start + k, a);
            *seen.entry(a.text().to_string()).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), DOCS);
    assert!(
        seen.values().all(|&n| n == 1),
        "a document was answered twice"
    );

    let s = pipeline.stats();
    let (mut kept, mut rejected, mut routed) = (0u64, 0u64, 0u64);
    for i in 0..DOCS {
        let (k, r) = expected_entities(i);
        kept += k as u64;
        rejected += r as u64;
        routed += u64::from(i.is_multiple_of(3)) + r as u64;
    }
    assert_eq!(s.documents, DOCS as u64);
    assert_eq!(s.entities, kept + rejected);
    assert_eq!(s.routed, routed);
    assert_eq!(s.rejected, rejected);
    assert_eq!(s.failures, 0);
}

/// The task that sends document `i`.
fn task_of(i: usize) -> usize {
    i / PER_TASK
}

/// Tagger calls of [`run_32_tasks`]: one per batch of 7 documents of each task.
fn tagger_calls() -> usize {
    let docs: Vec<usize> = (0..DOCS).collect();
    docs.chunks(PER_TASK).map(|c| c.len().div_ceil(7)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_documents_from_32_tasks_with_a_shared_tagger() {
    let seen = Observed::new();
    let pipeline = Pipeline::builder()
        .tagger(Arc::new(seen.tagger()))
        .estimator(Arc::new(Confidence::new()))
        .llm(Arc::new(seen.llm(task_of)))
        .policy(RoutingPolicy::threshold(0.4))
        .build()
        .unwrap();
    run_32_tasks(pipeline).await;
    seen.report("shared tagger, 32 tasks");
    assert_eq!(seen.tagger.calls(), tagger_calls());
    assert!(
        seen.tagger.max() >= 2,
        "the shared tagger never ran two tasks' calls at once: the calls were serialised"
    );
    seen.assert_llm_calls_of_tasks_and_of_one_call_overlap();
    assert!(
        seen.llm_beside_tagger() > 0,
        "no LLM call ran during another task's tagging: the calls ran one at a time"
    );
}

/// A tagger that is `Send` but not `Sync` (like one holding non-thread-safe tensors).
struct SendOnly {
    inner: SlowTagger<ScriptedTagger>,
    _not_sync: std::cell::Cell<()>,
}

impl linkner::core::LocalTagger for SendOnly {
    fn schema(&self) -> &linkner::core::LabelSchema {
        self.inner.schema()
    }
    fn tag_sentences(
        &self,
        sentences: &[linkner::core::Sentence],
        options: &linkner::core::PredictOptions,
    ) -> Result<Vec<Vec<linkner::core::Candidate>>, linkner::core::TaggerError> {
        self.inner.tag_sentences(sentences, options)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_documents_from_32_tasks_with_an_exclusive_tagger() {
    let seen = Observed::new();
    let pipeline = Pipeline::builder()
        .exclusive_tagger(SendOnly {
            inner: seen.tagger(),
            _not_sync: std::cell::Cell::new(()),
        })
        .estimator(Arc::new(Confidence::new()))
        .llm(Arc::new(seen.llm(task_of)))
        .build()
        .unwrap();
    run_32_tasks(pipeline).await;
    seen.report("exclusive tagger, 32 tasks");
    assert_eq!(seen.tagger.calls(), tagger_calls());
    assert_eq!(
        seen.tagger.max(),
        1,
        "the exclusive tagger was called concurrently"
    );
    // The calls take turns in the tagger only: the LLM calls of the tasks go on meanwhile.
    seen.assert_llm_calls_of_tasks_and_of_one_call_overlap();
    assert!(
        seen.llm_beside_tagger() > 0,
        "no LLM call ran while the exclusive tagger served another task: the tagger's turn \
         serialised the whole call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_answers_every_document_once_in_order() {
    let seen = Observed::new();
    let pipeline = Pipeline::builder()
        .tagger(Arc::new(seen.tagger()))
        .estimator(Arc::new(Confidence::new()))
        .llm(Arc::new(seen.llm(|i| i)))
        .stream_options(linkner::StreamOptions {
            chunk_size: 17,
            chunks_in_flight: 3,
            channel_capacity: 5,
            ..Default::default()
        })
        .build()
        .unwrap();
    let mut stream = pipeline.annotate_stream((0..DOCS).map(doc)).unwrap();
    let mut i = 0;
    while let Some(a) = stream.next().await {
        assert_doc(i, &a.unwrap());
        i += 1;
    }
    assert_eq!(i, DOCS);
    assert_eq!(pipeline.stats().documents, DOCS as u64);
    seen.report("stream");
    let max = seen.tagger.max();
    assert!(
        max >= 2,
        "the stream's chunks were tagged one at a time (chunks_in_flight = 3)"
    );
    assert!(
        max <= 3,
        "{max} chunks tagged at once with chunks_in_flight = 3"
    );
    assert!(
        seen.llm.max_keys() >= 2,
        "LLM requests of two documents were never in flight at once: documents were finished \
         one at a time"
    );
    assert!(
        seen.llm.max_per_key() >= 2,
        "the two LLM requests of one document (Rome and Acme) were sent one at a time"
    );
    assert!(
        seen.llm_beside_tagger() > 0,
        "no LLM call ran while a chunk was being tagged: the stream is not pipelined"
    );
}

#[tokio::test]
async fn a_failing_chunk_of_a_stream_fails_only_its_documents() {
    // The tagger refuses texts containing "poison"; its chunk is retried document by document.
    struct Picky(ScriptedTagger);
    impl linkner::core::LocalTagger for Picky {
        fn schema(&self) -> &linkner::core::LabelSchema {
            self.0.schema()
        }
        fn tag_sentences(
            &self,
            sentences: &[linkner::core::Sentence],
            options: &linkner::core::PredictOptions,
        ) -> Result<Vec<Vec<linkner::core::Candidate>>, linkner::core::TaggerError> {
            if sentences.iter().any(|s| s.text.contains("poison")) {
                return Err(linkner::core::TaggerError::InvalidArgument("poison".into()));
            }
            self.0.tag_sentences(sentences, options)
        }
    }
    let pipeline = Pipeline::builder()
        .tagger(Arc::new(Picky(ScriptedTagger::new(entries()))))
        .estimator(Arc::new(Confidence::new()))
        .policy(RoutingPolicy::Never)
        .stream_options(linkner::StreamOptions {
            chunk_size: 4,
            ..Default::default()
        })
        .build()
        .unwrap();
    let docs = vec!["Alice", "Rome", "poison Alice", "Acme", "Alice again"];
    let mut stream = pipeline.annotate_stream(docs.clone()).unwrap();
    let mut results = Vec::new();
    while let Some(r) = stream.next().await {
        results.push(r);
    }
    assert_eq!(results.len(), docs.len());
    for (d, r) in docs.iter().zip(&results) {
        match r {
            Ok(a) => assert_eq!(a.text(), *d),
            Err(e) => {
                assert_eq!(*d, "poison Alice");
                assert!(matches!(e, linkner::LinkError::Tagger(_)));
            }
        }
    }
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
}

#[test]
fn the_pipeline_and_its_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let p = Pipeline::builder()
        .tagger(Arc::new(ScriptedTagger::new(entries())))
        .estimator(Arc::new(Confidence::new()))
        .policy(RoutingPolicy::Never)
        .build()
        .unwrap();
    send_sync(&p);
    let texts = vec!["a".to_string()];
    send(&p.annotate("a"));
    send(&p.annotate_batch(&texts));
    send(&p.annotate_sentences(vec![]));
}
