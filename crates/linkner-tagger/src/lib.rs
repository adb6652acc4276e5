//! # linkner-tagger
//!
//! The local models of linkner, implementations of `linkner_core::LocalTagger` (sentences in,
//! candidate entities with word spans, char offsets and full label distributions out; the trait,
//! its `PredictOptions`, `TaggerError` and the word splitter live in `linkner-core`, their one
//! path): [`SpanTagger`], a SpanNER head on a BERT/RoBERTa encoder loaded from a Hugging Face folder
//! (`config.json`, `model.safetensors`, `tokenizer.json`).
//!
//! | module | what |
//! |---|---|
//! | [`encoder`] | BERT/RoBERTa in burn, weights through `burn::store` with key remapping |
//! | [`span`] | [`SpanTagger`]: loading and saving, window preparation, scoring passes, decoding, the SpanNER module |
//! | [`token_class`] | [`TokenClassTagger`]: Hugging Face `*ForTokenClassification` checkpoints as a `LocalTagger` |
//! | [`retrieval`] | span embeddings from the encoder and a nearest-neighbour index of labelled spans |
//! | [`checkpoint`] | [`TaggerKind`] of a folder, [`AnyTagger`] (either kind), [`checkpoint_schema`] |
//! | [`loss`] | span cross-entropy and the evidential (E-NER) loss |
//! | [`train`](mod@train) | fine-tuning with AdamW, warm-up/decay, clipping, early stopping |
//!
//! Both taggers share the float precision of a pass ([`Precision`]) and the scheduler of
//! concurrent CPU streams (private modules `precision` and `streams`).
//!
//! Internals (sub-word tokenisation and windowing, span enumeration and shape features, window
//! preparation and batching, dropout with an explicit switch, and the taggers' benchmark hooks)
//! are reached through one `#[doc(hidden)]` module, `internals`: by this workspace's tests and
//! benchmarks, not part of the supported API.
//!
//! Backend: LibTorch through `burn-tch` (CPU or CUDA, feature `tch`, on by default) or burn's
//! pure-Rust `flex` backend; see [`DeviceSpec`].

pub mod checkpoint;
pub mod device;
mod dropout;
pub mod encoder;
mod error;
#[doc(hidden)]
pub mod internals;
pub mod locate;
pub mod loss;
mod precision;
pub mod retrieval;
pub mod span;
mod streams;
pub mod token_class;
mod tokenize;
pub mod train;

pub use checkpoint::{AnyTagger, TaggerKind, checkpoint_schema};
pub use device::{
    DeviceSpec, cuda_device_count, default_batch_size, default_threads, set_threads, threads,
};
pub use locate::{default_encoder_dir, default_model_dir};
pub use loss::LossConfig;
pub use precision::Precision;
pub use span::{DocumentContext, Evidence, HeadOptions, ScoredSpan, SpanTagger, TaggerConfig};
pub use token_class::TokenClassTagger;
pub use train::{
    EpochReport, PhaseSeconds, TrainConfig, TrainObserver, TrainReport, score_tagger,
    score_tagger_documents, train, train_documents,
};
