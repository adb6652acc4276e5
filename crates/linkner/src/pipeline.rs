//! The [`Pipeline`]: local tagger → uncertainty estimator → routing policy → LLM, with
//! provenance on every entity and run statistics.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use linkner_core::tagger::{LocalTagger, PredictOptions};
use linkner_core::{Document, LabelSchema, Sentence, WordSpan};
use linkner_llm::{Example, LlmClassifier};
use linkner_uncertainty::{Requirements, UncertaintyEstimator};
use tokio::sync::mpsc;

use crate::annotation::{Annotation, Provenance};
use crate::budget::{RoutingBudget, Scheduler};
use crate::error::{BuildError, LinkError, Result};
use crate::merge::MergePolicy;
use crate::policy::RoutingPolicy;
use crate::retrieve::ExampleRetriever;
use crate::stages::{self, Local, ScoredCandidate, Work};
use crate::stats::{RunStats, StatsSnapshot};
use crate::stream::{StreamOptions, StreamOrder};

/// How the pipeline holds the local tagger.
#[derive(Clone)]
enum TaggerSlot {
    /// A tagger that is `Sync`: calls from many tasks run at the same time.
    Shared(Arc<dyn LocalTagger + Send + Sync>),
    /// A tagger that is only `Send` (e.g. one holding LibTorch tensors): calls take turns
    /// behind a mutex.
    Exclusive(Arc<Mutex<Box<dyn LocalTagger + Send>>>),
}

impl TaggerSlot {
    fn with<R>(&self, f: impl FnOnce(&dyn LocalTagger) -> R) -> R {
        match self {
            TaggerSlot::Shared(t) => f(t.as_ref()),
            TaggerSlot::Exclusive(m) => {
                // A panic inside an earlier tagger call poisons the mutex; the tagger is only
                // read through `&self`, so the value is still usable.
                let guard = m.lock().unwrap_or_else(PoisonError::into_inner);
                f(guard.as_ref())
            }
        }
    }
}

/// Builds a [`Pipeline`]; see [`Pipeline::builder`].
pub struct PipelineBuilder {
    tagger: Option<TaggerSlot>,
    estimator: Option<Arc<dyn UncertaintyEstimator>>,
    llm: Option<Arc<dyn LlmClassifier>>,
    retriever: Option<Arc<dyn ExampleRetriever>>,
    policy: RoutingPolicy,
    merge: MergePolicy,
    predict: PredictOptions,
    local_top_k: usize,
    stream: StreamOptions,
    budget: Option<RoutingBudget>,
}

impl Default for PipelineBuilder {
    fn default() -> Self {
        PipelineBuilder {
            tagger: None,
            estimator: None,
            llm: None,
            retriever: None,
            policy: RoutingPolicy::default(),
            merge: MergePolicy::default(),
            predict: PredictOptions::default(),
            local_top_k: 3,
            stream: StreamOptions::default(),
            budget: None,
        }
    }
}

impl fmt::Debug for PipelineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("tagger", &self.tagger.is_some())
            .field("estimator", &self.estimator.as_ref().map(|e| e.name()))
            .field("llm", &self.llm.as_ref().map(|l| l.name()))
            .field("retriever", &self.retriever.as_ref().map(|r| r.name()))
            .field("policy", &self.policy)
            .field("merge", &self.merge)
            .field("predict", &self.predict)
            .field("local_top_k", &self.local_top_k)
            .field("stream", &self.stream)
            .field("budget", &self.budget)
            .finish()
    }
}

impl PipelineBuilder {
    /// The local tagger, shared: it must be `Send + Sync`, and calls from concurrent tasks run
    /// at the same time (each on tokio's blocking pool).
    pub fn tagger(mut self, tagger: Arc<dyn LocalTagger + Send + Sync>) -> Self {
        self.tagger = Some(TaggerSlot::Shared(tagger));
        self
    }

    /// The local tagger, owned behind a mutex: it needs only be `Send`. Concurrent calls take
    /// turns in the tagger (each on tokio's blocking pool) and overlap everywhere else — the
    /// LLM calls, which dominate the time, included. Also the right choice for a `Sync` tagger
    /// whose one call already uses every core, like the burn
    /// [`SpanTagger`](linkner_tagger::SpanTagger) on LibTorch's CPU backend.
    pub fn exclusive_tagger(mut self, tagger: impl LocalTagger + Send + 'static) -> Self {
        self.tagger = Some(TaggerSlot::Exclusive(Arc::new(Mutex::new(Box::new(
            tagger,
        )))));
        self
    }

    /// The uncertainty estimator. Its [`requirements`](UncertaintyEstimator::requirements)
    /// decide how many Monte-Carlo passes the tagger is asked for.
    pub fn estimator(mut self, estimator: Arc<dyn UncertaintyEstimator>) -> Self {
        self.estimator = Some(estimator);
        self
    }

    /// The LLM classifier (required unless the policy is [`RoutingPolicy::Never`]).
    pub fn llm(mut self, llm: Arc<dyn LlmClassifier>) -> Self {
        self.llm = Some(llm);
        self
    }

    /// The routing policy (default: threshold 0.4).
    pub fn policy(mut self, policy: RoutingPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How the LLM's answer and the local distribution are merged (default:
    /// [`MergePolicy::Replace`], the paper's rule).
    pub fn merge(mut self, merge: MergePolicy) -> Self {
        self.merge = merge;
        self
    }

    /// Retrieves few-shot examples per routed entity (e.g. the nearest training entities): they
    /// travel in each [`linkner_llm::ClassifyRequest::examples`].
    pub fn retriever(mut self, retriever: Arc<dyn ExampleRetriever>) -> Self {
        self.retriever = Some(retriever);
        self
    }

    /// Base options of the tagger calls (batch size, overlapping candidates, MC on the
    /// encoder). `mc_samples` is raised to what the estimator requires.
    pub fn predict_options(mut self, options: PredictOptions) -> Self {
        self.predict = options;
        self
    }

    /// How many of the local model's best classes (with probabilities) each LLM request carries
    /// (default 3; 0 for none).
    pub fn local_top_k(mut self, k: usize) -> Self {
        self.local_top_k = k;
        self
    }

    /// Options of the stream path ([`Pipeline::stream`], [`Pipeline::annotate_stream`]).
    pub fn stream_options(mut self, options: StreamOptions) -> Self {
        self.stream = options;
        self
    }

    /// A [`RoutingBudget`]: LLM capacity (calls in flight, calls or prompt tokens per
    /// second) and a per-document latency budget. Routed entities then wait for the LLM in
    /// one priority queue, most uncertain first, and never past their document's deadline
    /// (see [`crate::budget`]). Without one (the default), every routed entity is sent and
    /// waited for.
    pub fn budget(mut self, budget: RoutingBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Checks the parts and builds the pipeline. Fails when the tagger or the estimator is
    /// missing, when the policy can route but no LLM is given, or when the policy's parameters
    /// are invalid for the tagger's schema.
    pub fn build(self) -> Result<Pipeline> {
        let tagger = self.tagger.ok_or(BuildError::NoTagger)?;
        let estimator = self.estimator.ok_or(BuildError::NoEstimator)?;
        let schema = Arc::new(tagger.with(|t| t.schema().clone()));
        if schema.types.is_empty() {
            return Err(BuildError::EmptySchema {
                schema: schema.name.clone(),
            }
            .into());
        }
        self.policy.validate(Some(&schema))?;
        self.merge.validate()?;
        if self.policy.may_route() && self.llm.is_none() {
            return Err(BuildError::RoutesWithoutLlm.into());
        }
        self.stream.validate()?;
        if let Some(b) = &self.budget {
            b.validate()?;
        }
        let requirements = estimator.requirements();
        let mut predict = self.predict;
        predict.mc_samples = predict.mc_samples.max(requirements.mc_samples);
        Ok(Pipeline {
            inner: Arc::new(Inner {
                tagger,
                schema,
                estimator,
                llm: self.llm,
                retriever: self.retriever,
                policy: self.policy,
                merge: self.merge,
                predict,
                requirements,
                local_top_k: self.local_top_k,
                stream: self.stream,
                scheduler: self.budget.map(|b| Arc::new(Scheduler::new(b))),
                stats: RunStats::default(),
            }),
        })
    }
}

struct Inner {
    tagger: TaggerSlot,
    schema: Arc<LabelSchema>,
    estimator: Arc<dyn UncertaintyEstimator>,
    llm: Option<Arc<dyn LlmClassifier>>,
    retriever: Option<Arc<dyn ExampleRetriever>>,
    policy: RoutingPolicy,
    merge: MergePolicy,
    predict: PredictOptions,
    requirements: Requirements,
    local_top_k: usize,
    stream: StreamOptions,
    scheduler: Option<Arc<Scheduler>>,
    stats: RunStats,
}

/// The LinkNER pipeline: text in, entities with provenance out.
///
/// Cloning is cheap (one `Arc`); clones share the components and the statistics. A pipeline is
/// `Send + Sync` and every method takes `&self`, so any number of tasks can use it at once.
/// The tagger runs on tokio's blocking pool when a tokio runtime is present (inline otherwise);
/// LLM requests of one call go to the backend together through
/// [`LlmClassifier::classify_batch`], so the backend's own concurrency bound applies; they run
/// on their own task, so that even a panicking backend only fails its requests (local labels
/// kept).
///
/// ```no_run
/// # async fn demo(tagger: std::sync::Arc<dyn linkner::core::LocalTagger + Send + Sync>,
/// #               llm: std::sync::Arc<dyn linkner::llm::LlmClassifier>) -> linkner::Result<()> {
/// use std::sync::Arc;
/// use linkner::{Pipeline, RoutingPolicy};
/// use linkner::uncertainty::EstimatorConfig;
///
/// let pipeline = Pipeline::builder()
///     .tagger(tagger)
///     .estimator(Arc::from(EstimatorConfig::Entropy {}.build()?))
///     .llm(llm)
///     .policy(RoutingPolicy::threshold(0.4))
///     .build()?;
/// let doc = pipeline.annotate("Jürgen Klopp left Liverpool.").await?;
/// for e in &doc.entities {
///     println!("{} {} {:?}", e.entity.text, e.entity.label, e.provenance);
/// }
/// println!("{:?}", pipeline.stats());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("schema", &self.inner.schema.name)
            .field("estimator", &self.inner.estimator.name())
            .field("llm", &self.inner.llm.as_ref().map(|l| l.name()))
            .field("policy", &self.inner.policy)
            .field("merge", &self.inner.merge)
            .field("predict", &self.inner.predict)
            .finish()
    }
}

/// Raw input of one call.
pub(crate) enum Input {
    Texts(Vec<String>),
    Sentences(Vec<Sentence>),
    Documents(Vec<Document>),
}

impl Input {
    /// Annotations the input gets: one per text or sentence.
    fn len(&self) -> usize {
        match self {
            Input::Texts(t) => t.len(),
            Input::Sentences(s) => s.len(),
            Input::Documents(d) => d.iter().map(|d| d.sentences.len()).sum(),
        }
    }
}

impl Pipeline {
    /// A new builder.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// The tagger's label schema.
    pub fn schema(&self) -> &LabelSchema {
        &self.inner.schema
    }

    /// The routing policy.
    pub fn policy(&self) -> &RoutingPolicy {
        &self.inner.policy
    }

    /// The merge policy.
    pub fn merge_policy(&self) -> &MergePolicy {
        &self.inner.merge
    }

    /// The tagger options used for every call (`mc_samples` from the estimator's
    /// requirements).
    pub fn predict_options(&self) -> PredictOptions {
        self.inner.predict
    }

    /// The options of the stream path.
    pub fn stream_options(&self) -> StreamOptions {
        self.inner.stream
    }

    /// The routing budget, when there is one.
    pub fn budget(&self) -> Option<&RoutingBudget> {
        self.inner.scheduler.as_ref().map(|s| s.budget())
    }

    /// LLM calls holding a budget slot now and calls waiting for one (`(0, 0)` without a
    /// budget): how busy the LLM is.
    pub fn llm_load(&self) -> (usize, usize) {
        self.inner.scheduler.as_ref().map_or((0, 0), |s| s.load())
    }

    /// What the estimator requires of the tagger.
    pub fn requirements(&self) -> Requirements {
        self.inner.requirements
    }

    /// The estimator's name.
    pub fn estimator_name(&self) -> String {
        self.inner.estimator.name()
    }

    /// The LLM backend's name, when there is one.
    pub fn llm_name(&self) -> Option<String> {
        self.inner.llm.as_ref().map(|l| l.name())
    }

    /// The LLM backend's own counters (retries, latency percentiles, …), when it keeps them.
    pub fn llm_stats(&self) -> Option<linkner_llm::Stats> {
        self.inner.llm.as_ref().and_then(|l| l.stats())
    }

    /// A snapshot of the run statistics (all calls on this pipeline and its clones).
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// Sets the run statistics back to zero.
    pub fn reset_stats(&self) {
        self.inner.stats.reset();
    }

    /// Annotates one raw text (split into words by the tagger's
    /// [`tag_texts`](LocalTagger::tag_texts)); char offsets point into `text`.
    pub async fn annotate(&self, text: &str) -> Result<Annotation> {
        let mut out = self.run(Input::Texts(vec![text.to_string()])).await?;
        out.pop().ok_or_else(|| LinkError::missing(0))
    }

    /// Annotates many raw texts in one tagger call and one LLM batch; the i-th annotation
    /// answers the i-th text. A [`RoutingPolicy::Budget`] applies to all their candidates
    /// together.
    pub async fn annotate_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Annotation>> {
        let texts: Vec<String> = texts.iter().map(|t| t.as_ref().to_string()).collect();
        self.run(Input::Texts(texts)).await
    }

    /// Annotates pre-tokenized sentences (e.g. read from a CoNLL file): the words and the text
    /// of each sentence are kept as given, and char offsets point into [`Sentence::text`].
    pub async fn annotate_sentences(&self, sentences: Vec<Sentence>) -> Result<Vec<Annotation>> {
        self.run(Input::Sentences(sentences)).await
    }

    /// Annotates the sentences of documents: the tagger reads each document's sentences
    /// together ([`LocalTagger::tag_documents`]: document context, for a tagger trained with
    /// it), and everything after tagging is per sentence. Returns one annotation per sentence,
    /// documents in order (the sentences of `documents[0]` first); as
    /// [`annotate_sentences`](Pipeline::annotate_sentences), words and texts are kept as given.
    pub async fn annotate_documents(&self, documents: Vec<Document>) -> Result<Vec<Annotation>> {
        self.run(Input::Documents(documents)).await
    }

    /// Annotates a sequence of texts as a stream, in input order: a thin adapter over
    /// [`Pipeline::stream`] (micro-batches of up to `chunk_size` texts, `chunks_in_flight`
    /// tagger batches at once, bounded memory; see [`StreamOptions`]). Every text gets exactly
    /// one item: when a whole batch fails, its texts are retried one by one so that an error
    /// names only the texts it concerns.
    ///
    /// The iterator is read on a tokio worker, so it should not block for long (read files
    /// line by line, not from a slow network). Dropping the stream stops the work.
    /// Must be called inside a tokio runtime (errors otherwise).
    pub fn annotate_stream<I>(&self, documents: I) -> Result<AnnotationStream>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Into<String>,
    {
        let input = futures_util::stream::iter(
            documents
                .into_iter()
                .map(|d| ((), crate::stream::StreamDocument::Text(d.into()))),
        );
        let mut stream = self.stream_ordered(input, StreamOrder::Input)?;
        let (tx, rx) = mpsc::channel(self.inner.stream.channel_capacity);
        let forward = tokio::spawn(async move {
            use futures_util::StreamExt;
            while let Some(item) = stream.next().await {
                if tx.send(item.result).await.is_err() {
                    return;
                }
            }
        });
        Ok(AnnotationStream {
            rx,
            forward: AbortOnDrop(Some(forward)),
        })
    }

    /// Runs the tagger on the blocking pool (inline without a runtime).
    async fn tag(&self, input: Input) -> Result<stages::Tagged> {
        let slot = self.inner.tagger.clone();
        let options = self.inner.predict;
        let job = move || slot.with(|t| tag_input(t, input, &options));
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::spawn_blocking(job)
                .await
                .map_err(|e| LinkError::Task(format!("local tagger: {e}")))?
        } else {
            job()
        }
    }

    /// One call: the stages of [`crate::stages`] in order. Under a [`RoutingBudget`] with a
    /// latency budget, the deadline of every document of the call runs from its start.
    async fn run(&self, input: Input) -> Result<Vec<Annotation>> {
        let n_docs = input.len();
        if n_docs == 0 {
            return Ok(Vec::new());
        }
        let started = tokio::time::Instant::now();
        let local = self.local(input).await?;
        let deadline = self.deadline(started);
        let mut delta = local.delta();
        delta.documents = n_docs as u64;
        let (out, llm) = self.decide(local.into_work(), deadline).await;
        delta.add(&llm);
        self.inner.stats.record(&delta);
        Ok(out)
    }

    /// The deadline of a document that arrived at `arrived`, under the latency budget.
    pub(crate) fn deadline(&self, arrived: tokio::time::Instant) -> Option<tokio::time::Instant> {
        self.inner
            .scheduler
            .as_ref()
            .and_then(|s| s.budget().latency_budget())
            .map(|b| arrived + b)
    }

    /// tag → check → score → route, and the examples of the routed candidates: everything
    /// before the LLM.
    pub(crate) async fn local(&self, input: Input) -> Result<Local> {
        let inner = &self.inner;
        let t0 = Instant::now();
        let tagged = self.tag(input).await?;
        let tagger_time = t0.elapsed();
        let t0 = Instant::now();
        let tagged = stages::check(&inner.schema, tagged)?;
        let (sentences, scored) = stages::score(&inner.schema, inner.estimator.as_ref(), tagged)?;
        let estimator_time = t0.elapsed();
        let routed = stages::route(&inner.policy, &scored);
        let examples = if routed.is_empty() || inner.llm.is_none() {
            Ok(Vec::new())
        } else {
            self.retrieve(&sentences, &scored, &routed).await
        };
        Ok(Local {
            work: Work {
                sentences,
                scored,
                routed,
                examples,
            },
            tagger_time,
            estimator_time,
        })
    }

    /// classify → merge → account for the routed candidates of `work`: the annotations, and
    /// the counts of the LLM side (requests, outcomes, tokens, LLM time).
    pub(crate) async fn decide(
        &self,
        work: Work,
        deadline: Option<tokio::time::Instant>,
    ) -> (Vec<Annotation>, StatsSnapshot) {
        let inner = &self.inner;
        let Work {
            sentences,
            scored,
            routed,
            examples,
        } = work;
        let side = stages::LlmSide {
            schema: &inner.schema,
            llm: inner.llm.as_ref(),
            scheduler: inner.scheduler.as_ref(),
            local_top_k: inner.local_top_k,
        };
        let calls = stages::Routed {
            sentences: &sentences,
            scored: &scored,
            routed: &routed,
            examples,
        };
        let (outcomes, classified) = stages::classify_routed(&side, calls, deadline).await;
        let decided = stages::merge_all(&inner.schema, &inner.merge, scored, outcomes);
        let (out, mut delta) = stages::account(sentences, decided);
        delta.add(&classified);
        warn_failures(&out, &delta, routed.len());
        (out, delta)
    }

    /// Records a call's counts in the run statistics.
    pub(crate) fn record(&self, delta: &StatsSnapshot) {
        self.inner.stats.record(delta);
    }

    /// Few-shot examples for the routed candidates from the retriever (on tokio's blocking
    /// pool: retrievers run an encoder); empty without a retriever.
    async fn retrieve(
        &self,
        sentences: &[Sentence],
        scored: &[ScoredCandidate],
        routed: &[usize],
    ) -> std::result::Result<Vec<Vec<Example>>, String> {
        let Some(retriever) = self.inner.retriever.clone() else {
            return Ok(Vec::new());
        };
        let queries: Vec<(Sentence, WordSpan)> = routed
            .iter()
            .map(|&i| {
                let s = &scored[i];
                (sentences[s.doc].clone(), s.candidate.span.clone())
            })
            .collect();
        let job = move || {
            let refs: Vec<(&Sentence, &WordSpan)> = queries.iter().map(|(s, w)| (s, w)).collect();
            retriever.retrieve(&refs).map_err(|e| e.to_string())
        };
        let lists = if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::spawn_blocking(job)
                .await
                .map_err(|e| format!("retriever task: {e}"))??
        } else {
            job()?
        };
        if lists.len() != routed.len() {
            return Err(format!(
                "the retriever returned {} example lists for {} entities",
                lists.len(),
                routed.len()
            ));
        }
        Ok(lists)
    }
}

/// Logs the first LLM failure of a call (entity and error) with the call's failure count.
fn warn_failures(out: &[Annotation], delta: &StatsSnapshot, routed: usize) {
    if delta.failures == 0 {
        return;
    }
    let first = out
        .iter()
        .flat_map(|a| a.entities.iter().chain(&a.rejected))
        .find_map(|e| match &e.provenance {
            Provenance::LlmFailed { error, .. } => Some((e.entity.text.as_str(), error.as_str())),
            _ => None,
        });
    if let Some((entity, error)) = first {
        tracing::warn!(
            failures = delta.failures,
            routed,
            first_entity = %entity,
            first_error = %error,
            "LLM calls failed; those entities keep their local labels"
        );
    }
}

/// The tag stage: runs the tagger on one input; what it returns is checked by
/// [`stages::check`].
fn tag_input(
    tagger: &dyn LocalTagger,
    input: Input,
    options: &PredictOptions,
) -> Result<stages::Tagged> {
    Ok(match input {
        Input::Texts(texts) => {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let out = tagger.tag_texts(&refs, options)?;
            stages::Tagged::Texts { texts, out }
        }
        Input::Sentences(sentences) => {
            let out = tagger.tag_sentences(&sentences, options)?;
            stages::Tagged::Sentences { sentences, out }
        }
        Input::Documents(documents) => {
            let out = tagger.tag_documents(&documents, options)?;
            stages::Tagged::Documents { documents, out }
        }
    })
}

/// The annotations of [`Pipeline::annotate_stream`], in input order, one per document.
///
/// Read with [`next`](AnnotationStream::next), or take the tokio receiver with
/// [`into_receiver`](AnnotationStream::into_receiver) (wrap it in
/// `tokio_stream::wrappers::ReceiverStream` for a `futures::Stream`).
#[derive(Debug)]
pub struct AnnotationStream {
    rx: mpsc::Receiver<Result<Annotation>>,
    forward: AbortOnDrop,
}

/// Aborts the forwarding task when the stream is dropped (the receiver alone would only stop
/// it at its next send).
#[derive(Debug)]
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.abort();
        }
    }
}

impl AnnotationStream {
    /// The next document's annotation; `None` after the last one.
    pub async fn next(&mut self) -> Option<Result<Annotation>> {
        self.rx.recv().await
    }

    /// The underlying channel receiver. The producer stops at its next send once the receiver
    /// is dropped.
    pub fn into_receiver(self) -> mpsc::Receiver<Result<Annotation>> {
        let AnnotationStream { rx, mut forward } = self;
        // The forwarding task must outlive this value: detach it (it stops at its next send
        // once the receiver is dropped).
        forward.0 = None;
        rx
    }
}
