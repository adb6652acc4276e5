//! The SpanNER tagger: [`SpanTagger`], the burn implementation of the [`LocalTagger`] trait,
//! a span classifier ([`SpanNer`]) on a BERT/RoBERTa encoder.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the tagger and its configuration, accessors, the stream and precision switches |
//! | `io.rs` | a new tagger on an encoder folder, [`SpanTagger::save`], [`SpanTagger::load`] |
//! | `model.rs` | the burn module ([`SpanNer`], [`SpanNerConfig`], [`SpanBatch`]) |
//! | `features.rs` | span enumeration and word-shape features |
//! | `prepare.rs` | sentences and documents → encoder windows with their spans ([`DocumentContext`]) |
//! | `batch.rs` | windows → host arrays and tensor batches, length buckets |
//! | `score.rs` | the scoring passes (sequential, in CPU streams, pipelined on CUDA) |
//! | `decode.rs` | scored spans → candidates ([`decode_spans`]), the [`LocalTagger`] impl |
//!
//! The float precision of a pass ([`Precision`]) and the stream scheduler are shared with the
//! token-classification tagger (`precision.rs`, `streams.rs` at the crate's root).

pub(crate) mod batch;
mod decode;
pub(crate) mod features;
mod io;
mod model;
pub(crate) mod prepare;
mod score;

use burn::tensor::{Device, FloatDType};
use linkner_core::LabelSchema;
use linkner_core::tagger::{LocalTagger, PredictOptions};
use serde::{Deserialize, Serialize};

use crate::error::Result;
pub use crate::precision::Precision;
use crate::precision::cast_module;
use crate::tokenize::SubwordTokenizer;
pub use decode::decode_spans;
pub use features::{SPAN_SHAPE_FEATURES, WORD_SHAPE_FEATURES, out_of_reach};
pub use model::{SpanBatch, SpanNer, SpanNerConfig};
pub use prepare::DocumentContext;

/// How evidential models turn logits into Dirichlet evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Evidence {
    /// `exp(clamp(logit, -10, 10))`.
    #[default]
    Exp,
    /// `softplus(logit)`.
    Softplus,
}

impl Evidence {
    /// Evidence of one logit (host side).
    pub fn of(self, logit: f32) -> f32 {
        match self {
            Evidence::Exp => logit.clamp(-10.0, 10.0).exp(),
            Evidence::Softplus => {
                if logit > 20.0 {
                    logit
                } else {
                    logit.exp().ln_1p()
                }
            }
        }
    }
}

/// Everything besides the weights that a saved tagger needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaggerConfig {
    /// Model architecture (encoder included).
    pub model: SpanNerConfig,
    /// Label schema (class order).
    pub schema: LabelSchema,
    /// Most tokens per encoder window (special tokens included).
    pub max_tokens: usize,
    /// Words of context around a window's core when a sentence is cut.
    pub window_context: usize,
    /// `Some` when trained with the evidential loss: candidates then carry Dirichlet `alpha`.
    #[serde(default)]
    pub evidential: Option<Evidence>,
    /// Context from the neighbouring sentences of a document (off in checkpoints written
    /// before it existed, which were trained without it).
    #[serde(default)]
    pub document_context: DocumentContext,
}

/// Options of a new (untrained) span classifier on a pretrained encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadOptions {
    /// Longest span in words (default 5).
    pub max_span_width: usize,
    /// Span width embedding size.
    pub width_dim: usize,
    /// Classifier hidden size.
    pub hidden_dim: usize,
    /// Classifier dropout.
    pub head_dropout: f64,
    /// Most tokens per window (capped by the encoder's position table).
    pub max_tokens: usize,
    /// Context words kept around a window's core.
    pub window_context: usize,
    /// Context from the neighbouring sentences of a document (default: on).
    pub document_context: DocumentContext,
}

impl Default for HeadOptions {
    fn default() -> Self {
        HeadOptions {
            max_span_width: 5,
            width_dim: 64,
            hidden_dim: 256,
            head_dropout: 0.2,
            max_tokens: 512,
            window_context: 16,
            document_context: DocumentContext::on(),
        }
    }
}

/// One enumerated span with its scores.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredSpan {
    /// First word.
    pub start: usize,
    /// One past the last word.
    pub end: usize,
    /// Logits over classes (deterministic pass).
    pub logits: Vec<f32>,
    /// Softmax of the logits.
    pub probs: Vec<f32>,
    /// Probabilities of each stochastic pass.
    pub mc_probs: Vec<Vec<f32>>,
}

/// The burn SpanNER tagger.
#[derive(Debug, Clone)]
pub struct SpanTagger {
    /// The model (on an inference device, without autodiff).
    pub(crate) model: SpanNer,
    /// Its configuration.
    pub(crate) config: TaggerConfig,
    /// Its tokenizer.
    pub(crate) tokenizer: SubwordTokenizer,
    /// Where it runs.
    pub(crate) device: Device,
    /// Concurrent CPU streams of a deterministic pass (0: one per LibTorch thread).
    pub(crate) streams: usize,
}

impl SpanTagger {
    /// Its configuration: schema, encoder and head shapes, windowing, document context.
    pub fn config(&self) -> &TaggerConfig {
        &self.config
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A copy of this tagger with document context set to `context` (e.g.
    /// [`DocumentContext::off`] to tag the sentences of documents alone).
    pub fn with_document_context(mut self, context: DocumentContext) -> SpanTagger {
        self.config.document_context = context;
        self
    }

    /// A copy of this tagger that runs its deterministic CPU passes in `streams` concurrent
    /// streams: each stream is a worker thread that takes the next batch when it is done with
    /// its last, with `threads / streams` LibTorch threads of its own (at least one), where
    /// `threads` is [`crate::threads`]. `0` (the default) gives one single-threaded stream
    /// per LibTorch thread; `1` runs every batch in turn on all the threads.
    ///
    /// Several single-threaded streams keep the cores busier than one multi-threaded stream
    /// on an encoder of this size: LibTorch runs the many small operations of a forward pass
    /// (layer norms, additions, span gathering) on one thread, and the host work of a batch
    /// (padding, reading results back, decoding) overlaps another stream's forward pass;
    /// `docs/tagger.md` gives the measured figures. The spans are those of one stream up to
    /// float rounding (each batch is computed the same way; only which thread runs it
    /// changes). Monte-Carlo passes (`mc_samples > 0`), CUDA and the `flex` backend run one
    /// stream, so that random draws stay in a reproducible order.
    ///
    /// While a streamed pass runs, threads that make their first LibTorch call start with
    /// the workers' thread count; it is set back when the pass ends.
    pub fn with_streams(mut self, streams: usize) -> SpanTagger {
        self.streams = streams;
        self
    }

    /// The stream count set by [`SpanTagger::with_streams`] (`0`: one per LibTorch thread).
    pub fn streams(&self) -> usize {
        self.streams
    }

    /// The number of streams a pass of `batches` batches with `options` uses, and the
    /// LibTorch threads of each (see [`SpanTagger::with_streams`]); `(1, threads)` when it
    /// runs on the calling thread alone.
    pub fn stream_plan(&self, options: &PredictOptions, batches: usize) -> (usize, usize) {
        crate::streams::plan(&self.device, self.streams, options.mc_samples, batches)
    }

    /// A copy of this tagger whose float parameters are cast to `precision` (inference only:
    /// do not train or save the copy). `Precision::Bf16` needs a device that supports bf16
    /// arithmetic (LibTorch CPU and CUDA do); otherwise an error.
    pub fn with_precision(&self, precision: Precision) -> Result<SpanTagger> {
        let mut tagger = self.clone();
        tagger.model = cast_module(tagger.model, &self.device, precision)?;
        Ok(tagger)
    }

    /// The precision of the model's float parameters (that of its span classifier's weight).
    pub fn precision(&self) -> Precision {
        match FloatDType::from(self.model.classifier.weight.val().dtype()) {
            FloatDType::BF16 => Precision::Bf16,
            _ => Precision::F32,
        }
    }

    /// Casts the float inputs of a batch (attention mask, shape features) to the model's
    /// precision, so that a bf16 model sees no f32 operand.
    fn cast_inputs(&self, mut batch: SpanBatch) -> SpanBatch {
        let dtype = self.precision().dtype();
        if dtype != FloatDType::F32 {
            batch.attention_mask = batch.attention_mask.cast(dtype);
            batch.shape = batch.shape.cast(dtype);
        }
        batch
    }
}

/// File names inside a checkpoint folder.
pub mod files {
    /// Weights of the whole model (burn paths).
    pub const WEIGHTS: &str = "model.safetensors";
    /// [`super::TaggerConfig`] as JSON.
    pub const CONFIG: &str = "tagger.json";
    /// The tokenizer.
    pub const TOKENIZER: &str = "tokenizer.json";
}
