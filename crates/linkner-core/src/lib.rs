//! # linkner-core
//!
//! The data layer of [linkner](https://example.invalid/linkner): everything that is not machine
//! learning and not network.
//!
//! - [`text`]: [`Sentence`] and [`Document`] — words with their **char offsets** into the
//!   caller's original string (see the offset contract below).
//! - [`candidate`]: [`Candidate`] — a tagger's predicted entity with its full label
//!   distribution (logits, probabilities, Monte-Carlo samples, Dirichlet parameters).
//! - [`entity`]: [`Entity`] (char span, text, label, score) and its word-span form [`WordSpan`].
//! - [`schema`]: [`LabelSchema`] — ordered entity types with human descriptions and the names an
//!   LLM sees, plus the non-entity class; built-ins for CoNLL-03, WNUT-17, TwitterNER, OntoNotes 5,
//!   JSON/TOML schema files, and schemas inferred from labelled data.
//! - [`tagger`]: the [`LocalTagger`] trait every local model implements (the built-in ones live
//!   in `linkner-tagger`), its [`PredictOptions`] and [`TaggerError`]; [`words`] splits raw text
//!   into words with exact char offsets.
//! - [`tags`]: BIO-family tag parsing and chunking (conlleval rules, and seqeval's strict mode).
//! - [`io`]: readers and writers for CoNLL column files, the LinkNER "spanner" JSON format and
//!   JSONL (one sentence per line, char offsets, scored entities). Errors name the file, the line
//!   and what was expected.
//! - [`prob`]: the one softmax (log-sum-exp in `f64`) every crate uses.
//! - [`score`]: exact-match entity precision / recall / F1, micro and per type, identical to
//!   conlleval and to Python `seqeval`'s default mode.
//!
//! ## The char-offset contract
//!
//! Every offset in linkner is a **char offset** (a count of Unicode scalar values, what
//! `str::chars()` yields) into the caller's original string, with exclusive end:
//! `text.chars().skip(start).take(end - start)` is the entity's text. Offsets never count bytes,
//! UTF-16 units or grapheme clusters, and text is never normalised before offsets are computed, so
//! accents, combining marks, CJK, emoji and zero-width characters keep their positions.

pub mod candidate;
pub mod entity;
pub mod error;
pub mod io;
pub mod prob;
pub mod schema;
pub mod score;
pub mod tagger;
pub mod tags;
pub mod text;
pub mod words;

pub use candidate::Candidate;
pub use entity::{Entity, WordSpan};
pub use error::{BoxError, CoreError, Result, error_chain};
pub use schema::{EntityType, LabelSchema};
pub use tagger::{LocalTagger, PredictOptions, TaggerError};
pub use tags::{Tag, TagScheme};
pub use text::{Document, Sentence, Token};
pub use words::{sentence_from_text, split_words};
