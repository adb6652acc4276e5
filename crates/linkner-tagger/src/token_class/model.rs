//! `transformers`' `*ForTokenClassification` in burn ([`TokenClassifier`]) and the loading of
//! its `model.safetensors`.

use std::path::Path;

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor};

use crate::dropout::dropout;
use crate::encoder::{Encoder, EncoderConfig, LoadReport, load_hf_safetensors};
use crate::error::Result;

/// Architecture of a [`TokenClassifier`].
#[derive(Config, Debug)]
pub struct TokenClassifierConfig {
    /// The encoder.
    pub encoder: EncoderConfig,
    /// Number of labels (`id2label`'s size).
    pub num_labels: usize,
    /// Dropout before the classifier (Monte-Carlo passes only).
    #[config(default = 0.1)]
    pub dropout: f64,
}

/// `transformers`' `*ForTokenClassification`: an encoder, dropout, and a linear layer from each
/// token's hidden state to label logits.
#[derive(Module, Debug)]
pub struct TokenClassifier {
    /// The encoder.
    pub encoder: Encoder,
    /// Hidden state → label logits.
    pub classifier: Linear,
    /// Dropout before the classifier.
    pub dropout: f64,
}

impl TokenClassifierConfig {
    /// Builds a randomly initialised model on `device`.
    pub fn init(&self, device: &Device) -> TokenClassifier {
        TokenClassifier {
            encoder: self.encoder.init(device),
            classifier: LinearConfig::new(self.encoder.hidden_size, self.num_labels).init(device),
            dropout: self.dropout,
        }
    }
}

impl TokenClassifier {
    /// Label logits of every token `[batch, seq, labels]` (the `logits` of `transformers`).
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2>,
        encoder_dropout: bool,
        head_dropout: bool,
    ) -> Tensor<3> {
        let hidden = self
            .encoder
            .forward(input_ids, attention_mask, encoder_dropout);
        self.classifier
            .forward(dropout(hidden, self.dropout, head_dropout))
    }

    /// Label logits `[n, labels]` of the rows `index` of the flattened hidden states
    /// `[batch * seq, hidden]`.
    pub fn rows_logits(
        &self,
        hidden: Tensor<3>,
        index: Tensor<1, Int>,
        head_dropout: bool,
    ) -> Tensor<2> {
        let [b, t, h] = hidden.dims();
        let rows = hidden.reshape([b * t, h]).select(0, index);
        self.classifier
            .forward(dropout(rows, self.dropout, head_dropout))
    }
}

/// Loads a Hugging Face token-classification `model.safetensors` into `model`: the encoder's
/// remapping ([`HF_KEY_REMAPPING`](crate::encoder::HF_KEY_REMAPPING)), then the encoder's paths
/// moved under `encoder.`; `classifier.*` keeps its name.
pub(super) fn load_weights(model: &mut TokenClassifier, path: &Path) -> Result<LoadReport> {
    load_hf_safetensors(model, path, &[(r"^(embeddings|layers)\.", "encoder.${1}.")])
}
