# Source this file: `source scripts/env.sh`. It sets the environment every linkner script,
# the test command and CI share, so that all of them reuse one build folder and one venv.
#   LINKNER_CACHE   where the venv, cargo's build folder, models and checkpoints live
#                   (default ~/.cache/linkner; outside the clone so clones share it)
#   LINKNER_DATA    the datasets folder (default ../shared/data next to the clone)
export LINKNER_CACHE="${LINKNER_CACHE:-$HOME/.cache/linkner}"
export LINKNER_VENV="${LINKNER_VENV:-$LINKNER_CACHE/venv}"
# Cargo's intermediate artifacts (dependencies: burn, tch, tokenizers, ...) live in one build
# folder shared by every clone and CI run on this machine; the final binaries stay in each
# clone's own `target/`, so two clones never overwrite each other's `linkner` binary.
export CARGO_BUILD_BUILD_DIR="${CARGO_BUILD_BUILD_DIR:-$LINKNER_CACHE/build}"
# tch/torch-sys: take libtorch from the venv's PyTorch 2.9.0.
export LIBTORCH_USE_PYTORCH=1
export PATH="$LINKNER_VENV/bin:$PATH"
_linkner_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LINKNER_DATA="${LINKNER_DATA:-$(cd "$_linkner_root/.." && pwd)/shared/data}"
unset _linkner_root
