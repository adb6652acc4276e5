//! Build script: bakes an rpath to LibTorch into the binaries when the `tch` feature is on.

fn main() {
    linkner_build::emit_torch_rpath();
}
