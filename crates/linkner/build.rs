//! Build script: lets the binaries find LibTorch at run time (rpath to the venv's torch).
fn main() {
    linkner_build::emit_torch_rpath();
}
