fn main() {
    linkner_build::emit_torch_rpath();
}
