//! `SubwordTokenizer` on a RoBERTa-style byte-level BPE tokenizer gives, word by word, the ids of
//! Hugging Face `RobertaTokenizerFast(add_prefix_space=True)` on pre-tokenized input
//! (`is_split_into_words=True`): per-word sub-tokens and full `<s> ... </s>` sequences, on
//! sentences with accents, CJK, emoji, combining marks, zero-width characters, punctuation,
//! numbers, unseen words, special tokens' text and spaces. The tokenizer and the references are
//! made by `support/make_roberta_tokenizer.py` with `tokenizers` and `transformers`.
//! (The WordPiece/MiniLM side is covered by `encoder_parity::minilm_tokenizer_ids_match_transformers`.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use linkner_tagger::internals::SubwordTokenizer;

/// One sentence of `expected.json`.
struct Case {
    words: Vec<String>,
    input_ids: Vec<u32>,
    word_ids: Vec<Vec<u32>>,
}

struct Refs {
    dir: tempfile::TempDir,
    cases: Vec<Case>,
}

static REFS: OnceLock<Refs> = OnceLock::new();

fn u32s(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
        .collect()
}

/// Runs `make_roberta_tokenizer.py` once per test binary.
fn refs() -> &'static Refs {
    REFS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let script = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("tests/support/make_roberta_tokenizer.py");
        let python = common::python();
        let out = Command::new(&python)
            .arg(&script)
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        assert!(
            out.status.success(),
            "make_roberta_tokenizer.py failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(dir.path().join("expected.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let cases = json["sentences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| Case {
                words: c["words"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| w.as_str().unwrap().to_string())
                    .collect(),
                input_ids: u32s(&c["input_ids"]),
                word_ids: c["word_ids"].as_array().unwrap().iter().map(u32s).collect(),
            })
            .collect();
        Refs { dir, cases }
    })
}

fn file(name: &str) -> PathBuf {
    refs().dir.path().join(name)
}

/// Every reference sentence: per-word ids and `prefix + pieces + suffix` equal Hugging Face's.
fn check_all(tok: &SubwordTokenizer) {
    let cases = &refs().cases;
    assert!(
        cases.len() >= 10,
        "only {} reference sentences",
        cases.len()
    );
    assert_eq!(tok.prefix(), [0], "<s>");
    assert_eq!(tok.suffix(), [2], "</s>");
    let mut failures = Vec::new();
    for case in cases {
        let pieces = tok.word_pieces(&case.words).unwrap();
        if pieces != case.word_ids {
            failures.push(format!(
                "{:?}: word pieces {pieces:?}, transformers {:?}",
                case.words, case.word_ids
            ));
        }
        let mut ids = tok.prefix().to_vec();
        ids.extend(pieces.iter().flatten());
        ids.extend_from_slice(tok.suffix());
        if ids != case.input_ids {
            failures.push(format!(
                "{:?}: input ids {ids:?}, transformers {:?}",
                case.words, case.input_ids
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches with transformers:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A file like roberta-base's: `add_prefix_space: false` in the ByteLevel pre-tokenizer.
#[test]
fn roberta_word_pieces_match_transformers() {
    let tok = SubwordTokenizer::from_file(&file("tokenizer.json")).unwrap();
    check_all(&tok);
}

/// The same tokenizer saved with `add_prefix_space: true`: no double space.
#[test]
fn roberta_with_prefix_space_in_file_matches_transformers() {
    let tok = SubwordTokenizer::from_file(&file("tokenizer_prefix.json")).unwrap();
    check_all(&tok);
}

/// A word inside a sentence is encoded as after a space (`Ġ`), also the first one: "Peter"
/// alone and "Peter" after another word give the same ids, and they differ from the ids the
/// tokenizer gives the raw text "Peter" at the start of a text (no prefix space).
#[test]
fn first_word_gets_the_prefix_space() {
    let tok = SubwordTokenizer::from_file(&file("tokenizer.json")).unwrap();
    let alone = tok.word_pieces(&["Peter"]).unwrap();
    let after = tok.word_pieces(&["EU", "Peter"]).unwrap();
    assert_eq!(alone[0], after[1]);
    let raw = tokenizers::Tokenizer::from_file(file("tokenizer.json")).unwrap();
    let bare = raw.encode("Peter", false).unwrap();
    assert_ne!(alone[0], bare.get_ids(), "no prefix space was added");
}
