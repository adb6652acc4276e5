//! One optimisation step per batch: the learning-rate schedule, the two AdamW optimisers (the
//! pretrained encoder at the base rate, the new span classifier at `head_lr_multiplier` times
//! it), the loss of a batch, and an epoch of steps over shuffled length buckets.

use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::{PhaseSeconds, TrainConfig, TrainObserver};
use crate::error::{Result, TaggerError};
use crate::loss::{LossConfig, evidential_loss, weighted_cross_entropy};
use crate::span::SpanNer;
use crate::span::SpanTagger;
use crate::span::batch::{build_batch, length_buckets};
use crate::span::prepare::WindowItem;

/// Collects the ids of a module's float parameters.
struct IdCollector(Vec<ParamId>);

impl ModuleVisitor for IdCollector {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.id);
    }
}

/// The ids of the float parameters of `module`.
fn param_ids<M: Module>(module: &M) -> Vec<ParamId> {
    let mut c = IdCollector(Vec::new());
    module.visit(&mut c);
    c.0
}

/// The learning rate at `step` of `total`: linear warm-up to `peak` over `warmup` steps, then
/// linear decay to 0.
fn lr_at(step: usize, total: usize, warmup: usize, peak: f64) -> f64 {
    if step < warmup {
        peak * (step + 1) as f64 / warmup.max(1) as f64
    } else {
        let rest = total.saturating_sub(warmup).max(1);
        peak * (1.0 - (step - warmup) as f64 / rest as f64).max(0.0)
    }
}

/// The learning-rate schedule: linear warm-up over `warmup` steps, then linear decay to 0 at
/// `total`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule {
    /// Batches per epoch.
    pub(super) steps_per_epoch: usize,
    /// Steps of the whole run.
    total: usize,
    /// Warm-up steps.
    warmup: usize,
}

impl Schedule {
    /// The schedule of `config` over the length buckets of `items`.
    pub(super) fn new(items: &[WindowItem], config: &TrainConfig) -> Schedule {
        let order: Vec<usize> = (0..items.len()).collect();
        let steps_per_epoch = length_buckets(items, &order, config.batch_size, usize::MAX).len();
        let total_steps = steps_per_epoch * config.epochs;
        let warmup = (config.warmup_ratio * total_steps as f64).round() as usize;
        Schedule {
            steps_per_epoch,
            total: total_steps,
            warmup,
        }
    }
}

/// What an epoch of steps did.
pub(super) struct EpochRun {
    /// Sum of the batches' losses.
    pub(super) loss_sum: f64,
    /// Batches run.
    pub(super) batches: usize,
    /// Sentences seen.
    pub(super) sentences: usize,
    /// Seconds spent (evaluation excluded).
    pub(super) train_seconds: f64,
    /// Where the time went.
    pub(super) phases: PhaseSeconds,
}

/// Where a step is: its epoch (1-based), its batch in the epoch and the epoch's batches.
#[derive(Debug, Clone, Copy)]
struct StepAt {
    epoch: usize,
    batch: usize,
    batches: usize,
}

/// The optimisers of a training run and its place in the schedule.
pub(super) struct Trainer<'a> {
    config: &'a TrainConfig,
    schedule: Schedule,
    /// The autodiff device the model trains on.
    device: Device,
    pad: u32,
    num_classes: usize,
    optim_encoder: ModuleOptimizer,
    optim_head: ModuleOptimizer,
    encoder_ids: Vec<ParamId>,
    head_ids: Vec<ParamId>,
    /// Steps done.
    step: usize,
}

impl<'a> Trainer<'a> {
    /// A copy of `tagger`'s model on the autodiff version of `device`, in training mode, and
    /// the trainer of that model.
    pub(super) fn new(
        tagger: &SpanTagger,
        device: &Device,
        config: &'a TrainConfig,
        schedule: Schedule,
    ) -> (SpanNer, Trainer<'a>) {
        let ad_device = device.clone().autodiff();
        let model = tagger.model.clone().fork(&ad_device).train();
        let mut optim_config = AdamWConfig::new().with_weight_decay(config.weight_decay);
        if config.max_grad_norm > 0.0 {
            optim_config = optim_config
                .with_grad_clipping(Some(GradientClippingConfig::Norm(config.max_grad_norm)));
        }
        // Two AdamW instances: the pretrained encoder at the base rate, the new classifier at
        // `head_lr_multiplier` times it.
        let optim_encoder = optim_config.init();
        let optim_head = optim_config.init();
        let encoder_ids = param_ids(&model.encoder);
        let head_ids: Vec<ParamId> = param_ids(&model)
            .into_iter()
            .filter(|id| !encoder_ids.contains(id))
            .collect();
        let trainer = Trainer {
            config,
            schedule,
            device: ad_device,
            pad: tagger.pad_id(),
            num_classes: tagger.config.schema.num_classes(),
            optim_encoder,
            optim_head,
            encoder_ids,
            head_ids,
            step: 0,
        };
        (model, trainer)
    }

    /// One epoch (1-based `epoch`) of steps: length buckets over a shuffled order, the batches
    /// themselves in random order. Returns the model after the epoch and what it did.
    pub(super) fn epoch(
        &mut self,
        mut model: SpanNer,
        epoch: usize,
        items: &[WindowItem],
        rng: &mut StdRng,
        observer: &mut dyn TrainObserver,
    ) -> Result<(SpanNer, EpochRun)> {
        let started = Instant::now();
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.shuffle(rng);
        let mut batches = length_buckets(items, &order, self.config.batch_size, usize::MAX);
        batches.shuffle(rng);
        let mut run = EpochRun {
            loss_sum: 0.0,
            batches: batches.len(),
            sentences: 0,
            train_seconds: 0.0,
            phases: PhaseSeconds::default(),
        };
        for (bi, batch_idx) in batches.iter().enumerate() {
            let at = StepAt {
                epoch,
                batch: bi,
                batches: batches.len(),
            };
            let (next, loss_value) = self.step(model, items, batch_idx, at, &mut run.phases)?;
            model = next;
            run.loss_sum += loss_value;
            let sentences: usize = batch_idx.iter().map(|&i| items[i].sentences).sum();
            run.sentences += sentences;
            observer.on_step(epoch, bi + 1, loss_value, sentences);
        }
        run.train_seconds = started.elapsed().as_secs_f64();
        Ok((model, run))
    }

    /// One step on the windows `batch_idx` of `items`: forward pass, loss, backward pass, both
    /// optimisers. Returns the model after the step and the batch's loss; an error when the
    /// loss is not finite.
    fn step(
        &mut self,
        model: SpanNer,
        items: &[WindowItem],
        batch_idx: &[usize],
        at: StepAt,
        phases: &mut PhaseSeconds,
    ) -> Result<(SpanNer, f64)> {
        let t_batch = Instant::now();
        let batch_items: Vec<&WindowItem> = batch_idx.iter().map(|&i| &items[i]).collect();
        let batch = build_batch(&batch_items, self.pad, &self.device);
        let labels: Vec<i64> = batch_items
            .iter()
            .flat_map(|it| it.labels.iter().map(|l| *l as i64))
            .collect();
        let n = labels.len();
        let weights: Vec<f32> = labels
            .iter()
            .map(|l| {
                if *l == 0 {
                    self.config.non_entity_weight
                } else {
                    1.0
                }
            })
            .collect();
        let weights_t = Tensor::<1>::from_data(TensorData::new(weights, [n]), &self.device);
        let t_forward = Instant::now();
        phases.batch += (t_forward - t_batch).as_secs_f64();
        let logits = model.forward(&batch, true, true);
        let loss = self.loss(logits, labels, weights_t, at);
        let loss_value: f64 = loss
            .clone()
            .try_into_scalar::<f32>()
            .map_err(TaggerError::tensor)? as f64;
        if !loss_value.is_finite() {
            return Err(TaggerError::InvalidArgument(format!(
                "training diverged: loss {loss_value} at epoch {}, step {}",
                at.epoch, at.batch
            )));
        }
        let t_backward = Instant::now();
        phases.forward += (t_backward - t_forward).as_secs_f64();
        let mut grads = loss.backward();
        let t_optimizer = Instant::now();
        phases.backward += (t_optimizer - t_backward).as_secs_f64();
        let grads_encoder = GradientsParams::from_params(&mut grads, &model, &self.encoder_ids);
        let grads_head = GradientsParams::from_params(&mut grads, &model, &self.head_ids);
        let schedule = self.schedule;
        let lr = lr_at(
            self.step,
            schedule.total,
            schedule.warmup,
            self.config.learning_rate,
        );
        let model = self.optim_encoder.step(lr, model, grads_encoder);
        let model = self
            .optim_head
            .step(lr * self.config.head_lr_multiplier, model, grads_head);
        phases.optimizer += t_optimizer.elapsed().as_secs_f64();
        self.step += 1;
        Ok((model, loss_value))
    }

    /// The loss of a batch: weighted span cross-entropy, or the evidential loss with its
    /// annealing at the step's place in training.
    fn loss(
        &self,
        logits: Tensor<2>,
        labels: Vec<i64>,
        weights_t: Tensor<1>,
        at: StepAt,
    ) -> Tensor<1> {
        let n = labels.len();
        let num_classes = self.num_classes;
        match self.config.loss {
            LossConfig::Ce => {
                let targets =
                    Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &self.device);
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
                    Tensor::<2>::from_data(TensorData::new(oh, [n, num_classes]), &self.device);
                let progress = (at.epoch - 1) as f64 + at.batch as f64 / at.batches.max(1) as f64;
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
        }
    }
}
