//! The float precision of a tagger's forward pass, shared by both built-in taggers: [`Precision`]
//! and the one cast of a module's float parameters ([`cast_module`]).

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TaggerError};

/// Float precision of a tagger's forward pass (see
/// [`SpanTagger::with_precision`](crate::SpanTagger::with_precision) and
/// [`TokenClassTagger::with_precision`](crate::TokenClassTagger::with_precision)).
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
    /// The burn dtype of this precision.
    pub(crate) fn dtype(self) -> FloatDType {
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
