//! Helpers shared by the CLI's end-to-end tests: the MiniLM encoder of the venv, a tiny CoNLL
//! training set and the built `linkner` binary.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The all-MiniLM-L6-v2 folder ([`linkner::tagger::default_encoder_dir`]).
pub fn minilm() -> PathBuf {
    linkner::tagger::default_encoder_dir()
        .expect("all-MiniLM-L6-v2 in the venv (or LINKNER_ENCODER); run scripts/setup-python.sh")
}

/// Four CoNLL sentences (IOB2, one TAB-separated line).
pub const TRAIN: &str = "EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n\nPeter B-PER\nBlackburn I-PER\n\n\
BRUSSELS B-LOC\n1996-08-22 O\n\nJapan B-LOC\nbeat O\nSyria B-LOC\n.\tO\n";

/// The `linkner` binary built for these tests.
pub fn linkner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_linkner"))
}
