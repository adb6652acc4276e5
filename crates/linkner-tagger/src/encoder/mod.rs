//! BERT/RoBERTa encoders in burn, loaded from Hugging Face folders.
//!
//! - [`EncoderConfig`]: the architecture, read from `config.json`;
//! - [`Encoder`]: the module (post-norm layers, exact-erf GELU, LayerNorm eps from the config,
//!   RoBERTa's position offset, token-type embeddings, padding mask);
//! - [`load_hf_weights`] / [`load_hf_encoder`]: `model.safetensors` through
//!   `burn::store::SafetensorsStore` with key remapping and `PyTorchToBurnAdapter`.

mod config;
mod load;
mod model;

pub use config::{EncoderConfig, EncoderKind, HiddenAct};
pub(crate) use load::load_hf_safetensors;
pub use load::{HF_KEY_REMAPPING, LoadReport, LoadedEncoder, load_hf_encoder, load_hf_weights};
pub use model::{Embeddings, Encoder, EncoderLayer};
