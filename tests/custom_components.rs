//! A custom estimator and a custom LLM backend written here with only linkner's public API, run
//! through the pipeline; and the JSON configuration.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{ScriptedTagger, entry};
use linkner::core::Candidate;
use linkner::llm::{Answer, ClassifyRequest, LlmClassifier, LlmError};
use linkner::uncertainty::{Result as UResult, UncertaintyEstimator, conformance, dist};
use linkner::{
    EstimatorViolation, LinkConfig, LinkError, Pipeline, Provenance, RoutingPolicy, async_trait,
};

/// Uncertainty = 1 − (p_top1 − p_top2).
struct Margin;

impl UncertaintyEstimator for Margin {
    fn name(&self) -> String {
        "margin".into()
    }

    fn score(&self, candidate: &Candidate) -> UResult<f32> {
        let mut p = dist::class_probs(candidate)?;
        p.sort_by(|a, b| b.total_cmp(a));
        let second = p.get(1).copied().unwrap_or(0.0);
        Ok(dist::unit(1.0 - (p[0] - second)))
    }

    fn uniform_is_max(&self) -> bool {
        true
    }
}

/// Answers from a keyword list; anything else is "not an entity".
struct Gazetteer(HashMap<&'static str, &'static str>);

#[async_trait]
impl LlmClassifier for Gazetteer {
    fn name(&self) -> String {
        "gazetteer".into()
    }

    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer, LlmError> {
        let class = match self.0.get(request.entity()) {
            Some(label) => request.schema().class_of(label).ok_or_else(|| {
                LlmError::InvalidRequest(format!("gazetteer label {label} not in schema"))
            })?,
            None => 0,
        };
        Answer::for_class(request.schema(), class)
    }
}

#[tokio::test]
async fn a_custom_estimator_and_backend_plug_into_the_pipeline() {
    conformance::assert_conforms(&Margin);
    // Margin of probs_for(_, u, 5): (1 − u) − u/4, so uncertainty = 1.25 u.
    let tagger = ScriptedTagger::new(vec![
        entry("Alice", "PER", 0.1),   // margin uncertainty 0.125: local
        entry("Apple", "PER", 0.5),   // 0.625: gazetteer says ORG
        entry("Monday", "MISC", 0.5), // 0.625: not in gazetteer -> rejected
        entry("Rome", "LOC", 0.5),    // 0.625: gazetteer confirms
    ]);
    let gazetteer = Gazetteer(HashMap::from([("Apple", "ORG"), ("Rome", "LOC")]));
    let p = Pipeline::builder()
        .tagger(Arc::new(tagger))
        .estimator(Arc::new(Margin))
        .llm(Arc::new(gazetteer))
        .policy(RoutingPolicy::threshold(0.5))
        .build()
        .unwrap();
    assert_eq!(p.estimator_name(), "margin");
    assert_eq!(p.llm_name().as_deref(), Some("gazetteer"));
    let doc = p
        .annotate("Alice bought Apple shares on Monday in Rome")
        .await
        .unwrap();
    let got: Vec<(&str, &str, &Provenance)> = doc
        .entities
        .iter()
        .map(|e| {
            (
                e.entity.text.as_str(),
                e.entity.label.as_str(),
                &e.provenance,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("Alice", "PER", &Provenance::Local),
            (
                "Apple",
                "ORG",
                &Provenance::LlmRelabelled { from: "PER".into() }
            ),
            ("Rome", "LOC", &Provenance::LlmConfirmed),
        ]
    );
    assert!((doc.entities[0].uncertainty - 0.125).abs() < 1e-4);
    assert_eq!(doc.rejected.len(), 1);
    assert_eq!(doc.rejected[0].entity.text, "Monday");
}

/// An estimator that breaks the [0, 1] contract.
struct OutOfRange;

impl UncertaintyEstimator for OutOfRange {
    fn name(&self) -> String {
        "out_of_range".into()
    }
    fn score(&self, _: &Candidate) -> UResult<f32> {
        Ok(f32::NAN)
    }
}

#[tokio::test]
async fn an_estimator_outside_its_contract_is_a_typed_error() {
    let p = Pipeline::builder()
        .tagger(Arc::new(ScriptedTagger::new(vec![entry(
            "Rome", "LOC", 0.5,
        )])))
        .estimator(Arc::new(OutOfRange))
        .policy(RoutingPolicy::Never)
        .build()
        .unwrap();
    let err = p.annotate("Rome").await.unwrap_err();
    assert!(
        matches!(
            err,
            LinkError::EstimatorContract {
                violation: EstimatorViolation::Score { .. },
                ..
            }
        ),
        "{err}"
    );

    // A batch method that loses scores.
    struct ShortBatch;
    impl UncertaintyEstimator for ShortBatch {
        fn name(&self) -> String {
            "short_batch".into()
        }
        fn score(&self, _: &Candidate) -> UResult<f32> {
            Ok(0.5)
        }
        fn score_batch(&self, _: &[Candidate]) -> UResult<Vec<f32>> {
            Ok(Vec::new())
        }
    }
    let p = Pipeline::builder()
        .tagger(Arc::new(ScriptedTagger::new(vec![entry(
            "Rome", "LOC", 0.5,
        )])))
        .estimator(Arc::new(ShortBatch))
        .policy(RoutingPolicy::Never)
        .build()
        .unwrap();
    let err = p.annotate("Rome").await.unwrap_err();
    assert!(
        matches!(
            err,
            LinkError::EstimatorContract {
                violation: EstimatorViolation::Count { .. },
                ..
            }
        ),
        "{err}"
    );
    // A document without candidates needs no score.
    assert!(
        p.annotate("nothing here")
            .await
            .unwrap()
            .entities
            .is_empty()
    );
}

#[test]
fn config_files_parse_with_defaults_and_resolve_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("link.json");
    std::fs::write(
        &path,
        r#"{
            "tagger": { "model": "models/tagger" },
            "llm": { "base_url": "http://127.0.0.1:9/v1", "model": "m", "cache_path": "cache.jsonl" }
        }"#,
    )
    .unwrap();
    let c = LinkConfig::from_path(&path).unwrap();
    assert_eq!(c.tagger.model, dir.path().join("models/tagger"));
    assert_eq!(c.tagger.device, "cpu");
    assert_eq!(c.tagger.batch_size, 32);
    // The defaults of a config are the measured best generic setting (docs/linking.md).
    assert_eq!(c.policy, RoutingPolicy::threshold(0.05));
    assert_eq!(
        c.estimator,
        linkner::uncertainty::EstimatorConfig::Confidence {}
    );
    assert_eq!(
        c.merge,
        linkner::MergePolicy::Fuse {
            weight: 0.3,
            temperature: 4.0,
            doubt: true
        }
    );
    assert_eq!(
        c.llm.as_ref().unwrap().backend.template,
        linkner::llm::PromptTemplate::plain()
    );
    assert_eq!(
        c.llm.as_ref().unwrap().reliability.cache_path.as_deref(),
        Some(dir.path().join("cache.jsonl").as_path())
    );
    c.validate().unwrap();

    // Everything but the tagger builds from the config; any tagger completes it.
    let tagger = ScriptedTagger::new(vec![entry("Rome", "LOC", 0.1)]);
    let schema = tagger.schema.clone();
    let p = c
        .builder(&schema)
        .unwrap()
        .tagger(Arc::new(tagger))
        .build()
        .unwrap();
    assert_eq!(p.estimator_name(), "confidence");
    assert!(p.llm_name().is_some());

    // Typed errors: unknown field, missing file, a policy that routes without an LLM, a bad
    // device, a missing tagger checkpoint.
    let bad = |json: &str| LinkConfig::from_json(json).and_then(|c| c.validate());
    // A JSON error says its message once, its position up front (file:line:column).
    let e = bad(r#"{"tagger": {"model": "m"}, "polcy": 1}"#).unwrap_err();
    let text = linkner::core::error_chain(&e);
    assert_eq!(text.matches("unknown field").count(), 1, "{text}");
    assert!(
        text.starts_with("<memory>:1:") && !text.contains(" at line "),
        "{text}"
    );
    assert!(matches!(
        bad(r#"{"tagger": {"model": "m"}, "polcy": {"type": "never"}}"#),
        Err(LinkError::Json { .. })
    ));
    assert!(matches!(
        bad(r#"{"tagger": {"model": "m"}}"#),
        Err(LinkError::Config(_))
    ));
    assert!(matches!(
        bad(r#"{"tagger": {"model": "m", "device": "gpu7"}, "policy": {"type": "never"}}"#),
        Err(LinkError::Config(_))
    ));
    assert!(bad(r#"{"tagger": {"model": "m"}, "policy": {"type": "never"}}"#).is_ok());
    let typo = bad(r#"{"tagger": {"model": "m"}, "llm": {"url": "http://127.0.0.1:9/v1"}}"#);
    assert!(
        matches!(&typo, Err(e @ LinkError::Json { .. })
            if e.to_string().contains("`url`") && e.to_string().contains("base_url")),
        "{typo:?}"
    );
    assert!(matches!(
        LinkConfig::from_path(dir.path().join("missing.json")),
        Err(LinkError::Io { .. })
    ));
    let never = LinkConfig::from_json(
        r#"{"tagger": {"model": "/nonexistent/tagger"}, "policy": {"type": "never"}}"#,
    )
    .unwrap();
    assert!(matches!(never.build(), Err(LinkError::Tagger(_))));
}

#[test]
fn few_shot_examples_are_drawn_from_the_configured_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("train.txt"),
        "Alice B-PER\nvisited O\nRome B-LOC\nwith O\nAcme B-ORG\nStaff O\n\n\
         Bob B-PER\nlikes O\nParis B-LOC\nand O\nItalian B-MISC\nFood O\n",
    )
    .unwrap();
    let json = r#"{
        "tagger": {"model": "m"},
        "llm": {"base_url": "http://127.0.0.1:9/v1"},
        "examples": {"from": "train.txt", "per_class": 1, "seed": 7}
    }"#;
    std::fs::write(dir.path().join("link.json"), json).unwrap();
    let c = LinkConfig::from_path(dir.path().join("link.json")).unwrap();
    let schema = linkner::core::LabelSchema::conll03();
    let llm = c.llm_config(&schema).unwrap().unwrap();
    // One example per class: PER, LOC, ORG, MISC and a non-entity ("Staff" or "Food").
    let mut classes: Vec<usize> = llm.backend.examples.iter().map(|e| e.class).collect();
    classes.sort_unstable();
    assert_eq!(classes, [0, 1, 2, 3, 4]);
    let again = c.llm_config(&schema).unwrap().unwrap();
    assert_eq!(
        again.backend.examples, llm.backend.examples,
        "the draw is seeded"
    );
    // Both sources at once is refused.
    let mut both = c.clone();
    both.llm.as_mut().unwrap().backend.examples = llm.backend.examples.clone();
    assert!(matches!(
        both.llm_config(&schema),
        Err(LinkError::Config(_))
    ));
    // A missing examples file is a typed error naming it.
    let mut missing = c;
    missing.examples.as_mut().unwrap().from = dir.path().join("nope.txt");
    let err = missing.llm_config(&schema).unwrap_err();
    assert!(err.to_string().contains("nope.txt"), "{err}");
}

/// The complete example of docs/configuration.md parses and validates.
#[test]
fn the_documented_config_example_is_valid() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/configuration.md"
    ))
    .unwrap();
    let start = doc.find("```json\n").expect("a json block") + "```json\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let c = LinkConfig::from_json(&doc[start..end]).unwrap();
    c.validate().unwrap();
    assert!(c.llm.is_some());
    assert!(c.examples.is_some());
}

#[test]
fn a_config_error_names_the_file_the_line_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.json");
    std::fs::write(
        &path,
        "{\n  \"tagger\": {\"model\": \"m\"},\n  \"llm\": {\n    \"base_url\": \"http://127.0.0.1:9/v1\",\n    \"timeout_s\": \"slow\"\n  }\n}\n",
    )
    .unwrap();
    let err = LinkConfig::from_path(&path).unwrap_err();
    match &err {
        LinkError::Json {
            path: p,
            field,
            line,
            ..
        } => {
            assert_eq!(p, &path);
            assert_eq!(field, "llm.timeout_s");
            assert_eq!(*line, 5);
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:5:", path.display()))
            && text.contains("`llm.timeout_s`: invalid type")
            && !text.contains(" at line "),
        "{text}"
    );
    // Inside a tagged enum and a map: the path goes down to the key.
    let err = LinkConfig::from_json(
        r#"{"tagger": {"model": "m"}, "policy": {"type": "per_type", "thresholds": {"LOC": "x"}, "default": 0.4}}"#,
    )
    .unwrap_err();
    assert!(
        matches!(&err, LinkError::Json { field, line: 1, .. } if field.starts_with("policy")),
        "{err:?}"
    );
    // Trailing text after the object is refused too.
    assert!(matches!(
        LinkConfig::from_json(r#"{"tagger": {"model": "m"}} x"#),
        Err(LinkError::Json { .. })
    ));
}

/// Every committed config loads — those written before the layers' settings moved into
/// `llm.reliability` (kept under tests/fixtures/configs-before-reliability) with their
/// top-level settings in `reliability`; written back, the file has
/// the nested layout and reads back equal.
#[test]
fn committed_configs_load_and_the_layers_settings_move_to_reliability() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    // Copies of committed configs as they were written before the move (since re-tuned).
    let before = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/configs-before-reliability");
    let mut files = Vec::new();
    for dir in [root.clone(), root.join("ablation"), before] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 15, "{files:?}");
    let (mut with_llm, mut old_layout) = (0, 0);
    for path in files {
        let raw: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let config = LinkConfig::from_path(&path).unwrap_or_else(|e| panic!("{e}"));
        let Some(llm) = &config.llm else { continue };
        with_llm += 1;
        // Files written before the move have the settings at the top of `llm`; files written
        // since (the re-tuned CoNLL-03 family) have them nested.
        let flat = match raw["llm"].get("reliability") {
            Some(nested) => nested,
            None => {
                old_layout += 1;
                &raw["llm"]
            }
        };
        let r = &llm.reliability;
        assert_eq!(
            (
                r.deadline_s,
                u64::from(r.max_retries),
                r.max_in_flight as u64,
                r.cache
            ),
            (
                flat["deadline_s"].as_f64(),
                flat["max_retries"].as_u64().unwrap(),
                flat["max_in_flight"].as_u64().unwrap(),
                flat["cache"].as_bool().unwrap()
            ),
            "{}",
            path.display()
        );
        let written = serde_json::to_value(llm).unwrap();
        assert!(written.get("max_retries").is_none() && written["reliability"].is_object());
        let back: linkner::llm::LlmConfig = serde_json::from_value(written).unwrap();
        assert_eq!(&back, llm, "{}", path.display());
    }
    assert!(with_llm >= 15, "{with_llm} configs with an llm section");
    // The old layout is still among them, so its migration stays tested.
    assert!(old_layout >= 10, "{old_layout} configs in the old layout");
}
