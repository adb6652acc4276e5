//! # linkner-uncertainty
//!
//! Scores how unsure the local tagger is about each candidate entity, so that the linker sends
//! only uncertain entities to the LLM: the `UncertaintyEstimator` trait, the built-in
//! confidence, entropy, Monte-Carlo dropout and evidential estimators, and their quality metrics
//! (AUROC, AURC, ECE, coverage curves).
//!
//! Status: the crate is being built (see the uncertainty issue).
