//! Fine-tuning a [`SpanTagger`]: AdamW with linear warm-up and decay, gradient clipping,
//! span cross-entropy with a down-weighted non-entity class or the evidential loss, early
//! stopping on dev F1, seeded, length-bucketed batches.
//!
//! [`train_documents`] runs the steps of its files in turn: `validate.rs` (the configuration),
//! `prepare.rs` (the training windows), `step.rs` (the optimisers and one step per batch),
//! `evaluate.rs` (dev scores after each epoch, and [`score_tagger`]), `early_stop.rs` (the best
//! epoch and patience).

mod early_stop;
mod evaluate;
mod prepare;
mod step;
mod validate;

use burn::module::Module;
use linkner_core::{Document, Sentence};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::loss::LossConfig;
use crate::span::SpanTagger;
pub use evaluate::{score_tagger, score_tagger_documents, single_sentence_documents};

/// Training hyper-parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Windows (≈ sentences) per batch.
    pub batch_size: usize,
    /// Peak learning rate of the encoder.
    pub learning_rate: f64,
    /// Peak learning rate multiplier for the (randomly initialised) span classifier.
    pub head_lr_multiplier: f64,
    /// Fraction of the steps spent warming up linearly from 0.
    pub warmup_ratio: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f32,
    /// Per-parameter gradient-norm clipping threshold (0 disables).
    pub max_grad_norm: f32,
    /// Weight of non-entity spans in the loss (entity spans weigh 1).
    pub non_entity_weight: f32,
    /// The loss.
    pub loss: LossConfig,
    /// Seed of shuffling, initialisation and dropout.
    pub seed: u64,
    /// Stop after this many epochs without a better dev F1 (0: never stop early).
    pub patience: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 5,
            batch_size: 32,
            learning_rate: 5e-5,
            head_lr_multiplier: 20.0,
            warmup_ratio: 0.1,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            non_entity_weight: 0.5,
            loss: LossConfig::Ce,
            seed: 42,
            patience: 2,
        }
    }
}

/// Where the training time of an epoch went, in seconds. LibTorch on the CPU runs each
/// operation when it is called, so the phases are exact there; on CUDA the forward phase ends
/// with the loss read back to the host (a sync), and kernels queued by the later phases may be
/// counted in the next one.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct PhaseSeconds {
    /// Building the batch tensors (ids, mask, span indices, features, labels) on the host.
    pub batch: f64,
    /// Forward pass (encoder, span classifier) and loss, until the loss is read back.
    pub forward: f64,
    /// Backward pass.
    pub backward: f64,
    /// Gradient clipping and the AdamW steps.
    pub optimizer: f64,
}

/// Scores of one epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Dev micro precision / recall / F1 (exact match), when a dev set was given.
    pub dev_precision: Option<f64>,
    /// Dev recall.
    pub dev_recall: Option<f64>,
    /// Dev F1.
    pub dev_f1: Option<f64>,
    /// Seconds spent training (evaluation excluded).
    pub train_seconds: f64,
    /// Training sentences per second.
    pub sentences_per_second: f64,
    /// Where the training time went.
    #[serde(default)]
    pub phases: PhaseSeconds,
}

/// What a training run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// Per-epoch figures.
    pub epochs: Vec<EpochReport>,
    /// Epoch of the returned model (the best on dev, or the last without dev).
    pub best_epoch: usize,
    /// Gold training entities wider than the max span width (never predictable).
    pub out_of_reach_train: usize,
    /// Gold training entities in total.
    pub train_entities: usize,
}

/// Receives progress while training (the CLI draws a progress bar from it).
pub trait TrainObserver {
    /// Training starts: `steps_per_epoch` batches per epoch, `sentences` per epoch.
    fn on_start(&mut self, _epochs: usize, _steps_per_epoch: usize, _sentences: usize) {}
    /// One optimizer step of `epoch` is done, covering `sentences` sentences.
    fn on_step(&mut self, _epoch: usize, _step: usize, _loss: f64, _sentences: usize) {}
    /// An epoch is done (evaluation included).
    fn on_epoch(&mut self, _report: &EpochReport) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl TrainObserver for Silent {}

/// Fine-tunes `tagger` on `train`, evaluating on `dev` after each epoch; returns the tagger of
/// the best dev epoch (or of the last epoch without dev data). Every sentence is encoded alone;
/// [`train_documents`] gives the sentences of documents their neighbours as context.
pub fn train(
    tagger: SpanTagger,
    train: &[Sentence],
    dev: &[Sentence],
    config: &TrainConfig,
    observer: &mut dyn TrainObserver,
) -> Result<(SpanTagger, TrainReport)> {
    train_documents(
        tagger,
        &single_sentence_documents(train),
        &single_sentence_documents(dev),
        config,
        observer,
    )
}

/// Fine-tunes `tagger` on the sentences of the `train` documents, evaluating on the `dev`
/// documents after each epoch; with the tagger's document context on
/// ([`crate::DocumentContext`]), windows are filled with the neighbouring sentences of
/// each document, in training and in the evaluation. Returns the tagger of the best dev epoch
/// (or of the last epoch without dev data).
pub fn train_documents(
    mut tagger: SpanTagger,
    train: &[Document],
    dev: &[Document],
    config: &TrainConfig,
    observer: &mut dyn TrainObserver,
) -> Result<(SpanTagger, TrainReport)> {
    validate::check(config)?;
    if let LossConfig::Evidential { evidence, .. } = config.loss {
        tagger.config.evidential = Some(evidence);
    } else {
        tagger.config.evidential = None;
    }
    let device = tagger.device.clone();
    device.seed(config.seed);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let set = prepare::training_set(&tagger, train)?;
    let schedule = step::Schedule::new(&set.items, config);
    observer.on_start(config.epochs, schedule.steps_per_epoch, set.sentences);

    let (mut model, mut trainer) = step::Trainer::new(&tagger, &device, config, schedule);
    let mut reports: Vec<EpochReport> = Vec::new();
    let mut stop = early_stop::EarlyStop::new(config.patience);
    for epoch in 1..=config.epochs {
        let (trained, epoch_run) = trainer.epoch(model, epoch, &set.items, &mut rng, observer)?;
        model = trained;
        tagger.model = model.valid();
        let report = evaluate::epoch_report(&tagger, dev, epoch, epoch_run)?;
        observer.on_epoch(&report);
        let score = report.dev_f1.unwrap_or(epoch as f64);
        reports.push(report);
        if stop.stops_after(score, epoch, &tagger) {
            break;
        }
    }
    let (best_epoch, best_tagger) = stop.best(reports.len(), tagger);
    Ok((
        best_tagger,
        TrainReport {
            epochs: reports,
            best_epoch,
            out_of_reach_train: set.unreachable,
            train_entities: set.entities,
        },
    ))
}
