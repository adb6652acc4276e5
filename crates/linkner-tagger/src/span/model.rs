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
    ///
    /// Without dropout the first classifier layer is applied to the token states before the
    /// spans are gathered (its input is `[first; last; width; shape]`, so it splits into one
    /// product per part): each token is projected once instead of once per span it starts or
    /// ends (~58 spans of ≤ 5 words per ~25-token sentence), the same arithmetic in a different
    /// order. With dropout (training, Monte-Carlo passes) every span gets its own dropout mask
    /// on its representation, so the representation is built first.
    pub fn span_logits(&self, hidden: Tensor<3>, batch: &SpanBatch, dropout_on: bool) -> Tensor<2> {
        if !dropout_on {
            return self.span_logits_projected(hidden, batch);
        }
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

    /// [`SpanNer::span_logits`] without dropout, with the first layer split per input part.
    fn span_logits_projected(&self, hidden: Tensor<3>, batch: &SpanBatch) -> Tensor<2> {
        let [b, t, h] = hidden.dims();
        let weight = self.hidden.weight.val(); // [input, hidden_dim]
        let [_, out] = weight.dims();
        let width_dim = self.width_embedding.weight.dims()[1];
        let tokens = hidden.reshape([b * t, h]).matmul(Tensor::cat(
            vec![
                weight.clone().slice([0..h, 0..out]),
                weight.clone().slice([h..2 * h, 0..out]),
            ],
            1,
        )); // [b * t, 2 * out]: the first-token and the last-token parts
        let first = tokens
            .clone()
            .slice([0..b * t, 0..out])
            .select(0, batch.start_index.clone());
        let last = tokens
            .slice([0..b * t, out..2 * out])
            .select(0, batch.end_index.clone());
        let widths = self
            .width_embedding
            .weight
            .val()
            .matmul(weight.clone().slice([2 * h..2 * h + width_dim, 0..out]))
            .select(0, batch.width.clone());
        let shape = batch.shape.clone().matmul(weight.slice([
            2 * h + width_dim..2 * h + width_dim + SPAN_SHAPE_FEATURES,
            0..out,
        ]));
        let mut x = first + last + widths + shape;
        if let Some(bias) = &self.hidden.bias {
            x = x + bias.val().unsqueeze_dim(0);
        }
        self.classifier.forward(gelu(x))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceSpec;
    use crate::encoder::EncoderKind;
    use crate::precision::CastFloats;
    use burn::tensor::{FloatDType, TensorData};

    #[test]
    fn projected_head_equals_the_span_representation_head() {
        for device in [Device::flex(), crate::device::DeviceSpec::Cpu.device()] {
            projected_head_on(device);
        }
    }

    fn projected_head_on(device: Device) {
        device.seed(5);
        let encoder = EncoderConfig::new(EncoderKind::Bert, 50, 16, 1, 2, 32, 32);
        // No dropout, so the dropout path (span representation first) is deterministic too.
        let model = SpanNerConfig::new(encoder, 4)
            .with_width_dim(6)
            .with_hidden_dim(12)
            .with_head_dropout(0.0)
            .init(&device);
        let n = 5;
        let batch = SpanBatch {
            input_ids: Tensor::<2, Int>::from_data(
                TensorData::new(
                    (0..12).map(|i| (i * 7 % 50) as i64).collect::<Vec<_>>(),
                    [2, 6],
                ),
                &device,
            ),
            attention_mask: Tensor::<2>::ones([2, 6], &device),
            start_index: Tensor::<1, Int>::from_data(
                TensorData::new(vec![1i64, 1, 2, 7, 9], [n]),
                &device,
            ),
            end_index: Tensor::<1, Int>::from_data(
                TensorData::new(vec![1i64, 3, 4, 7, 11], [n]),
                &device,
            ),
            width: Tensor::<1, Int>::from_data(
                TensorData::new(vec![0i64, 2, 2, 0, 2], [n]),
                &device,
            ),
            shape: Tensor::<2>::from_data(
                TensorData::new(
                    (0..n * SPAN_SHAPE_FEATURES)
                        .map(|i| (i % 3) as f32 * 0.5)
                        .collect::<Vec<_>>(),
                    [n, SPAN_SHAPE_FEATURES],
                ),
                &device,
            ),
        };
        let hidden = model.encode(&batch, false);
        let direct: Vec<f32> = model
            .span_logits(hidden.clone(), &batch, true)
            .try_into_vec_as::<f32>()
            .unwrap();
        let projected: Vec<f32> = model
            .span_logits(hidden, &batch, false)
            .try_into_vec_as::<f32>()
            .unwrap();
        assert_eq!(direct.len(), n * 4);
        for (a, b) in direct.iter().zip(&projected) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn bf16_copy_gives_close_logits() {
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
}
