//! The SpanNER model: an encoder, and a span classifier over enumerated word spans.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Int, Tensor};

use crate::dropout::dropout;
use crate::encoder::{Encoder, EncoderConfig};
use crate::span::SPAN_SHAPE_FEATURES;

/// Architecture of a [`SpanNer`] model.
#[derive(Config, Debug)]
pub struct SpanNerConfig {
    /// The encoder.
    pub encoder: EncoderConfig,
    /// Number of classes: non-entity plus every entity type.
    pub num_classes: usize,
    /// Longest span, in words, that is enumerated and classified.
    #[config(default = 5)]
    pub max_span_width: usize,
    /// Width of the span-width embedding.
    #[config(default = 64)]
    pub width_dim: usize,
    /// Width of the classifier's hidden layer.
    #[config(default = 256)]
    pub hidden_dim: usize,
    /// Dropout of the span classifier (training and Monte-Carlo passes).
    #[config(default = 0.2)]
    pub head_dropout: f64,
}

/// SpanNER (Fu et al. 2021): span representation = encoder states of the first sub-token of the
/// span's first word and of the last sub-token of its last word, a span-width embedding and
/// word-shape features; a 2-layer MLP maps it to non-entity + entity types.
#[derive(Module, Debug)]
pub struct SpanNer {
    /// The encoder.
    pub encoder: Encoder,
    /// Span width embedding (`width - 1` is the row).
    pub width_embedding: Embedding,
    /// First classifier layer.
    pub hidden: Linear,
    /// Output layer (logits over classes).
    pub classifier: Linear,
    /// Classifier dropout.
    pub head_dropout: f64,
}

/// Span-level inputs of one batch, as tensors. Indices address the flattened encoder output
/// `[batch * seq, hidden]`.
#[derive(Debug, Clone)]
pub struct SpanBatch {
    /// Token ids `[batch, seq]`.
    pub input_ids: Tensor<2, Int>,
    /// 1.0 for tokens, 0.0 for padding `[batch, seq]`.
    pub attention_mask: Tensor<2>,
    /// Flat index of each span's first sub-token `[spans]`.
    pub start_index: Tensor<1, Int>,
    /// Flat index of each span's last sub-token `[spans]`.
    pub end_index: Tensor<1, Int>,
    /// `width - 1` of each span `[spans]`.
    pub width: Tensor<1, Int>,
    /// Shape features `[spans, SPAN_SHAPE_FEATURES]`.
    pub shape: Tensor<2>,
}

impl SpanNerConfig {
    /// Builds the model with a randomly initialised encoder on `device`.
    pub fn init(&self, device: &Device) -> SpanNer {
        self.init_with(self.encoder.init(device), device)
    }

    /// Builds the model around an existing (e.g. pretrained) encoder.
    pub fn init_with(&self, encoder: Encoder, device: &Device) -> SpanNer {
        let h = self.encoder.hidden_size;
        let input = 2 * h + self.width_dim + SPAN_SHAPE_FEATURES;
        SpanNer {
            encoder,
            width_embedding: EmbeddingConfig::new(self.max_span_width.max(1), self.width_dim)
                .init(device),
            hidden: LinearConfig::new(input, self.hidden_dim).init(device),
            classifier: LinearConfig::new(self.hidden_dim, self.num_classes).init(device),
            head_dropout: self.head_dropout,
        }
    }
}

impl SpanNer {
    /// Encoder hidden states `[batch, seq, hidden]`.
    pub fn encode(&self, batch: &SpanBatch, dropout_on: bool) -> Tensor<3> {
        self.encoder.forward(
            batch.input_ids.clone(),
            batch.attention_mask.clone(),
            dropout_on,
        )
    }

    /// Span logits `[spans, classes]` from encoder states.
    pub fn span_logits(&self, hidden: Tensor<3>, batch: &SpanBatch, dropout_on: bool) -> Tensor<2> {
        let [b, t, h] = hidden.dims();
        let flat = hidden.reshape([b * t, h]);
        let first = flat.clone().select(0, batch.start_index.clone());
        let last = flat.select(0, batch.end_index.clone());
        let width = self
            .width_embedding
            .forward(batch.width.clone().unsqueeze_dim(1))
            .squeeze_dim(1);
        let rep = Tensor::cat(vec![first, last, width, batch.shape.clone()], 1);
        let rep = dropout(rep, self.head_dropout, dropout_on);
        let x = gelu(self.hidden.forward(rep));
        let x = dropout(x, self.head_dropout, dropout_on);
        self.classifier.forward(x)
    }

    /// Encoder then classifier; `encoder_dropout` / `head_dropout` switch the dropouts.
    pub fn forward(
        &self,
        batch: &SpanBatch,
        encoder_dropout: bool,
        head_dropout: bool,
    ) -> Tensor<2> {
        let hidden = self.encode(batch, encoder_dropout);
        self.span_logits(hidden, batch, head_dropout)
    }
}
