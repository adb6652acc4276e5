//! Scores of a tagger on labelled data: [`score_tagger`], [`score_tagger_documents`], and the
//! report of a training epoch with its dev scores.

use linkner_core::score::{Mode, Scorer};
use linkner_core::{Document, Sentence, WordSpan};

use super::EpochReport;
use super::step::EpochRun;
use crate::error::Result;
use crate::span::SpanTagger;
use linkner_core::{LocalTagger, PredictOptions};

/// Entity-level exact-match scores of `tagger` on labelled `sentences`, through the
/// `linkner-core` scorer (conlleval counting).
pub fn score_tagger(
    tagger: &dyn LocalTagger,
    sentences: &[Sentence],
    batch_size: usize,
) -> Result<linkner_core::score::Scores> {
    let options = PredictOptions {
        batch_size,
        ..PredictOptions::default()
    };
    let cands = tagger.tag_sentences(sentences, &options)?;
    let mut scorer = Scorer::new(Mode::Conlleval);
    for (s, c) in sentences.iter().zip(cands) {
        let pred: Vec<WordSpan> = c.into_iter().map(|c| c.span).collect();
        scorer.add_spans(&s.spans, &pred)?;
    }
    Ok(scorer.finish())
}

/// Like [`score_tagger`], for the sentences of documents: a tagger with document context reads
/// each document's sentences together ([`LocalTagger::tag_documents`]).
pub fn score_tagger_documents(
    tagger: &dyn LocalTagger,
    documents: &[Document],
    batch_size: usize,
) -> Result<linkner_core::score::Scores> {
    let options = PredictOptions {
        batch_size,
        ..PredictOptions::default()
    };
    let cands = tagger.tag_documents(documents, &options)?;
    let mut scorer = Scorer::new(Mode::Conlleval);
    for (d, c) in documents.iter().zip(cands) {
        for (s, c) in d.sentences.iter().zip(c) {
            let pred: Vec<WordSpan> = c.into_iter().map(|c| c.span).collect();
            scorer.add_spans(&s.spans, &pred)?;
        }
    }
    Ok(scorer.finish())
}

/// Each sentence as a document of its own (no document context).
pub fn single_sentence_documents(sentences: &[Sentence]) -> Vec<Document> {
    sentences
        .iter()
        .map(|s| Document {
            id: None,
            sentences: vec![s.clone()],
        })
        .collect()
}

/// The report of epoch `epoch` (1-based): its training figures and, when `dev` is not empty,
/// the scores of `tagger` (the model after the epoch) on the `dev` documents.
pub(super) fn epoch_report(
    tagger: &SpanTagger,
    dev: &[Document],
    epoch: usize,
    run: EpochRun,
) -> Result<EpochReport> {
    let (p, r, f) = if dev.is_empty() {
        (None, None, None)
    } else {
        let s = score_tagger_documents(tagger, dev, 64)?;
        (Some(s.precision), Some(s.recall), Some(s.f1))
    };
    Ok(EpochReport {
        epoch,
        train_loss: run.loss_sum / run.batches.max(1) as f64,
        dev_precision: p,
        dev_recall: r,
        dev_f1: f,
        train_seconds: run.train_seconds,
        sentences_per_second: run.sentences as f64 / run.train_seconds.max(1e-9),
        phases: run.phases,
    })
}
