//! Build script: lets the test binaries find LibTorch at run time (rpath to the venv's torch).
//! `linkner` (a dependency with its default LibTorch backend) links it, but a dependency's
//! rpath does not reach this package's binaries.
fn main() {
    linkner_build::link_libtorch();
}
