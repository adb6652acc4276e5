//! The pipeline's stages, each a small function with table tests; [`crate::Pipeline`] composes
//! them:
//!
//! ```text
//! tag ──► check ──► score ──► route ──► classify ──► merge ──► account
//! (tagger)  (contract) (estimator) (policy)  (LLM)       (merge policy) (annotations + stats)
//! ```
//!
//! `tag` runs on tokio's blocking pool and `classify` on its own task (see `pipeline.rs`); every
//! other stage is a pure function of its inputs.

use std::sync::Arc;

use linkner_core::{Candidate, LabelSchema, Sentence, WordSpan};
use linkner_llm::{Answer, ClassifyRequest, Example, LlmClassifier, LlmError, LocalLabel};
use linkner_uncertainty::UncertaintyEstimator;

use crate::annotation::{Annotation, LinkedEntity, LlmVerdict, Provenance};
use crate::budget::{BudgetReason, Scheduler};
use crate::error::{LinkError, Result};
use crate::merge::MergePolicy;
use crate::policy::{RouteInput, RoutingPolicy};
use crate::stats::StatsSnapshot;

/// One checked candidate of one document, with the local decision and its uncertainty.
#[derive(Debug, Clone)]
pub(crate) struct ScoredCandidate {
    /// Index of the document in the call.
    pub doc: usize,
    /// The tagger's candidate.
    pub candidate: Candidate,
    /// The local label (data name).
    pub local_label: String,
    /// The local probability of that label.
    pub local_prob: f32,
    /// The estimator's score, in `[0, 1]`.
    pub uncertainty: f32,
}

/// What the LLM step gave one routed candidate.
#[derive(Debug)]
pub(crate) enum LlmOutcome {
    /// An answer of the backend.
    Answer(Answer),
    /// The call failed; the local label is kept.
    Failed(LlmError),
    /// The routing budget left it with its local label (never sent, or answered too late).
    Skipped(BudgetReason),
}

// ---------------------------------------------------------------------------------------------
// check

/// Checks the tagger's output for one document: every class an entity type of the schema,
/// char offsets inside the text and matching the entity text, word spans inside the sentence.
/// Linear in the text's length plus the candidates' lengths.
pub(crate) fn check_candidates(
    schema: &LabelSchema,
    sentence: &Sentence,
    candidates: &[Candidate],
) -> Result<()> {
    if candidates.is_empty() {
        return Ok(());
    }
    let index = sentence.char_index();
    for c in candidates {
        if c.class == 0 || c.class >= schema.num_classes() {
            return Err(LinkError::TaggerOutput(format!(
                "candidate {:?} has class {}, expected 1..{} (schema `{}`)",
                c.entity.text,
                c.class,
                schema.num_classes(),
                schema.name
            )));
        }
        if c.entity.start >= c.entity.end
            || index.slice(c.entity.start, c.entity.end) != Some(c.entity.text.as_str())
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
        if !c.probs.is_empty() && c.probs.len() != schema.num_classes() {
            return Err(LinkError::TaggerOutput(format!(
                "candidate {:?} has {} class probabilities, schema `{}` has {} classes",
                c.entity.text,
                c.probs.len(),
                schema.name,
                schema.num_classes()
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// score

/// Scores every candidate with the estimator and attaches the local decision. Returns the
/// sentences (document order) and the candidates (document, then candidate order).
pub(crate) fn score(
    schema: &LabelSchema,
    estimator: &dyn UncertaintyEstimator,
    tagged: Vec<(Sentence, Vec<Candidate>)>,
) -> Result<(Vec<Sentence>, Vec<ScoredCandidate>)> {
    let mut sentences = Vec::with_capacity(tagged.len());
    let mut scored = Vec::new();
    for (doc, (sentence, candidates)) in tagged.into_iter().enumerate() {
        let scores = estimator.score_batch(&candidates)?;
        if scores.len() != candidates.len() {
            return Err(LinkError::EstimatorOutput(format!(
                "estimator `{}` returned {} scores for {} candidates",
                estimator.name(),
                scores.len(),
                candidates.len()
            )));
        }
        for (candidate, uncertainty) in candidates.into_iter().zip(scores) {
            if !(0.0..=1.0).contains(&uncertainty) {
                return Err(LinkError::InvalidScore {
                    estimator: estimator.name().to_string(),
                    score: uncertainty,
                });
            }
            let local_label = schema
                .class(candidate.class)
                .map(|t| t.name.clone())
                .unwrap_or_default();
            let local_prob = candidate
                .probs
                .get(candidate.class)
                .copied()
                .or(candidate.entity.score)
                .unwrap_or(0.0);
            scored.push(ScoredCandidate {
                doc,
                candidate,
                local_label,
                local_prob,
                uncertainty,
            });
        }
        sentences.push(sentence);
    }
    Ok((sentences, scored))
}

// ---------------------------------------------------------------------------------------------
// route

/// The indices of the candidates the policy sends to the LLM, ascending.
pub(crate) fn route(policy: &RoutingPolicy, scored: &[ScoredCandidate]) -> Vec<usize> {
    let inputs: Vec<RouteInput<'_>> = scored
        .iter()
        .map(|s| RouteInput {
            label: &s.local_label,
            uncertainty: s.uncertainty,
        })
        .collect();
    policy
        .route(&inputs)
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.then_some(i))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// classify

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
    .with_local_top(top);
    if let Some(ex) = examples {
        r = r.with_examples(ex);
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
            let chars = request.sentence.chars().count();
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

// ---------------------------------------------------------------------------------------------
// merge

/// The decision for one candidate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Merged {
    /// The final label (the local one when rejected: rejected entities keep it).
    pub label: String,
    /// The confidence of whoever decided (`entity.score`).
    pub score: Option<f32>,
    /// Where the label came from.
    pub provenance: Provenance,
    /// The LLM's answer and the merged distribution, when there was an answer.
    pub verdict: Option<LlmVerdict>,
    /// True when the entity is rejected as a non-entity.
    pub rejected: bool,
}

/// Decides one candidate from its local decision and, when it was routed, the LLM's outcome.
/// An answer outside the schema is a failure (local label kept), never a guess.
pub(crate) fn merge(
    schema: &LabelSchema,
    policy: &MergePolicy,
    scored: &ScoredCandidate,
    outcome: Option<LlmOutcome>,
) -> Merged {
    let local = || Merged {
        label: scored.local_label.clone(),
        score: Some(scored.local_prob),
        provenance: Provenance::Local,
        verdict: None,
        rejected: false,
    };
    let failed = |e: LlmError| Merged {
        provenance: Provenance::LlmFailed {
            kind: e.kind(),
            error: e.to_string(),
        },
        ..local()
    };
    let answer = match outcome {
        None => return local(),
        Some(LlmOutcome::Failed(e)) => return failed(e),
        Some(LlmOutcome::Skipped(reason)) => {
            return Merged {
                provenance: Provenance::Budget { reason },
                ..local()
            };
        }
        Some(LlmOutcome::Answer(a)) => a,
    };
    if schema.class(answer.class).is_none() {
        return failed(LlmError::LabelOutsideSchema {
            answer: format!(
                "class #{} ({}) outside schema `{}`",
                answer.class, answer.label, schema.name
            ),
            expected: schema.type_names().join(", "),
        });
    }
    let local_probs: &[f32] = &scored.candidate.probs;
    let answer_dist = answer
        .distribution
        .as_deref()
        .filter(|d| d.len() == schema.num_classes());
    let decision = policy.decide(local_probs, answer.class, answer_dist);
    let class = if schema.class(decision.class).is_some() {
        decision.class
    } else {
        scored.candidate.class
    };
    let verdict = LlmVerdict {
        class: answer.class,
        label: answer.label.clone(),
        confidence: answer.confidence,
        distribution: answer.distribution.clone(),
        merged: decision.distribution.clone(),
        merge: policy.clone(),
        cached: answer.cached,
    };
    // The confidence of the decision: the merged distribution's, else the LLM's own when the
    // LLM's answer stood, else the local probability.
    let score = decision.confidence.or(if class == answer.class {
        answer.confidence
    } else {
        Some(scored.local_prob)
    });
    let (label, provenance, rejected) = if class == 0 {
        (scored.local_label.clone(), Provenance::LlmRejected, true)
    } else if class == scored.candidate.class {
        (scored.local_label.clone(), Provenance::LlmConfirmed, false)
    } else {
        let name = schema
            .class(class)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        (
            name,
            Provenance::LlmRelabelled {
                from: scored.local_label.clone(),
            },
            false,
        )
    };
    Merged {
        label,
        score,
        provenance,
        verdict: Some(verdict),
        rejected,
    }
}

// ---------------------------------------------------------------------------------------------
// account

/// Builds the annotations (document order; entities and rejected entities in candidate order)
/// and adds the outcome counts and token usage to `delta`.
pub(crate) fn account(
    sentences: Vec<Sentence>,
    decided: Vec<(ScoredCandidate, Merged)>,
    usage: &[Option<(linkner_llm::Usage, bool)>],
    delta: &mut StatsSnapshot,
) -> Vec<Annotation> {
    let mut out: Vec<Annotation> = sentences
        .into_iter()
        .map(|sentence| Annotation {
            sentence,
            entities: Vec::new(),
            rejected: Vec::new(),
            timings: None,
        })
        .collect();
    for (u, cached) in usage.iter().flatten() {
        delta.prompt_tokens += u.prompt_tokens;
        delta.completion_tokens += u.completion_tokens;
        delta.cached_prompt_tokens += u.cached_prompt_tokens;
        delta.cache_hits += u64::from(*cached);
    }
    for (s, m) in decided {
        match &m.provenance {
            Provenance::Local => {}
            Provenance::LlmConfirmed => delta.confirmed += 1,
            Provenance::LlmRelabelled { .. } => delta.relabelled += 1,
            Provenance::LlmRejected => delta.rejected += 1,
            Provenance::LlmFailed { kind, .. } => {
                delta.failures += 1;
                delta.failures_by_kind.add(*kind, 1);
            }
            Provenance::Budget {
                reason: BudgetReason::Capacity,
            } => delta.budget_skipped += 1,
            Provenance::Budget {
                reason: BudgetReason::Deadline,
            } => delta.deadline_missed += 1,
        }
        let ScoredCandidate {
            doc,
            candidate,
            local_label,
            local_prob,
            uncertainty,
        } = s;
        let mut entity = candidate.entity;
        entity.label = m.label.clone();
        entity.score = m.score;
        let linked = LinkedEntity {
            span: WordSpan::new(candidate.span.start, candidate.span.end, m.label),
            entity,
            local_label,
            local_prob,
            uncertainty,
            provenance: m.provenance,
            local_probs: candidate.probs,
            llm: m.verdict,
        };
        if let Some(annotation) = out.get_mut(doc) {
            if m.rejected {
                annotation.rejected.push(linked);
            } else {
                annotation.entities.push(linked);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkner_core::Entity;
    use linkner_llm::Usage;
    use linkner_uncertainty::EstimatorConfig;
    use std::time::Duration;

    fn sentence(words: &[&str]) -> Sentence {
        Sentence::from_words(words)
    }

    /// A candidate over words `start..end` of `s` with the given distribution.
    fn candidate(s: &Sentence, start: usize, end: usize, probs: &[f32]) -> Candidate {
        let schema = LabelSchema::conll03();
        let class = (1..probs.len())
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]).then(b.cmp(&a)))
            .unwrap();
        let span = WordSpan::new(start, end, schema.class(class).unwrap().name.clone());
        let mut entity = Entity::from_word_span(s, &span).unwrap();
        entity.score = Some(probs[class]);
        Candidate {
            span,
            entity,
            class,
            logits: probs.iter().map(|p| p.ln()).collect(),
            probs: probs.to_vec(),
            mc_probs: Vec::new(),
            alpha: None,
        }
    }

    fn scored(s: &Sentence, probs: &[f32], uncertainty: f32) -> ScoredCandidate {
        let c = candidate(s, 0, 1, probs);
        ScoredCandidate {
            doc: 0,
            local_label: c.span.label.clone(),
            local_prob: c.probs[c.class],
            candidate: c,
            uncertainty,
        }
    }

    fn answer(class: usize, dist: Option<Vec<f32>>) -> LlmOutcome {
        let schema = LabelSchema::conll03();
        let mut a = Answer::for_class(&schema, class).unwrap();
        a.confidence = dist.as_ref().map(|d| d[class]);
        a.distribution = dist;
        LlmOutcome::Answer(a)
    }

    #[test]
    fn check_refuses_what_breaks_the_contract() {
        let schema = LabelSchema::conll03();
        let s = sentence(&["Zoë", "visited", "Köln", "🎉"]);
        let good = candidate(&s, 2, 3, &[0.1, 0.1, 0.6, 0.1, 0.1]);
        assert!(check_candidates(&schema, &s, std::slice::from_ref(&good)).is_ok());
        let mut wrong_text = good.clone();
        wrong_text.entity.text = "Koln".into();
        let mut outside = good.clone();
        outside.entity.start = 30;
        outside.entity.end = 31;
        let mut class0 = good.clone();
        class0.class = 0;
        let mut bad_span = good.clone();
        bad_span.span.end = 9;
        let mut short_probs = good.clone();
        short_probs.probs = vec![0.5, 0.5];
        for (name, c) in [
            ("text", wrong_text),
            ("offsets", outside),
            ("class 0", class0),
            ("span", bad_span),
            ("probs", short_probs),
        ] {
            assert!(
                check_candidates(&schema, &s, &[c]).is_err(),
                "{name} must be refused"
            );
        }
    }

    #[test]
    fn score_attaches_local_decision_and_refuses_bad_scores() {
        let schema = LabelSchema::conll03();
        let s = sentence(&["Paris", "is", "big"]);
        let c = candidate(&s, 0, 1, &[0.2, 0.1, 0.6, 0.05, 0.05]);
        let est = EstimatorConfig::Confidence {}.build().unwrap();
        let (sentences, scored) = score(&schema, est.as_ref(), vec![(s.clone(), vec![c])]).unwrap();
        assert_eq!(sentences.len(), 1);
        assert_eq!(scored[0].local_label, "LOC");
        assert!((scored[0].local_prob - 0.6).abs() < 1e-6);
        assert!((scored[0].uncertainty - 0.4).abs() < 1e-5);

        struct Broken;
        impl UncertaintyEstimator for Broken {
            fn name(&self) -> &str {
                "broken"
            }
            fn score(&self, _: &Candidate) -> linkner_uncertainty::Result<f32> {
                Ok(1.5)
            }
        }
        let c = candidate(&s, 0, 1, &[0.2, 0.1, 0.6, 0.05, 0.05]);
        assert!(matches!(
            score(&schema, &Broken, vec![(s, vec![c])]),
            Err(LinkError::InvalidScore { .. })
        ));
    }

    #[test]
    fn route_returns_the_indices_the_policy_picks() {
        let s = sentence(&["A"]);
        let p = [0.2, 0.1, 0.6, 0.05, 0.05];
        let all: Vec<ScoredCandidate> = [0.1, 0.5, 0.3, 0.9]
            .iter()
            .map(|&u| scored(&s, &p, u))
            .collect();
        let table: Vec<(RoutingPolicy, Vec<usize>)> = vec![
            (RoutingPolicy::threshold(0.4), vec![1, 3]),
            (RoutingPolicy::Never, vec![]),
            (RoutingPolicy::Always, vec![0, 1, 2, 3]),
            (RoutingPolicy::budget(0.5), vec![1, 3]),
            (RoutingPolicy::per_type([("LOC", 0.2)], 0.9), vec![1, 2, 3]),
        ];
        for (policy, want) in table {
            assert_eq!(route(&policy, &all), want, "{policy:?}");
        }
    }

    #[test]
    fn request_carries_span_local_top_and_examples() {
        let schema = Arc::new(LabelSchema::conll03());
        let s = sentence(&["Zoë", "visited", "Köln"]);
        let c = candidate(&s, 2, 3, &[0.2, 0.1, 0.5, 0.15, 0.05]);
        let ex = vec![Example::new("Bonn is small .", "Bonn", 2)];
        let r = request(&schema, &s, &c, 2, Some(ex.clone())).unwrap();
        assert_eq!(r.entity, "Köln");
        assert_eq!((r.start, r.end), (12, 16));
        let top: Vec<usize> = r.local_top.iter().map(|l| l.class).collect();
        assert_eq!(top, vec![2, 0]);
        assert_eq!(r.examples, Some(ex));
        let r = request(&schema, &s, &c, 0, None).unwrap();
        assert!(r.local_top.is_empty() && r.examples.is_none());
    }

    #[test]
    fn merge_table() {
        let schema = LabelSchema::conll03();
        let s = sentence(&["Paris"]);
        // Local: LOC 0.45, O 0.30.
        let local = [0.30, 0.05, 0.45, 0.15, 0.05];
        let llm_org = vec![0.10, 0.05, 0.15, 0.60, 0.10];
        let llm_none = vec![0.80, 0.05, 0.05, 0.05, 0.05];
        struct Case {
            policy: MergePolicy,
            outcome: Option<LlmOutcome>,
            label: &'static str,
            provenance: &'static str,
            rejected: bool,
        }
        let cases = vec![
            Case {
                policy: MergePolicy::Replace,
                outcome: None,
                label: "LOC",
                provenance: "local",
                rejected: false,
            },
            Case {
                policy: MergePolicy::Replace,
                outcome: Some(answer(3, Some(llm_org.clone()))),
                label: "ORG",
                provenance: "llm_relabelled",
                rejected: false,
            },
            Case {
                policy: MergePolicy::Replace,
                outcome: Some(answer(2, None)),
                label: "LOC",
                provenance: "llm_confirmed",
                rejected: false,
            },
            Case {
                policy: MergePolicy::Replace,
                outcome: Some(answer(0, None)),
                label: "LOC",
                provenance: "llm_rejected",
                rejected: true,
            },
            // Fuse weight 1: the local decision stands whatever the LLM says.
            Case {
                policy: MergePolicy::Fuse { weight: 1.0 },
                outcome: Some(answer(0, Some(llm_none.clone()))),
                label: "LOC",
                provenance: "llm_confirmed",
                rejected: false,
            },
            // Fuse weight 0: the LLM's argmax.
            Case {
                policy: MergePolicy::Fuse { weight: 0.0 },
                outcome: Some(answer(3, Some(llm_org.clone()))),
                label: "ORG",
                provenance: "llm_relabelled",
                rejected: false,
            },
            Case {
                policy: MergePolicy::Fuse { weight: 0.5 },
                outcome: Some(answer(0, Some(llm_none))),
                label: "LOC",
                provenance: "llm_rejected",
                rejected: true,
            },
            Case {
                policy: MergePolicy::Rerank { k: 1 },
                outcome: Some(answer(3, Some(llm_org))),
                label: "LOC",
                provenance: "llm_confirmed",
                rejected: false,
            },
            Case {
                policy: MergePolicy::Fuse { weight: 0.5 },
                outcome: Some(LlmOutcome::Failed(LlmError::Timeout(Duration::from_secs(
                    1,
                )))),
                label: "LOC",
                provenance: "llm_failed",
                rejected: false,
            },
            // An answer outside the schema is a failure, not a guess.
            Case {
                policy: MergePolicy::Replace,
                outcome: Some(LlmOutcome::Answer(Answer {
                    class: 9,
                    ..Answer::for_class(&schema, 1).unwrap()
                })),
                label: "LOC",
                provenance: "llm_failed",
                rejected: false,
            },
        ];
        for (i, c) in cases.into_iter().enumerate() {
            let sc = scored(&s, &local, 0.9);
            let m = merge(&schema, &c.policy, &sc, c.outcome);
            assert_eq!(m.label, c.label, "case {i}");
            assert_eq!(m.provenance.name(), c.provenance, "case {i}");
            assert_eq!(m.rejected, c.rejected, "case {i}");
            assert_eq!(
                m.verdict.is_some(),
                !matches!(c.provenance, "local" | "llm_failed"),
                "case {i}"
            );
            if let Some(v) = &m.verdict {
                assert_eq!(v.merge, c.policy, "case {i}");
            }
        }
    }

    #[test]
    fn account_builds_annotations_in_order_and_counts_outcomes() {
        let s0 = sentence(&["Paris", "and", "Rome"]);
        let s1 = sentence(&["Bob"]);
        let p = [0.2, 0.1, 0.6, 0.05, 0.05];
        let mk = |doc: usize, s: &Sentence, start: usize| {
            let c = candidate(s, start, start + 1, &p);
            ScoredCandidate {
                doc,
                local_label: c.span.label.clone(),
                local_prob: 0.6,
                candidate: c,
                uncertainty: 0.5,
            }
        };
        let schema = LabelSchema::conll03();
        let decided = vec![
            (
                mk(0, &s0, 0),
                merge(&schema, &MergePolicy::Replace, &mk(0, &s0, 0), None),
            ),
            (
                mk(0, &s0, 2),
                merge(
                    &schema,
                    &MergePolicy::Replace,
                    &mk(0, &s0, 2),
                    Some(answer(0, None)),
                ),
            ),
            (
                mk(1, &s1, 0),
                merge(
                    &schema,
                    &MergePolicy::Replace,
                    &mk(1, &s1, 0),
                    Some(answer(1, None)),
                ),
            ),
        ];
        let usage = vec![
            None,
            Some((
                Usage {
                    prompt_tokens: 10,
                    completion_tokens: 1,
                    cached_prompt_tokens: 4,
                },
                false,
            )),
            Some((Usage::default(), true)),
        ];
        let mut delta = StatsSnapshot::default();
        let out = account(vec![s0, s1], decided, &usage, &mut delta);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].entities.len(), 1);
        assert_eq!(out[0].rejected.len(), 1);
        assert_eq!(out[0].rejected[0].entity.text, "Rome");
        assert_eq!(out[1].entities[0].entity.label, "PER");
        assert_eq!(out[1].entities[0].span.label, "PER");
        assert_eq!(out[1].entities[0].local_label, "LOC");
        assert_eq!(
            (delta.rejected, delta.relabelled, delta.confirmed),
            (1, 1, 0)
        );
        assert_eq!((delta.prompt_tokens, delta.cache_hits), (10, 1));
        assert_eq!(out[0].entities[0].local_probs, p.to_vec());
    }
}
