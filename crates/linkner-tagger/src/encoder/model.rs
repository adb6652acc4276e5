//! The BERT/RoBERTa encoder as burn modules (post-norm transformer layers).

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, relu, softmax};
use burn::tensor::module::{attention, layer_norm};
use burn::tensor::{Bool, DType, Device, Int, Tensor};

use super::config::{EncoderConfig, HiddenAct};
use crate::dropout::dropout;

/// Token, position and token-type embeddings followed by LayerNorm.
#[derive(Module, Debug)]
pub struct Embeddings {
    /// Token embeddings `[vocab, hidden]`.
    pub word_embeddings: Embedding,
    /// Absolute position embeddings `[max_positions, hidden]`.
    pub position_embeddings: Embedding,
    /// Token-type (segment) embeddings `[type_vocab, hidden]`.
    pub token_type_embeddings: Embedding,
    /// LayerNorm over the summed embeddings.
    pub layer_norm: LayerNorm,
}

/// One post-norm transformer layer with Hugging Face BERT's structure.
#[derive(Module, Debug)]
pub struct EncoderLayer {
    /// Query projection.
    pub query: Linear,
    /// Key projection.
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Output projection of the attention block.
    pub attention_output: Linear,
    /// LayerNorm after the attention residual.
    pub attention_norm: LayerNorm,
    /// Feed-forward expansion.
    pub intermediate: Linear,
    /// Feed-forward projection back to the hidden width.
    pub output: Linear,
    /// LayerNorm after the feed-forward residual.
    pub output_norm: LayerNorm,
}

/// A BERT/RoBERTa encoder. Build it with [`EncoderConfig::init`] and fill it with
/// [`crate::encoder::load_hf_weights`].
#[derive(Module, Debug)]
pub struct Encoder {
    /// Embedding block.
    pub embeddings: Embeddings,
    /// Transformer layers.
    pub layers: Vec<EncoderLayer>,
    /// Number of attention heads.
    pub num_heads: usize,
    /// First position id (0 for BERT, `pad + 1` for RoBERTa).
    pub position_offset: usize,
    /// Dropout on embeddings and sub-layer outputs when dropout is on.
    pub hidden_dropout: f64,
    /// Dropout on attention probabilities when dropout is on.
    pub attention_dropout: f64,
    /// LayerNorm epsilon (the same as the LayerNorm modules').
    pub layer_norm_eps: f64,
    /// Feed-forward activation.
    #[module(skip)]
    pub hidden_act: HiddenAct,
}

impl EncoderConfig {
    /// Builds a randomly initialised encoder on `device`.
    pub fn init(&self, device: &Device) -> Encoder {
        let h = self.hidden_size;
        let norm = || {
            LayerNormConfig::new(h)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let linear = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        let embeddings = Embeddings {
            word_embeddings: EmbeddingConfig::new(self.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, h).init(device),
            token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size.max(1), h)
                .init(device),
            layer_norm: norm(),
        };
        let layers = (0..self.num_layers)
            .map(|_| EncoderLayer {
                query: linear(h, h),
                key: linear(h, h),
                value: linear(h, h),
                attention_output: linear(h, h),
                attention_norm: norm(),
                intermediate: linear(h, self.intermediate_size),
                output: linear(self.intermediate_size, h),
                output_norm: norm(),
            })
            .collect();
        Encoder {
            embeddings,
            layers,
            num_heads: self.num_heads,
            position_offset: self.position_offset(),
            hidden_dropout: self.hidden_dropout,
            attention_dropout: self.attention_dropout,
            layer_norm_eps: self.layer_norm_eps,
            hidden_act: self.hidden_act,
        }
    }
}

/// Large negative score added to masked attention positions.
const MASK_VALUE: f32 = -1.0e9;

impl Encoder {
    /// LayerNorm. burn's module widens bf16 input to f32 and narrows the result back (two
    /// extra passes); LibTorch's kernel accumulates bf16 in f32 itself, so bf16 input goes to it
    /// directly there.
    fn norm(&self, ln: &LayerNorm, x: Tensor<3>) -> Tensor<3> {
        if x.dtype() == DType::BF16 && x.device() != Device::flex() {
            layer_norm(
                x,
                ln.gamma.val(),
                ln.beta.as_ref().map(|b| b.val()),
                self.layer_norm_eps,
            )
        } else {
            ln.forward(x)
        }
    }

    /// Width of the hidden states.
    pub fn hidden_size(&self) -> usize {
        self.embeddings.word_embeddings.weight.shape()[1]
    }

    /// Runs the encoder.
    ///
    /// - `input_ids`: `[batch, seq]` token ids, right-padded;
    /// - `attention_mask`: `[batch, seq]`, 1.0 for real tokens and 0.0 for padding;
    /// - `dropout_on`: apply the configured dropout (training and Monte-Carlo passes).
    ///
    /// Returns the last hidden states `[batch, seq, hidden]`; rows of padding tokens are not
    /// meaningful.
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2>,
        dropout_on: bool,
    ) -> Tensor<3> {
        let [batch, seq] = input_ids.dims();
        let device = input_ids.device();
        let hidden = self.hidden_size();
        let emb = &self.embeddings;

        let words = emb.word_embeddings.forward(input_ids);
        let positions = Tensor::<1, Int>::arange(
            self.position_offset as i64..(self.position_offset + seq) as i64,
            &device,
        )
        .reshape([1, seq]);
        let positions = emb.position_embeddings.forward(positions);
        let token_type = emb
            .token_type_embeddings
            .weight
            .val()
            .slice([0..1, 0..hidden])
            .reshape([1, 1, hidden]);
        let x = self.norm(&emb.layer_norm, words + positions + token_type);
        let mut x = dropout(x, self.hidden_dropout, dropout_on);

        if !dropout_on {
            // Without dropout: fused scaled-dot-product attention (LibTorch's SDPA kernel), with
            // a boolean mask over the keys.
            let heads = self.num_heads;
            let padding = attention_mask.lower_elem(0.5);
            // burn-tch 0.22 hands the mask to `scaled_dot_product_attention` unchanged, whose
            // convention is "true = attend", while burn's (and its fallback's, used by `flex`) is
            // "true = masked": give each backend the mask it reads the right way
            // (`tests::sdpa_path_matches_the_explicit_attention`, on both backends).
            // LibTorch broadcasts a `[batch, 1, 1, seq]` mask itself (and turns it into scores
            // once per layer at that size, not at `[batch, heads, seq, seq]`); the fallback
            // wants the full shape.
            let mask = if device == Device::flex() {
                padding
                    .reshape([batch, 1, 1, seq])
                    .expand([batch, heads, seq, seq])
            } else {
                padding.bool_not().reshape([batch, 1, 1, seq])
            };
            for layer in &self.layers {
                x = self.layer_forward_fused(layer, x, mask.clone());
            }
            return x;
        }
        // Additive mask [batch, 1, 1, seq]: 0 for tokens, MASK_VALUE for padding.
        let mask = (attention_mask.neg() + 1.0)
            .mul_scalar(MASK_VALUE)
            .reshape([batch, 1, 1, seq]);
        for layer in &self.layers {
            x = self.layer_forward(layer, x, mask.clone(), dropout_on);
        }
        x
    }

    /// A layer without dropout, attention through the fused kernel.
    fn layer_forward_fused(
        &self,
        layer: &EncoderLayer,
        x: Tensor<3>,
        mask: Tensor<4, Bool>,
    ) -> Tensor<3> {
        let [batch, seq, hidden] = x.dims();
        let heads = self.num_heads;
        let head_dim = hidden / heads;
        let split = |t: Tensor<3>| t.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2);
        let q = split(layer.query.forward(x.clone()));
        let k = split(layer.key.forward(x.clone()));
        let v = split(layer.value.forward(x.clone()));
        let context = attention(q, k, v, Some(mask), None, Default::default())
            .swap_dims(1, 2)
            .reshape([batch, seq, hidden]);
        let attn = layer.attention_output.forward(context);
        self.feed_forward(layer, self.norm(&layer.attention_norm, attn + x), false)
    }

    fn layer_forward(
        &self,
        layer: &EncoderLayer,
        x: Tensor<3>,
        mask: Tensor<4>,
        dropout_on: bool,
    ) -> Tensor<3> {
        let [batch, seq, hidden] = x.dims();
        let heads = self.num_heads;
        let head_dim = hidden / heads;
        let split = |t: Tensor<3>| t.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2);
        let q = split(layer.query.forward(x.clone()));
        let k = split(layer.key.forward(x.clone()));
        let v = split(layer.value.forward(x.clone()));
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .div_scalar((head_dim as f32).sqrt())
            + mask;
        let probs = softmax(scores, 3);
        let probs = dropout(probs, self.attention_dropout, dropout_on);
        let context = probs
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, seq, hidden]);
        let attn = layer.attention_output.forward(context);
        let attn = dropout(attn, self.hidden_dropout, dropout_on);
        let x = self.norm(&layer.attention_norm, attn + x);
        self.feed_forward(layer, x, dropout_on)
    }

    /// The feed-forward block after the attention LayerNorm.
    fn feed_forward(&self, layer: &EncoderLayer, x: Tensor<3>, dropout_on: bool) -> Tensor<3> {
        let inner = layer.intermediate.forward(x.clone());
        let inner = match self.hidden_act {
            HiddenAct::Gelu => gelu(inner),
            HiddenAct::GeluTanh => burn::tensor::activation::gelu_approximate(inner),
            HiddenAct::Relu => relu(inner),
        };
        let out = layer.output.forward(inner);
        let out = dropout(out, self.hidden_dropout, dropout_on);
        self.norm(&layer.output_norm, out + x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::EncoderKind;
    use burn::tensor::TensorData;

    /// The fused attention (no dropout) and the explicit one (dropout on, at rate 0, so nothing
    /// is dropped) give the same states for the real tokens of a padded batch, on both backends.
    #[test]
    fn sdpa_path_matches_the_explicit_attention() {
        for device in [crate::device::DeviceSpec::Cpu.device(), Device::flex()] {
            device.seed(9);
            let encoder = EncoderConfig::new(EncoderKind::Bert, 60, 32, 2, 4, 48, 16)
                .with_hidden_dropout(0.0)
                .with_attention_dropout(0.0)
                .init(&device);
            let ids: Vec<i64> = (0..18).map(|i| (i * 13 % 60) as i64).collect();
            let mut mask = vec![1f32; 18];
            for m in &mut mask[6 + 3..9] {
                *m = 0.0;
            }
            for m in &mut mask[12 + 2..18] {
                *m = 0.0;
            }
            let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [3, 6]), &device);
            let mask_t = Tensor::<2>::from_data(TensorData::new(mask.clone(), [3, 6]), &device);
            let explicit: Vec<f32> = encoder
                .forward(ids.clone(), mask_t.clone(), true)
                .try_into_vec_as::<f32>()
                .unwrap();
            let fused: Vec<f32> = encoder
                .forward(ids, mask_t, false)
                .try_into_vec_as::<f32>()
                .unwrap();
            for (pos, keep) in mask.iter().enumerate() {
                if *keep < 0.5 {
                    continue;
                }
                for d in 0..32 {
                    let (a, b) = (explicit[pos * 32 + d], fused[pos * 32 + d]);
                    assert!((a - b).abs() < 1e-4, "{device:?} token {pos}: {a} vs {b}");
                }
            }
        }
    }
}
