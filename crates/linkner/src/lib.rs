//! # linkner
//!
//! LinkNER (Zhang et al., WWW 2024) in Rust: a small fine-tuned local span tagger finds entities,
//! an uncertainty estimator scores each one, and entities above a threshold go to a large
//! language model that re-classifies them or rejects them as non-entities.
//!
//! This crate is the thin linker that composes the others:
//!
//! - [`Pipeline`] (built with [`Pipeline::builder`] or from a [`LinkConfig`] file): any
//!   [`LocalTagger`](core::LocalTagger), any
//!   [`UncertaintyEstimator`](uncertainty::UncertaintyEstimator), any
//!   [`LlmClassifier`](llm::LlmClassifier) and a [`RoutingPolicy`]; async
//!   [`annotate`](Pipeline::annotate), [`annotate_batch`](Pipeline::annotate_batch),
//!   [`annotate_sentences`](Pipeline::annotate_sentences) and
//!   [`annotate_stream`](Pipeline::annotate_stream); `Send + Sync`, usable from many tasks.
//! - [`Pipeline::stream`]: any `futures::Stream` of documents with the caller's ids, tagged in
//!   micro-batches, each document written as soon as it is ready, memory bounded ([`stream`]);
//!   a [`RoutingBudget`] bounds the LLM's load and each document's latency, most uncertain
//!   entities first ([`budget`]).
//! - Every output entity carries its [`Provenance`] (local, LLM-confirmed, LLM-relabelled,
//!   LLM-rejected, LLM-failed) and its uncertainty; an LLM failure never loses an entity.
//! - [`StatsSnapshot`]: documents, entities, routed, LLM requests, cache hits, failures,
//!   tokens, time in the tagger, the estimator and the LLM.
//! - [`scoring`]: local-only, linked and oracle-ceiling F1 of one run on labelled data
//!   ([`LinkScorer`]); [`GoldOracle`] stands in for the LLM to measure the ceiling of a routing.
//!
//! It re-exports the other crates as modules (each item keeps the one path of the crate that
//! defines it: `linkner::core::LocalTagger` is `linkner_core::LocalTagger`):
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`core`] | `linkner-core` | sentences, entities with char offsets, label schemas, readers, scorer, the `LocalTagger` trait |
//! | `tagger` | `linkner-tagger` | the burn taggers (SpanNER, token classification), feature `span-tagger` |
//! | [`uncertainty`] | `linkner-uncertainty` | the `UncertaintyEstimator` trait and built-ins |
//! | [`llm`] | `linkner-llm` | the `LlmClassifier` trait and the OpenAI-compatible backend |
//!
//! All offsets are **char offsets into the caller's original string** (see
//! `docs/architecture.md`).

pub mod annotation;
pub mod budget;
#[cfg(all(feature = "span-tagger", feature = "openai"))]
pub mod config;
pub mod error;
pub mod frontier;
#[cfg(feature = "span-tagger")]
pub mod knn;
pub mod merge;
pub mod oracle;
pub mod pipeline;
pub mod policy;
pub mod retrieve;
pub mod scoring;
mod stages;
pub mod stats;
pub mod stream;
pub mod tune;

pub use annotation::{Annotation, LinkedEntity, LlmVerdict, Provenance, Timings};
pub use budget::{BudgetReason, RoutingBudget};
#[cfg(all(feature = "span-tagger", feature = "openai"))]
pub use config::{ExamplesSection, LinkConfig, PipelineSection, TaggerSection};
pub use error::{BuildError, EstimatorViolation, LinkError, Result, TaggerViolation};
pub use frontier::{Frontier, FrontierPoint, TuningRecord};
pub use merge::MergePolicy;
pub use oracle::GoldOracle;
pub use pipeline::{AnnotationStream, Pipeline, PipelineBuilder};
pub use policy::{DEFAULT_THRESHOLD, RouteInput, RoutingPolicy};
pub use retrieve::ExampleRetriever;
pub use scoring::{LinkScorer, LinkScores, score_annotations, spans_at_threshold};
pub use stats::{FailureCounts, RunStats, StatsSnapshot};
pub use stream::{
    Annotations, DocumentOptions, StreamDocument, StreamOptions, StreamOrder, Streamed,
};

/// Re-exported so LLM backends written outside linkner need no direct dependency on it.
pub use linkner_llm::async_trait;

pub use linkner_core as core;
pub use linkner_llm as llm;
/// The built-in burn taggers (the whole `linkner-tagger` crate; feature `span-tagger`, on by
/// default). The `LocalTagger` trait itself is `linkner::core::LocalTagger`, with or without
/// the feature.
#[cfg(feature = "span-tagger")]
pub use linkner_tagger as tagger;
pub use linkner_uncertainty as uncertainty;

/// `docs/writing-an-llm-backend.md`, whose code blocks `cargo test` compiles and runs.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/writing-an-llm-backend.md")]
pub struct WritingAnLlmBackend;
