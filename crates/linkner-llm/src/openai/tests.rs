//! Unit tests of the OpenAI backend.

use super::*;
use super::{OpenAiClassifier, builder::*, config::*, transport::*};
use std::time::Duration;

use linkner_core::LabelSchema;
use serde_json::json;

use crate::error::LlmError;
use crate::layer::{CacheKeyer, ReliabilityConfig};
use crate::prompt::PromptTemplate;
#[test]
fn the_default_key_follows_the_conventions() {
    use super::default_api_key_var as var;
    let none = |_: &str| None::<String>;
    let openai = |v: &str| (v == "OPENAI_API_KEY").then(|| "sk-1".to_string());
    let both = |v: &str| Some(format!("key-{v}"));
    let blank = |_: &str| Some("  ".to_string());
    assert_eq!(var("https://api.openai.com/v1", none), None);
    assert_eq!(
        var("https://api.openai.com/v1", openai),
        Some("OPENAI_API_KEY")
    );
    assert_eq!(
        var("https://API.OpenAI.com:443/v1", openai),
        Some("OPENAI_API_KEY")
    );
    // The OpenAI key goes to OpenAI only.
    assert_eq!(var("http://127.0.0.1:8080/v1", openai), None);
    assert_eq!(var("https://api.openai.com.evil.example/v1", openai), None);
    assert_eq!(var("https://api.openai.com@evil.example/v1", openai), None);
    // LINKNER_LLM_API_KEY goes to whatever server is configured, and wins.
    assert_eq!(
        var("http://127.0.0.1:8080/v1", both),
        Some("LINKNER_LLM_API_KEY")
    );
    assert_eq!(
        var("https://api.openai.com/v1", both),
        Some("LINKNER_LLM_API_KEY")
    );
    assert_eq!(var("https://api.openai.com/v1", blank), None);
}

fn req() -> ClassifyRequest {
    ClassifyRequest::find(
        "Rome is in Italy .",
        "Rome",
        Arc::new(LabelSchema::conll03()),
    )
    .unwrap()
}

#[test]
fn config_fills_defaults_and_refuses_unknown_fields() {
    let c: OpenAiConfig = serde_json::from_str(r#"{"base_url": "http://127.0.0.1:9/v1"}"#).unwrap();
    assert_eq!(c.model, OpenAiConfig::default().model);
    let typo = serde_json::from_str::<OpenAiConfig>(r#"{"url": "http://127.0.0.1:9/v1"}"#)
        .unwrap_err()
        .to_string();
    assert!(
        typo.contains("`url`") && typo.contains("base_url"),
        "{typo}"
    );
}

#[test]
fn debug_redacts_the_api_key() {
    let secret = "sk-very-secret-123";
    let c = OpenAiClassifier::builder()
        .api_key(ApiKey::new(secret))
        .build()
        .unwrap();
    let b = OpenAiBuilder::new().api_key(ApiKey::new(secret));
    for s in [
        format!("{c:?}"),
        format!("{b:?}"),
        format!("{}", ApiKey::new(secret)),
    ] {
        assert!(!s.contains(secret), "{s}");
    }
    assert!(format!("{c:?}").contains("redacted"));
}

#[test]
fn constrained_body_enumerates_exactly_the_schema_names() {
    let c = OpenAiClassifier::builder()
        .mode(AnswerMode::Constrained)
        .template(PromptTemplate::full())
        .build()
        .unwrap();
    let body = c.request_body(&req()).unwrap();
    let e = &body["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"];
    assert_eq!(
        e,
        &json!(["A", "B", "C", "D", "E"]),
        "keys with the full template"
    );
    // The default template: the names.
    let c = OpenAiClassifier::builder()
        .mode(AnswerMode::Constrained)
        .build()
        .unwrap();
    let body = c.request_body(&req()).unwrap();
    let e = &body["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"];
    let names: Vec<&str> = e
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "person",
            "location",
            "organization",
            "miscellaneous",
            "not an entity"
        ]
    );
    assert_eq!(body["temperature"], json!(0.0));
    assert_eq!(body["seed"], json!(42));
}

#[test]
fn logprob_body_asks_one_token_with_alternatives() {
    let c = OpenAiClassifier::builder()
        .extra_body("cache_prompt", json!(true))
        .build()
        .unwrap();
    let body = c.request_body(&req()).unwrap();
    assert_eq!(body["max_tokens"], json!(1));
    assert_eq!(body["logprobs"], json!(true));
    assert_eq!(body["top_logprobs"], json!(20));
    assert_eq!(body["cache_prompt"], json!(true));
}

#[test]
fn bad_settings_are_errors_naming_the_field() {
    for (b, field) in [
        (OpenAiBuilder::new().base_url("ftp://x"), "base_url"),
        (OpenAiBuilder::new().max_in_flight(0), "max_in_flight"),
        (OpenAiBuilder::new().timeout(Duration::ZERO), "timeout_s"),
        (
            OpenAiBuilder::new().deadline(Some(Duration::ZERO)),
            "deadline_s",
        ),
        (
            OpenAiBuilder::new().max_response_bytes(0),
            "max_response_bytes",
        ),
        (OpenAiBuilder::new().cache_capacity(0), "cache_capacity"),
        (OpenAiBuilder::new().temperature(-1.0), "temperature"),
        (
            OpenAiBuilder::new().mode(AnswerMode::Logprobs { top_logprobs: 0 }),
            "mode.top_logprobs",
        ),
    ] {
        match b.build() {
            Err(e @ LlmError::InvalidSetting { .. }) => {
                assert_eq!(e.kind(), crate::FailureKind::Config);
                assert!(e.to_string().starts_with(&format!("`{field}`")), "{e}");
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    let c: OpenAiConfig = serde_json::from_str(r#"{"timeout_s": 0}"#).unwrap();
    assert!(c.validate().unwrap_err().to_string().contains("timeout_s"));
    assert!(AnswerMode::parse("bogus").is_err());
    assert_eq!(
        AnswerMode::parse("Constrained").unwrap(),
        AnswerMode::Constrained
    );
}

#[test]
fn settings_map_onto_the_layers() {
    let c = OpenAiClassifier::builder()
        .max_in_flight(7)
        .deadline(None)
        .circuit_breaker(9, Duration::from_secs(2), Duration::from_secs(1))
        .cache(false)
        .build()
        .unwrap();
    let limit = c.layers().get_ref();
    assert_eq!(limit.max_in_flight(), 7);
    let deadline = limit.get_ref();
    assert_eq!(deadline.limit(), None);
    let breaker = deadline.get_ref().get_ref();
    assert_eq!(breaker.policy().threshold, 9);
    // The largest cool-down is never below the first.
    assert_eq!(breaker.policy().max_cooldown, Duration::from_secs(2));
    assert!(c.cache().is_none());
    let d = OpenAiClassifier::builder().build().unwrap();
    assert_eq!(
        d.layers().get_ref().get_ref().limit(),
        Some(Duration::from_secs(120))
    );
    assert_eq!(d.cache().unwrap().capacity(), AnswerCache::DEFAULT_CAPACITY);
}

#[test]
fn the_cache_key_is_the_body_hash() {
    let c = OpenAiClassifier::builder().build().unwrap();
    let k = BodyKeyer(c.transport.inner.clone());
    let a = k.key(&req()).unwrap();
    assert_eq!(a, k.key(&req()).unwrap());
    // Another seed changes the body, so the key.
    let c2 = OpenAiClassifier::builder().seed(Some(7)).build().unwrap();
    assert_ne!(
        a,
        BodyKeyer(c2.transport.inner.clone()).key(&req()).unwrap()
    );
    // Other local probabilities that the prompt does not show do not.
    let other = req()
        .with_local_top(vec![crate::LocalLabel {
            class: 1,
            prob: 0.3,
        }])
        .unwrap();
    let shown = c.prompt(&other).unwrap() != c.prompt(&req()).unwrap();
    assert_eq!(k.key(&other).unwrap() != a, shown);
}

#[test]
fn config_round_trips_through_json() {
    let c = OpenAiConfig {
        mode: AnswerMode::FreeText,
        ..OpenAiConfig::default()
    };
    let s = serde_json::to_string(&c).unwrap();
    assert!(s.contains("\"type\":\"free_text\""));
    let back: OpenAiConfig = serde_json::from_str(&s).unwrap();
    assert_eq!(back, c);
    let partial: LlmConfig =
        serde_json::from_str(r#"{"model": "m", "mode": {"type": "constrained"}}"#).unwrap();
    assert_eq!(partial.backend.model, "m");
    assert_eq!(partial.reliability.max_in_flight, 4);
    // The backend alone refuses the layers' fields: they belong to the `LlmConfig`.
    assert!(serde_json::from_str::<OpenAiConfig>(r#"{"max_in_flight": 2}"#).is_err());
    let both = LlmConfig {
        backend: c,
        reliability: ReliabilityConfig {
            max_retries: 1,
            ..ReliabilityConfig::default()
        },
    };
    let text = serde_json::to_string(&both).unwrap();
    assert!(
        text.contains("\"reliability\":{") && text.contains("\"base_url\""),
        "{text}"
    );
    assert_eq!(serde_json::from_str::<LlmConfig>(&text).unwrap(), both);
}

#[test]
fn the_layers_settings_read_nested_or_at_the_top_level_but_not_both() {
    let nested: LlmConfig = serde_json::from_str(
        r#"{"model": "m", "reliability": {"max_retries": 1, "deadline_s": null, "cache": false}}"#,
    )
    .unwrap();
    let flat: LlmConfig = serde_json::from_str(
        r#"{"model": "m", "max_retries": 1, "deadline_s": null, "cache": false}"#,
    )
    .unwrap();
    assert_eq!(nested, flat);
    assert_eq!(
        (
            nested.reliability.max_retries,
            nested.reliability.deadline_s
        ),
        (1, None)
    );
    // Left out: the defaults (a deadline of 120 s), in either layout.
    let bare: LlmConfig = serde_json::from_str(r#"{"model": "m"}"#).unwrap();
    assert_eq!(
        bare,
        LlmConfig::from(OpenAiConfig {
            model: "m".into(),
            ..OpenAiConfig::default()
        })
    );
    assert_eq!(bare.reliability.deadline_s, Some(120.0));
    let both = serde_json::from_str::<LlmConfig>(
        r#"{"model": "m", "max_in_flight": 2, "reliability": {"max_retries": 1}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(both.contains("`max_in_flight` is given both"), "{both}");
    // Unknown fields stay errors, at both levels.
    assert!(serde_json::from_str::<LlmConfig>(r#"{"url": "x"}"#).is_err());
    assert!(serde_json::from_str::<LlmConfig>(r#"{"reliability": {"retries": 1}}"#).is_err());
}
