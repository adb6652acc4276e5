#!/usr/bin/env bash
# The README's test command: sets up what the tests need (idempotent, cached outside the clone
# under $LINKNER_CACHE), then runs formatting and lint checks and the whole test suite with the
# LibTorch (`tch`) backend on. CI runs exactly this (see .ci/run).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup-python.sh
# shellcheck source=scripts/env.sh
source scripts/env.sh

start=$(date +%s)
echo "[linkner] cargo fmt --check" >&2
cargo fmt --all -- --check
echo "[linkner] cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "[linkner] building tests" >&2
cargo test --workspace --locked --no-run
echo "[linkner] running tests" >&2
cargo test --workspace --locked
echo "[linkner] tests done in $(( $(date +%s) - start ))s (after set-up)" >&2
