//! `TokenClassTagger` equals Hugging Face `transformers` on token-classification checkpoints made
//! by `support/make_token_class.py`: a tiny random `BertForTokenClassification` (CoNLL-03 IOB2
//! labels, MiniLM's WordPiece tokenizer), a tiny random `RobertaForTokenClassification` (types in
//! no built-in schema, `O` not at id 0, byte-level BPE) and the tiny BERT with IOBES labels — on
//! every CoNLL-03 test sentence plus sentences with Unicode words:
//!
//! - token ids equal the fast tokenizer's (`is_split_into_words=True`);
//! - logits of every token within 1e-4;
//! - decoded entities equal `transformers`' `aggregation_strategy="first"` (the pipeline's own
//!   aggregation code with words = the sentence's words) and the public
//!   `pipeline(..., is_split_into_words=True, aggregation_strategy="first")` on every sentence
//!   whose word split the pipeline's heuristics get right; IOBES entities equal seqeval's
//!   (the pipeline does not read `E-`/`S-`);
//!
//! plus windowing without truncation, Monte-Carlo dropout, the class distributions of entities,
//! and typed errors for checkpoints that cannot be used.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use linkner_core::{LabelSchema, Sentence, WordSpan};
use linkner_core::{LocalTagger, PredictOptions, TaggerError};
use linkner_tagger::internals::{TokenClassInternals, encode_window, plan_windows};
use linkner_tagger::token_class::{TagPrefix, TokenClassTagger};
use linkner_tagger::{AnyTagger, DeviceSpec, TaggerKind, checkpoint_schema};
use serde_json::Value;

/// Logits of the two argmax candidates of a word closer than this are a tie: which label wins
/// depends on rounding, so the sentence's entities are not compared (its logits are).
const TIE: f64 = 1e-3;

struct Refs {
    _dir: tempfile::TempDir,
    root: PathBuf,
    json: Value,
}

fn conll_test() -> PathBuf {
    let data = std::env::var_os("LINKNER_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../../shared/data")
        });
    let p = data.join("conll03/conll/test.txt");
    assert!(
        p.is_file(),
        "{} not found: the tests need the datasets (set LINKNER_DATA)",
        p.display()
    );
    p
}

fn refs() -> &'static Refs {
    static REFS: OnceLock<Refs> = OnceLock::new();
    REFS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let script = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("tests/support/make_token_class.py");
        let out = Command::new(common::python())
            .arg(&script)
            .arg("refs")
            .arg(dir.path())
            .arg(common::minilm_dir())
            .arg(conll_test())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", common::python().display()));
        assert!(
            out.status.success(),
            "make_token_class.py failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(dir.path().join("refs.json")).unwrap();
        Refs {
            root: dir.path().to_path_buf(),
            json: serde_json::from_str(&text).unwrap(),
            _dir: dir,
        }
    })
}

fn load(name: &str) -> TokenClassTagger {
    TokenClassTagger::load(&refs().root.join(name), &DeviceSpec::Cpu).unwrap()
}

fn words(rec: &Value) -> Vec<String> {
    rec["words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

fn spans(v: &Value) -> Vec<WordSpan> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            WordSpan::new(
                e[0].as_u64().unwrap() as usize,
                e[1].as_u64().unwrap() as usize,
                e[2].as_str().unwrap(),
            )
        })
        .collect()
}

fn ids_of(tagger: &TokenClassTagger, words: &[String]) -> Vec<u32> {
    let mut ids = tagger.tokenizer().prefix().to_vec();
    for p in tagger.tokenizer().word_pieces(words).unwrap() {
        ids.extend(p);
    }
    ids.extend_from_slice(tagger.tokenizer().suffix());
    ids
}

/// What one model's comparison found.
#[derive(Debug, Default)]
struct Parity {
    sentences: usize,
    max_logit_diff: f64,
    compared: usize,
    ties: usize,
    pipeline_compared: usize,
    unicode_compared: usize,
}

/// Number of Unicode sentences the script appends after the CoNLL-03 test sentences.
const UNICODE_SENTENCES: usize = 6;

/// Compares ids, logits and decoded entities of `name` on every reference sentence; `field`
/// names the reference entities (`first` or `seqeval`).
fn check_model(name: &str, field: &str) -> Parity {
    let tagger = load(name);
    let recs = refs().json[name].as_array().unwrap();
    let mut p = Parity {
        sentences: recs.len(),
        ..Parity::default()
    };
    for chunk in recs.chunks(64) {
        let ids: Vec<Vec<u32>> = chunk.iter().map(|r| ids_of(&tagger, &words(r))).collect();
        for (r, ours) in chunk.iter().zip(&ids) {
            let want: Vec<u32> = r["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(ours, &want, "{name}: token ids of {:?}", words(r));
        }
        let logits = tagger.token_logits(&ids).unwrap();
        for (r, got) in chunk.iter().zip(&logits) {
            let want = r["logits"].as_array().unwrap();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                for (a, b) in g.iter().zip(w.as_array().unwrap()) {
                    p.max_logit_diff = p
                        .max_logit_diff
                        .max((f64::from(*a) - b.as_f64().unwrap()).abs());
                }
            }
        }
    }
    let sentences: Vec<Sentence> = recs
        .iter()
        .map(|r| Sentence::from_words(&words(r)))
        .collect();
    let cands = tagger
        .tag_sentences(&sentences, &PredictOptions::default())
        .unwrap();
    for (i, (r, c)) in recs.iter().zip(&cands).enumerate() {
        let got: Vec<WordSpan> = c.iter().map(|c| c.span.clone()).collect();
        if r["margin"].as_f64().unwrap() < TIE {
            p.ties += 1;
            continue;
        }
        p.compared += 1;
        if i >= recs.len() - UNICODE_SENTENCES {
            p.unicode_compared += 1;
        }
        assert_eq!(got, spans(&r[field]), "{name}: entities of {:?}", words(r));
        if r["same_words"].as_bool() == Some(true) {
            p.pipeline_compared += 1;
            assert_eq!(
                got,
                spans(&r["pipeline"]),
                "{name}: pipeline on {:?}",
                words(r)
            );
        }
    }
    eprintln!("{name}: {p:?}");
    p
}

fn assert_parity(p: &Parity, min_pipeline: usize) {
    assert!(p.sentences >= 3453 + UNICODE_SENTENCES, "{p:?}");
    assert!(p.max_logit_diff <= 1e-4, "{p:?}");
    // Ties are rare: at most 1 % of the sentences are left out of the entity comparison.
    assert!(p.ties * 100 <= p.sentences, "{p:?}");
    assert_eq!(p.compared + p.ties, p.sentences);
    assert!(p.pipeline_compared >= min_pipeline, "{p:?}");
    assert!(p.unicode_compared >= UNICODE_SENTENCES - 1, "{p:?}");
}

#[test]
fn bert_token_classification_matches_transformers() {
    let p = check_model("bert", "first");
    // WordPiece: the pipeline's word heuristic splits `U.S.` or `1996-12-06` into several
    // words; about half of CoNLL-03's sentences have no such word.
    assert_parity(&p, 1500);
}

#[test]
fn roberta_token_classification_matches_transformers() {
    let p = check_model("roberta", "first");
    assert_parity(&p, 3000);
}

#[test]
fn iobes_labels_decode_like_seqeval() {
    let p = check_model("iobes", "seqeval");
    assert_parity(&p, 0);
    let tagger = load("iobes");
    assert_eq!(tagger.config().labels.len(), 17);
    assert!(
        tagger
            .config()
            .labels
            .iter()
            .any(|l| l.prefix == TagPrefix::Single)
    );
}

#[test]
fn schemas_come_from_id2label() {
    let bert = load("bert");
    // CoNLL-03's types: the built-in wording, in the checkpoint's order (PER, ORG, LOC, MISC).
    assert_eq!(bert.schema().type_names(), ["PER", "ORG", "LOC", "MISC"]);
    assert_eq!(bert.schema().types[0].llm_name, "person");
    assert!(
        bert.schema().types[1]
            .description
            .contains("organised groups")
    );
    let rob = load("roberta");
    assert_eq!(
        rob.schema().type_names(),
        ["human", "geo-loc", "work_of_fiction"]
    );
    assert_eq!(rob.schema().types[1].llm_name, "geo loc");
    assert_eq!(rob.schema().types[2].llm_name, "work of fiction");
    // `O` is label 2; B-/I- of a type share its class.
    assert_eq!(rob.config().label_class, vec![1, 1, 0, 2, 2, 3, 3]);
    // The schema is read without loading weights, and the kind is detected.
    let dir = refs().root.join("roberta");
    assert_eq!(
        TaggerKind::detect(&dir).unwrap(),
        TaggerKind::TokenClassification
    );
    assert_eq!(&checkpoint_schema(&dir, None).unwrap(), rob.schema());
    let any = AnyTagger::load(&dir, None, &DeviceSpec::Cpu).unwrap();
    assert_eq!(any.kind(), TaggerKind::TokenClassification);
    assert!(!any.is_evidential());
}

#[test]
fn a_schema_file_gives_the_wording_and_must_fit() {
    let rob = load("roberta");
    let file = LabelSchema::from_str_as(
        r#"
name = "fiction"
[[types]]
name = "work_of_fiction"
llm_name = "title of a work"
description = "Titles of books, films and songs."
[[types]]
name = "geo-loc"
llm_name = "place"
description = "Names of places."
[[types]]
name = "human"
llm_name = "person"
description = "Names of people."
"#,
        linkner_core::schema::SchemaFormat::Toml,
        "fiction.toml",
    )
    .unwrap();
    let sentences = vec![Sentence::from_words(&[
        "Peter", "visited", "São", "Paulo", ".",
    ])];
    let before = rob
        .tag_sentences(&sentences, &PredictOptions::default())
        .unwrap();
    let renamed = rob.clone().with_schema(&file).unwrap();
    // The model's class order is kept; only the wording changes.
    assert_eq!(renamed.schema().type_names(), rob.schema().type_names());
    assert_eq!(renamed.schema().types[2].llm_name, "title of a work");
    assert_eq!(renamed.schema().name, "fiction");
    let after = renamed
        .tag_sentences(&sentences, &PredictOptions::default())
        .unwrap();
    assert_eq!(before, after);
    let err = rob
        .with_schema(&LabelSchema::conll03())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing: human, geo-loc, work_of_fiction"),
        "{err}"
    );
}

#[test]
fn entity_distributions_are_means_of_collapsed_word_distributions() {
    let tagger = load("roberta");
    let recs = refs().json["roberta"].as_array().unwrap();
    let sentences: Vec<Sentence> = recs[..200]
        .iter()
        .map(|r| Sentence::from_words(&words(r)))
        .collect();
    let scores = tagger
        .word_scores(&sentences, &PredictOptions::default())
        .unwrap();
    let mut checked = 0;
    for (s, w) in sentences.iter().zip(&scores) {
        for c in tagger.candidates(s, w).unwrap() {
            let k = tagger.schema().num_classes();
            let mut want = vec![0f64; k];
            for word in c.span.start..c.span.end {
                let z: Vec<f64> = w.logits[word].iter().map(|x| f64::from(*x)).collect();
                let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = z.iter().map(|x| (x - m).exp()).sum();
                for (l, x) in z.iter().enumerate() {
                    want[tagger.config().label_class[l]] += (x - m).exp() / sum;
                }
            }
            let n = (c.span.end - c.span.start) as f64;
            for (cl, p) in c.probs.iter().enumerate() {
                assert!((f64::from(*p) - want[cl] / n).abs() < 1e-5, "{c:?}");
            }
            // softmax(logits) = probs, and the score is the decoded class's probability.
            let lse = c.logits.iter().map(|l| f64::from(*l).exp()).sum::<f64>();
            assert!((lse - 1.0).abs() < 1e-4);
            assert_eq!(c.entity.score, Some(c.probs[c.class]));
            assert_eq!(tagger.schema().class(c.class).unwrap().name, c.span.label);
            assert!(c.alpha.is_none() && c.mc_probs.is_empty());
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
}

#[test]
fn monte_carlo_dropout_gives_one_distribution_per_pass() {
    let tagger = load("bert");
    let recs = refs().json["bert"].as_array().unwrap();
    let sentences: Vec<Sentence> = recs[..40]
        .iter()
        .map(|r| Sentence::from_words(&words(r)))
        .collect();
    let det = tagger
        .tag_sentences(&sentences, &PredictOptions::default())
        .unwrap();
    for mc_encoder in [false, true] {
        let options = PredictOptions {
            mc_samples: 5,
            mc_encoder,
            batch_size: 7,
            ..PredictOptions::default()
        };
        let mc = tagger.tag_sentences(&sentences, &options).unwrap();
        let (mut differs, mut total) = (0, 0);
        for (d, m) in det.iter().zip(&mc) {
            assert_eq!(d.len(), m.len());
            for (a, b) in d.iter().zip(m) {
                // The deterministic pass is untouched by the stochastic ones (batching aside).
                assert_eq!(a.span, b.span);
                for (x, y) in a.probs.iter().zip(&b.probs) {
                    assert!((x - y).abs() < 1e-5);
                }
                assert_eq!(b.mc_probs.len(), 5);
                for p in &b.mc_probs {
                    assert_eq!(p.len(), tagger.schema().num_classes());
                    assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
                }
                total += 1;
                if b.mc_probs[0] != b.mc_probs[1] {
                    differs += 1;
                }
            }
        }
        assert!(total > 50, "{total}");
        assert!(
            differs * 10 >= total * 9,
            "dropout is off? {differs}/{total}"
        );
    }
}

#[test]
fn long_sentences_are_windowed_not_truncated() {
    let dir = refs().root.join("bert");
    let device = DeviceSpec::Cpu.device();
    // 24 tokens per window: every CoNLL sentence below is cut into several windows.
    let tagger = TokenClassTagger::load_with(&dir, &device, 24, 3).unwrap();
    let recs = refs().json["bert"].as_array().unwrap();
    let long: Vec<String> = recs[..12].iter().flat_map(words).collect();
    let sentence = Sentence::from_words(&long);
    let scores = tagger
        .word_scores(std::slice::from_ref(&sentence), &PredictOptions::default())
        .unwrap();
    assert_eq!(scores[0].logits.len(), long.len(), "every word is scored");
    // Each word's logits are those of the window whose core holds it, run on its own.
    let pieces = tagger.tokenizer().word_pieces(&long).unwrap();
    let counts: Vec<usize> = pieces.iter().map(Vec::len).collect();
    let budget = 24 - tagger.tokenizer().num_special();
    let windows = plan_windows(&counts, budget, 1, 3);
    assert!(windows.len() > 5, "{}", windows.len());
    for w in windows {
        let enc = encode_window(
            &pieces,
            w,
            tagger.tokenizer().prefix(),
            tagger.tokenizer().suffix(),
            budget,
        );
        assert!(enc.ids.len() <= 24);
        let logits = tagger.token_logits(std::slice::from_ref(&enc.ids)).unwrap();
        for word in w.core_start..w.core_end {
            let want = &logits[0][enc.first[word - w.word_start]];
            for (a, b) in scores[0].logits[word].iter().zip(want) {
                assert!((a - b).abs() < 1e-4, "word {word}: {a} vs {b}");
            }
        }
    }
    let cands = tagger
        .tag_sentences(std::slice::from_ref(&sentence), &PredictOptions::default())
        .unwrap();
    assert!(cands[0].iter().any(|c| c.span.start > long.len() - 20));
}

#[test]
fn flex_backend_gives_the_same_logits() {
    let dir = refs().root.join("roberta");
    let tagger = TokenClassTagger::load(&dir, &DeviceSpec::Flex).unwrap();
    let recs = refs().json["roberta"].as_array().unwrap();
    let ids: Vec<Vec<u32>> = recs[..50]
        .iter()
        .map(|r| ids_of(&tagger, &words(r)))
        .collect();
    let logits = tagger.token_logits(&ids).unwrap();
    let mut max = 0f64;
    for (r, got) in recs.iter().zip(&logits) {
        for (g, w) in got.iter().zip(r["logits"].as_array().unwrap()) {
            for (a, b) in g.iter().zip(w.as_array().unwrap()) {
                max = max.max((f64::from(*a) - b.as_f64().unwrap()).abs());
            }
        }
    }
    assert!(max <= 1e-4, "{max}");
}

/// Copies the BERT checkpoint with a changed `config.json`.
fn with_config(edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let src = refs().root.join("bert");
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

fn load_err(dir: &Path) -> TaggerError {
    TokenClassTagger::load(dir, &DeviceSpec::Cpu).unwrap_err()
}

#[test]
fn unusable_checkpoints_are_typed_errors() {
    let no_o = with_config(|c| {
        c["id2label"]["0"] = "B-X".into();
    });
    let err = load_err(no_o.path());
    assert!(matches!(err, TaggerError::Checkpoint { .. }), "{err}");
    assert!(err.to_string().contains("exactly one `O`"), "{err}");

    let distil = with_config(|c| {
        c["architectures"] = serde_json::json!(["DistilBertForTokenClassification"]);
    });
    let err = load_err(distil.path());
    assert!(err.to_string().contains("not supported"), "{err}");

    let gap = with_config(|c| {
        let labels = c["id2label"].as_object_mut().unwrap();
        let v = labels.remove("3").unwrap();
        labels.insert("12".into(), v);
    });
    let err = load_err(gap.path());
    assert!(err.to_string().contains("id 3 is missing"), "{err}");

    let more = with_config(|c| {
        c["id2label"]["9"] = "B-EXTRA".into();
    });
    let err = load_err(more.path());
    assert!(
        matches!(
            err,
            TaggerError::Weights { .. } | TaggerError::Checkpoint { .. }
        ),
        "{err}"
    );

    let no_labels = with_config(|c| {
        c.as_object_mut().unwrap().remove("id2label");
    });
    let err = AnyTagger::load(no_labels.path(), None, &DeviceSpec::Cpu).unwrap_err();
    assert!(err.to_string().contains("bare encoder"), "{err}");
    // Forcing the kind gives the token-classification loader's own error.
    let err = AnyTagger::load(
        no_labels.path(),
        Some(TaggerKind::TokenClassification),
        &DeviceSpec::Cpu,
    )
    .unwrap_err();
    assert!(err.to_string().contains("id2label"), "{err}");
}
