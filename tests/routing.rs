//! Routing policies through the whole pipeline: threshold, budget, per-type, never/always, and
//! the estimator's requirements reaching the tagger.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{Reply, ScriptedLlm, ScriptedTagger, entry};
use linkner::uncertainty::builtins::{Confidence, McDropout, McMeasure};
use linkner::{LinkError, Pipeline, Provenance, RoutingPolicy};

fn pipeline(tagger: ScriptedTagger, policy: RoutingPolicy) -> Pipeline {
    Pipeline::builder()
        .tagger(Arc::new(tagger))
        .estimator(Arc::new(Confidence::new()))
        .llm(Arc::new(ScriptedLlm::new(&[])))
        .policy(policy)
        .build()
        .unwrap()
}

/// (text, provenance name, uncertainty) of every output entity.
fn routed_texts(doc: &linkner::Annotation) -> Vec<String> {
    doc.entities
        .iter()
        .filter(|e| e.provenance.is_routed())
        .map(|e| e.entity.text.clone())
        .collect()
}

#[tokio::test]
async fn threshold_routes_strictly_above_the_threshold() {
    let tagger = ScriptedTagger::new(vec![
        entry("Alice", "PER", 0.05),
        entry("Paris", "LOC", 0.35),
        entry("Acme", "ORG", 0.45),
        entry("Euro", "MISC", 0.7),
    ]);
    let p = pipeline(tagger, RoutingPolicy::default());
    assert_eq!(p.policy(), &RoutingPolicy::threshold(0.4));
    let doc = p
        .annotate("Alice met Acme people in Paris with Euro notes")
        .await
        .unwrap();
    assert_eq!(doc.entities.len(), 4);
    assert_eq!(routed_texts(&doc), ["Acme", "Euro"]);
    for e in &doc.entities {
        let expect_routed = e.uncertainty > 0.4;
        assert_eq!(e.provenance.is_routed(), expect_routed, "{}", e.entity.text);
        if !expect_routed {
            assert_eq!(e.provenance, Provenance::Local);
        }
    }
    let s = p.stats();
    assert_eq!((s.documents, s.entities, s.routed), (1, 4, 2));

    // Raising the threshold routes less; lowering it routes more.
    let tagger = ScriptedTagger::new(vec![
        entry("Acme", "ORG", 0.45),
        entry("Paris", "LOC", 0.35),
    ]);
    let p = pipeline(tagger, RoutingPolicy::threshold(0.3));
    let doc = p.annotate("Acme in Paris").await.unwrap();
    assert_eq!(routed_texts(&doc), ["Acme", "Paris"]);
}

#[tokio::test]
async fn budget_routes_the_most_uncertain_fraction_of_one_call() {
    // 10 candidates over 3 documents; a 30 % budget routes the 3 most uncertain of the call.
    let tagger = ScriptedTagger::new(vec![
        entry("A1", "PER", 0.10),
        entry("A2", "PER", 0.62),
        entry("A3", "PER", 0.20),
        entry("B1", "LOC", 0.55),
        entry("B2", "LOC", 0.05),
        entry("B3", "LOC", 0.30),
        entry("C1", "ORG", 0.70),
        entry("C2", "ORG", 0.15),
        entry("C3", "ORG", 0.25),
        entry("C4", "ORG", 0.35),
    ]);
    let p = pipeline(tagger, RoutingPolicy::budget(0.3));
    let docs = p
        .annotate_batch(&["A1 A2 A3", "B1 B2 B3", "C1 C2 C3 C4"])
        .await
        .unwrap();
    let routed: Vec<String> = docs.iter().flat_map(routed_texts).collect();
    assert_eq!(routed, ["A2", "B1", "C1"]);
    assert_eq!(p.stats().routed, 3);

    // The same documents one call at a time: the budget applies per call (floor(0.3 × 3) = 0).
    p.reset_stats();
    for d in ["A1 A2 A3", "B1 B2 B3"] {
        let doc = p.annotate(d).await.unwrap();
        assert!(routed_texts(&doc).is_empty());
    }
    let doc = p.annotate("C1 C2 C3 C4").await.unwrap();
    assert_eq!(routed_texts(&doc), ["C1"]);
    assert_eq!(p.stats().routed, 1);

    // A floor on the uncertainty makes the budget a ceiling, not a quota.
    let tagger = ScriptedTagger::new(vec![entry("A1", "PER", 0.10), entry("A2", "PER", 0.62)]);
    let p = pipeline(
        tagger,
        RoutingPolicy::Budget {
            fraction: 1.0,
            min_uncertainty: 0.5,
        },
    );
    let doc = p.annotate("A1 A2").await.unwrap();
    assert_eq!(routed_texts(&doc), ["A2"]);
}

#[tokio::test]
async fn per_type_thresholds_apply_to_the_local_label() {
    let tagger = ScriptedTagger::new(vec![
        entry("Alice", "PER", 0.5),
        entry("Bob", "PER", 0.7),
        entry("Euro", "MISC", 0.15),
        entry("Rome", "LOC", 0.45),
        entry("Acme", "ORG", 0.35),
    ]);
    let policy = RoutingPolicy::per_type([("PER", 0.6), ("MISC", 0.1)], 0.4);
    let p = pipeline(tagger, policy);
    let doc = p
        .annotate("Alice and Bob paid Euro in Rome to Acme")
        .await
        .unwrap();
    assert_eq!(routed_texts(&doc), ["Bob", "Euro", "Rome"]);
}

#[tokio::test]
async fn never_and_always() {
    let entries = vec![entry("Alice", "PER", 0.01), entry("Rome", "LOC", 0.75)];
    let p = pipeline(ScriptedTagger::new(entries.clone()), RoutingPolicy::Always);
    let doc = p.annotate("Alice in Rome").await.unwrap();
    assert_eq!(routed_texts(&doc), ["Alice", "Rome"]);

    // `never` needs no LLM at all.
    let p = Pipeline::builder()
        .tagger(Arc::new(ScriptedTagger::new(entries)))
        .estimator(Arc::new(Confidence::new()))
        .policy(RoutingPolicy::Never)
        .build()
        .unwrap();
    let doc = p.annotate("Alice in Rome").await.unwrap();
    assert!(routed_texts(&doc).is_empty());
    assert_eq!(doc.entities.len(), 2);
    assert_eq!(p.llm_name(), None);
}

#[test]
fn invalid_pipelines_are_refused_with_typed_errors() {
    let build = |policy: RoutingPolicy, llm: bool| {
        let mut b = Pipeline::builder()
            .tagger(Arc::new(ScriptedTagger::new(vec![])))
            .estimator(Arc::new(Confidence::new()))
            .policy(policy);
        if llm {
            b = b.llm(Arc::new(ScriptedLlm::new(&[("x", Reply::Fail)])));
        }
        b.build()
    };
    assert!(matches!(
        build(RoutingPolicy::default(), false),
        Err(LinkError::Build(_))
    ));
    assert!(matches!(
        build(RoutingPolicy::per_type([("PERSON", 0.2)], 0.4), true),
        Err(LinkError::Policy(_))
    ));
    assert!(matches!(
        build(RoutingPolicy::budget(2.0), true),
        Err(LinkError::Policy(_))
    ));
    assert!(matches!(
        build(RoutingPolicy::threshold(f32::NAN), true),
        Err(LinkError::Policy(_))
    ));
    assert!(build(RoutingPolicy::budget(0.5), true).is_ok());
    let no_tagger = Pipeline::builder()
        .estimator(Arc::new(Confidence::new()))
        .policy(RoutingPolicy::Never)
        .build();
    assert!(matches!(no_tagger, Err(LinkError::Build(_))));
    let no_estimator = Pipeline::builder()
        .tagger(Arc::new(ScriptedTagger::new(vec![])))
        .policy(RoutingPolicy::Never)
        .build();
    assert!(matches!(no_estimator, Err(LinkError::Build(_))));
}

#[tokio::test]
async fn the_estimator_requirements_decide_the_monte_carlo_passes() {
    let tagger = Arc::new(ScriptedTagger::new(vec![entry("Rome", "LOC", 0.7)]));
    let p = Pipeline::builder()
        .tagger(tagger.clone())
        .estimator(Arc::new(
            McDropout::new(7, McMeasure::PredictiveEntropy).unwrap(),
        ))
        .llm(Arc::new(ScriptedLlm::new(&[])))
        .build()
        .unwrap();
    assert_eq!(p.predict_options().mc_samples, 7);
    assert_eq!(p.requirements().mc_samples, 7);
    let doc = p.annotate("Rome").await.unwrap();
    assert_eq!(doc.entities.len(), 1);
    let seen = tagger.seen_options.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].mc_samples, 7);

    // Without Monte-Carlo needs, the tagger runs one deterministic pass.
    let tagger = Arc::new(ScriptedTagger::new(vec![entry("Rome", "LOC", 0.7)]));
    let p = Pipeline::builder()
        .tagger(tagger.clone())
        .estimator(Arc::new(Confidence::new()))
        .policy(RoutingPolicy::Never)
        .build()
        .unwrap();
    p.annotate("Rome").await.unwrap();
    assert_eq!(tagger.seen_options.lock().unwrap()[0].mc_samples, 0);
}

#[tokio::test]
async fn a_failing_tagger_or_estimator_is_a_typed_error() {
    let mut tagger = ScriptedTagger::new(vec![entry("Rome", "LOC", 0.7)]);
    tagger.fail = true;
    let p = pipeline(tagger, RoutingPolicy::default());
    assert!(matches!(
        p.annotate("Rome").await,
        Err(LinkError::Tagger(_))
    ));

    // An evidential estimator on a tagger without Dirichlet parameters.
    let p = Pipeline::builder()
        .tagger(Arc::new(ScriptedTagger::new(vec![entry(
            "Rome", "LOC", 0.7,
        )])))
        .estimator(Arc::new(linkner::uncertainty::builtins::Evidential::new(
            Default::default(),
        )))
        .policy(RoutingPolicy::Never)
        .build()
        .unwrap();
    assert!(matches!(
        p.annotate("Rome").await,
        Err(LinkError::Estimator(_))
    ));
}

#[tokio::test]
async fn empty_and_wordless_documents_are_answered_too() {
    let p = pipeline(
        ScriptedTagger::new(vec![entry("Rome", "LOC", 0.7)]),
        RoutingPolicy::default(),
    );
    let docs = p
        .annotate_batch(&["", "   ", "Rome", "\u{200B}"])
        .await
        .unwrap();
    assert_eq!(docs.len(), 4);
    assert_eq!(docs[0].text(), "");
    assert_eq!(docs[1].text(), "   ");
    assert!(docs[0].entities.is_empty() && docs[1].entities.is_empty());
    assert_eq!(docs[2].entities.len(), 1);
    assert!(docs[3].entities.is_empty());
    assert!(p.annotate_batch::<&str>(&[]).await.unwrap().is_empty());
    assert_eq!(p.stats().documents, 4);
}

mod props {
    use linkner::{RouteInput, RoutingPolicy};
    use proptest::prelude::*;

    fn inputs(scores: &[f32]) -> Vec<RouteInput<'static>> {
        scores
            .iter()
            .enumerate()
            .map(|(i, &u)| RouteInput {
                label: if i % 2 == 0 { "PER" } else { "LOC" },
                uncertainty: u,
            })
            .collect()
    }

    proptest! {
        #[test]
        fn budget_routes_at_most_its_fraction_and_the_most_uncertain(
            scores in prop::collection::vec(0.0f32..=1.0, 0..60),
            fraction in 0.0f32..=1.0,
            min in 0.0f32..=1.0,
        ) {
            let policy = RoutingPolicy::Budget { fraction, min_uncertainty: min };
            let routed = policy.route(&inputs(&scores));
            prop_assert_eq!(routed.len(), scores.len());
            let n = routed.iter().filter(|&&r| r).count();
            let quota = (f64::from(fraction) * scores.len() as f64 + 1e-9).floor() as usize;
            prop_assert!(n <= quota);
            let eligible = scores.iter().filter(|&&u| u >= min).count();
            prop_assert_eq!(n, quota.min(eligible));
            // Nothing unrouted and eligible is more uncertain than something routed.
            let lowest_routed = scores.iter().zip(&routed).filter(|(_, r)| **r)
                .map(|(u, _)| *u).fold(f32::INFINITY, f32::min);
            for (u, r) in scores.iter().zip(&routed) {
                if !r && *u >= min {
                    prop_assert!(*u <= lowest_routed);
                }
                if *r {
                    prop_assert!(*u >= min);
                }
            }
        }

        #[test]
        fn threshold_and_per_type_route_exactly_above_their_thresholds(
            scores in prop::collection::vec(0.0f32..=1.0, 0..60),
            t in 0.0f32..=1.0,
            t_per in 0.0f32..=1.0,
        ) {
            let input = inputs(&scores);
            let routed = RoutingPolicy::threshold(t).route(&input);
            for (u, r) in scores.iter().zip(&routed) {
                prop_assert_eq!(*r, *u > t);
            }
            let routed = RoutingPolicy::per_type([("PER", t_per)], t).route(&input);
            for (i, (u, r)) in scores.iter().zip(&routed).enumerate() {
                let limit = if i % 2 == 0 { t_per } else { t };
                prop_assert_eq!(*r, *u > limit);
            }
        }
    }
}
