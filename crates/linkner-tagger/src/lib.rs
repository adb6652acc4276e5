//! # linkner-tagger
//!
//! The local model of linkner: the [`LocalTagger`] trait (sentences in, candidate entities with
//! word spans, char offsets and full label distributions out) and its burn implementation
//! [`SpanTagger`], a SpanNER head on a BERT/RoBERTa encoder loaded from a Hugging Face folder
//! (`config.json`, `model.safetensors`, `tokenizer.json`).
//!
//! | module | what |
//! |---|---|
//! | [`encoder`] | BERT/RoBERTa in burn, weights through `burn::store` with key remapping |
//! | [`words`] | raw text → words with exact char offsets (Unicode-aware) |
//! | [`tokenize`] | words → sub-tokens; long sentences → overlapping windows |
//! | [`span`] | span enumeration, word-shape features |
//! | [`model`] | the SpanNER module |
//! | [`tagger`] | [`LocalTagger`], [`SpanTagger`], decoding, checkpoints |
//! | [`loss`] | span cross-entropy and the evidential (E-NER) loss |
//! | [`train`](mod@train) | fine-tuning with AdamW, warm-up/decay, clipping, early stopping |
//! | [`dropout`] | dropout with an explicit switch (Monte-Carlo dropout at inference) |
//!
//! Backend: LibTorch through `burn-tch` (CPU or CUDA, feature `tch`, on by default) or burn's
//! pure-Rust `flex` backend; see [`DeviceSpec`].

pub mod device;
pub mod dropout;
pub mod encoder;
pub mod error;
pub mod locate;
pub mod loss;
pub mod model;
pub mod prepare;
pub mod span;
pub mod tagger;
pub mod tokenize;
pub mod train;
pub mod words;

pub use device::{DeviceSpec, set_threads};
pub use error::{Result, TaggerError};
pub use locate::{default_encoder_dir, default_model_dir};
pub use loss::LossConfig;
pub use tagger::{
    Evidence, HeadOptions, LocalTagger, Precision, PredictOptions, ScoredSpan, SpanTagger,
    TaggerConfig,
};
pub use train::{EpochReport, TrainConfig, TrainObserver, TrainReport, evaluate, train};
pub use words::{sentence_from_text, split_words};
