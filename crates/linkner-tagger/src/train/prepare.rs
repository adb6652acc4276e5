//! The training windows of a [`SpanTagger`]: every document prepared with gold classes, windows
//! without spans dropped, gold entities counted (and those wider than the max span width).

use linkner_core::Document;

use crate::error::{Result, TaggerError};
use crate::span::SpanTagger;
use crate::span::features::out_of_reach;
use crate::span::prepare::{WindowItem, prepare_document};

/// The prepared training data.
pub(super) struct TrainingSet {
    /// Windows with at least one span, with gold classes.
    pub(super) items: Vec<WindowItem>,
    /// Training sentences.
    pub(super) sentences: usize,
    /// Gold training entities.
    pub(super) entities: usize,
    /// Gold training entities wider than the max span width (never predictable).
    pub(super) unreachable: usize,
}

/// The windows of the `train` documents, with gold classes; an error when no sentence has a
/// word (or a gold label is not in the tagger's schema).
pub(super) fn training_set(tagger: &SpanTagger, train: &[Document]) -> Result<TrainingSet> {
    let opts = tagger.prepare_options();
    let schema = tagger.config.schema.clone();
    let mut items: Vec<WindowItem> = Vec::new();
    let mut train_entities = 0usize;
    let mut unreachable = 0usize;
    let mut first = 0usize;
    for doc in train {
        for s in &doc.sentences {
            train_entities += s.spans.len();
            unreachable += out_of_reach(&s.spans, opts.max_span_width);
        }
        items.extend(prepare_document(
            first,
            &doc.sentences,
            &tagger.tokenizer,
            &opts,
            Some(&schema),
        )?);
        first += doc.sentences.len();
    }
    let num_train_sentences = first;
    items.retain(|it| !it.spans.is_empty());
    if items.is_empty() {
        return Err(TaggerError::InvalidArgument(
            "no training sentence has a word".into(),
        ));
    }
    if unreachable > 0 {
        tracing::warn!(
            unreachable,
            train_entities,
            max_span_width = opts.max_span_width,
            "gold entities wider than the max span width cannot be learnt"
        );
    }
    Ok(TrainingSet {
        items,
        sentences: num_train_sentences,
        entities: train_entities,
        unreachable,
    })
}
