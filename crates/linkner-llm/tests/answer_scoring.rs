//! Answer scoring through the OpenAI backend against a fake server that returns known first-token
//! log-probabilities: single-token answer keys score every class exactly (even for labels whose
//! names share a first token), names split a shared first token, and contextual calibration
//! divides by the content-free distribution.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::sync::Arc;

use linkner_core::LabelSchema;
use linkner_llm::{AnswerKeys, ClassifyRequest, LlmClassifier, OpenAiBuilder, PromptTemplate};

#[path = "support/fake_server.rs"]
mod fake_server;

use fake_server::{FakeServer, Fault, Script, logprob_chat};

fn wnut_request() -> ClassifyRequest {
    ClassifyRequest::find(
        "new album by the black keys out friday",
        "black keys",
        Arc::new(LabelSchema::wnut17()),
    )
    .unwrap()
}

#[tokio::test]
async fn letter_keys_score_multi_token_labels_exactly() {
    // WNUT-17's keys (types in schema order, non-entity last): A person, B location, C group,
    // D corporation, E product, F creative work, G not an entity. "corporation" and "creative
    // work" share their first token `c` as names; as keys they are `D` and `F`.
    let schema = LabelSchema::wnut17();
    let keyed = PromptTemplate::full()
        .with_answer_keys(AnswerKeys::Letters)
        .vocabulary(&schema)
        .unwrap();
    let corp = schema.class_of("corporation").unwrap();
    let work = schema.class_of("creative-work").unwrap();
    let group = schema.class_of("group").unwrap();
    assert_eq!(keyed.answers[corp], "D");
    assert_eq!(keyed.answers[work], "F");
    let server = FakeServer::start(Script::always(Fault::Ok(
        logprob_chat(&[
            ("F", 0.45),
            (" D", 0.25),
            ("C", 0.2),
            ("G", 0.05),
            ("Sure", 0.05),
        ]),
        std::time::Duration::ZERO,
    )))
    .await;
    let llm = OpenAiBuilder::new()
        .base_url(&server.url)
        .template(PromptTemplate::full())
        .cache(false)
        .build()
        .unwrap();
    let a = llm.classify(&wnut_request()).await.unwrap();
    assert_eq!(a.class, work);
    let d = a.distribution.unwrap();
    let mass = 0.95;
    assert!((d[work] - 0.45 / mass).abs() < 1e-5, "{d:?}");
    assert!((d[corp] - 0.25 / mass).abs() < 1e-5, "{d:?}");
    assert!((d[group] - 0.2 / mass).abs() < 1e-5, "{d:?}");
    assert!((d[0] - 0.05 / mass).abs() < 1e-5, "{d:?}");
    // The request asked for one token and listed the keys.
    let body = &server.requests()[0];
    assert!(
        body.contains("\"max_tokens\":1") && body.contains("F (creative work)"),
        "{body}"
    );
}

#[tokio::test]
async fn names_split_a_shared_first_token_and_keys_do_not() {
    // As names, a first token `c` is a prefix of both "corporation" and "creative work".
    let server = FakeServer::start(Script::always(Fault::Ok(
        logprob_chat(&[("c", 0.7), ("person", 0.3)]),
        std::time::Duration::ZERO,
    )))
    .await;
    let llm = OpenAiBuilder::new()
        .base_url(&server.url)
        .template(PromptTemplate::plain())
        .cache(false)
        .build()
        .unwrap();
    let schema = LabelSchema::wnut17();
    let a = llm.classify(&wnut_request()).await.unwrap();
    let d = a.distribution.unwrap();
    let corp = schema.class_of("corporation").unwrap();
    let work = schema.class_of("creative-work").unwrap();
    assert!(
        (d[corp] - 0.35).abs() < 1e-5 && (d[work] - 0.35).abs() < 1e-5,
        "{d:?}"
    );
}

#[tokio::test]
async fn calibration_divides_by_the_content_free_distribution() {
    // Content-free inputs (N/A, [MASK], -) get "A" (person) 0.6; the real sentence gets
    // person 0.45 vs product 0.40: calibrated, product wins.
    let server = FakeServer::start(Script::from_fn(|seen| {
        // Every request but the real one is one of the content-free inputs.
        let content_free = !seen.body.contains("black keys");
        let tops: &[(&str, f64)] = if content_free {
            &[("A", 0.6), ("E", 0.1), ("G", 0.1), ("B", 0.1), ("C", 0.1)]
        } else {
            &[
                ("A", 0.45),
                ("E", 0.40),
                ("G", 0.05),
                ("B", 0.05),
                ("C", 0.05),
            ]
        };
        Fault::Ok(logprob_chat(tops), std::time::Duration::ZERO)
    }))
    .await;
    let plain = OpenAiBuilder::new()
        .base_url(&server.url)
        .template(PromptTemplate::full())
        .cache(false)
        .build()
        .unwrap();
    assert_eq!(
        plain.classify(&wnut_request()).await.unwrap().label,
        "person"
    );
    let calibrated = OpenAiBuilder::new()
        .base_url(&server.url)
        .template(PromptTemplate::full())
        .cache(false)
        .calibrate(true)
        .build()
        .unwrap();
    let a = calibrated.classify(&wnut_request()).await.unwrap();
    assert_eq!(a.label, "product", "{a:?}");
    // Three content-free requests, once per schema: a second answer asks only for itself.
    let before = server.hits();
    calibrated.classify(&wnut_request()).await.unwrap();
    assert_eq!(server.hits(), before + 1);
    // Calibration needs distributions.
    assert!(
        OpenAiBuilder::new()
            .mode(linkner_llm::AnswerMode::FreeText)
            .calibrate(true)
            .build()
            .is_err()
    );
}
