//! The span-F1 scorer.
