//! Loading Hugging Face BERT/RoBERTa weights (`model.safetensors`) into an [`Encoder`].

use std::path::{Path, PathBuf};

use burn::store::{KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::Device;

use super::config::EncoderConfig;
use super::model::Encoder;
use crate::error::{Result, TaggerError};

/// How Hugging Face parameter names map onto this crate's module paths. Patterns are applied in
/// order to every key; the first strips the head-model prefixes (`bert.`, `roberta.`).
pub const HF_KEY_REMAPPING: &[(&str, &str)] = &[
    (r"^(bert|roberta|model)\.", ""),
    (r"^embeddings\.LayerNorm\.", "embeddings.layer_norm."),
    (
        r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.",
        "layers.${1}.${2}.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.",
        "layers.${1}.attention_output.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.",
        "layers.${1}.attention_norm.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.intermediate\.dense\.",
        "layers.${1}.intermediate.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.output\.dense\.",
        "layers.${1}.output.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.",
        "layers.${1}.output_norm.",
    ),
];

/// What loading a weights file did (burn's `ApplyResult`, summarised).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The weights file.
    pub path: PathBuf,
    /// Module paths that received a tensor.
    pub applied: Vec<String>,
    /// Keys of the file (after remapping) that no module parameter uses, e.g. `pooler.*`,
    /// `embeddings.position_ids`, or a pre-training head.
    pub unused: Vec<String>,
    /// Module paths skipped by a filter.
    pub skipped: Vec<String>,
}

/// [`HF_KEY_REMAPPING`] followed by `extra` patterns (e.g. a head's encoder moved under a prefix).
fn remapper(extra: &[(&str, &str)]) -> Result<KeyRemapper> {
    let mut r = KeyRemapper::new();
    for (from, to) in HF_KEY_REMAPPING.iter().chain(extra) {
        r = r
            .add_pattern(*from, *to)
            .map_err(|e| TaggerError::InvalidArgument(format!("key remapping `{from}`: {e}")))?;
    }
    Ok(r)
}

/// Loads a Hugging Face `model.safetensors` into `encoder` through burn's safetensors store,
/// with key remapping and `PyTorchToBurnAdapter` (Linear transposes, LayerNorm renames).
///
/// Fails with [`TaggerError::MissingWeights`] listing every encoder parameter the file does not
/// provide and with [`TaggerError::Weights`] on a shape or dtype mismatch; file keys nobody uses
/// are returned in [`LoadReport::unused`] and logged at debug level.
pub fn load_hf_weights(encoder: &mut Encoder, path: &Path) -> Result<LoadReport> {
    load_hf_safetensors(encoder, path, &[])
}

/// The one Hugging Face weight loader of this crate (the encoder, and the token-classification
/// model whose encoder keys `extra` moves): a missing parameter or a bad tensor is a typed
/// error, unused file keys are reported and logged, never dropped silently.
pub(crate) fn load_hf_safetensors<M: ModuleSnapshot>(
    module: &mut M,
    path: &Path,
    extra: &[(&str, &str)],
) -> Result<LoadReport> {
    if !path.is_file() {
        return Err(TaggerError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "weights file not found"),
        ));
    }
    let mut store = SafetensorsStore::from_file(path)
        .with_from_adapter(PyTorchToBurnAdapter)
        .remap(remapper(extra)?)
        .allow_partial(true)
        .validate(false);
    let result = module
        .load_from(&mut store)
        .map_err(|e| TaggerError::Weights {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if !result.errors.is_empty() {
        let msgs: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        return Err(TaggerError::Weights {
            path: path.to_path_buf(),
            message: msgs.join("; "),
        });
    }
    if !result.missing.is_empty() {
        return Err(TaggerError::MissingWeights {
            path: path.to_path_buf(),
            missing: result.missing.iter().map(|(p, _)| p.clone()).collect(),
        });
    }
    for key in &result.unused {
        tracing::debug!(file = %path.display(), key = %key, "unused tensor in weights");
    }
    Ok(LoadReport {
        path: path.to_path_buf(),
        applied: result.applied,
        unused: result.unused,
        skipped: result.skipped,
    })
}

/// An encoder read from a Hugging Face folder (`config.json` + `model.safetensors`).
#[derive(Debug, Clone)]
pub struct LoadedEncoder {
    /// The architecture.
    pub config: EncoderConfig,
    /// The module with its weights.
    pub encoder: Encoder,
    /// What the weight loading did.
    pub report: LoadReport,
}

/// Builds the encoder described by `dir/config.json` on `device` and loads
/// `dir/model.safetensors` into it.
pub fn load_hf_encoder(dir: &Path, device: &Device) -> Result<LoadedEncoder> {
    let config = EncoderConfig::from_hf_file(&dir.join("config.json"))?;
    let mut encoder = config.init(device);
    let report = load_hf_weights(&mut encoder, &dir.join("model.safetensors"))?;
    tracing::info!(
        dir = %dir.display(),
        applied = report.applied.len(),
        unused = report.unused.len(),
        "loaded encoder weights"
    );
    Ok(LoadedEncoder {
        config,
        encoder,
        report,
    })
}
