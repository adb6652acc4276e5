//! Unit tests of the prompt module.

use std::sync::Arc;

use linkner_core::{LabelSchema, Sentence};

use super::examples::negative_kind;
use super::render::{mark, mark_example};
use super::*;
use crate::request::{ClassifyRequest, Example};

fn req(sentence: &str, entity: &str) -> ClassifyRequest {
    ClassifyRequest::find(sentence, entity, Arc::new(LabelSchema::conll03())).unwrap()
}

#[test]
fn prefix_does_not_depend_on_the_entity() {
    for t in [
        PromptTemplate::full(),
        PromptTemplate::plain(),
        PromptTemplate::default(),
    ] {
        let ex = vec![Example::new("Paris is nice .", "Paris", 2)];
        let a = t
            .render(&req("John lives in Berlin .", "John"), &ex)
            .unwrap();
        let b = t
            .render(&req("Acme Corp fired Bob .", "Acme Corp"), &ex)
            .unwrap();
        assert_eq!(a.system, b.system);
        assert_ne!(a.user, b.user);
        assert!(a.user.contains("Span: John"));
        assert!(a.system.contains("not an entity"));
    }
}

#[test]
fn plain_renders_the_prompt_of_linkner_0_1() {
    // The 0.1 prompt, written out: the plain template must reproduce it exactly.
    let old_prefix = "You are an expert annotator of named entities ({schema} guidelines). \
You are given a sentence and a span of it. Decide which type of named entity the span is, or \
whether it is not an entity at all.\n\nTypes:\n{descriptions}\n\nA span that is a common word, a \
title or role, only part of a name, or a name of a type not listed is \"not an entity\".\nReply \
with exactly one label from: {choices}. Reply with the label only.\n\n{examples}";
    let old = PromptTemplate {
        prefix: old_prefix.into(),
        question: "Sentence: {sentence}\nSpan: {entity}\nLabel:".into(),
        ..PromptTemplate::plain()
    };
    let ex = vec![Example::new("Paris is nice .", "Paris", 2)];
    let r = req("John lives in Berlin .", "Berlin")
        .with_local_top(vec![crate::LocalLabel {
            class: 2,
            prob: 0.7,
        }])
        .unwrap();
    assert_eq!(
        PromptTemplate::plain().render(&r, &ex).unwrap(),
        old.render(&r, &ex).unwrap()
    );
    let p = PromptTemplate::plain().render(&r, &ex).unwrap();
    assert!(p.system.contains("Label: location"));
    assert_eq!(
        p.user,
        "Sentence: John lives in Berlin .\nSpan: Berlin\nLabel:"
    );
}

#[test]
fn switches_mark_hint_keys_and_neighbours() {
    let r = req("John lives in Berlin .", "Berlin")
        .with_local_top(vec![
            crate::LocalLabel {
                class: 2,
                prob: 0.62,
            },
            crate::LocalLabel {
                class: 0,
                prob: 0.2,
            },
        ])
        .unwrap()
        .with_examples(vec![Example::new("Bonn is small .", "Bonn", 2).at(0)])
        .unwrap();
    let fixed = vec![Example::new("Mr Smith spoke .", "Smith", 1)];
    let p = PromptTemplate::full().render(&r, &fixed).unwrap();
    assert!(
        p.user.contains("Sentence: John lives in [[Berlin]] ."),
        "{}",
        p.user
    );
    assert!(
        p.user
            .contains("Local model's guess: B (location) (0.62), E (not an entity) (0.20)"),
        "{}",
        p.user
    );
    assert!(
        p.user
            .starts_with("Similar examples:\nSentence: [[Bonn]] is small .\nSpan: Bonn\nLabel: B"),
        "{}",
        p.user
    );
    assert!(p.system.contains("- A. person:"));
    assert!(
        p.system
            .contains("Reply with exactly one letter from: A (person), B (location)")
    );
    assert!(
        p.system
            .contains("Sentence: Mr [[Smith]] spoke .\nSpan: Smith\nLabel: A")
    );
    // The retrieved examples never reach the prefix.
    assert!(!p.system.contains("Bonn"));
    let numbers = PromptTemplate::full()
        .with_answer_keys(AnswerKeys::Numbers)
        .render(&r, &fixed)
        .unwrap();
    assert!(
        numbers
            .system
            .contains("Reply with exactly one number from: 1 (person)")
    );
    let off = PromptTemplate::full()
        .with_mark_span(false)
        .with_local_hint(false)
        .render(&r, &fixed)
        .unwrap();
    assert!(!off.user.contains("[[") && !off.user.contains("guess"));
}

#[test]
fn vocabulary_per_key_style() {
    let s = LabelSchema::conll03();
    let names = PromptTemplate::plain().vocabulary(&s).unwrap();
    assert_eq!(
        names.answers,
        [
            "not an entity",
            "person",
            "location",
            "organization",
            "miscellaneous"
        ]
    );
    let letters = PromptTemplate::full().vocabulary(&s).unwrap();
    assert_eq!(letters.answers, ["E", "A", "B", "C", "D"]);
    assert!(letters.keyed);
    let numbers = PromptTemplate::full()
        .with_answer_keys(AnswerKeys::Numbers)
        .vocabulary(&s)
        .unwrap();
    assert_eq!(numbers.answers, ["5", "1", "2", "3", "4"]);
    let big = LabelSchema::ontonotes5();
    assert!(
        PromptTemplate::full()
            .with_answer_keys(AnswerKeys::Numbers)
            .vocabulary(&big)
            .is_err()
    );
    assert!(PromptTemplate::full().vocabulary(&big).is_ok());
}

#[test]
fn marking_counts_chars_not_bytes() {
    assert_eq!(mark("Zoë ❤ Köln", 6, 10), "Zoë ❤ [[Köln]]");
    assert_eq!(mark("Zoë ❤ Köln", 0, 3), "[[Zoë]] ❤ Köln");
    let e = Example::new("Köln und Köln", "Köln", 2).at(9);
    assert_eq!(mark_example(&e), "Köln und [[Köln]]");
    let wrong = Example::new("Köln und Köln", "Köln", 2).at(3);
    assert_eq!(mark_example(&wrong), "[[Köln]] und Köln");
}

#[test]
fn entity_placeholders_are_refused_in_the_prefix() {
    assert!(PromptTemplate::new("{entity}", "{entity}").is_err());
    assert!(PromptTemplate::new("{hint}", "{entity}").is_err());
    assert!(PromptTemplate::new("{nope}", "{entity}").is_err());
    assert!(PromptTemplate::new("ok", "no entity here").is_err());
    assert!(PromptTemplate::new("{{literal}}", "{sentence} {entity} {{x}}").is_ok());
    assert!(PromptTemplate::new("bad { brace", "{entity}").is_err());
}

#[test]
fn custom_template_renders_local_labels_and_braces() {
    let t = PromptTemplate::new("{{json}} {choices}", "{entity} / {local}")
        .unwrap()
        .with_answer_keys(AnswerKeys::Names);
    let r = req("John lives in Berlin .", "Berlin")
        .with_local_top(vec![crate::LocalLabel {
            class: 2,
            prob: 0.75,
        }])
        .unwrap();
    let p = t.render(&r, &[]).unwrap();
    assert_eq!(
        p.system,
        "{json} person, location, organization, miscellaneous, not an entity"
    );
    assert_eq!(p.user, "Berlin / location (0.75)");
}

#[test]
fn template_json_fills_switch_defaults() {
    let t: PromptTemplate =
        serde_json::from_str(r#"{"prefix": "{choices}", "question": "{entity}"}"#).unwrap();
    // The defaults are the measured best with the 1.5B model: every switch off, names.
    assert!(!t.mark_span && !t.local_hint);
    assert_eq!(t.answer_keys, AnswerKeys::Names);
    assert_eq!(PromptTemplate::default(), PromptTemplate::plain());
    let back: PromptTemplate =
        serde_json::from_str(&serde_json::to_string(&PromptTemplate::plain()).unwrap()).unwrap();
    assert_eq!(back, PromptTemplate::plain());
}

#[test]
fn draw_is_seeded_and_balanced() {
    let mut ex = Vec::new();
    for c in 0..5 {
        for i in 0..10 {
            ex.push(Example::new(format!("s{c}-{i}"), format!("e{c}-{i}"), c));
        }
    }
    let pool = ExamplePool::new(ex);
    let a = pool.draw(5, 2, 7);
    let b = pool.draw(5, 2, 7);
    let c = pool.draw(5, 2, 8);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), 10);
    for class in 0..5 {
        assert_eq!(a.iter().filter(|e| e.class == class).count(), 2);
    }
    assert_eq!(a[0].class, 1);
    assert_eq!(a[4].class, 0);
}

fn sentence() -> Sentence {
    let mut s = Sentence::from_words(&[
        "The", "Mayor", "of", "New", "York", "met", "Acme", "staff", "today", ".",
    ]);
    s.spans.push(linkner_core::WordSpan::new(3, 5, "LOC"));
    s.spans.push(linkner_core::WordSpan::new(6, 7, "ORG"));
    s
}

#[test]
fn pool_from_sentences_takes_gold_and_capitalised_distractors() {
    let schema = LabelSchema::conll03();
    let pool = ExamplePool::from_sentences(&[sentence()], &schema);
    let has = |text: &str, class: usize| {
        pool.examples
            .iter()
            .any(|e| e.entity == text && e.class == class)
    };
    assert!(has("New York", 2) && has("Acme", 3) && has("Mayor", 0));
    assert!(!pool.examples.iter().any(|e| e.entity == "The"));
    assert!(!has("today", 0) && !has("New", 0));
}

#[test]
fn varied_negatives_add_partial_extended_and_lowercase_spans_and_draw_in_turn() {
    let schema = LabelSchema::conll03();
    let pool = ExamplePool::from_sentences_with(&[sentence()], &schema, NegativeExamples::Varied);
    let has = |text: &str| {
        pool.examples
            .iter()
            .any(|e| e.entity == text && e.class == 0)
    };
    assert!(has("Mayor"), "capitalised word");
    assert!(has("today") && has("staff"), "lower-case words");
    assert!(has("New"), "part of an entity");
    assert!(
        has("Acme staff") && has("New York met"),
        "entity plus next word"
    );
    assert!(!has("York"), "no suffix spans");
    let drawn = pool.draw(schema.num_classes(), 3, 1);
    let kinds: Vec<usize> = drawn
        .iter()
        .filter(|e| e.class == 0)
        .map(negative_kind)
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![0, 1, 2],
        "one non-entity of each kind: {drawn:?}"
    );
}
