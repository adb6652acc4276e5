//! The span tagger's public types under the path they had before the crate was laid out by
//! concern (`linkner_tagger::tagger::…`): [`LocalTagger`] with its options, and [`SpanTagger`]
//! with what goes with it, which live in [`crate::span`] (the SpanNER tagger) and
//! [`Precision`] (shared by both taggers).

pub use crate::precision::Precision;
pub use crate::span::{
    Evidence, HeadOptions, ScoredSpan, SpanTagger, TaggerConfig, decode_spans, files,
};
pub use linkner_core::tagger::{LocalTagger, PredictOptions};
