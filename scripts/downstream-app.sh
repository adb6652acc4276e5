#!/usr/bin/env bash
# Builds and runs tests/downstream-app: a program outside the linkner workspace (its own
# Cargo.toml and [workspace]) that depends on linkner exactly as the README tells app authors to:
# a git dependency with default features, LibTorch found by tch's conventions
# (LIBTORCH_USE_PYTORCH=1 and a python with torch 2.9.0 on PATH), and a build.rs that calls
# `linkner_build::link_libtorch()`. It must start without LD_LIBRARY_PATH and print the entities
# of a tiny tagger trained here.
#
# Nothing of scripts/env.sh reaches the build: its environment is HOME, a PATH with cargo and the
# venv's python, LIBTORCH_USE_PYTORCH=1, and cargo's build folder (a cache only: the shared one,
# so that burn, the LibTorch bindings and tokenizers compiled by the workspace build are reused;
# same Cargo.lock versions, profile and dependency features). git resolves the dependency's URL
# (https://example.invalid/linkner, the workspace's `repository`) to this clone at its HEAD
# commit through a throw-away git config (`url.<clone>.insteadOf`): what is tested is what is
# committed. Run by scripts/test.sh after the workspace's tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh
app="$root/tests/downstream-app"
log() { echo "[linkner downstream-app] $*" >&2; }

export CARGO_TARGET_DIR="$root/target/downstream-app"
work="$(mktemp -d "${TMPDIR:-/tmp}/linkner-downstream.XXXXXX")"
trap 'rm -rf "$work"' EXIT
rev="$(git -C "$root" rev-parse HEAD)"
if ! git -C "$root" diff --quiet HEAD -- crates Cargo.toml Cargo.lock; then
  log "note: uncommitted changes under crates/ are not in the git dependency (it builds $rev)"
fi
# The app in a folder of its own, with the workspace's Cargo.lock (cargo adds the git entries).
mkdir -p "$work/app"
cp -r "$app/Cargo.toml" "$app/build.rs" "$app/src" "$work/app/"
cp "$root/Cargo.lock" "$work/app/Cargo.lock"
# The dependency's URL resolved to this clone (git CLI fetch, so that the config applies).
printf '[url "file://%s"]\n\tinsteadOf = https://example.invalid/linkner\n' "$root" \
  > "$work/gitconfig"
cargo_bin="$(dirname "$(command -v cargo)")"
t0=$(date +%s)
env -i HOME="$HOME" PATH="$cargo_bin:$LINKNER_VENV/bin:/usr/local/bin:/usr/bin:/bin" \
  LIBTORCH_USE_PYTORCH=1 GIT_CONFIG_GLOBAL="$work/gitconfig" CARGO_NET_GIT_FETCH_WITH_CLI=true \
  ${CARGO_HOME:+CARGO_HOME="$CARGO_HOME"} ${RUSTUP_HOME:+RUSTUP_HOME="$RUSTUP_HOME"} \
  CARGO_BUILD_BUILD_DIR="$CARGO_BUILD_BUILD_DIR" CARGO_TARGET_DIR="$CARGO_TARGET_DIR" \
  cargo build --manifest-path "$work/app/Cargo.toml" 2>&1 | tee "$work/build.log" >&2
[ "${PIPESTATUS[0]}" = 0 ] || exit 1
grep -q 'source = "git+https://example.invalid/linkner' "$work/app/Cargo.lock" \
  || { log "the app's Cargo.lock does not take linkner from its git URL"; exit 1; }
log "built in $(( $(date +%s) - t0 ))s (linkner from git at ${rev:0:12})"
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
