//! The hooks this workspace's tests and benchmarks (`linkner dev bench`) use to reach inside the
//! taggers, in one place: sub-word tokenisation and windowing, span enumeration and shape
//! features, window preparation and batching, dropout with an explicit switch, and the methods of
//! [`SpanTaggerInternals`] and [`TokenClassInternals`] (bring a trait into scope to call them:
//! `use linkner_tagger::internals::SpanTaggerInternals;`).
//!
//! Hidden from the documentation and not part of the supported API: anything here may change
//! without notice.

use burn::tensor::Device;
use linkner_core::Sentence;

pub use crate::dropout::dropout;
use crate::error::Result;
pub use crate::span::batch::{HostBatch, build_batch, length_buckets};
pub use crate::span::features::{enumerate_spans, span_shape, word_shape};
pub use crate::span::prepare::{PrepareOptions, WindowItem, prepare_document, prepare_sentence};
use crate::span::{ScoredSpan, SpanBatch, SpanNer, SpanTagger, TaggerConfig};
use crate::token_class::{TokenClassTagger, TokenClassifier};
pub use crate::tokenize::{
    DocumentPlan, EncodedWindow, SubwordTokenizer, Window, encode_window, plan_document_windows,
    plan_windows,
};
use linkner_core::Candidate;
use linkner_core::PredictOptions;

/// The internals of a [`SpanTagger`]: its parts, window preparation, and the passes over
/// prepared windows that benchmarks time.
pub trait SpanTaggerInternals: Sized {
    /// A tagger from its parts (tests build tiny random models this way; users load a folder
    /// with [`SpanTagger::load`] or start from an encoder folder with
    /// [`SpanTagger::from_encoder_dir`]).
    fn from_parts(
        model: SpanNer,
        config: TaggerConfig,
        tokenizer: SubwordTokenizer,
        device: Device,
    ) -> Self;

    /// The burn module.
    fn model(&self) -> &SpanNer;

    /// The sub-word tokenizer.
    fn tokenizer(&self) -> &SubwordTokenizer;

    /// Window and span options of this tagger.
    fn prepare_options(&self) -> PrepareOptions;

    /// Pad token id.
    fn pad_id(&self) -> u32;

    /// Windows and spans of `sentences`, each encoded alone, without labels.
    fn prepare(&self, sentences: &[Sentence]) -> Result<Vec<WindowItem>>;

    /// Windows and spans of documents given as their sentences, without labels; with document
    /// context on, the sentences of a document share windows. Sentence indices in the items
    /// count the sentences of all documents in order. On the LibTorch CPU device, the
    /// documents are tokenized on as many threads as a pass has streams
    /// ([`SpanTagger::with_streams`]); the items are the same, in the same order.
    fn prepare_documents(&self, documents: &[&[Sentence]]) -> Result<Vec<WindowItem>>;

    /// Deterministic scores of prepared windows, fed to the model exactly in `batches` (lists
    /// of indices into `items`, run in the given order, without re-sorting) — unlike
    /// [`SpanTagger::score_spans`], which buckets windows by length. Float inputs are cast to
    /// the model's precision and the logits read back as f32. Returns the scored spans of each
    /// of `num_sentences` sentences, sorted by `(start, end)`.
    fn score_batches(
        &self,
        items: &[WindowItem],
        batches: &[Vec<usize>],
        num_sentences: usize,
    ) -> Result<Vec<Vec<ScoredSpan>>>;

    /// Candidates of `sentences` from their prepared windows (from
    /// [`SpanTaggerInternals::prepare`] or [`SpanTaggerInternals::prepare_documents`] on the
    /// same sentences), fed to the model exactly in `batches` — what
    /// [`LocalTagger::tag_sentences`](linkner_core::LocalTagger::tag_sentences) does after bucketing
    /// windows by length.
    fn tag_batches(
        &self,
        sentences: &[Sentence],
        items: &[WindowItem],
        batches: &[Vec<usize>],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>>;

    /// The batch tensors of prepared windows on the tagger's device, in the model's precision
    /// (for timing the encoder alone: [`SpanTaggerInternals::encode_all`]).
    fn build_batches(&self, items: &[WindowItem], batches: &[Vec<usize>]) -> Vec<SpanBatch>;

    /// Runs the encoder alone over `batches` (in as many streams as a scoring pass uses) and
    /// waits until the device is done (reads one value of the last output back); returns the
    /// number of batches run.
    fn encode_all(&self, batches: &[SpanBatch]) -> Result<usize>;
}

impl SpanTaggerInternals for SpanTagger {
    fn from_parts(
        model: SpanNer,
        config: TaggerConfig,
        tokenizer: SubwordTokenizer,
        device: Device,
    ) -> SpanTagger {
        SpanTagger::from_parts(model, config, tokenizer, device)
    }

    fn model(&self) -> &SpanNer {
        &self.model
    }

    fn tokenizer(&self) -> &SubwordTokenizer {
        &self.tokenizer
    }

    fn prepare_options(&self) -> PrepareOptions {
        SpanTagger::prepare_options(self)
    }

    fn pad_id(&self) -> u32 {
        SpanTagger::pad_id(self)
    }

    fn prepare(&self, sentences: &[Sentence]) -> Result<Vec<WindowItem>> {
        SpanTagger::prepare(self, sentences)
    }

    fn prepare_documents(&self, documents: &[&[Sentence]]) -> Result<Vec<WindowItem>> {
        SpanTagger::prepare_documents(self, documents)
    }

    fn score_batches(
        &self,
        items: &[WindowItem],
        batches: &[Vec<usize>],
        num_sentences: usize,
    ) -> Result<Vec<Vec<ScoredSpan>>> {
        SpanTagger::score_batches(self, items, batches, num_sentences)
    }

    fn tag_batches(
        &self,
        sentences: &[Sentence],
        items: &[WindowItem],
        batches: &[Vec<usize>],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>> {
        SpanTagger::tag_batches(self, sentences, items, batches, options)
    }

    fn build_batches(&self, items: &[WindowItem], batches: &[Vec<usize>]) -> Vec<SpanBatch> {
        SpanTagger::build_batches(self, items, batches)
    }

    fn encode_all(&self, batches: &[SpanBatch]) -> Result<usize> {
        SpanTagger::encode_all(self, batches)
    }
}

/// The internals of a [`TokenClassTagger`]: its burn module and its tokenizer.
pub trait TokenClassInternals {
    /// The burn module.
    fn model(&self) -> &TokenClassifier;

    /// The sub-word tokenizer.
    fn tokenizer(&self) -> &SubwordTokenizer;
}

impl TokenClassInternals for TokenClassTagger {
    fn model(&self) -> &TokenClassifier {
        &self.model
    }

    fn tokenizer(&self) -> &SubwordTokenizer {
        &self.tokenizer
    }
}
