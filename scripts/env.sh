# Source this file: `source scripts/env.sh`. It sets the environment every linkner script,
# the test command and CI share, so that all of them reuse one build folder and one venv.
#   LINKNER_CACHE   where the venv, the cargo target folder and downloaded models live
#                   (default ~/.cache/linkner; outside the clone so clones share it)
#   LINKNER_DATA    the datasets folder (default ../shared/data next to the clone)
export LINKNER_CACHE="${LINKNER_CACHE:-$HOME/.cache/linkner}"
export LINKNER_VENV="${LINKNER_VENV:-$LINKNER_CACHE/venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$LINKNER_CACHE/target}"
# tch/torch-sys: take libtorch from the venv's PyTorch 2.9.0.
export LIBTORCH_USE_PYTORCH=1
export PATH="$LINKNER_VENV/bin:$PATH"
_linkner_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LINKNER_DATA="${LINKNER_DATA:-$(cd "$_linkner_root/.." && pwd)/shared/data}"
unset _linkner_root
