//! Table tests of the stages.

use std::sync::Arc;

use linkner_core::{Candidate, LabelSchema, Sentence, WordSpan};
use linkner_llm::{Answer, Example, LlmError};
use linkner_uncertainty::UncertaintyEstimator;

use super::check::check_candidates;
use super::classify::request;
use super::merge::merge;
use super::*;
use crate::error::{EstimatorViolation, LinkError, TaggerViolation};
use crate::merge::MergePolicy;
use crate::policy::RoutingPolicy;
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
    let offsets = TaggerViolation::Offsets { start: 12, end: 16 };
    for (name, c, want) in [
        ("text", wrong_text, offsets),
        (
            "offsets",
            outside,
            TaggerViolation::Offsets { start: 30, end: 31 },
        ),
        (
            "class 0",
            class0,
            TaggerViolation::Class {
                class: 0,
                classes: 5,
                schema: "conll03".into(),
            },
        ),
        (
            "span",
            bad_span,
            TaggerViolation::WordSpan {
                start: 2,
                end: 9,
                words: 4,
            },
        ),
        (
            "probs",
            short_probs,
            TaggerViolation::Probabilities {
                got: 2,
                classes: 5,
                schema: "conll03".into(),
            },
        ),
    ] {
        let text = c.entity.text.clone();
        assert_eq!(
            check_candidates(&schema, &s, &[c]),
            Err((text, want)),
            "{name} must be refused"
        );
    }
}

/// What a tagger-contract error says: (document, candidate, violation).
fn contract(e: LinkError) -> (usize, Option<String>, TaggerViolation) {
    match e {
        LinkError::TaggerContract {
            document,
            candidate,
            violation,
        } => (document, candidate, violation),
        other => panic!("{other}"),
    }
}

const COUNT_2_1: TaggerViolation = TaggerViolation::Count {
    expected: 2,
    got: 1,
};

#[test]
fn check_refuses_a_wrong_shape_of_texts_and_names_the_document() {
    let schema = LabelSchema::conll03();
    let s0 = sentence(&["Zoë", "visited", "Köln"]);
    let s1 = sentence(&["Bob", "left"]);
    let texts = vec![s0.text.clone(), s1.text.clone()];
    // One result short.
    let out = vec![(s0.clone(), vec![])];
    let e = check(
        &schema,
        Tagged::Texts {
            texts: texts.clone(),
            out,
        },
    )
    .unwrap_err();
    assert_eq!(contract(e), (1, None, COUNT_2_1));
    // The text of document 1 changed.
    let out = vec![(s0.clone(), vec![]), (sentence(&["Bob", "Left"]), vec![])];
    let e = check(&schema, Tagged::Texts { texts, out }).unwrap_err();
    assert_eq!(contract(e), (1, None, TaggerViolation::TextChanged));
}

#[test]
fn check_refuses_a_wrong_shape_of_documents_and_names_the_document() {
    let schema = LabelSchema::conll03();
    let s0 = sentence(&["Zoë", "visited", "Köln"]);
    let s1 = sentence(&["Bob", "left"]);
    let good = candidate(&s0, 2, 3, &[0.1, 0.1, 0.6, 0.1, 0.1]);
    let mut bad = candidate(&s1, 0, 1, &[0.1, 0.1, 0.6, 0.1, 0.1]);
    bad.class = 9;
    let doc = |sentences: Vec<Sentence>| linkner_core::Document {
        id: None,
        sentences,
    };
    let documents = vec![doc(vec![s0.clone()]), doc(vec![s0.clone(), s1.clone()])];
    let run = |out| {
        check(
            &schema,
            Tagged::Documents {
                documents: documents.clone(),
                out,
            },
        )
    };
    // A document with one sentence too few, then a bad candidate in the second document.
    let e = run(vec![vec![vec![]], vec![vec![]]]).unwrap_err();
    assert_eq!(contract(e), (1, None, COUNT_2_1));
    let e = run(vec![vec![vec![good.clone()]], vec![vec![], vec![bad]]]).unwrap_err();
    let (document, candidate, violation) = contract(e);
    assert_eq!((document, candidate.as_deref()), (1, Some("Bob")));
    assert!(matches!(violation, TaggerViolation::Class { class: 9, .. }));
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
        fn name(&self) -> String {
            "broken".into()
        }
        fn score(&self, _: &Candidate) -> linkner_uncertainty::Result<f32> {
            Ok(1.5)
        }
    }
    let c = candidate(&s, 0, 1, &[0.2, 0.1, 0.6, 0.05, 0.05]);
    assert!(matches!(
        score(&schema, &Broken, vec![(s, vec![c])]),
        Err(LinkError::EstimatorContract {
            violation: EstimatorViolation::Score { score: 1.5 },
            ..
        })
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
    assert_eq!(r.entity(), "Köln");
    assert_eq!((r.start(), r.end()), (12, 16));
    let top: Vec<usize> = r.local_top().iter().map(|l| l.class).collect();
    assert_eq!(top, vec![2, 0]);
    assert_eq!(r.examples(), Some(&ex[..]));
    let r = request(&schema, &s, &c, 0, None).unwrap();
    assert!(r.local_top().is_empty() && r.examples().is_none());
}

/// One row of a merge table: the policy, the LLM's outcome (`None`: not routed), and the
/// label, provenance and rejection the merge must give.
struct MergeCase {
    policy: MergePolicy,
    outcome: Option<LlmOutcome>,
    label: &'static str,
    provenance: &'static str,
    rejected: bool,
}

/// The LLM's distribution for `ORG`.
fn llm_org() -> Vec<f32> {
    vec![0.10, 0.05, 0.15, 0.60, 0.10]
}

/// The LLM's distribution for the non-entity class.
fn llm_none() -> Vec<f32> {
    vec![0.80, 0.05, 0.05, 0.05, 0.05]
}

/// Merges each case into a candidate `Paris` whose local decision is LOC 0.45 (O 0.30), and
/// checks label, provenance, rejection, and the verdict (present when the LLM decided,
/// carrying the policy).
fn assert_merges(schema: &LabelSchema, cases: Vec<MergeCase>) {
    let s = sentence(&["Paris"]);
    // Local: LOC 0.45, O 0.30.
    let local = [0.30, 0.05, 0.45, 0.15, 0.05];
    for (i, c) in cases.into_iter().enumerate() {
        let sc = scored(&s, &local, 0.9);
        let m = merge(schema, &c.policy, &sc, c.outcome);
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
fn merge_table_replace() {
    let schema = LabelSchema::conll03();
    let cases = vec![
        MergeCase {
            policy: MergePolicy::Replace,
            outcome: None,
            label: "LOC",
            provenance: "local",
            rejected: false,
        },
        MergeCase {
            policy: MergePolicy::Replace,
            outcome: Some(answer(3, Some(llm_org()))),
            label: "ORG",
            provenance: "llm_relabelled",
            rejected: false,
        },
        MergeCase {
            policy: MergePolicy::Replace,
            outcome: Some(answer(2, None)),
            label: "LOC",
            provenance: "llm_confirmed",
            rejected: false,
        },
        MergeCase {
            policy: MergePolicy::Replace,
            outcome: Some(answer(0, None)),
            label: "LOC",
            provenance: "llm_rejected",
            rejected: true,
        },
        // An answer outside the schema is a failure, not a guess.
        MergeCase {
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
    assert_merges(&schema, cases);
}

#[test]
fn merge_table_fuse_rerank_and_failure() {
    let schema = LabelSchema::conll03();
    let cases = vec![
        // Fuse weight 1: the local decision stands whatever the LLM says.
        MergeCase {
            policy: MergePolicy::fuse(1.0),
            outcome: Some(answer(0, Some(llm_none()))),
            label: "LOC",
            provenance: "llm_confirmed",
            rejected: false,
        },
        // Fuse weight 0: the LLM's argmax.
        MergeCase {
            policy: MergePolicy::fuse(0.0),
            outcome: Some(answer(3, Some(llm_org()))),
            label: "ORG",
            provenance: "llm_relabelled",
            rejected: false,
        },
        MergeCase {
            policy: MergePolicy::fuse(0.5),
            outcome: Some(answer(0, Some(llm_none()))),
            label: "LOC",
            provenance: "llm_rejected",
            rejected: true,
        },
        MergeCase {
            policy: MergePolicy::Rerank { k: 1 },
            outcome: Some(answer(3, Some(llm_org()))),
            label: "LOC",
            provenance: "llm_confirmed",
            rejected: false,
        },
        // Per type: the entity's local label (LOC) picks its merge — the tagger alone for
        // LOC here, whatever the default says …
        MergeCase {
            policy: MergePolicy::PerType {
                merges: [("LOC".to_string(), MergePolicy::fuse(1.0))].into(),
                default: Box::new(MergePolicy::fuse(0.0)),
            },
            outcome: Some(answer(3, Some(llm_org()))),
            label: "LOC",
            provenance: "llm_confirmed",
            rejected: false,
        },
        // … and the default when only another type is named.
        MergeCase {
            policy: MergePolicy::PerType {
                merges: [("PER".to_string(), MergePolicy::fuse(1.0))].into(),
                default: Box::new(MergePolicy::fuse(0.0)),
            },
            outcome: Some(answer(3, Some(llm_org()))),
            label: "ORG",
            provenance: "llm_relabelled",
            rejected: false,
        },
        MergeCase {
            policy: MergePolicy::fuse(0.5),
            outcome: Some(LlmOutcome::Failed(LlmError::Timeout(Duration::from_secs(
                1,
            )))),
            label: "LOC",
            provenance: "llm_failed",
            rejected: false,
        },
    ];
    assert_merges(&schema, cases);
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
    let decide = |s: ScoredCandidate, outcome, usage| {
        let merged = merge(&schema, &MergePolicy::Replace, &s, outcome);
        Decided {
            scored: s,
            merged,
            usage,
        }
    };
    let decided = vec![
        decide(mk(0, &s0, 0), None, None),
        decide(
            mk(0, &s0, 2),
            Some(answer(0, None)),
            Some((
                Usage {
                    prompt_tokens: 10,
                    completion_tokens: 1,
                    cached_prompt_tokens: 4,
                },
                false,
            )),
        ),
        decide(
            mk(1, &s1, 0),
            Some(answer(1, None)),
            Some((Usage::default(), true)),
        ),
    ];
    let (out, delta) = account(vec![s0, s1], decided);
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

/// Answers every request with class 1 and counts the requests it saw.
struct CountingLlm(std::sync::atomic::AtomicUsize);

#[linkner_llm::async_trait]
impl linkner_llm::LlmClassifier for CountingLlm {
    fn name(&self) -> String {
        "counting".into()
    }

    async fn classify(
        &self,
        request: &linkner_llm::ClassifyRequest,
    ) -> linkner_llm::Result<Answer> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Answer::for_class(request.schema(), 1)
    }
}

#[tokio::test]
async fn classify_fails_every_routed_candidate_with_the_kind_of_what_stopped_it() {
    use linkner_llm::{FailureKind, LlmClassifier};
    let s = sentence(&["Paris", "is", "big"]);
    let scored: Vec<ScoredCandidate> = (0..3)
        .map(|_| scored(&s, &[0.2, 0.1, 0.6, 0.05, 0.05], 0.5))
        .collect();
    let schema = Arc::new(LabelSchema::conll03());
    let counting = Arc::new(CountingLlm(Default::default()));
    let llm: Arc<dyn LlmClassifier> = counting.clone();
    // What each candidate got: "-" when not routed, "answer", or the failure's kind.
    let kinds = |outcomes: &[Option<LlmOutcome>]| -> Vec<String> {
        outcomes
            .iter()
            .map(|o| match o {
                None => "-".to_string(),
                Some(LlmOutcome::Answer(_)) => "answer".to_string(),
                Some(LlmOutcome::Failed(e)) => e.kind().name().to_string(),
                Some(LlmOutcome::Skipped(r)) => format!("skipped {r:?}"),
            })
            .collect()
    };
    let seen = || counting.0.load(std::sync::atomic::Ordering::SeqCst);
    let run = |llm: Option<Arc<dyn LlmClassifier>>, examples| {
        let (schema, scored, s) = (schema.clone(), scored.clone(), s.clone());
        async move {
            let side = LlmSide {
                schema: &schema,
                llm: llm.as_ref(),
                scheduler: None,
                local_top_k: 2,
            };
            let work = Routed {
                sentences: std::slice::from_ref(&s),
                scored: &scored,
                routed: &[0, 2],
                examples,
            };
            classify_routed(&side, work, None).await
        }
    };
    // The retriever failed: its own kind, no request sent.
    let (outcomes, counts) = run(Some(llm.clone()), Err("index gone".into())).await;
    assert_eq!(kinds(&outcomes), ["retrieval", "-", "retrieval"]);
    match &outcomes[0] {
        Some(LlmOutcome::Failed(e)) => {
            assert_eq!(e.to_string(), "example retrieval failed: index gone");
            assert_eq!(e.kind(), FailureKind::Retrieval);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((counts.llm_requests, seen()), (0, 0));
    // No backend: config.
    let (outcomes, counts) = run(None, Ok(Vec::new())).await;
    assert_eq!(kinds(&outcomes), ["config", "-", "config"]);
    assert_eq!((counts.llm_requests, seen()), (0, 0));
    // A backend and examples: both routed candidates asked, counted as requests.
    let (outcomes, counts) = run(Some(llm), Ok(Vec::new())).await;
    assert_eq!(kinds(&outcomes), ["answer", "-", "answer"]);
    assert_eq!((counts.llm_requests, seen()), (2, 2));
}
