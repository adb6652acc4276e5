//! # linkner
//!
//! LinkNER (Zhang et al., WWW 2024) in Rust: a small fine-tuned local span tagger finds entities,
//! an uncertainty estimator scores each one, and entities above a threshold go to a large
//! language model that re-classifies them or rejects them as non-entities.
//!
//! This crate is the thin linker that composes the others; it re-exports them:
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`core`] | `linkner-core` | sentences, entities with char offsets, label schemas, readers, scorer |
//! | [`tagger`] | `linkner-tagger` | the `LocalTagger` trait and the burn SpanNER model |
//! | [`uncertainty`] | `linkner-uncertainty` | the `UncertaintyEstimator` trait and built-ins |
//! | [`llm`] | `linkner-llm` | the `LlmClassifier` trait and the OpenAI-compatible backend |
//!
//! Status: the pipeline is being built (see the linker issue).

pub use linkner_core as core;
pub use linkner_llm as llm;
pub use linkner_tagger as tagger;
pub use linkner_uncertainty as uncertainty;
