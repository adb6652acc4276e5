// Lets the binary find LibTorch at run time (an rpath to the LibTorch that linkner linked).
fn main() {
    linkner_build::link_libtorch();
}
