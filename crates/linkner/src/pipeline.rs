//! The [`Pipeline`]: local tagger → uncertainty estimator → routing policy → LLM, with
//! provenance on every entity and run statistics.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use linkner_core::text::CharIndex;
use linkner_core::{Candidate, LabelSchema, Sentence, WordSpan};
use linkner_llm::{Answer, ClassifyRequest, LlmClassifier, LlmError, LocalLabel};
use linkner_tagger::{LocalTagger, PredictOptions};
use linkner_uncertainty::{Requirements, UncertaintyEstimator};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::annotation::{Annotation, LinkedEntity, Provenance};
use crate::error::{LinkError, Result};
use crate::policy::{RouteInput, RoutingPolicy};
use crate::stats::{RunStats, StatsSnapshot};

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

/// Options of [`Pipeline::annotate_stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Documents per chunk: each chunk is one [`Pipeline::annotate_batch`] call (and the scope
    /// of a [`RoutingPolicy::Budget`]). Default 32.
    pub chunk_size: usize,
    /// Chunks in flight at once (so that the tagger works on one chunk while the LLM answers
    /// another). Default 2.
    pub chunks_in_flight: usize,
    /// Annotations buffered in the channel before the producer waits for the consumer.
    /// Default 64.
    pub channel_capacity: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            chunk_size: 32,
            chunks_in_flight: 2,
            channel_capacity: 64,
        }
    }
}

/// Builds a [`Pipeline`]; see [`Pipeline::builder`].
pub struct PipelineBuilder {
    tagger: Option<TaggerSlot>,
    estimator: Option<Arc<dyn UncertaintyEstimator>>,
    llm: Option<Arc<dyn LlmClassifier>>,
    policy: RoutingPolicy,
    predict: PredictOptions,
    local_top_k: usize,
    stream: StreamOptions,
}

impl Default for PipelineBuilder {
    fn default() -> Self {
        PipelineBuilder {
            tagger: None,
            estimator: None,
            llm: None,
            policy: RoutingPolicy::default(),
            predict: PredictOptions::default(),
            local_top_k: 3,
            stream: StreamOptions::default(),
        }
    }
}

impl fmt::Debug for PipelineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("tagger", &self.tagger.is_some())
            .field("estimator", &self.estimator.as_ref().map(|e| e.name()))
            .field("llm", &self.llm.as_ref().map(|l| l.name()))
            .field("policy", &self.policy)
            .field("predict", &self.predict)
            .field("local_top_k", &self.local_top_k)
            .field("stream", &self.stream)
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

    /// Options of [`Pipeline::annotate_stream`].
    pub fn stream_options(mut self, options: StreamOptions) -> Self {
        self.stream = options;
        self
    }

    /// Checks the parts and builds the pipeline. Fails when the tagger or the estimator is
    /// missing, when the policy can route but no LLM is given, or when the policy's parameters
    /// are invalid for the tagger's schema.
    pub fn build(self) -> Result<Pipeline> {
        let tagger = self
            .tagger
            .ok_or_else(|| LinkError::Build("no local tagger given".into()))?;
        let estimator = self
            .estimator
            .ok_or_else(|| LinkError::Build("no uncertainty estimator given".into()))?;
        let schema = Arc::new(tagger.with(|t| t.schema().clone()));
        if schema.types.is_empty() {
            return Err(LinkError::Build(format!(
                "the tagger's schema `{}` has no entity types",
                schema.name
            )));
        }
        self.policy.validate(Some(&schema))?;
        if self.policy.may_route() && self.llm.is_none() {
            return Err(LinkError::Build(
                "the routing policy sends entities to an LLM but no LLM classifier was given \
                 (give one, or use the `never` policy for the local tagger alone)"
                    .into(),
            ));
        }
        if self.stream.chunk_size == 0
            || self.stream.chunks_in_flight == 0
            || self.stream.channel_capacity == 0
        {
            return Err(LinkError::Build(
                "stream options must all be at least 1".into(),
            ));
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
                policy: self.policy,
                predict,
                requirements,
                local_top_k: self.local_top_k,
                stream: self.stream,
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
    policy: RoutingPolicy,
    predict: PredictOptions,
    requirements: Requirements,
    local_top_k: usize,
    stream: StreamOptions,
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
/// # async fn demo(tagger: std::sync::Arc<dyn linkner::tagger::LocalTagger + Send + Sync>,
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
            .field("predict", &self.inner.predict)
            .finish()
    }
}

/// Raw input of one call.
enum Input {
    Texts(Vec<String>),
    Sentences(Vec<Sentence>),
}

impl Input {
    fn len(&self) -> usize {
        match self {
            Input::Texts(t) => t.len(),
            Input::Sentences(s) => s.len(),
        }
    }
}

/// One checked candidate of one document.
struct Scored {
    doc: usize,
    candidate: Candidate,
    local_label: String,
    local_prob: f32,
    uncertainty: f32,
}

/// What the LLM step decided for one routed candidate.
enum Outcome {
    Answer(Answer),
    Failed(String),
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

    /// The tagger options used for every call (`mc_samples` from the estimator's
    /// requirements).
    pub fn predict_options(&self) -> PredictOptions {
        self.inner.predict
    }

    /// What the estimator requires of the tagger.
    pub fn requirements(&self) -> Requirements {
        self.inner.requirements
    }

    /// The estimator's name.
    pub fn estimator_name(&self) -> &str {
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
        out.pop()
            .ok_or_else(|| LinkError::TaggerOutput("no annotation for the document".into()))
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

    /// Annotates a sequence of documents as a stream, in input order, `chunk_size` documents
    /// per call with `chunks_in_flight` calls overlapping (see [`StreamOptions`]). Every
    /// document gets exactly one item: when a whole chunk fails, its documents are retried one
    /// by one so that an error names only the documents it concerns.
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
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| LinkError::Task(format!("annotate_stream needs a tokio runtime: {e}")))?;
        let options = self.inner.stream;
        let (tx, rx) = mpsc::channel(options.channel_capacity);
        let pipeline = self.clone();
        let mut docs = documents.into_iter();
        handle.spawn(async move {
            let mut in_flight: VecDeque<(usize, JoinHandle<Vec<Result<Annotation>>>)> =
                VecDeque::new();
            let mut exhausted = false;
            loop {
                while !exhausted && in_flight.len() < options.chunks_in_flight {
                    let chunk: Vec<String> = docs
                        .by_ref()
                        .take(options.chunk_size)
                        .map(Into::into)
                        .collect();
                    if chunk.is_empty() {
                        exhausted = true;
                        break;
                    }
                    let p = pipeline.clone();
                    let n = chunk.len();
                    in_flight.push_back((n, tokio::spawn(async move { p.chunk(chunk).await })));
                }
                let Some((n, job)) = in_flight.pop_front() else {
                    break;
                };
                let results = match job.await {
                    Ok(r) => r,
                    Err(e) => (0..n)
                        .map(|_| Err(LinkError::Task(format!("stream chunk: {e}"))))
                        .collect(),
                };
                for r in results {
                    if tx.send(r).await.is_err() {
                        for (_, job) in in_flight {
                            job.abort();
                        }
                        return;
                    }
                }
            }
        });
        Ok(AnnotationStream { rx })
    }

    /// One stream chunk: one batch, or each document alone when the batch fails.
    async fn chunk(&self, chunk: Vec<String>) -> Vec<Result<Annotation>> {
        match self.run(Input::Texts(chunk.clone())).await {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(_) if chunk.len() > 1 => {
                let mut out = Vec::with_capacity(chunk.len());
                for text in chunk {
                    out.push(self.annotate(&text).await);
                }
                out
            }
            Err(e) => vec![Err(e)],
        }
    }

    /// Runs the tagger on the blocking pool (inline without a runtime).
    async fn tag(&self, input: Input) -> Result<Vec<(Sentence, Vec<Candidate>)>> {
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

    async fn run(&self, input: Input) -> Result<Vec<Annotation>> {
        let inner = &self.inner;
        let n_docs = input.len();
        let mut delta = StatsSnapshot {
            documents: n_docs as u64,
            ..StatsSnapshot::default()
        };
        if n_docs == 0 {
            return Ok(Vec::new());
        }

        // 1. Local tagger.
        let t0 = Instant::now();
        let tagged = self.tag(input).await?;
        delta.tagger_time = t0.elapsed();

        // 2. Check candidates and score them.
        let t0 = Instant::now();
        let mut sentences = Vec::with_capacity(tagged.len());
        let mut scored: Vec<Scored> = Vec::new();
        for (doc, (sentence, candidates)) in tagged.into_iter().enumerate() {
            let chars = sentence.char_index();
            for c in &candidates {
                check_candidate(&inner.schema, &chars, &sentence, c)?;
            }
            let scores = inner.estimator.score_batch(&candidates)?;
            if scores.len() != candidates.len() {
                return Err(LinkError::EstimatorOutput(format!(
                    "estimator `{}` returned {} scores for {} candidates",
                    inner.estimator.name(),
                    scores.len(),
                    candidates.len()
                )));
            }
            for (candidate, uncertainty) in candidates.into_iter().zip(scores) {
                if !(0.0..=1.0).contains(&uncertainty) {
                    return Err(LinkError::InvalidScore {
                        estimator: inner.estimator.name().to_string(),
                        score: uncertainty,
                    });
                }
                let local_label = inner
                    .schema
                    .class(candidate.class)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                let local_prob = candidate
                    .probs
                    .get(candidate.class)
                    .copied()
                    .or(candidate.entity.score)
                    .unwrap_or(0.0);
                scored.push(Scored {
                    doc,
                    candidate,
                    local_label,
                    local_prob,
                    uncertainty,
                });
            }
            sentences.push(sentence);
        }
        delta.entities = scored.len() as u64;
        delta.estimator_time = t0.elapsed();

        // 3. Routing.
        let inputs: Vec<RouteInput<'_>> = scored
            .iter()
            .map(|s| RouteInput {
                label: &s.local_label,
                uncertainty: s.uncertainty,
            })
            .collect();
        let routed = inner.policy.route(&inputs);
        drop(inputs);

        // 4. LLM.
        let mut outcomes: Vec<Option<Outcome>> = (0..scored.len()).map(|_| None).collect();
        let routed_idx: Vec<usize> = (0..scored.len()).filter(|&i| routed[i]).collect();
        delta.routed = routed_idx.len() as u64;
        if !routed_idx.is_empty() {
            match &inner.llm {
                None => {
                    for &i in &routed_idx {
                        outcomes[i] = Some(Outcome::Failed("no LLM classifier configured".into()));
                    }
                }
                Some(llm) => {
                    let mut requests = Vec::with_capacity(routed_idx.len());
                    let mut slots = Vec::with_capacity(routed_idx.len());
                    for &i in &routed_idx {
                        let s = &scored[i];
                        match self.request(&sentences[s.doc], &s.candidate) {
                            Ok(r) => {
                                requests.push(r);
                                slots.push(i);
                            }
                            Err(e) => outcomes[i] = Some(Outcome::Failed(e.to_string())),
                        }
                    }
                    delta.llm_requests = requests.len() as u64;
                    let t0 = Instant::now();
                    let answers = if requests.is_empty() {
                        Ok(Vec::new())
                    } else {
                        classify_isolated(llm, requests).await
                    };
                    delta.llm_time = t0.elapsed();
                    let n = slots.len();
                    let fail_all = |outcomes: &mut Vec<Option<Outcome>>, error: &str| {
                        for &i in &slots {
                            outcomes[i] = Some(Outcome::Failed(error.to_string()));
                        }
                    };
                    match answers {
                        Err(error) => fail_all(&mut outcomes, &error),
                        Ok(answers) if answers.len() == n => {
                            for (&i, a) in slots.iter().zip(answers) {
                                outcomes[i] = Some(match a {
                                    Ok(a) => Outcome::Answer(a),
                                    Err(e) => Outcome::Failed(e.to_string()),
                                });
                            }
                        }
                        Ok(answers) => {
                            // Answers cannot be matched to requests: none of them is trusted.
                            let error = LlmError::MalformedResponse(format!(
                                "the backend returned {} answers for {n} requests",
                                answers.len()
                            ));
                            fail_all(&mut outcomes, &error.to_string());
                        }
                    }
                }
            }
        }

        // 5. Assemble.
        let mut out: Vec<Annotation> = sentences
            .into_iter()
            .map(|sentence| Annotation {
                sentence,
                entities: Vec::new(),
                rejected: Vec::new(),
            })
            .collect();
        let mut first_error: Option<String> = None;
        for (s, outcome) in scored.into_iter().zip(outcomes) {
            let Scored {
                doc,
                candidate,
                local_label,
                local_prob,
                uncertainty,
            } = s;
            let mut entity = candidate.entity;
            entity.label = local_label.clone();
            entity.score = Some(local_prob);
            let mut reject = false;
            let provenance = match outcome {
                None => Provenance::Local,
                Some(Outcome::Failed(error)) => {
                    delta.failures += 1;
                    tracing::debug!(entity = %entity.text, %error, "LLM failed; local label kept");
                    first_error.get_or_insert_with(|| error.clone());
                    Provenance::LlmFailed { error }
                }
                Some(Outcome::Answer(a)) => {
                    delta.prompt_tokens += a.usage.prompt_tokens;
                    delta.completion_tokens += a.usage.completion_tokens;
                    delta.cached_prompt_tokens += a.usage.cached_prompt_tokens;
                    delta.cache_hits += u64::from(a.cached);
                    match inner.schema.class(a.class) {
                        None => {
                            delta.failures += 1;
                            let error = format!(
                                "the backend answered class {} outside schema `{}`",
                                a.class, inner.schema.name
                            );
                            tracing::debug!(entity = %entity.text, %error, "LLM failed; local label kept");
                            first_error.get_or_insert_with(|| error.clone());
                            Provenance::LlmFailed { error }
                        }
                        Some(_) if a.class == 0 => {
                            delta.rejected += 1;
                            reject = true;
                            entity.score = a.confidence;
                            Provenance::LlmRejected
                        }
                        Some(_) if a.class == candidate.class => {
                            delta.confirmed += 1;
                            entity.score = a.confidence;
                            Provenance::LlmConfirmed
                        }
                        Some(t) => {
                            delta.relabelled += 1;
                            entity.label = t.name.clone();
                            entity.score = a.confidence;
                            Provenance::LlmRelabelled {
                                from: local_label.clone(),
                            }
                        }
                    }
                }
            };
            let span = WordSpan::new(
                candidate.span.start,
                candidate.span.end,
                entity.label.clone(),
            );
            let linked = LinkedEntity {
                entity,
                span,
                local_label,
                local_prob,
                uncertainty,
                provenance,
            };
            let annotation = &mut out[doc];
            if reject {
                annotation.rejected.push(linked);
            } else {
                annotation.entities.push(linked);
            }
        }
        if let Some(error) = first_error {
            tracing::warn!(
                failures = delta.failures,
                routed = delta.routed,
                first_error = %error,
                "LLM calls failed; those entities keep their local labels"
            );
        }
        inner.stats.record(&delta);
        Ok(out)
    }

    /// The LLM request for one candidate.
    fn request(&self, sentence: &Sentence, c: &Candidate) -> linkner_llm::Result<ClassifyRequest> {
        let mut top: Vec<LocalLabel> = c
            .probs
            .iter()
            .enumerate()
            .map(|(class, &prob)| LocalLabel { class, prob })
            .collect();
        top.sort_by(|a, b| b.prob.total_cmp(&a.prob));
        top.truncate(self.inner.local_top_k);
        Ok(ClassifyRequest::new(
            sentence.text.clone(),
            c.entity.start,
            c.entity.end,
            self.inner.schema.clone(),
        )?
        .with_local_top(top))
    }
}

/// Aborts a spawned task when dropped (the caller's future was cancelled).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends a batch to the backend on its own task, so that a panicking backend fails only these
/// requests (as "LLM failed", local labels kept) instead of the caller's task. Cancelling the
/// caller cancels the requests. Without a tokio runtime the backend runs inline.
async fn classify_isolated(
    llm: &Arc<dyn LlmClassifier>,
    requests: Vec<ClassifyRequest>,
) -> std::result::Result<Vec<linkner_llm::Result<Answer>>, String> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(llm.classify_batch(&requests).await);
    }
    let llm = Arc::clone(llm);
    let mut job = AbortOnDrop(tokio::spawn(
        async move { llm.classify_batch(&requests).await },
    ));
    (&mut job.0)
        .await
        .map_err(|e| format!("the LLM backend panicked or was cancelled: {e}"))
}

/// Runs the tagger on one input and checks the shape of what it returns.
fn tag_input(
    tagger: &dyn LocalTagger,
    input: Input,
    options: &PredictOptions,
) -> Result<Vec<(Sentence, Vec<Candidate>)>> {
    match input {
        Input::Texts(texts) => {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let out = tagger.tag_texts(&refs, options)?;
            if out.len() != texts.len() {
                return Err(LinkError::TaggerOutput(format!(
                    "{} results for {} texts",
                    out.len(),
                    texts.len()
                )));
            }
            if let Some(i) = out.iter().zip(&texts).position(|((s, _), t)| &s.text != t) {
                return Err(LinkError::TaggerOutput(format!(
                    "the tagger changed the text of document {i}; offsets must point into the \
                     caller's original string"
                )));
            }
            Ok(out)
        }
        Input::Sentences(sentences) => {
            let out = tagger.tag_sentences(&sentences, options)?;
            if out.len() != sentences.len() {
                return Err(LinkError::TaggerOutput(format!(
                    "{} results for {} sentences",
                    out.len(),
                    sentences.len()
                )));
            }
            Ok(sentences.into_iter().zip(out).collect())
        }
    }
}

/// Checks that a candidate's class is an entity type of the schema and that its char offsets
/// and word span point into its sentence. `chars` indexes the sentence's text once for all its
/// candidates, so a long text costs linear time, not a walk from its start per candidate.
fn check_candidate(
    schema: &LabelSchema,
    chars: &CharIndex<'_>,
    sentence: &Sentence,
    c: &Candidate,
) -> Result<()> {
    if c.class == 0 || c.class >= schema.num_classes() {
        return Err(LinkError::TaggerOutput(format!(
            "candidate {:?} has class {}, expected 1..{} (schema `{}`)",
            c.entity.text,
            c.class,
            schema.num_classes(),
            schema.name
        )));
    }
    if chars.slice(c.entity.start, c.entity.end) != Some(c.entity.text.as_str())
        || c.entity.start >= c.entity.end
    {
        return Err(LinkError::TaggerOutput(format!(
            "candidate {:?} at chars [{}, {}) does not match the text",
            c.entity.text, c.entity.start, c.entity.end
        )));
    }
    if c.span.start >= c.span.end || c.span.end > sentence.tokens.len() {
        return Err(LinkError::TaggerOutput(format!(
            "candidate {:?} has word span [{}, {}) in a sentence of {} words",
            c.entity.text,
            c.span.start,
            c.span.end,
            sentence.tokens.len()
        )));
    }
    Ok(())
}

/// The annotations of [`Pipeline::annotate_stream`], in input order, one per document.
///
/// Read with [`next`](AnnotationStream::next), or take the tokio receiver with
/// [`into_receiver`](AnnotationStream::into_receiver) (wrap it in
/// `tokio_stream::wrappers::ReceiverStream` for a `futures::Stream`).
#[derive(Debug)]
pub struct AnnotationStream {
    rx: mpsc::Receiver<Result<Annotation>>,
}

impl AnnotationStream {
    /// The next document's annotation; `None` after the last one.
    pub async fn next(&mut self) -> Option<Result<Annotation>> {
        self.rx.recv().await
    }

    /// The underlying channel receiver. The producer stops at its next send once the receiver
    /// is dropped.
    pub fn into_receiver(self) -> mpsc::Receiver<Result<Annotation>> {
        self.rx
    }
}
