#!/usr/bin/env bash
# Builds and runs tests/downstream-app: a program outside the linkner workspace (its own
# Cargo.toml and [workspace], linkner as a path dependency with default features) that calls
# `linkner_build::link_libtorch()` from its build.rs, as the README tells app authors to. It must
# start without LD_LIBRARY_PATH and print the entities of a tiny tagger trained here.
#
# The app builds with the workspace's Cargo.lock (copied next to it; cargo adds the app's own
# entry) and the same profile settings, into the shared build folder of scripts/env.sh, so it
# reuses the dependency artifacts of the workspace build (burn, LibTorch bindings, tokenizers)
# instead of compiling them again. Run by scripts/test.sh after the workspace's tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh
app="$root/tests/downstream-app"
log() { echo "[linkner downstream-app] $*" >&2; }

cp "$root/Cargo.lock" "$app/Cargo.lock"
export CARGO_TARGET_DIR="$root/target/downstream-app"
work="$(mktemp -d "${TMPDIR:-/tmp}/linkner-downstream.XXXXXX")"
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)
cargo build --manifest-path "$app/Cargo.toml" --offline 2>&1 | tee "$work/build.log" >&2
[ "${PIPESTATUS[0]}" = 0 ] || exit 1
log "built in $(( $(date +%s) - t0 ))s"
if grep -q "Compiling burn v" "$work/build.log"; then
  # Not an error, but CI time: the features this build resolves for burn's dependencies differ
  # from the workspace's. Compare `cargo tree -e normal,build -f '{p} {f}' --prefix none` of the
  # workspace and of the app, and update the feature-matching entries of the app's Cargo.toml.
  log "WARNING: burn was compiled again instead of reused from the workspace build"
fi
bin="$CARGO_TARGET_DIR/debug/linkner-downstream-app"
# A tiny tagger that has memorised four sentences (the workspace's CLI, built by the tests).
linkner="$root/target/debug/linkner"
[ -x "$linkner" ] || cargo test --workspace --locked --no-run
"$linkner" train --train "$app/tiny.conll" --format conll --out "$work/model" --epochs 20 \
  --lr 2e-4 --patience 0 --batch-size 2 --threads 1 >/dev/null 2>"$work/train.log" \
  || { cat "$work/train.log" >&2; exit 1; }

# No LD_LIBRARY_PATH: the app finds LibTorch through the rpath its build script baked in.
out="$(env -u LD_LIBRARY_PATH LINKNER_MODEL="$work/model" "$bin" "Japan beat Syria ." \
  "Peter Blackburn")"
printf '%s\n' "$out" | sed 's/^/  /' >&2
expected=$'Japan\tLOC\t0\t5\nSyria\tLOC\t11\t16\nPeter Blackburn\tPER\t0\t15'
if [ "$out" != "$expected" ]; then
  log "unexpected output; expected:"
  printf '%s\n' "$expected" >&2
  exit 1
fi
log "ok: the app started and printed its entities"
