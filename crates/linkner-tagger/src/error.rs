//! The error type of `linkner-tagger`: [`TaggerError`], defined in `linkner-core` next to the
//! [`LocalTagger`](linkner_core::tagger::LocalTagger) trait so that taggers written outside
//! linkner can return it without depending on this crate.

pub use linkner_core::tagger::{BoxError, Result, TaggerError};
