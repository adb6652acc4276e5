//! Fine-tuning a [`SpanTagger`]: AdamW with linear warm-up and decay, gradient clipping,
//! span cross-entropy with a down-weighted non-entity class or the evidential loss, early
//! stopping on dev F1, seeded, length-bucketed batches.

use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use linkner_core::score::{Mode, Scorer};
use linkner_core::{Document, Sentence, WordSpan};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TaggerError};
use crate::loss::{LossConfig, evidential_loss, weighted_cross_entropy};
use crate::prepare::{WindowItem, build_batch, length_buckets, prepare_document};
use crate::span::out_of_reach;
use crate::tagger::{LocalTagger, PredictOptions, SpanTagger};

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

struct IdCollector(Vec<ParamId>);

impl ModuleVisitor for IdCollector {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.id);
    }
}

fn param_ids<M: Module>(module: &M) -> Vec<ParamId> {
    let mut c = IdCollector(Vec::new());
    module.visit(&mut c);
    c.0
}

fn lr_at(step: usize, total: usize, warmup: usize, peak: f64) -> f64 {
    if step < warmup {
        peak * (step + 1) as f64 / warmup.max(1) as f64
    } else {
        let rest = total.saturating_sub(warmup).max(1);
        peak * (1.0 - (step - warmup) as f64 / rest as f64).max(0.0)
    }
}

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
/// ([`crate::prepare::DocumentContext`]), windows are filled with the neighbouring sentences of
/// each document, in training and in the evaluation. Returns the tagger of the best dev epoch
/// (or of the last epoch without dev data).
pub fn train_documents(
    tagger: SpanTagger,
    train: &[Document],
    dev: &[Document],
    config: &TrainConfig,
    observer: &mut dyn TrainObserver,
) -> Result<(SpanTagger, TrainReport)> {
    if config.epochs == 0 || config.batch_size == 0 {
        return Err(TaggerError::InvalidArgument(
            "epochs and batch_size must be > 0".into(),
        ));
    }
    if !(config.learning_rate > 0.0 && config.learning_rate.is_finite()) {
        return Err(TaggerError::InvalidArgument(
            "learning_rate must be > 0".into(),
        ));
    }
    if !(config.head_lr_multiplier > 0.0 && config.head_lr_multiplier.is_finite()) {
        return Err(TaggerError::InvalidArgument(
            "head_lr_multiplier must be > 0".into(),
        ));
    }
    if !(0.0..=1.0).contains(&config.warmup_ratio) {
        return Err(TaggerError::InvalidArgument(
            "warmup_ratio must be in [0, 1]".into(),
        ));
    }
    if !(config.non_entity_weight >= 0.0 && config.non_entity_weight.is_finite()) {
        return Err(TaggerError::InvalidArgument(
            "non_entity_weight must be >= 0".into(),
        ));
    }
    let mut tagger = tagger;
    if let LossConfig::Evidential { evidence, .. } = config.loss {
        tagger.config.evidential = Some(evidence);
    } else {
        tagger.config.evidential = None;
    }
    let device: Device = tagger.device.clone();
    device.seed(config.seed);
    let mut rng = StdRng::seed_from_u64(config.seed);

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
    let num_classes = schema.num_classes();
    let order: Vec<usize> = (0..items.len()).collect();
    let steps_per_epoch = length_buckets(&items, &order, config.batch_size, usize::MAX).len();
    let total_steps = steps_per_epoch * config.epochs;
    let warmup = (config.warmup_ratio * total_steps as f64).round() as usize;
    observer.on_start(config.epochs, steps_per_epoch, num_train_sentences);

    let ad_device = device.clone().autodiff();
    let mut model = tagger.model.clone().fork(&ad_device).train();
    let mut optim_config = AdamWConfig::new().with_weight_decay(config.weight_decay);
    if config.max_grad_norm > 0.0 {
        optim_config = optim_config
            .with_grad_clipping(Some(GradientClippingConfig::Norm(config.max_grad_norm)));
    }
    // Two AdamW instances: the pretrained encoder at the base rate, the new classifier at
    // `head_lr_multiplier` times it.
    let mut optim_encoder = optim_config.init();
    let mut optim_head = optim_config.init();
    let encoder_ids = param_ids(&model.encoder);
    let head_ids: Vec<ParamId> = param_ids(&model)
        .into_iter()
        .filter(|id| !encoder_ids.contains(id))
        .collect();
    let pad = tagger.pad_id();

    let mut reports: Vec<EpochReport> = Vec::new();
    let mut best: Option<(f64, usize, SpanTagger)> = None;
    let mut step = 0usize;
    let mut since_best = 0usize;
    for epoch in 1..=config.epochs {
        let started = Instant::now();
        // Length buckets over a shuffled order; batches themselves in random order.
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.shuffle(&mut rng);
        let mut batches = length_buckets(&items, &order, config.batch_size, usize::MAX);
        batches.shuffle(&mut rng);
        let mut loss_sum = 0.0f64;
        let mut seen = 0usize;
        let mut phases = PhaseSeconds::default();
        for (bi, batch_idx) in batches.iter().enumerate() {
            let t_batch = Instant::now();
            let batch_items: Vec<&WindowItem> = batch_idx.iter().map(|&i| &items[i]).collect();
            let batch = build_batch(&batch_items, pad, &ad_device);
            let labels: Vec<i64> = batch_items
                .iter()
                .flat_map(|it| it.labels.iter().map(|l| *l as i64))
                .collect();
            let n = labels.len();
            let weights: Vec<f32> = labels
                .iter()
                .map(|l| {
                    if *l == 0 {
                        config.non_entity_weight
                    } else {
                        1.0
                    }
                })
                .collect();
            let weights_t = Tensor::<1>::from_data(TensorData::new(weights, [n]), &ad_device);
            let t_forward = Instant::now();
            phases.batch += (t_forward - t_batch).as_secs_f64();
            let logits = model.forward(&batch, true, true);
            let loss = match config.loss {
                LossConfig::Ce => {
                    let targets =
                        Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &ad_device);
                    weighted_cross_entropy(logits, targets, weights_t)
                }
                LossConfig::Evidential {
                    evidence,
                    anneal_epochs,
                    uncertainty_weight,
                } => {
                    let mut oh = vec![0f32; n * num_classes];
                    for (k, l) in labels.iter().enumerate() {
                        oh[k * num_classes + *l as usize] = 1.0;
                    }
                    let one_hot =
                        Tensor::<2>::from_data(TensorData::new(oh, [n, num_classes]), &ad_device);
                    let progress = (epoch - 1) as f64 + bi as f64 / batches.len().max(1) as f64;
                    let anneal = if anneal_epochs > 0.0 {
                        (progress / anneal_epochs).min(1.0)
                    } else {
                        1.0
                    };
                    evidential_loss(
                        logits,
                        one_hot,
                        weights_t,
                        evidence,
                        anneal,
                        uncertainty_weight * anneal,
                    )
                }
            };
            let loss_value: f64 = loss
                .clone()
                .try_into_scalar::<f32>()
                .map_err(TaggerError::tensor)? as f64;
            if !loss_value.is_finite() {
                return Err(TaggerError::InvalidArgument(format!(
                    "training diverged: loss {loss_value} at epoch {epoch}, step {bi}"
                )));
            }
            let t_backward = Instant::now();
            phases.forward += (t_backward - t_forward).as_secs_f64();
            let mut grads = loss.backward();
            let t_optimizer = Instant::now();
            phases.backward += (t_optimizer - t_backward).as_secs_f64();
            let grads_encoder = GradientsParams::from_params(&mut grads, &model, &encoder_ids);
            let grads_head = GradientsParams::from_params(&mut grads, &model, &head_ids);
            let lr = lr_at(step, total_steps, warmup, config.learning_rate);
            model = optim_encoder.step(lr, model, grads_encoder);
            model = optim_head.step(lr * config.head_lr_multiplier, model, grads_head);
            phases.optimizer += t_optimizer.elapsed().as_secs_f64();
            step += 1;
            loss_sum += loss_value;
            let sentences: usize = batch_items.iter().map(|it| it.sentences).sum();
            seen += sentences;
            observer.on_step(epoch, bi + 1, loss_value, sentences);
        }
        let train_seconds = started.elapsed().as_secs_f64();
        tagger.model = model.valid();
        let (p, r, f) = if dev.is_empty() {
            (None, None, None)
        } else {
            let s = score_tagger_documents(&tagger, dev, 64)?;
            (Some(s.precision), Some(s.recall), Some(s.f1))
        };
        let report = EpochReport {
            epoch,
            train_loss: loss_sum / batches.len().max(1) as f64,
            dev_precision: p,
            dev_recall: r,
            dev_f1: f,
            train_seconds,
            sentences_per_second: seen as f64 / train_seconds.max(1e-9),
            phases,
        };
        observer.on_epoch(&report);
        reports.push(report);
        let score = f.unwrap_or(epoch as f64);
        if best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, epoch, tagger.clone()));
            since_best = 0;
        } else {
            since_best += 1;
            if config.patience > 0 && since_best >= config.patience {
                tracing::info!(epoch, "early stopping: dev F1 did not improve");
                break;
            }
        }
    }
    let (best_epoch, best_tagger) = match best {
        Some((_, e, t)) => (e, t),
        None => (reports.len(), tagger),
    };
    Ok((
        best_tagger,
        TrainReport {
            epochs: reports,
            best_epoch,
            out_of_reach_train: unreachable,
            train_entities,
        },
    ))
}
