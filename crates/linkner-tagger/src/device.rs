//! Device choice: LibTorch CPU (default with the `tch` feature), LibTorch CUDA, or burn's
//! pure-Rust `flex` backend.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::TaggerError;

/// Where tensors live: which burn backend and which device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceSpec {
    /// LibTorch on the CPU (needs the `tch` feature); `flex` when the feature is off.
    #[default]
    Cpu,
    /// LibTorch on CUDA device `n` (needs the `tch` feature and a CUDA machine).
    Cuda(usize),
    /// burn's pure-Rust CPU backend; always available.
    Flex,
}

impl DeviceSpec {
    /// The burn device for this spec.
    ///
    /// Without the `tch` feature, `Cpu` falls back to `flex` and `Cuda` is refused by
    /// [`DeviceSpec::checked_device`]; this method then also returns `flex`.
    #[allow(deprecated)] // burn 0.22 marks the libtorch constructors deprecated.
    pub fn device(&self) -> burn::tensor::Device {
        apply_default_threads();
        match self {
            #[cfg(feature = "tch")]
            DeviceSpec::Cpu => burn::tensor::Device::libtorch(),
            #[cfg(feature = "tch")]
            DeviceSpec::Cuda(n) => burn::tensor::Device::libtorch_cuda(*n),
            #[cfg(not(feature = "tch"))]
            DeviceSpec::Cpu | DeviceSpec::Cuda(_) => burn::tensor::Device::flex(),
            DeviceSpec::Flex => burn::tensor::Device::flex(),
        }
    }

    /// Like [`DeviceSpec::device`], but refuses CUDA in a build without LibTorch and a CUDA
    /// device that LibTorch does not see (no GPU, no CUDA driver, a CPU-only LibTorch, or an
    /// index past the last device).
    pub fn checked_device(&self) -> Result<burn::tensor::Device, TaggerError> {
        if let DeviceSpec::Cuda(n) = self {
            if !cfg!(feature = "tch") {
                return Err(TaggerError::Device {
                    name: self.to_string(),
                    message: "CUDA needs the `tch` feature (LibTorch)".into(),
                });
            }
            let count = cuda_device_count();
            if *n >= count {
                return Err(TaggerError::Device {
                    name: self.to_string(),
                    message: format!(
                        "LibTorch sees {count} CUDA device(s){}",
                        if count == 0 {
                            " (no GPU or driver, or a CPU-only LibTorch); use --device cpu"
                        } else {
                            ""
                        }
                    ),
                });
            }
        }
        Ok(self.device())
    }

    /// Whether this is a CUDA device.
    pub fn is_cuda(&self) -> bool {
        matches!(self, DeviceSpec::Cuda(_))
    }
}

/// The default number of sentences per forward pass at inference on `device`: 16 on the CPU
/// (the fastest with one stream per core, `docs/benchmarks.md`), 256 on CUDA, where small
/// batches leave the GPU idle between kernel launches.
pub fn default_batch_size(device: &DeviceSpec) -> usize {
    if device.is_cuda() { 256 } else { 16 }
}

/// Number of CUDA devices LibTorch can use (0 without the `tch` feature).
pub fn cuda_device_count() -> usize {
    #[cfg(feature = "tch")]
    {
        if tch::Cuda::is_available() {
            return usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
        }
    }
    0
}

/// Set once the thread count has been chosen (by [`set_threads`] or by the default).
static THREADS_CHOSEN: AtomicBool = AtomicBool::new(false);

/// The default number of LibTorch CPU threads: `OMP_NUM_THREADS` when it is set to a positive
/// integer, else the cores available to this process
/// ([`std::thread::available_parallelism`], which follows the CPU affinity mask and cgroup
/// quotas), else 1.
pub fn default_threads() -> usize {
    if let Some(n) = std::env::var("OMP_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return n;
    }
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Gives LibTorch [`default_threads`] threads the first time a device is made, unless
/// [`set_threads`] chose a count before.
fn apply_default_threads() {
    if !THREADS_CHOSEN.swap(true, Ordering::SeqCst) {
        #[cfg(feature = "tch")]
        tch::set_num_threads(i32::try_from(default_threads()).unwrap_or(i32::MAX));
    }
}

/// Sets the number of intra-op CPU threads of LibTorch (the `cpu` device). `0` is refused.
///
/// Without a call, the first device made gets [`default_threads`] (the cores available to the
/// process, or `OMP_NUM_THREADS`). LibTorch's OpenMP workers busy-wait between the many small
/// operations of a training step; on a machine where other processes compete for the cores,
/// fewer threads (even 1) can be several times faster (see `docs/tagger.md`). Without the `tch`
/// feature this does nothing.
pub fn set_threads(n: usize) -> Result<(), TaggerError> {
    if n == 0 {
        return Err(TaggerError::InvalidArgument(
            "thread count must be > 0".into(),
        ));
    }
    THREADS_CHOSEN.store(true, Ordering::SeqCst);
    #[cfg(feature = "tch")]
    tch::set_num_threads(i32::try_from(n).unwrap_or(i32::MAX));
    Ok(())
}

/// Gives the calling thread `n` LibTorch intra-op threads (a worker of a concurrent CPU
/// stream). LibTorch keeps the OpenMP and MKL counts per thread, but also stores `n` as the
/// count new threads start with: the caller restores that with [`restore_threads`] when its
/// workers are done.
pub(crate) fn set_worker_threads(n: usize) {
    #[cfg(feature = "tch")]
    tch::set_num_threads(i32::try_from(n.max(1)).unwrap_or(i32::MAX));
    #[cfg(not(feature = "tch"))]
    let _ = n;
}

/// Sets LibTorch's thread count back to `n` on the calling thread and for new threads.
pub(crate) fn restore_threads(n: usize) {
    set_worker_threads(n);
}

/// The number of intra-op CPU threads LibTorch uses now (1 without the `tch` feature).
pub fn threads() -> usize {
    #[cfg(feature = "tch")]
    {
        usize::try_from(tch::get_num_threads()).unwrap_or(1)
    }
    #[cfg(not(feature = "tch"))]
    {
        1
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Flex => write!(f, "flex"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = TaggerError;

    /// Parses `cpu` (also `tch`, `libtorch`), `cuda`, `cuda:N`, `flex`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "cpu" | "tch" | "libtorch" => Ok(DeviceSpec::Cpu),
            "flex" => Ok(DeviceSpec::Flex),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => {
                if let Some(n) = t.strip_prefix("cuda:")
                    && let Ok(n) = n.parse::<usize>()
                {
                    return Ok(DeviceSpec::Cuda(n));
                }
                Err(TaggerError::Device {
                    name: s.to_string(),
                    message: "expected cpu, cuda, cuda:N or flex".into(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
        assert_eq!("CUDA".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("flex".parse::<DeviceSpec>().unwrap(), DeviceSpec::Flex);
        assert!("gpu7".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        for d in [DeviceSpec::Cpu, DeviceSpec::Cuda(3), DeviceSpec::Flex] {
            assert_eq!(d.to_string().parse::<DeviceSpec>().unwrap(), d);
        }
    }
}
