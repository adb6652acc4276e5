//! Encoder configuration, read from a Hugging Face `config.json`.

use std::path::Path;

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TaggerError};

/// The encoder families this crate runs. They share one architecture (post-norm BERT layers);
/// they differ in how position ids are numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderKind {
    /// BERT (and MiniLM, ELECTRA-style encoders with BERT keys): positions start at 0.
    Bert,
    /// RoBERTa (also XLM-R, CamemBERT): positions start at `pad_token_id + 1`.
    Roberta,
}

/// The feed-forward activation of the encoder layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// Exact GELU with `erf` (Hugging Face `gelu`).
    Gelu,
    /// tanh approximation of GELU (Hugging Face `gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// ReLU.
    Relu,
}

/// Architecture of a BERT/RoBERTa encoder; build the module with [`EncoderConfig::init`].
#[derive(Config, Debug)]
pub struct EncoderConfig {
    /// Position numbering family.
    pub kind: EncoderKind,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_layers: usize,
    /// Number of attention heads (must divide `hidden_size`).
    pub num_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Number of rows of the position embedding table.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Id of the padding token.
    #[config(default = 0)]
    pub pad_token_id: usize,
    /// Dropout on embeddings and sub-layer outputs (training and Monte-Carlo passes only).
    #[config(default = 0.1)]
    pub hidden_dropout: f64,
    /// Dropout on attention probabilities (training and Monte-Carlo passes only).
    #[config(default = 0.1)]
    pub attention_dropout: f64,
    /// Feed-forward activation.
    #[config(default = "HiddenAct::Gelu")]
    pub hidden_act: HiddenAct,
}

/// The subset of a Hugging Face `config.json` this crate reads.
#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    hidden_act: Option<String>,
    max_position_embeddings: usize,
    type_vocab_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    pad_token_id: Option<usize>,
    hidden_dropout_prob: Option<f64>,
    attention_probs_dropout_prob: Option<f64>,
    position_embedding_type: Option<String>,
}

impl EncoderConfig {
    /// Reads a Hugging Face `config.json` (BERT, RoBERTa, XLM-R, CamemBERT, MiniLM).
    pub fn from_hf_file(path: &Path) -> Result<EncoderConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| TaggerError::io(path, e))?;
        Self::from_hf_json(&text).map_err(|e| match e {
            TaggerError::Json { source, .. } => TaggerError::Json {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })
    }

    /// Parses the text of a Hugging Face `config.json`.
    pub fn from_hf_json(text: &str) -> Result<EncoderConfig> {
        let hf: HfConfig = serde_json::from_str(text).map_err(|source| TaggerError::Json {
            path: "<config.json>".into(),
            source,
        })?;
        let model_type = hf.model_type.clone().unwrap_or_else(|| "bert".into());
        let kind = match model_type.as_str() {
            "bert" => EncoderKind::Bert,
            "roberta" | "xlm-roberta" | "camembert" => EncoderKind::Roberta,
            other => {
                return Err(TaggerError::UnsupportedConfig(format!(
                    "model_type `{other}`; expected bert, roberta, xlm-roberta or camembert"
                )));
            }
        };
        if let Some(p) = &hf.position_embedding_type
            && p != "absolute"
        {
            return Err(TaggerError::UnsupportedConfig(format!(
                "position_embedding_type `{p}`; only `absolute` is supported"
            )));
        }
        let hidden_act = match hf.hidden_act.as_deref().unwrap_or("gelu") {
            "gelu" => HiddenAct::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => HiddenAct::GeluTanh,
            "relu" => HiddenAct::Relu,
            other => {
                return Err(TaggerError::UnsupportedConfig(format!(
                    "hidden_act `{other}`; expected gelu, gelu_new or relu"
                )));
            }
        };
        let config = EncoderConfig::new(
            kind,
            hf.vocab_size,
            hf.hidden_size,
            hf.num_hidden_layers,
            hf.num_attention_heads,
            hf.intermediate_size,
            hf.max_position_embeddings,
        )
        .with_type_vocab_size(hf.type_vocab_size.unwrap_or(2).max(1))
        .with_layer_norm_eps(hf.layer_norm_eps.unwrap_or(1e-12))
        .with_pad_token_id(hf.pad_token_id.unwrap_or(match kind {
            EncoderKind::Bert => 0,
            EncoderKind::Roberta => 1,
        }))
        .with_hidden_dropout(hf.hidden_dropout_prob.unwrap_or(0.1))
        .with_attention_dropout(hf.attention_probs_dropout_prob.unwrap_or(0.1))
        .with_hidden_act(hidden_act);
        config.validate()?;
        Ok(config)
    }

    /// Checks that the numbers describe a model that can be built.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TaggerError::UnsupportedConfig(m));
        if self.hidden_size == 0 || self.num_heads == 0 || self.num_layers == 0 {
            return bad(
                "hidden_size, num_attention_heads and num_hidden_layers must be > 0".into(),
            );
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_heads
            ));
        }
        if self.max_position_embeddings <= self.position_offset() + 2 {
            return bad(format!(
                "max_position_embeddings {} leaves no room for tokens",
                self.max_position_embeddings
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout),
            ("attention_probs_dropout_prob", self.attention_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("{name} {p} is outside [0, 1)"));
            }
        }
        Ok(())
    }

    /// First position id: 0 for BERT, `pad_token_id + 1` for RoBERTa.
    pub fn position_offset(&self) -> usize {
        match self.kind {
            EncoderKind::Bert => 0,
            EncoderKind::Roberta => self.pad_token_id + 1,
        }
    }

    /// The longest token sequence (special tokens included) the position table allows.
    pub fn max_sequence_len(&self) -> usize {
        self.max_position_embeddings
            .saturating_sub(self.position_offset())
    }
}
