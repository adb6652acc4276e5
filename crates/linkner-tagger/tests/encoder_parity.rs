//! The burn encoder equals Hugging Face `transformers` (last hidden states, max abs diff
//! ≤ 1e-4) on a tiny random BERT, a tiny random RoBERTa (prefixed keys, position offset) and
//! all-MiniLM-L6-v2, on padded batches; missing weights are a typed error.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use burn::tensor::{Device, Int, Tensor, TensorData};
use linkner_core::TaggerError;
use linkner_tagger::DeviceSpec;
use linkner_tagger::encoder::load_hf_encoder;
use linkner_tagger::internals::SubwordTokenizer;

fn max_diff_on_tokens(dir: &std::path::Path, case: &serde_json::Value, device: &Device) -> f32 {
    let loaded = load_hf_encoder(dir, device).unwrap();
    let ids = common::ints2(&case["ids"]);
    let mask = common::ints2(&case["mask"]);
    let (b, t) = (ids.len(), ids[0].len());
    let flat_ids: Vec<i64> = ids.concat();
    let flat_mask: Vec<f32> = mask.concat().into_iter().map(|m| m as f32).collect();
    let ids_t = Tensor::<2, Int>::from_data(TensorData::new(flat_ids, [b, t]), device);
    let mask_t = Tensor::<2>::from_data(TensorData::new(flat_mask.clone(), [b, t]), device);
    let hidden = loaded.encoder.forward(ids_t, mask_t, false);
    let [hb, ht, hh] = hidden.dims();
    let got: Vec<f32> = hidden.try_into_vec_as::<f32>().unwrap();
    let (want, shape) = common::floats3(&case["hidden"]);
    assert_eq!([hb, ht, hh], shape);
    let mut max = 0f32;
    for i in 0..b * t {
        if flat_mask[i] == 0.0 {
            continue;
        }
        for k in 0..hh {
            max = max.max((got[i * hh + k] - want[i * hh + k]).abs());
        }
    }
    max
}

fn libtorch() -> Device {
    DeviceSpec::Cpu.device()
}

#[test]
fn tiny_bert_matches_transformers() {
    let r = common::refs();
    let d = max_diff_on_tokens(&r.root.join("bert"), &r.json["bert"], &libtorch());
    assert!(d <= 1e-4, "max abs diff {d}");
}

#[test]
fn tiny_roberta_matches_transformers() {
    let r = common::refs();
    let d = max_diff_on_tokens(&r.root.join("roberta"), &r.json["roberta"], &libtorch());
    assert!(d <= 1e-4, "max abs diff {d}");
}

#[test]
fn tiny_bert_matches_transformers_on_flex() {
    let r = common::refs();
    let d = max_diff_on_tokens(&r.root.join("bert"), &r.json["bert"], &Device::flex());
    assert!(d <= 1e-4, "max abs diff {d}");
}

#[test]
fn minilm_matches_transformers() {
    let r = common::refs();
    let d = max_diff_on_tokens(&common::minilm_dir(), &r.json["minilm"], &libtorch());
    assert!(d <= 1e-4, "max abs diff {d}");
}

#[test]
fn minilm_tokenizer_ids_match_transformers() {
    let r = common::refs();
    let case = &r.json["minilm"];
    let tok = SubwordTokenizer::from_file(&common::minilm_dir().join("tokenizer.json")).unwrap();
    let want = common::ints2(&case["ids"]);
    for (i, words) in case["words"].as_array().unwrap().iter().enumerate() {
        let words: Vec<&str> = words
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        let pieces = tok.word_pieces(&words).unwrap();
        let mut ids: Vec<i64> = tok.prefix().iter().map(|x| i64::from(*x)).collect();
        ids.extend(pieces.iter().flatten().map(|x| i64::from(*x)));
        ids.extend(tok.suffix().iter().map(|x| i64::from(*x)));
        let n = ids.len();
        assert_eq!(ids, want[i][..n].to_vec(), "sentence {i}");
        assert!(
            want[i][n..].iter().all(|x| *x == 0),
            "HF has more tokens for sentence {i}"
        );
    }
}

#[test]
fn loading_reports_unused_keys() {
    let r = common::refs();
    let loaded = load_hf_encoder(&r.root.join("roberta"), &libtorch()).unwrap();
    assert!(
        loaded
            .report
            .unused
            .iter()
            .any(|k| k.starts_with("lm_head.")),
        "{:?}",
        loaded.report.unused
    );
    let bert = load_hf_encoder(&r.root.join("bert"), &libtorch()).unwrap();
    assert!(
        bert.report.unused.iter().any(|k| k.starts_with("pooler.")),
        "{:?}",
        bert.report.unused
    );
    // 2 layers x 16 tensors + 5 embedding tensors.
    assert_eq!(bert.report.applied.len(), 2 * 16 + 5);
}

#[test]
fn missing_encoder_weights_are_a_typed_error() {
    let r = common::refs();
    let err = load_hf_encoder(&r.root.join("broken"), &libtorch()).unwrap_err();
    match err {
        TaggerError::MissingWeights { missing, .. } => {
            assert_eq!(missing, vec!["layers.1.output_norm.gamma".to_string()]);
        }
        other => panic!("expected MissingWeights, got {other}"),
    }
}
