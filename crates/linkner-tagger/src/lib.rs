//! # linkner-tagger
//!
//! The local model of linkner: the `LocalTagger` trait (sentences in, candidate entities with
//! word spans, char offsets and full label distributions out) and its burn implementation, a
//! SpanNER head on a BERT/RoBERTa encoder loaded from a Hugging Face folder (`config.json`,
//! `model.safetensors`, `tokenizer.json`). Backend: LibTorch through `burn-tch` (CPU or CUDA,
//! feature `tch`, on by default) or burn's pure-Rust `flex` backend.
//!
//! Status: the crate is being built (see the tagger issue); today it exposes the device choice.
#![allow(deprecated)] // burn 0.22 marks the libtorch device constructor deprecated.

use serde::{Deserialize, Serialize};

/// Where tensors live: which burn backend and which device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceSpec {
    /// LibTorch on the CPU (needs the `tch` feature); the default when it is on.
    #[default]
    Cpu,
    /// LibTorch on CUDA device `n` (needs the `tch` feature and a CUDA machine).
    Cuda(usize),
    /// burn's pure-Rust CPU backend; always available.
    Flex,
}

impl DeviceSpec {
    /// The burn device for this spec.
    pub fn device(&self) -> burn::tensor::Device {
        match self {
            #[cfg(feature = "tch")]
            DeviceSpec::Cpu => burn::tensor::Device::libtorch(),
            #[cfg(not(feature = "tch"))]
            DeviceSpec::Cpu => burn::tensor::Device::flex(),
            #[cfg(feature = "tch")]
            DeviceSpec::Cuda(_n) => burn::tensor::Device::libtorch(),
            #[cfg(not(feature = "tch"))]
            DeviceSpec::Cuda(_n) => burn::tensor::Device::flex(),
            DeviceSpec::Flex => burn::tensor::Device::flex(),
        }
    }
}
