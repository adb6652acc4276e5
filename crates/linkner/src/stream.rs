//! The stream path: [`Pipeline::stream`] annotates any `futures::Stream` of documents with
//! bounded latency and bounded memory.
//!
//! ```text
//! input ──► micro-batcher ──► tagger batches ──► one task per document ──► output
//!           (max_batch or      (chunks_in_flight   (LLM calls under the       (input order or
//!            max_wait)          at once)            budget, merge, account)    as completed)
//! ```
//!
//! - **Micro-batching.** A tagger batch closes at [`StreamOptions::chunk_size`] documents or
//!   [`StreamOptions::max_wait`] after its first document, whichever comes first: a trickle
//!   of input is tagged as it comes, a busy input still fills batches. A batch that is due
//!   goes to the tagger when one of the [`StreamOptions::chunks_in_flight`] slots is free;
//!   until then it keeps filling, so that under a backlog batches grow with the load (the
//!   continuous batching of inference servers) instead of queueing small ones.
//! - **Bounded.** At most [`StreamOptions::max_pending`] documents are read and not yet handed
//!   to the consumer: a slow consumer slows the reading (backpressure), and memory stays flat on
//!   an endless input. Every channel is bounded.
//! - **Per document after tagging.** A document whose entities are not routed is written as
//!   soon as its batch is tagged; it never waits for another document's LLM answers (with
//!   [`StreamOrder::Completed`]; in input order it waits only for the documents before it).
//! - **Timings.** Each annotation carries [`Timings`]: queued,
//!   tagging, LLM and total milliseconds.
//! - **Dropping the output stops the work**: nothing more is read, tagged or sent to the LLM
//!   (an LLM call already running under a budget finishes in the background, see
//!   [`crate::budget`]).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::annotation::{Annotation, Timings};
use crate::error::{BuildError, LinkError, Result};
use crate::pipeline::{Input, Pipeline};
use crate::stages::Work;
use linkner_core::Sentence;

/// In which order a stream's annotations come out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamOrder {
    /// In input order (default): a document waits for the documents before it.
    #[default]
    Input,
    /// As soon as each is ready: a quick document overtakes one waiting for the LLM.
    Completed,
}

/// Options of the stream path ([`Pipeline::stream`] and [`Pipeline::annotate_stream`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Most documents per tagger batch (`max_batch`; default 32). A [`crate::RoutingPolicy::Budget`]
    /// fraction applies per batch.
    pub chunk_size: usize,
    /// Tagger batches in flight at once (default 2): with a `Sync` tagger they run at the
    /// same time; an exclusive tagger takes them in turn.
    pub chunks_in_flight: usize,
    /// Finished documents buffered before the producer waits for the consumer (default 64).
    pub channel_capacity: usize,
    /// How long a batch waits for more documents after its first one (default 10 ms).
    pub max_wait: Duration,
    /// Most documents read and not yet handed to the consumer (default 512; at least
    /// `chunk_size`): the memory bound and the backpressure of the stream.
    pub max_pending: usize,
    /// Input order (default) or as completed.
    pub order: StreamOrder,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            chunk_size: 32,
            chunks_in_flight: 2,
            channel_capacity: 64,
            max_wait: Duration::from_millis(10),
            max_pending: 512,
            order: StreamOrder::Input,
        }
    }
}

impl StreamOptions {
    /// Checks that every size is at least 1 and `max_pending` at least `chunk_size`.
    pub fn validate(&self) -> Result<()> {
        if self.chunk_size == 0
            || self.chunks_in_flight == 0
            || self.channel_capacity == 0
            || self.max_pending == 0
        {
            return Err(BuildError::StreamOptions("they must all be at least 1".into()).into());
        }
        if self.max_pending < self.chunk_size {
            return Err(BuildError::StreamOptions(format!(
                "max_pending ({}) must be at least the batch size ({})",
                self.max_pending, self.chunk_size
            ))
            .into());
        }
        Ok(())
    }
}

/// One document of a stream: raw text (split into words by the tagger, as
/// [`Pipeline::annotate`] does) or a pre-tokenized [`Sentence`] (words kept as given, as
/// [`Pipeline::annotate_sentences`] does). `String`, `&str` and `Sentence` convert into it.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamDocument {
    /// Raw text; char offsets point into it.
    Text(String),
    /// A sentence whose words are kept; char offsets point into its `text`.
    Sentence(Sentence),
}

impl From<String> for StreamDocument {
    fn from(t: String) -> Self {
        StreamDocument::Text(t)
    }
}

impl From<&str> for StreamDocument {
    fn from(t: &str) -> Self {
        StreamDocument::Text(t.to_string())
    }
}

impl From<&String> for StreamDocument {
    fn from(t: &String) -> Self {
        StreamDocument::Text(t.clone())
    }
}

impl From<Sentence> for StreamDocument {
    fn from(s: Sentence) -> Self {
        StreamDocument::Sentence(s)
    }
}

/// Options of one document of a stream ([`Pipeline::stream_with_options`]): what a service
/// lets each request choose. The default follows the pipeline's config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DocumentOptions {
    /// `Some(false)`: no LLM for this document, every entity keeps its local label
    /// ([`crate::Provenance::Local`]) whatever the routing policy says. `None`/`Some(true)`:
    /// as the pipeline is configured.
    pub llm: Option<bool>,
    /// This document's latency budget in milliseconds, from its arrival (replaces the
    /// [`RoutingBudget`](crate::RoutingBudget)'s `latency_ms`; needs a routing budget on the
    /// pipeline to be enforced, see [`crate::PipelineBuilder::budget`]).
    pub latency_budget_ms: Option<u64>,
}

impl DocumentOptions {
    /// LLM off for this document.
    pub fn local_only() -> Self {
        DocumentOptions {
            llm: Some(false),
            latency_budget_ms: None,
        }
    }

    /// With this latency budget.
    pub fn with_latency_budget(mut self, ms: u64) -> Self {
        self.latency_budget_ms = Some(ms);
        self
    }

    /// With the LLM on (`true`) or off (`false`).
    pub fn with_llm(mut self, on: bool) -> Self {
        self.llm = Some(on);
        self
    }
}

/// One annotated document of [`Pipeline::stream`].
#[derive(Debug)]
pub struct Streamed<K> {
    /// The caller's id of the document, passed through.
    pub id: K,
    /// Its position in the input, from 0.
    pub index: u64,
    /// Its annotation (with [`Annotation::timings`]), or why it could not be annotated (this
    /// document only: the stream goes on).
    pub result: Result<Annotation>,
}

/// What travels to the consumer: the item and the document's place in the bound.
struct Done<K> {
    item: Streamed<K>,
    _permit: OwnedSemaphorePermit,
}

/// A document read from the input.
struct Arrived<K> {
    index: u64,
    id: K,
    doc: StreamDocument,
    options: DocumentOptions,
    arrived: Instant,
    permit: OwnedSemaphorePermit,
}

/// Aborts the stream's tasks when the output is dropped.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The output of [`Pipeline::stream`]: a [`futures::Stream`](futures_util::Stream) of
/// [`Streamed`] items, one per input document. Dropping it stops the work.
pub struct Annotations<K> {
    rx: mpsc::Receiver<Done<K>>,
    order: StreamOrder,
    next: u64,
    held: BTreeMap<u64, Done<K>>,
    _tasks: Tasks,
}

impl<K> std::fmt::Debug for Annotations<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Annotations")
            .field("order", &self.order)
            .field("next", &self.next)
            .field("held", &self.held.len())
            .finish()
    }
}

impl<K> Stream for Annotations<K> {
    type Item = Streamed<K>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Streamed<K>>> {
        let this = &mut *self;
        loop {
            if this.order == StreamOrder::Input
                && let Some(done) = this.held.remove(&this.next)
            {
                this.next += 1;
                return Poll::Ready(Some(done.item));
            }
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(done)) => match this.order {
                    StreamOrder::Completed => return Poll::Ready(Some(done.item)),
                    StreamOrder::Input => {
                        this.held.insert(done.item.index, done);
                    }
                },
                // Every document gets its item, so nothing is held at the end; should a task
                // have been lost, what is held still comes out (in order).
                Poll::Ready(None) => {
                    return Poll::Ready(this.held.pop_first().map(|(i, d)| {
                        this.next = i + 1;
                        d.item
                    }));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Pipeline {
    /// Annotates a stream of documents, each with the caller's id, as they come (see the
    /// [module docs](crate::stream)): micro-batched tagging, then each document on its own,
    /// under the [`RoutingBudget`](crate::RoutingBudget) when there is one. Yields exactly one
    /// [`Streamed`] per input document, with its id, in input order or as completed
    /// ([`StreamOptions::order`]). Without a budget, the annotations are those of the batch
    /// calls on the same texts.
    ///
    /// Must be called inside a tokio runtime. The input is polled on a tokio worker: a
    /// blocking source (standard input, a file) belongs on its own thread feeding a channel.
    ///
    /// ```no_run
    /// # async fn demo(pipeline: linkner::Pipeline) -> linkner::Result<()> {
    /// use futures_util::StreamExt;
    /// let tweets = futures_util::stream::iter(vec![(7_u64, "Klopp joins Liverpool"),
    ///                                               (9, "rain in Köln")]);
    /// let mut out = pipeline.stream(tweets)?;
    /// while let Some(item) = out.next().await {
    ///     let a = item.result?;
    ///     println!("{} {:?} {:?}", item.id, a.spans(), a.timings);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn stream<K, S, T>(&self, input: S) -> Result<Annotations<K>>
    where
        S: Stream<Item = (K, T)> + Send + 'static,
        K: Send + 'static,
        T: Into<StreamDocument> + Send + 'static,
    {
        self.stream_ordered(input, self.stream_options().order)
    }

    /// [`Pipeline::stream`] with [`DocumentOptions`] per document (LLM on or off, its own
    /// latency budget) and the output order given here: what a service uses to let the
    /// requests of different callers share tagger batches while each keeps its own options
    /// (with [`StreamOrder::Completed`], so that no caller waits for another's LLM calls).
    pub fn stream_with_options<K, S, T>(
        &self,
        input: S,
        order: StreamOrder,
    ) -> Result<Annotations<K>>
    where
        S: Stream<Item = (K, T, DocumentOptions)> + Send + 'static,
        K: Send + 'static,
        T: Into<StreamDocument> + Send + 'static,
    {
        self.stream_inner(input, order)
    }

    /// [`Pipeline::stream`] with the output order given here.
    pub(crate) fn stream_ordered<K, S, T>(
        &self,
        input: S,
        order: StreamOrder,
    ) -> Result<Annotations<K>>
    where
        S: Stream<Item = (K, T)> + Send + 'static,
        K: Send + 'static,
        T: Into<StreamDocument> + Send + 'static,
    {
        let input = input.map(|(k, t)| (k, t, DocumentOptions::default()));
        self.stream_inner(input, order)
    }

    fn stream_inner<K, S, T>(&self, input: S, order: StreamOrder) -> Result<Annotations<K>>
    where
        S: Stream<Item = (K, T, DocumentOptions)> + Send + 'static,
        K: Send + 'static,
        T: Into<StreamDocument> + Send + 'static,
    {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| LinkError::Task(format!("a stream needs a tokio runtime: {e}")))?;
        let options = self.stream_options();
        options.validate()?;
        let permits = Arc::new(Semaphore::new(options.max_pending));
        let (batch_tx, batch_rx) = mpsc::channel(options.chunks_in_flight);
        let (out_tx, out_rx) = mpsc::channel(options.channel_capacity);
        let reader = handle.spawn(read_batches(input, options, permits, batch_tx));
        let stage = handle.spawn(self.clone().run_batches(batch_rx, out_tx, options));
        Ok(Annotations {
            rx: out_rx,
            order,
            next: 0,
            held: BTreeMap::new(),
            _tasks: Tasks(vec![reader, stage]),
        })
    }

    /// Tags the batches from the micro-batcher (`chunks_in_flight` at once) and finishes each
    /// document on its own task.
    async fn run_batches<K: Send + 'static>(
        self,
        mut batches: mpsc::Receiver<(Vec<Arrived<K>>, OwnedSemaphorePermit)>,
        out: mpsc::Sender<Done<K>>,
        options: StreamOptions,
    ) {
        let mut tagging: JoinSet<Vec<Tagged<K>>> = JoinSet::new();
        let mut documents: JoinSet<()> = JoinSet::new();
        let mut open = true;
        loop {
            tokio::select! {
                batch = batches.recv(), if open && tagging.len() < options.chunks_in_flight => {
                    match batch {
                        Some((batch, slot)) => {
                            let p = self.clone();
                            tagging.spawn(async move {
                                let tagged = p.tag_batch(batch).await;
                                // The slot frees when the batch is tagged: the batcher
                                // closes its next batch then.
                                drop(slot);
                                tagged
                            });
                        }
                        None => open = false,
                    }
                }
                Some(tagged) = tagging.join_next(), if !tagging.is_empty() => {
                    // `tag_batch` cannot panic (its risky part runs on a task of its own).
                    for t in tagged.into_iter().flatten() {
                        documents.spawn(self.clone().finish(t, out.clone()));
                    }
                }
                Some(_) = documents.join_next(), if !documents.is_empty() => {}
                else => break,
            }
        }
    }

    /// The local stages for one batch; when the batch fails, each document alone, so that an
    /// error names only the documents it concerns.
    async fn tag_batch<K: Send + 'static>(self, batch: Vec<Arrived<K>>) -> Vec<Tagged<K>> {
        let started = Instant::now();
        let docs: Vec<StreamDocument> = batch.iter().map(|a| a.doc.clone()).collect();
        let mut pieces: Vec<Result<Work>> = Vec::with_capacity(docs.len());
        // Texts and sentences go to the tagger in separate calls (runs of one kind).
        let mut rest = &docs[..];
        while !rest.is_empty() {
            let is_text = matches!(rest[0], StreamDocument::Text(_));
            let n = rest
                .iter()
                .take_while(|d| matches!(d, StreamDocument::Text(_)) == is_text)
                .count();
            let (run, tail) = rest.split_at(n);
            rest = tail;
            match self.local_guarded(input_of(run)).await {
                Ok(work) => pieces.extend(work.split().into_iter().map(Ok)),
                Err(e) if run.len() == 1 => pieces.push(Err(e)),
                Err(_) => {
                    for d in run {
                        let one = self.local_guarded(input_of(std::slice::from_ref(d))).await;
                        pieces.push(
                            one.and_then(|w| w.split().pop().ok_or_else(|| LinkError::missing(0))),
                        );
                    }
                }
            }
        }
        let tagging = started.elapsed();
        let batch_size = batch.len();
        batch
            .into_iter()
            .zip(pieces)
            .map(|(doc, work)| Tagged {
                doc,
                work,
                started,
                tagging,
                batch_size,
            })
            .collect()
    }

    /// [`Pipeline::local`] on texts, on a task of its own (a panicking estimator fails the
    /// batch instead of losing it), its counts recorded.
    async fn local_guarded(&self, input: Input) -> Result<Work> {
        let p = self.clone();
        let job = tokio::spawn(async move { p.local(input).await });
        let local = job
            .await
            .map_err(|e| LinkError::Task(format!("stream batch: {e}")))??;
        self.record(&local.delta());
        Ok(local.into_work())
    }

    /// The LLM side of one document, its timings, and its item to the consumer.
    async fn finish<K>(self, tagged: Tagged<K>, out: mpsc::Sender<Done<K>>) {
        let Tagged {
            doc,
            work,
            started,
            tagging,
            batch_size,
        } = tagged;
        let Arrived {
            index,
            id,
            arrived,
            permit,
            options,
            ..
        } = doc;
        let result = match work {
            Err(e) => Err(e),
            Ok(mut work) => {
                if options.llm == Some(false) {
                    work.routed.clear();
                    work.examples = Ok(Vec::new());
                }
                let p = self.clone();
                let deadline = match options.latency_budget_ms {
                    Some(ms) => Some(arrived + Duration::from_millis(ms)),
                    None => self.deadline(arrived),
                };
                let mut job = AbortOnDrop(tokio::spawn(async move {
                    let t0 = Instant::now();
                    let (mut out, mut delta) = p.decide(work, deadline).await;
                    delta.documents = 1;
                    p.record(&delta);
                    (out.pop(), t0.elapsed())
                }));
                match (&mut job.0).await {
                    Ok((Some(mut a), llm)) => {
                        a.timings = Some(Timings {
                            queued_ms: ms(started.saturating_duration_since(arrived)),
                            tagging_ms: ms(tagging),
                            llm_ms: ms(llm),
                            total_ms: ms(arrived.elapsed()),
                            batch_size,
                        });
                        Ok(a)
                    }
                    Ok((None, _)) => Err(LinkError::missing(0)),
                    Err(e) => Err(LinkError::Task(format!("stream document: {e}"))),
                }
            }
        };
        let item = Streamed { id, index, result };
        // A closed output means the consumer is gone: nothing to do.
        let _ = out
            .send(Done {
                item,
                _permit: permit,
            })
            .await;
    }
}

/// The tagger input of a run of documents of one kind.
fn input_of(run: &[StreamDocument]) -> Input {
    match run.first() {
        Some(StreamDocument::Sentence(_)) => Input::Sentences(
            run.iter()
                .filter_map(|d| match d {
                    StreamDocument::Sentence(s) => Some(s.clone()),
                    StreamDocument::Text(_) => None,
                })
                .collect(),
        ),
        _ => Input::Texts(
            run.iter()
                .filter_map(|d| match d {
                    StreamDocument::Text(t) => Some(t.clone()),
                    StreamDocument::Sentence(_) => None,
                })
                .collect(),
        ),
    }
}

/// One document after its batch's local stages.
struct Tagged<K> {
    doc: Arrived<K>,
    work: Result<Work>,
    /// When its batch started tagging.
    started: Instant,
    /// How long its batch took.
    tagging: Duration,
    /// Documents in its batch.
    batch_size: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the micro-batcher waits for.
enum Event<I> {
    /// The next input item with its permit (`None`: the input is over).
    Item(Option<I>),
    /// The open batch's first document has waited `max_wait`.
    Due,
    /// A tagger slot (`None`: the slots are closed).
    Slot(Option<OwnedSemaphorePermit>),
}

/// The micro-batcher's next event while it may read: the `next` input item (with its
/// permit), the open batch's `close_at` time, or (once the batch is `due`) a free tagger
/// slot from `slots`.
async fn next_event<I>(
    next: impl Future<Output = Option<I>>,
    close_at: Option<Instant>,
    due: bool,
    slots: &Arc<Semaphore>,
) -> Event<I> {
    let close = async {
        match close_at {
            Some(t) if !due => tokio::time::sleep_until(t).await,
            _ => std::future::pending().await,
        }
    };
    let slot = async {
        if due {
            slots.clone().acquire_owned().await.ok()
        } else {
            std::future::pending().await
        }
    };
    // Input first: a busy input fills the batch; once the batch is due, the first
    // free slot takes it.
    tokio::select! {
        biased;
        item = next => Event::Item(item),
        slot = slot => Event::Slot(slot),
        () = close => Event::Due,
    }
}

/// The micro-batcher: reads the input (one permit per document: the bound) and sends a batch
/// to the tagger when it has `chunk_size` documents, or when its first document has waited
/// `max_wait` **and** a tagger slot is free (one of `chunks_in_flight`, held by the batch
/// until it is tagged). While every slot is busy the open batch keeps filling, so that a
/// backlog is tagged in a few full batches instead of a queue of small ones: batches follow
/// the load, as in the continuous batching of inference servers.
async fn read_batches<K, S, T>(
    input: S,
    options: StreamOptions,
    permits: Arc<Semaphore>,
    batches: mpsc::Sender<(Vec<Arrived<K>>, OwnedSemaphorePermit)>,
) where
    S: Stream<Item = (K, T, DocumentOptions)> + Send,
    K: Send,
    T: Into<StreamDocument> + Send,
{
    let slots = Arc::new(Semaphore::new(options.chunks_in_flight));
    let mut input = std::pin::pin!(input);
    let mut batch: Vec<Arrived<K>> = Vec::new();
    let mut close_at: Option<Instant> = None;
    let mut index = 0u64;
    let mut ended = false;
    loop {
        let due = close_at.is_some_and(|t| Instant::now() >= t);
        let event = if !batch.is_empty() && (ended || batch.len() >= options.chunk_size) {
            // Full (or the input is over): wait for a slot without reading more.
            Event::Slot(slots.clone().acquire_owned().await.ok())
        } else if ended {
            return;
        } else {
            let next = async {
                let permit = permits.clone().acquire_owned().await.ok()?;
                let (id, text, options) = input.next().await?;
                Some((permit, id, text, options))
            };
            next_event(next, close_at, due, &slots).await
        };
        match event {
            Event::Item(Some((permit, id, text, doc_options))) => {
                let now = Instant::now();
                if batch.is_empty() {
                    close_at = Some(now + options.max_wait);
                }
                batch.push(Arrived {
                    index,
                    id,
                    doc: text.into(),
                    options: doc_options,
                    arrived: now,
                    permit,
                });
                index += 1;
            }
            Event::Item(None) => ended = true,
            Event::Due => {}
            Event::Slot(None) => return,
            Event::Slot(Some(slot)) => {
                close_at = None;
                if batches
                    .send((std::mem::take(&mut batch), slot))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}
