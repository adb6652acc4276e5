#!/usr/bin/env bash
# The README's test command. Sets up what the tests need (LibTorch venv, llama-server and the
# small test model; idempotent, cached outside the clone under $LINKNER_CACHE), then runs the
# format and lint checks and the whole test suite with the LibTorch (`tch`) backend on.
# CI runs exactly this (see .ci/run).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup-python.sh
# llama.cpp's llama-server and the small test model (Qwen2.5-Coder-0.5B-Instruct); the tests that
# talk to a real LLM start and stop their own server on 127.0.0.1 with it.
bash scripts/setup-llm.sh small
# shellcheck source=scripts/env.sh
source scripts/env.sh

start=$(date +%s)
echo "[linkner] cargo fmt --check" >&2
cargo fmt --all -- --check
echo "[linkner] cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "[linkner] pure-Rust build (flex backend, no LibTorch, no Python on PATH)" >&2
env -u LIBTORCH_USE_PYTORCH PATH="${PATH#"$LINKNER_VENV/bin:"}" \
  cargo check -p linkner-tagger --no-default-features --all-targets --locked
if cargo tree -p linkner-tagger --no-default-features -e normal,build --locked | grep -q torch-sys; then
  echo "the pure-Rust build of linkner-tagger depends on torch-sys" >&2
  exit 1
fi
echo "[linkner] building tests" >&2
cargo test --workspace --locked --no-run
echo "[linkner] running tests" >&2
cargo test --workspace --locked
echo "[linkner] tests done in $(( $(date +%s) - start ))s (after set-up)" >&2
