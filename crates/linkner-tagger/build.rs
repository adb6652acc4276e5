//! Build script: bakes an rpath to LibTorch into test binaries when the `tch` feature is on.

fn main() {
    linkner_build::emit_torch_rpath();
}
