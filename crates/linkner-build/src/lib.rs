//! Build-script helper shared by the linkner crates that link LibTorch.
//!
//! `tch`/`torch-sys` link `libtorch*.so` but leave no run-time search path in the binaries, so a
//! test binary or the `linkner` CLI would fail to start unless the user exported
//! `LD_LIBRARY_PATH`. [`emit_torch_rpath`] finds the LibTorch library folder the same way
//! `torch-sys` does (`LIBTORCH_LIB`, `LIBTORCH`, or the PyTorch of the `python` on `PATH` when
//! `LIBTORCH_USE_PYTORCH` is set) and emits a `-Wl,-rpath` link argument for the calling package.
//! The folder is canonicalised: PyTorch's libraries find their CUDA dependencies relative to
//! their real location, so an rpath through a symlink would break them.

use std::path::PathBuf;
use std::process::Command;

/// Locates LibTorch's `lib` folder; `None` when nothing points at one.
pub fn torch_lib_dir() -> Option<PathBuf> {
    if let Some(lib) = std::env::var_os("LIBTORCH_LIB") {
        return Some(PathBuf::from(lib).join("lib"));
    }
    if let Some(root) = std::env::var_os("LIBTORCH") {
        return Some(PathBuf::from(root).join("lib"));
    }
    if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        let python = std::env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python".into());
        let out = Command::new(python)
            .args([
                "-c",
                "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
            ])
            .output()
            .ok()?;
        if out.status.success() {
            let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !s.is_empty() {
                return Some(PathBuf::from(s));
            }
        }
    }
    None
}

/// Emits `cargo:rustc-link-arg=-Wl,-rpath,<torch lib>` when the calling package's `tch` feature
/// is on and a LibTorch folder is found; prints a cargo warning when the feature is on but no
/// folder is found. Call it from a `build.rs`.
pub fn emit_torch_rpath() {
    for var in [
        "LIBTORCH",
        "LIBTORCH_LIB",
        "LIBTORCH_USE_PYTORCH",
        "PYTHON_SYS_EXECUTABLE",
        "LINKNER_VENV",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return;
    }
    match torch_lib_dir() {
        Some(dir) => {
            let dir = dir.canonicalize().unwrap_or(dir);
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
        }
        None => println!(
            "cargo:warning=linkner: feature `tch` is on but no LibTorch was found \
             (run scripts/setup-python.sh and `source scripts/env.sh`)"
        ),
    }
}
