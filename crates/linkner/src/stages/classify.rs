//! classify: the routed candidates' requests, sent to the LLM (directly, or through the
//! routing budget's scheduler), one outcome per routed candidate. The only stage with I/O.

use std::sync::Arc;
use std::time::Instant;

use linkner_core::{Candidate, LabelSchema, Sentence};
use linkner_llm::{ClassifyRequest, Example, LlmClassifier, LlmError, LocalLabel};

use super::{LlmOutcome, ScoredCandidate};
use crate::budget::{BudgetReason, Scheduler};
use crate::stats::StatsSnapshot;

/// What the classify stage uses of the pipeline.
pub(crate) struct LlmSide<'a> {
    /// The schema of the requests.
    pub schema: &'a Arc<LabelSchema>,
    /// The backend; without one every routed candidate fails (`config`).
    pub llm: Option<&'a Arc<dyn LlmClassifier>>,
    /// The routing budget's scheduler, when there is a budget.
    pub scheduler: Option<&'a Arc<Scheduler>>,
    /// Local classes shown to the LLM per request.
    pub local_top_k: usize,
}

/// The routed candidates of one call with what their requests are built from.
pub(crate) struct Routed<'a> {
    /// The call's sentences (document order).
    pub sentences: &'a [Sentence],
    /// Every candidate of the call.
    pub scored: &'a [ScoredCandidate],
    /// Indices into `scored` of the routed ones, ascending.
    pub routed: &'a [usize],
    /// One example list per routed candidate, or why retrieval failed.
    pub examples: std::result::Result<Vec<Vec<Example>>, String>,
}

/// The classify stage: one outcome per candidate of the call (`None` when not routed), and
/// its counts (LLM requests sent, LLM time). A failure before any request — no backend, or
/// the examples could not be retrieved (`retrieval`) — fails every routed candidate with its
/// own kind; a request that cannot be built fails only its candidate.
pub(crate) async fn classify_routed(
    side: &LlmSide<'_>,
    work: Routed<'_>,
    deadline: Option<tokio::time::Instant>,
) -> (Vec<Option<LlmOutcome>>, StatsSnapshot) {
    let mut outcomes: Vec<Option<LlmOutcome>> = (0..work.scored.len()).map(|_| None).collect();
    let mut counts = StatsSnapshot::default();
    if work.routed.is_empty() {
        return (outcomes, counts);
    }
    let t0 = Instant::now();
    let fail_all = |outcomes: &mut Vec<Option<LlmOutcome>>, e: &dyn Fn() -> LlmError| {
        for &i in work.routed {
            outcomes[i] = Some(LlmOutcome::Failed(e()));
        }
    };
    match (side.llm, work.examples) {
        (None, _) => fail_all(&mut outcomes, &|| {
            LlmError::Config("no LLM classifier configured".into())
        }),
        // Without its examples no request is sent: every routed entity keeps its local label.
        (Some(_), Err(e)) => fail_all(&mut outcomes, &|| LlmError::Retrieval(e.clone())),
        (Some(llm), Ok(mut examples)) => {
            let mut jobs = Vec::with_capacity(work.routed.len());
            for (j, &i) in work.routed.iter().enumerate() {
                let s = &work.scored[i];
                let ex = examples.get_mut(j).map(std::mem::take);
                let sentence = &work.sentences[s.doc];
                match request(side.schema, sentence, &s.candidate, side.local_top_k, ex) {
                    Ok(r) => jobs.push((i, s.uncertainty, r)),
                    Err(e) => outcomes[i] = Some(LlmOutcome::Failed(e)),
                }
            }
            counts.llm_requests = jobs.len() as u64;
            let slots: Vec<usize> = jobs.iter().map(|(i, _, _)| *i).collect();
            let results = match side.scheduler {
                None => classify(llm, jobs.into_iter().map(|(_, _, r)| r).collect()).await,
                Some(scheduler) => classify_budgeted(llm, scheduler, jobs, deadline).await,
            };
            for (i, o) in slots.into_iter().zip(results) {
                outcomes[i] = Some(o);
            }
        }
    }
    counts.llm_time = t0.elapsed();
    (outcomes, counts)
}

/// The LLM request for one candidate: its sentence, char span, the schema, the local model's
/// `local_top_k` best classes with their probabilities, and the per-request examples when a
/// retriever gave some.
pub(crate) fn request(
    schema: &Arc<LabelSchema>,
    sentence: &Sentence,
    candidate: &Candidate,
    local_top_k: usize,
    examples: Option<Vec<Example>>,
) -> linkner_llm::Result<ClassifyRequest> {
    let mut top: Vec<LocalLabel> = candidate
        .probs
        .iter()
        .enumerate()
        .map(|(class, &prob)| LocalLabel { class, prob })
        .collect();
    top.sort_by(|a, b| b.prob.total_cmp(&a.prob).then(a.class.cmp(&b.class)));
    top.truncate(local_top_k);
    let mut r = ClassifyRequest::new(
        sentence.text.clone(),
        candidate.entity.start,
        candidate.entity.end,
        schema.clone(),
    )?
    .with_local_top(top)?;
    if let Some(ex) = examples {
        r = r.with_examples(ex)?;
    }
    Ok(r)
}

/// Sends a batch to the backend on its own task, so that a panicking backend fails only these
/// requests (local labels kept) instead of the caller's task. Cancelling the caller cancels the
/// requests. Without a tokio runtime the backend runs inline. The i-th outcome answers the i-th
/// request; a backend that returns a wrong number of answers fails them all (none can be
/// matched to its request).
pub(crate) async fn classify(
    llm: &Arc<dyn LlmClassifier>,
    requests: Vec<ClassifyRequest>,
) -> Vec<LlmOutcome> {
    let n = requests.len();
    if n == 0 {
        return Vec::new();
    }
    let answers = if tokio::runtime::Handle::try_current().is_err() {
        Ok(llm.classify_batch(&requests).await)
    } else {
        let llm = Arc::clone(llm);
        let mut job = AbortOnDrop(tokio::spawn(
            async move { llm.classify_batch(&requests).await },
        ));
        (&mut job.0).await.map_err(|e| {
            LlmError::Transport(format!("the LLM backend panicked or was cancelled: {e}"))
        })
    };
    match answers {
        Ok(answers) if answers.len() == n => answers
            .into_iter()
            .map(|a| match a {
                Ok(a) => LlmOutcome::Answer(a),
                Err(e) => LlmOutcome::Failed(e),
            })
            .collect(),
        Ok(answers) => {
            let message = format!(
                "the backend returned {} answers for {n} requests",
                answers.len()
            );
            (0..n)
                .map(|_| LlmOutcome::Failed(LlmError::MalformedResponse(message.clone())))
                .collect()
        }
        Err(e) => {
            let message = e.to_string();
            (0..n)
                .map(|_| LlmOutcome::Failed(LlmError::Transport(message.clone())))
                .collect()
        }
    }
}

/// Sends each request through the budget's [`Scheduler`] (most uncertain first, `priority`
/// being the uncertainty) and waits for the answers until `deadline` at the latest. A request
/// still queued at the deadline is [`BudgetReason::Capacity`]; an answer still on its way is
/// [`BudgetReason::Deadline`] (the call goes on in the background, holding its slot, so that
/// the number of calls in flight stays true to the server's load). Needs a tokio runtime.
pub(crate) async fn classify_budgeted(
    llm: &Arc<dyn LlmClassifier>,
    scheduler: &Arc<Scheduler>,
    jobs: Vec<(usize, f32, ClassifyRequest)>,
    deadline: Option<tokio::time::Instant>,
) -> Vec<LlmOutcome> {
    // Queue the most uncertain first, so that even the free slots go to them.
    let mut jobs: Vec<(usize, (usize, f32, ClassifyRequest))> =
        jobs.into_iter().enumerate().collect();
    jobs.sort_by(|a, b| b.1.1.total_cmp(&a.1.1).then(a.0.cmp(&b.0)));
    let order: Vec<usize> = jobs.iter().map(|(k, _)| *k).collect();
    let calls = jobs.into_iter().map(|(_, (_, priority, request))| {
        let llm = Arc::clone(llm);
        let scheduler = Arc::clone(scheduler);
        async move {
            let chars = request.sentence().chars().count();
            let slot = match scheduler.acquire(priority, deadline, chars).await {
                Ok(slot) => slot,
                Err(reason) => return LlmOutcome::Skipped(reason),
            };
            let call = tokio::spawn(async move {
                let r = llm.classify(&request).await;
                slot.finished(r.as_ref().ok().map(|a| a.usage.prompt_tokens));
                r
            });
            let joined = match deadline {
                None => call.await,
                Some(d) => match tokio::time::timeout_at(d, call).await {
                    Ok(joined) => joined,
                    Err(_) => return LlmOutcome::Skipped(BudgetReason::Deadline),
                },
            };
            match joined {
                Ok(Ok(a)) => LlmOutcome::Answer(a),
                Ok(Err(e)) => LlmOutcome::Failed(e),
                Err(e) => LlmOutcome::Failed(LlmError::Transport(format!(
                    "the LLM backend panicked or was cancelled: {e}"
                ))),
            }
        }
    });
    let outcomes = futures_util::future::join_all(calls).await;
    let mut back: Vec<Option<LlmOutcome>> = (0..outcomes.len()).map(|_| None).collect();
    for (k, o) in order.into_iter().zip(outcomes) {
        back[k] = Some(o);
    }
    back.into_iter()
        .map(|o| o.unwrap_or(LlmOutcome::Skipped(BudgetReason::Capacity)))
        .collect()
}

/// Aborts a spawned task when dropped (the caller's future was cancelled).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
