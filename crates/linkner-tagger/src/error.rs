//! The error type of `linkner-tagger` is `linkner_core::TaggerError` (its one path), defined
//! next to the `LocalTagger` trait so that taggers written outside linkner can return it without
//! depending on this crate; this private module names it for the crate's own code.

pub(crate) use linkner_core::tagger::{Result, TaggerError};
