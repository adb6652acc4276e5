//! [`SpanTagger`], the burn implementation of the [`LocalTagger`] trait.

use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, FloatDType, Tensor};
pub use linkner_core::tagger::{LocalTagger, PredictOptions};
use linkner_core::{Candidate, Document, Entity, LabelSchema, Sentence, WordSpan};
use serde::{Deserialize, Serialize};

use crate::device::DeviceSpec;
use crate::encoder::{LoadReport, load_hf_encoder};
use crate::error::{Result, TaggerError};
use crate::model::{SpanBatch, SpanNer, SpanNerConfig};
use crate::prepare::{
    DocumentContext, HostBatch, PrepareOptions, WindowItem, build_batch, length_buckets,
    prepare_document,
};
use crate::tokenize::SubwordTokenizer;

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
    /// A tagger from its parts (internal: tests build tiny random models this way; users load
    /// a folder with [`SpanTagger::load`] or start from an encoder folder with [`SpanTagger::from_encoder_dir`]).
    #[doc(hidden)]
    pub fn from_parts(
        model: SpanNer,
        config: TaggerConfig,
        tokenizer: SubwordTokenizer,
        device: Device,
    ) -> SpanTagger {
        SpanTagger {
            model,
            config,
            tokenizer,
            device,
            streams: 0,
        }
    }

    /// Its configuration: schema, encoder and head shapes, windowing, document context.
    pub fn config(&self) -> &TaggerConfig {
        &self.config
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The burn module (internal: for this workspace's benchmarks and tests).
    #[doc(hidden)]
    pub fn model(&self) -> &SpanNer {
        &self.model
    }

    /// The sub-word tokenizer (internal: for this workspace's benchmarks and tests).
    #[doc(hidden)]
    pub fn tokenizer(&self) -> &SubwordTokenizer {
        &self.tokenizer
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

/// The most probable class and its probability (the first one on ties).
fn best_class(probs: &[f32]) -> (usize, f32) {
    probs
        .iter()
        .copied()
        .enumerate()
        .fold((0usize, f32::NEG_INFINITY), |a, (i, p)| {
            if p > a.1 { (i, p) } else { a }
        })
}

impl SpanTagger {
    /// A tagger with a fresh span classifier on the pretrained encoder of a Hugging Face folder
    /// (`config.json`, `model.safetensors`, `tokenizer.json`).
    pub fn from_encoder_dir(
        dir: &Path,
        schema: LabelSchema,
        head: HeadOptions,
        device: &Device,
    ) -> Result<(SpanTagger, LoadReport)> {
        if head.max_span_width == 0 {
            return Err(TaggerError::InvalidArgument(
                "max_span_width must be > 0".into(),
            ));
        }
        let loaded = load_hf_encoder(dir, device)?;
        let tokenizer = SubwordTokenizer::from_file(&dir.join(files::TOKENIZER))?;
        let model_config = SpanNerConfig::new(loaded.config.clone(), schema.num_classes())
            .with_max_span_width(head.max_span_width)
            .with_width_dim(head.width_dim)
            .with_hidden_dim(head.hidden_dim)
            .with_head_dropout(head.head_dropout);
        let model = model_config.init_with(loaded.encoder, device);
        let max_tokens = head.max_tokens.min(loaded.config.max_sequence_len());
        let config = TaggerConfig {
            model: model_config,
            schema,
            max_tokens,
            window_context: head.window_context,
            evidential: None,
            document_context: head.document_context,
        };
        Ok((
            SpanTagger {
                model,
                config,
                tokenizer,
                device: device.clone(),
                streams: 0,
            },
            loaded.report,
        ))
    }

    /// Saves weights, config (with the label schema) and tokenizer into folder `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| TaggerError::io(dir, e))?;
        let cfg_path = dir.join(files::CONFIG);
        let json =
            serde_json::to_string_pretty(&self.config).map_err(|source| TaggerError::Json {
                path: cfg_path.clone(),
                source,
            })?;
        std::fs::write(&cfg_path, json).map_err(|e| TaggerError::io(&cfg_path, e))?;
        let tok = dir.join(files::TOKENIZER);
        if self.tokenizer.path() != tok {
            std::fs::copy(self.tokenizer.path(), &tok).map_err(|e| TaggerError::io(&tok, e))?;
        }
        let weights = dir.join(files::WEIGHTS);
        let mut store = SafetensorsStore::from_file(&weights).overwrite(true);
        self.model
            .save_into(&mut store)
            .map_err(|e| TaggerError::Weights {
                path: weights.clone(),
                message: e.to_string(),
            })?;
        Ok(())
    }

    /// Loads a tagger saved with [`SpanTagger::save`].
    pub fn load(dir: &Path, device: &DeviceSpec) -> Result<SpanTagger> {
        let device = device.checked_device()?;
        let cfg_path = dir.join(files::CONFIG);
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| TaggerError::io(&cfg_path, e))?;
        let config: TaggerConfig =
            serde_json::from_str(&text).map_err(|source| TaggerError::Json {
                path: cfg_path.clone(),
                source,
            })?;
        config.model.encoder.validate()?;
        let tokenizer = SubwordTokenizer::from_file(&dir.join(files::TOKENIZER))?;
        let mut model = config.model.init(&device);
        let weights = dir.join(files::WEIGHTS);
        if !weights.is_file() {
            return Err(TaggerError::io(
                &weights,
                std::io::Error::new(std::io::ErrorKind::NotFound, "weights file not found"),
            ));
        }
        let mut store = SafetensorsStore::from_file(&weights).allow_partial(true);
        let result = model
            .load_from(&mut store)
            .map_err(|e| TaggerError::Weights {
                path: weights.clone(),
                message: e.to_string(),
            })?;
        if !result.missing.is_empty() {
            return Err(TaggerError::MissingWeights {
                path: weights,
                missing: result.missing.into_iter().map(|(p, _)| p).collect(),
            });
        }
        Ok(SpanTagger {
            model,
            config,
            tokenizer,
            device,
            streams: 0,
        })
    }

    /// Window and span options of this tagger.
    pub fn prepare_options(&self) -> PrepareOptions {
        PrepareOptions {
            max_span_width: self.config.model.max_span_width,
            max_tokens: self.config.max_tokens,
            window_context: self.config.window_context,
            document_context: self.config.document_context,
        }
    }

    /// Pad token id.
    pub fn pad_id(&self) -> u32 {
        self.config.model.encoder.pad_token_id as u32
    }

    /// Windows and spans of `sentences`, each encoded alone, without labels.
    pub fn prepare(&self, sentences: &[Sentence]) -> Result<Vec<WindowItem>> {
        let singles: Vec<&[Sentence]> = sentences.chunks(1).collect();
        self.prepare_documents(&singles)
    }

    /// Windows and spans of documents given as their sentences, without labels; with document
    /// context on, the sentences of a document share windows. Sentence indices in the items
    /// count the sentences of all documents in order.
    ///
    /// On the LibTorch CPU device, the documents are tokenized on as many threads as a pass
    /// has streams ([`SpanTagger::with_streams`]); the items are the same, in the same order.
    pub fn prepare_documents(&self, documents: &[&[Sentence]]) -> Result<Vec<WindowItem>> {
        let (parts, _) = self.stream_plan(&PredictOptions::default(), documents.len());
        self.prepare_in_parts(documents, parts)
    }

    /// [`SpanTagger::prepare_documents`] with sentence indices counted from `first`.
    fn prepare_from(&self, mut first: usize, documents: &[&[Sentence]]) -> Result<Vec<WindowItem>> {
        let opts = self.prepare_options();
        let mut items = Vec::new();
        for doc in documents {
            items.extend(prepare_document(first, doc, &self.tokenizer, &opts, None)?);
            first += doc.len();
        }
        Ok(items)
    }

    /// [`SpanTagger::prepare_documents`] split into `parts` runs of consecutive documents
    /// (about as many sentences each) tokenized on as many threads; the same items in the
    /// same order.
    fn prepare_in_parts(&self, documents: &[&[Sentence]], parts: usize) -> Result<Vec<WindowItem>> {
        let total: usize = documents.iter().map(|d| d.len()).sum();
        if parts < 2 || documents.len() < 2 {
            return self.prepare_from(0, documents);
        }
        let runs = document_runs(documents, total.div_ceil(parts));
        let prepared: Vec<std::thread::Result<Result<Vec<WindowItem>>>> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = runs
                    .iter()
                    .map(|&(first, docs)| scope.spawn(move || self.prepare_from(first, docs)))
                    .collect();
                handles.into_iter().map(|h| h.join()).collect()
            });
        let mut items = Vec::new();
        for part in prepared {
            let part = part
                .map_err(|_| TaggerError::InvalidArgument("a tokenizing thread panicked".into()))?;
            items.extend(part?);
        }
        Ok(items)
    }

    /// Scores every enumerated span of every sentence, each sentence encoded alone.
    pub fn score_spans(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<ScoredSpan>>> {
        let singles: Vec<&[Sentence]> = sentences.chunks(1).collect();
        self.score_documents(&singles, options)
    }

    /// Scores every enumerated span of every sentence of the documents (given as their
    /// sentences); the result has one entry per sentence, all documents in order.
    pub fn score_documents(
        &self,
        documents: &[&[Sentence]],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<ScoredSpan>>> {
        self.score_documents_kept(documents, options, true)
    }

    /// [`SpanTagger::score_documents`], keeping the spans whose most probable class is the
    /// non-entity class only with `non_entities`.
    fn score_documents_kept(
        &self,
        documents: &[&[Sentence]],
        options: &PredictOptions,
        non_entities: bool,
    ) -> Result<Vec<Vec<ScoredSpan>>> {
        if self.pipelines() {
            return self.score_pipelined(documents, options, non_entities);
        }
        let total: usize = documents.iter().map(|d| d.len()).sum();
        let items = self.prepare_documents(documents)?;
        let order: Vec<usize> = (0..items.len()).collect();
        let batches = length_buckets(&items, &order, options.batch_size, usize::MAX);
        self.score_windows(&items, &batches, total, options, non_entities)
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
        let threads = crate::device::threads().max(1);
        let streamable = cfg!(feature = "tch")
            && self.device == DeviceSpec::Cpu.device()
            && options.mc_samples == 0;
        let wanted = if self.streams == 0 {
            threads
        } else {
            self.streams
        };
        let streams = wanted.min(batches).max(1);
        if !streamable || streams == 1 {
            return (1, threads);
        }
        (streams, (threads / streams).max(1))
    }

    /// Runs `tasks` tasks (`work(state, k)` for k in `0..tasks`) in `streams` worker threads
    /// with `per_stream` LibTorch threads each; every worker starts from `init()` and takes the
    /// next task when it is done with its last. Returns the workers' states, or the first
    /// error (the other workers stop at their next task).
    fn in_streams<S: Send>(
        &self,
        tasks: usize,
        (streams, per_stream): (usize, usize),
        init: impl Fn() -> S + Sync,
        work: impl Fn(&mut S, usize) -> Result<()> + Sync,
    ) -> Result<Vec<S>> {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let threads = crate::device::threads().max(1);
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        // Every worker sets its thread count before any of them computes.
        let ready = std::sync::Barrier::new(streams);
        let joined: Vec<std::thread::Result<Result<S>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..streams)
                .map(|_| {
                    scope.spawn(|| -> Result<S> {
                        crate::device::set_worker_threads(per_stream);
                        ready.wait();
                        let mut state = init();
                        while !failed.load(Ordering::Relaxed) {
                            let k = next.fetch_add(1, Ordering::Relaxed);
                            if k >= tasks {
                                break;
                            }
                            if let Err(e) = work(&mut state, k) {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                        Ok(state)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join()).collect()
        });
        crate::device::restore_threads(threads);
        joined
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|_| {
                    Err(TaggerError::InvalidArgument(
                        "a tagging stream panicked".into(),
                    ))
                })
            })
            .collect()
    }

    /// A copy of this tagger with document context set to `context` (e.g.
    /// [`DocumentContext::off`] to tag the sentences of documents alone).
    pub fn with_document_context(mut self, context: DocumentContext) -> SpanTagger {
        self.config.document_context = context;
        self
    }

    /// Turns the scored spans of one sentence into candidates (see [`decode_spans`]).
    pub fn candidates(
        &self,
        sentence: &Sentence,
        spans: Vec<ScoredSpan>,
        overlapping: bool,
    ) -> Result<Vec<Candidate>> {
        decode_spans(
            sentence,
            spans,
            &self.config.schema,
            self.config.evidential,
            overlapping,
        )
    }
}

/// Float precision of a tagger's forward pass (see [`SpanTagger::with_precision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats (how taggers are trained and saved).
    #[default]
    F32,
    /// bfloat16 weights and activations. On LibTorch CPU the matrix products then run through
    /// oneDNN's bf16 kernels (fast on CPUs with AVX512-BF16 / AMX); burn's LayerNorm widens to
    /// f32 internally, softmax and GELU run in bf16.
    Bf16,
}

impl Precision {
    fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::Bf16 => FloatDType::BF16,
        }
    }
}

/// Casts every float parameter of a module to one dtype.
pub(crate) struct CastFloats(pub(crate) FloatDType);

impl ModuleMapper for CastFloats {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}

/// `module` with every float parameter cast to `precision`, or a typed error when `device` has
/// no such arithmetic: the one cast of both built-in taggers' `with_precision`.
pub(crate) fn cast_module<M: Module>(
    module: M,
    device: &Device,
    precision: Precision,
) -> Result<M> {
    let dtype = precision.dtype();
    if !device.supports_dtype(dtype) {
        return Err(TaggerError::Device {
            name: format!("{device:?}"),
            message: format!("{precision:?} arithmetic is not supported on this device"),
        });
    }
    Ok(module.map(&mut CastFloats(dtype)))
}

impl SpanTagger {
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

    /// Deterministic scores of prepared windows, fed to the model exactly in `batches` (lists
    /// of indices into `items`, run in the given order, without re-sorting) — unlike
    /// [`SpanTagger::score_spans`], which buckets windows by length. Float inputs are cast to
    /// the model's precision and the logits read back as f32. Returns the scored spans of each
    /// of `num_sentences` sentences, sorted by `(start, end)`.
    pub fn score_batches(
        &self,
        items: &[WindowItem],
        batches: &[Vec<usize>],
        num_sentences: usize,
    ) -> Result<Vec<Vec<ScoredSpan>>> {
        self.score_windows(
            items,
            batches,
            num_sentences,
            &PredictOptions::default(),
            true,
        )
    }

    /// Candidates of `sentences` from their prepared windows (from [`SpanTagger::prepare`] or
    /// [`SpanTagger::prepare_documents`] on the same sentences), fed to the model exactly in
    /// `batches` — what [`LocalTagger::tag_sentences`] does after bucketing windows by length.
    pub fn tag_batches(
        &self,
        sentences: &[Sentence],
        items: &[WindowItem],
        batches: &[Vec<usize>],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>> {
        let scored = self.score_windows(items, batches, sentences.len(), options, false)?;
        sentences
            .iter()
            .zip(scored)
            .map(|(s, spans)| self.candidates(s, spans, options.overlapping))
            .collect()
    }

    /// The batch tensors of prepared windows on the tagger's device, in the model's precision
    /// (for timing the encoder alone: [`SpanTagger::encode_all`]).
    pub fn build_batches(&self, items: &[WindowItem], batches: &[Vec<usize>]) -> Vec<SpanBatch> {
        batches
            .iter()
            .map(|b| {
                let batch_items: Vec<&WindowItem> =
                    b.iter().filter_map(|&i| items.get(i)).collect();
                self.cast_inputs(build_batch(&batch_items, self.pad_id(), &self.device))
            })
            .collect()
    }

    /// Runs the encoder alone over `batches` and waits until the device is done (reads one
    /// value of the last output back); returns the number of batches run.
    pub fn encode_all(&self, batches: &[SpanBatch]) -> Result<usize> {
        let plan = self.stream_plan(&PredictOptions::default(), batches.len());
        if plan.0 > 1 {
            // As many streams as `score_batches` uses; each reads back one value of every
            // output (a CPU forward pass is done when it returns).
            self.in_streams(
                batches.len(),
                plan,
                || (),
                |(), k| read_one(self.model.encode(&batches[k], false)),
            )?;
            return Ok(batches.len());
        }
        let mut last = None;
        for b in batches {
            last = Some(self.model.encode(b, false));
        }
        if let Some(h) = last {
            read_one(h)?;
        }
        Ok(batches.len())
    }

    /// Whether inference overlaps the host work with the device: on CUDA (the device runs
    /// asynchronously), not on the CPU, where the host work would compete with LibTorch's
    /// threads for the same cores.
    fn pipelines(&self) -> bool {
        self.device != DeviceSpec::Cpu.device() && self.device != DeviceSpec::Flex.device()
    }

    /// [`SpanTagger::score_documents`] with the host work overlapped with the device: a second
    /// thread tokenizes, windows, buckets by length and builds the batch arrays of the next
    /// chunk of documents (about eight batches) while this thread runs the current chunk on the
    /// device and decodes its results. Length buckets are formed within each chunk. Used on
    /// CUDA; gives the same spans as the sequential path (up to the batch composition).
    pub fn score_pipelined(
        &self,
        documents: &[&[Sentence]],
        options: &PredictOptions,
        non_entities: bool,
    ) -> Result<Vec<Vec<ScoredSpan>>> {
        /// One chunk: its windows and its batches (indices into the windows, host arrays).
        type Chunk = (Vec<WindowItem>, Vec<(Vec<usize>, HostBatch)>);
        let total: usize = documents.iter().map(|d| d.len()).sum();
        let chunks = document_runs(documents, options.batch_size.max(1) * 8);
        let pad = self.pad_id();
        let mut out: Vec<Vec<ScoredSpan>> = vec![Vec::new(); total];
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Chunk>>(1);
            scope.spawn(move || {
                for (first, docs) in chunks {
                    let chunk = (|| -> Result<Chunk> {
                        let items = self.prepare_from(first, docs)?;
                        let order: Vec<usize> = (0..items.len()).collect();
                        let batches =
                            length_buckets(&items, &order, options.batch_size, usize::MAX)
                                .into_iter()
                                .map(|b| {
                                    let refs: Vec<&WindowItem> =
                                        b.iter().map(|&i| &items[i]).collect();
                                    let host = HostBatch::new(&refs, pad);
                                    (b, host)
                                })
                                .collect();
                        Ok((items, batches))
                    })();
                    let failed = chunk.is_err();
                    if tx.send(chunk).is_err() || failed {
                        break;
                    }
                }
            });
            for chunk in rx {
                let (items, batches) = chunk?;
                for (b, host) in batches {
                    let refs: Vec<&WindowItem> = b.iter().map(|&i| &items[i]).collect();
                    self.score_batch(&refs, host, options, non_entities, &mut out)?;
                }
            }
            Ok(())
        })?;
        for spans in &mut out {
            spans.sort_by_key(|s| (s.start, s.end));
        }
        Ok(out)
    }

    /// Scores prepared windows batch by batch in the order given, with `options.mc_samples`
    /// stochastic passes per batch; spans of each sentence sorted by `(start, end)`. Without
    /// `non_entities`, only the spans whose most probable class is an entity are returned (all
    /// that decoding looks at), which spares building the others.
    fn score_windows(
        &self,
        items: &[WindowItem],
        batches: &[Vec<usize>],
        num_sentences: usize,
        options: &PredictOptions,
        non_entities: bool,
    ) -> Result<Vec<Vec<ScoredSpan>>> {
        let run = |out: &mut Vec<Vec<ScoredSpan>>, batch_idx: &[usize]| -> Result<()> {
            let batch_items: Vec<&WindowItem> = batch_idx
                .iter()
                .map(|&i| {
                    items.get(i).ok_or_else(|| {
                        TaggerError::InvalidArgument(format!("window {i} outside the items"))
                    })
                })
                .collect::<Result<_>>()?;
            let host = HostBatch::new(&batch_items, self.pad_id());
            self.score_batch(&batch_items, host, options, non_entities, out)
        };
        let plan = self.stream_plan(options, batches.len());
        let mut out: Vec<Vec<ScoredSpan>> = vec![Vec::new(); num_sentences];
        if plan.0 > 1 {
            let parts = self.in_streams(
                batches.len(),
                plan,
                || vec![Vec::new(); num_sentences],
                |part, k| run(part, &batches[k]),
            )?;
            for part in parts {
                for (spans, more) in out.iter_mut().zip(part) {
                    spans.extend(more);
                }
            }
        } else {
            for batch_idx in batches {
                run(&mut out, batch_idx)?;
            }
        }
        for spans in &mut out {
            spans.sort_by_key(|s| (s.start, s.end));
        }
        Ok(out)
    }

    /// Runs one batch (its windows and their host arrays) and appends the scored spans to `out`
    /// (one list per sentence).
    fn score_batch(
        &self,
        batch_items: &[&WindowItem],
        host: HostBatch,
        options: &PredictOptions,
        non_entities: bool,
        out: &mut [Vec<ScoredSpan>],
    ) -> Result<()> {
        let num_sentences = out.len();
        let classes = self.config.schema.num_classes();
        // Per span, one row read back: logits, probabilities, the most probable class, then the
        // probabilities of each stochastic pass.
        let width = 2 * classes + 1 + options.mc_samples * classes;
        {
            let batch = self.cast_inputs(host.to_device(&self.device));
            let hidden = self.model.encode(&batch, false);
            // Span gathering, scoring, softmax and argmax stay on the device; one transfer of
            // the packed rows per batch.
            let logits = self
                .model
                .span_logits(hidden.clone(), &batch, false)
                .cast(FloatDType::F32);
            let probs = softmax(logits.clone(), 1);
            let best = probs.clone().argmax(1).float();
            let mut parts = vec![logits, probs, best];
            for _ in 0..options.mc_samples {
                let h = if options.mc_encoder {
                    self.model.encode(&batch, true)
                } else {
                    hidden.clone()
                };
                let sample = self
                    .model
                    .span_logits(h, &batch, true)
                    .cast(FloatDType::F32);
                parts.push(softmax(sample, 1));
            }
            let packed: Vec<f32> = Tensor::cat(parts, 1)
                .try_into_vec_as::<f32>()
                .map_err(TaggerError::tensor)?;
            let mut k = 0usize;
            for item in batch_items {
                for (&(s, e), &sentence) in item.spans.iter().zip(&item.span_sentence) {
                    let spans = out.get_mut(sentence).ok_or_else(|| {
                        TaggerError::InvalidArgument(format!(
                            "sentence {sentence} outside the {num_sentences} sentences"
                        ))
                    })?;
                    let row = packed.get(k * width..(k + 1) * width).ok_or_else(|| {
                        TaggerError::InvalidArgument(format!(
                            "the model scored fewer spans than the batch holds ({k})"
                        ))
                    })?;
                    k += 1;
                    if !non_entities && row[2 * classes] < 0.5 {
                        continue;
                    }
                    let mc_probs = row[2 * classes + 1..]
                        .chunks(classes)
                        .map(<[f32]>::to_vec)
                        .collect();
                    spans.push(ScoredSpan {
                        start: s,
                        end: e,
                        logits: row[..classes].to_vec(),
                        probs: row[classes..2 * classes].to_vec(),
                        mc_probs,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Splits `documents` into runs of consecutive documents of at least `per_run` sentences each
/// (the last may have fewer), with the index of each run's first sentence among all of them.
fn document_runs<'a>(
    documents: &'a [&'a [Sentence]],
    per_run: usize,
) -> Vec<(usize, &'a [&'a [Sentence]])> {
    let per_run = per_run.max(1);
    let mut runs = Vec::new();
    let (mut start, mut first, mut count) = (0usize, 0usize, 0usize);
    for (i, d) in documents.iter().enumerate() {
        count += d.len();
        if count >= per_run || i + 1 == documents.len() {
            runs.push((first, &documents[start..=i]));
            first += count;
            start = i + 1;
            count = 0;
        }
    }
    runs
}

/// Reads one value of `h` back to the host (waits until the device has computed it).
fn read_one(h: Tensor<3>) -> Result<()> {
    let [b, t, d] = h.dims();
    if b * t * d > 0 {
        h.slice([0..1, 0..1, 0..1])
            .try_into_vec_as::<f32>()
            .map_err(TaggerError::tensor)?;
    }
    Ok(())
}

/// Keeps the spans whose most probable class is an entity; unless `overlapping`, selects
/// greedily by that probability the spans that overlap no better one. Returns candidates in
/// order of their first word.
pub fn decode_spans(
    sentence: &Sentence,
    spans: Vec<ScoredSpan>,
    schema: &LabelSchema,
    evidential: Option<Evidence>,
    overlapping: bool,
) -> Result<Vec<Candidate>> {
    let mut entities: Vec<(usize, f32, ScoredSpan)> = spans
        .into_iter()
        .filter_map(|s| {
            let (class, p) = best_class(&s.probs);
            (class != 0).then_some((class, p, s))
        })
        .collect();
    entities.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.start.cmp(&b.2.start)));
    let mut chosen: Vec<(usize, f32, ScoredSpan)> = Vec::new();
    for e in entities {
        if overlapping
            || !chosen
                .iter()
                .any(|c| c.2.start < e.2.end && e.2.start < c.2.end)
        {
            chosen.push(e);
        }
    }
    chosen.sort_by_key(|c| (c.2.start, c.2.end));
    chosen
        .into_iter()
        .map(|(class, p, s)| {
            let label = schema.class(class).map(|t| t.name.clone()).ok_or_else(|| {
                TaggerError::InvalidArgument(format!("class {class} outside schema"))
            })?;
            let span = WordSpan::new(s.start, s.end, label);
            let mut entity = Entity::from_word_span(sentence, &span)?;
            entity.score = Some(p);
            let alpha = evidential.map(|ev| s.logits.iter().map(|l| ev.of(*l) + 1.0).collect());
            Ok(Candidate {
                span,
                entity,
                class,
                logits: s.logits,
                probs: s.probs,
                mc_probs: s.mc_probs,
                alpha,
            })
        })
        .collect()
}

impl LocalTagger for SpanTagger {
    fn schema(&self) -> &LabelSchema {
        &self.config.schema
    }

    fn tag_sentences(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>> {
        let singles: Vec<&[Sentence]> = sentences.chunks(1).collect();
        let scored = self.score_documents_kept(&singles, options, false)?;
        sentences
            .iter()
            .zip(scored)
            .map(|(s, spans)| self.candidates(s, spans, options.overlapping))
            .collect()
    }

    fn tag_documents(
        &self,
        documents: &[Document],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Vec<Candidate>>>> {
        let docs: Vec<&[Sentence]> = documents.iter().map(|d| d.sentences.as_slice()).collect();
        let mut scored = self
            .score_documents_kept(&docs, options, false)?
            .into_iter();
        documents
            .iter()
            .map(|d| {
                d.sentences
                    .iter()
                    .zip(scored.by_ref())
                    .map(|(s, spans)| self.candidates(s, spans, options.overlapping))
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_copy_gives_close_logits() {
        use burn::tensor::{Int, TensorData};

        use crate::encoder::{EncoderConfig, EncoderKind};
        use crate::span::SPAN_SHAPE_FEATURES;

        let device = DeviceSpec::Cpu.device();
        if !device.supports_dtype(FloatDType::BF16) {
            return;
        }
        device.seed(3);
        let encoder = EncoderConfig::new(EncoderKind::Bert, 100, 32, 2, 4, 64, 64);
        let model = SpanNerConfig::new(encoder, 3)
            .with_width_dim(8)
            .with_hidden_dim(16)
            .init(&device);
        let ids: Vec<i64> = (0..12).map(|i| (i * 7 % 100) as i64).collect();
        let mut mask = vec![1f32; 12];
        mask[10] = 0.0;
        mask[11] = 0.0;
        let batch = SpanBatch {
            input_ids: Tensor::<2, Int>::from_data(TensorData::new(ids, [2, 6]), &device),
            attention_mask: Tensor::<2>::from_data(TensorData::new(mask, [2, 6]), &device),
            start_index: Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 7], [2]), &device),
            end_index: Tensor::<1, Int>::from_data(TensorData::new(vec![3i64, 9], [2]), &device),
            width: Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 2], [2]), &device),
            shape: Tensor::<2>::from_data(
                TensorData::new(
                    vec![0.5f32; 2 * SPAN_SHAPE_FEATURES],
                    [2, SPAN_SHAPE_FEATURES],
                ),
                &device,
            ),
        };
        let full: Vec<f32> = model
            .forward(&batch, false, false)
            .try_into_vec_as::<f32>()
            .unwrap();
        let half_model = model.map(&mut CastFloats(FloatDType::BF16));
        assert_eq!(
            FloatDType::from(half_model.classifier.weight.val().dtype()),
            FloatDType::BF16
        );
        let mut half_batch = batch;
        half_batch.attention_mask = half_batch.attention_mask.cast(FloatDType::BF16);
        half_batch.shape = half_batch.shape.cast(FloatDType::BF16);
        let half: Vec<f32> = half_model
            .forward(&half_batch, false, false)
            .try_into_vec_as::<f32>()
            .unwrap();
        assert_eq!(full.len(), half.len());
        for (a, b) in full.iter().zip(&half) {
            assert!((a - b).abs() <= 0.05 + 0.05 * a.abs(), "{a} vs {b}");
        }
    }

    fn scored(start: usize, end: usize, probs: [f32; 3]) -> ScoredSpan {
        ScoredSpan {
            start,
            end,
            logits: probs.iter().map(|p| p.ln()).collect(),
            probs: probs.to_vec(),
            mc_probs: Vec::new(),
        }
    }

    fn schema() -> LabelSchema {
        LabelSchema::new(
            "t",
            vec![
                linkner_core::EntityType::new("PER", "person", "p"),
                linkner_core::EntityType::new("LOC", "location", "l"),
            ],
        )
    }

    #[test]
    fn greedy_decoding_keeps_the_most_probable_non_overlapping_spans() {
        let s = Sentence::from_words(&["New", "York", "Times", "said"]);
        let spans = vec![
            scored(0, 2, [0.2, 0.1, 0.7]),   // LOC "New York" 0.7
            scored(0, 3, [0.1, 0.05, 0.85]), // LOC "New York Times" 0.85 (wins)
            scored(1, 2, [0.3, 0.6, 0.1]),   // PER "York" overlaps the winner
            scored(3, 4, [0.9, 0.05, 0.05]), // non-entity
        ];
        let c = decode_spans(&s, spans.clone(), &schema(), None, false).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].span, WordSpan::new(0, 3, "LOC"));
        assert_eq!(c[0].entity.text, "New York Times");
        assert_eq!((c[0].entity.start, c[0].entity.end), (0, 14));
        assert_eq!(c[0].entity.score, Some(0.85));
        assert!(c[0].alpha.is_none());
        let all = decode_spans(&s, spans, &schema(), Some(Evidence::Exp), true).unwrap();
        let got: Vec<(usize, usize)> = all.iter().map(|c| (c.span.start, c.span.end)).collect();
        assert_eq!(got, vec![(0, 2), (0, 3), (1, 2)]);
        let alpha = all[0].alpha.as_ref().unwrap();
        assert!((alpha[2] - (0.7f32.ln().exp() + 1.0)).abs() < 1e-5);
    }
}
