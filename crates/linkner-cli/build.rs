//! Build script: bakes an rpath to LibTorch into the binaries when the `tch` feature is on, and
//! the git commit the binary is built from (`LINKNER_COMMIT`, for provenance records) when the
//! sources are a git checkout.

use std::path::Path;
use std::process::Command;

fn main() {
    linkner_build::emit_torch_rpath();
    emit_commit();
}

/// `cargo:rustc-env=LINKNER_COMMIT=<hash>` from `git rev-parse HEAD`, rerun when HEAD moves.
/// Outside a checkout (a packaged crate) nothing is emitted and records say "unknown".
fn emit_commit() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&manifest)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) else {
        return;
    };
    // A package being verified lies outside the checkout it came from: its sources are not
    // that commit's.
    let top = git(&["rev-parse", "--show-toplevel"]).unwrap_or_default();
    if !Path::new(&manifest).starts_with(&top) {
        return;
    }
    for f in ["HEAD", "logs/HEAD"] {
        let p = Path::new(&dir).join(f);
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
    if let Some(hash) = git(&["rev-parse", "HEAD"]) {
        println!("cargo:rustc-env=LINKNER_COMMIT={hash}");
    }
}
