//! Build-script helper for the linkner crates that link LibTorch, and for the programs that use
//! them ([`link_libtorch`]).
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

/// For the `build.rs` of a program that depends on `linkner` (or `linkner-tagger`) with the
/// LibTorch backend: lets the program's binaries find LibTorch at run time, without
/// `LD_LIBRARY_PATH`.
///
/// A dependency's build script cannot add link arguments to the binaries of the package that
/// depends on it, so the rpath that linkner bakes into its own binaries does not reach an app;
/// without this, the app builds and then dies at start with `error while loading shared
/// libraries: libtorch_cuda.so: cannot open shared object file`. Add
/// `linkner-build` to the app's `[build-dependencies]` and call this from its `build.rs`:
///
/// ```no_run
/// // build.rs: `fn main() { linkner_build::link_libtorch(); }`
/// linkner_build::link_libtorch();
/// ```
///
/// It emits `cargo:rustc-link-arg=-Wl,-rpath,<LibTorch lib folder>`, found as `torch-sys` finds
/// it (`LIBTORCH_LIB`, `LIBTORCH`, or the PyTorch of the `python` on `PATH` with
/// `LIBTORCH_USE_PYTORCH=1`, which `scripts/env.sh` sets), and asks cargo to rerun the script
/// when those variables change. When no LibTorch is found it prints a cargo warning (the build
/// itself then fails in `torch-sys`).
pub fn link_libtorch() {
    rerun_if_torch_env_changed();
    match torch_lib_dir() {
        Some(dir) => {
            let dir = dir.canonicalize().unwrap_or(dir);
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
        }
        None => println!(
            "cargo:warning=linkner: no LibTorch found for the run-time search path \
             (run scripts/setup-python.sh and `source scripts/env.sh`, or set LIBTORCH)"
        ),
    }
}

fn rerun_if_torch_env_changed() {
    for var in [
        "LIBTORCH",
        "LIBTORCH_LIB",
        "LIBTORCH_USE_PYTORCH",
        "PYTHON_SYS_EXECUTABLE",
        "LINKNER_VENV",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
}

/// Like [`link_libtorch`], for the linkner crates themselves: only when the calling package's
/// `tch` feature is on (nothing to link otherwise).
pub fn emit_torch_rpath() {
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        rerun_if_torch_env_changed();
        return;
    }
    link_libtorch();
}
