#!/usr/bin/env bash
# Run-to-run spread of linking with a fresh (uncached) LLM: the same sample linked RUNS times,
# each asking the server every question again, and the spread of the linked F1 printed.
#
#   scripts/fresh-runs.sh RUNS SLOTS [SET] [SAMPLE]
#
#   RUNS     how many fresh runs (e.g. 3)
#   SLOTS    llama-server's parallel slots: 4 is the default server (requests batched together,
#            so answers can differ in the last digits from run to run); 1 is the deterministic
#            setting for reproducible fresh runs (one request at a time: slower)
#   SET      a set of `linkner dev report` (default oov), with its config from configs/
#   SAMPLE   sentences, whole documents drawn with seed 42 (default 300; 0 = the whole set)
#
# Uses the 1.5B model (scripts/setup-llm.sh quality) on port LINKNER_FRESH_PORT (default 8095),
# started for the runs and stopped at the end, and the tagger of the set's config (for the
# CoNLL-03 family, $LINKNER_CACHE/models/conll03-minilm-doc from scripts/main.sh). Each run's
# report is kept under LINKNER_FRESH_OUT (default /tmp/linkner-fresh-runs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh

runs="${1:?usage: $0 RUNS SLOTS [SET] [SAMPLE]}"
slots="${2:?usage: $0 RUNS SLOTS [SET] [SAMPLE]}"
set_name="${3:-oov}"
sample="${4:-300}"
port="${LINKNER_FRESH_PORT:-8095}"
out="${LINKNER_FRESH_OUT:-/tmp/linkner-fresh-runs}/$set_name-$sample-slots$slots"
mkdir -p "$out"
linkner="${LINKNER_BIN:-$root/target/debug/linkner}"
[ -x "$linkner" ] || { echo "build first: cargo build --workspace --all-targets --locked" >&2; exit 1; }

bash scripts/setup-llm.sh quality >/dev/null
bash scripts/llm-server.sh stop "$port" >/dev/null 2>&1 || true
trap 'bash scripts/llm-server.sh stop "$port" >/dev/null 2>&1 || true' EXIT
eval "$(LINKNER_LLM_SLOTS="$slots" bash scripts/llm-server.sh start quality "$port")"

for i in $(seq 1 "$runs"); do
  echo "== fresh run $i of $runs ($set_name, sample $sample, $slots slot(s)) ==" >&2
  "$linkner" dev report --configs configs --data-dir "$LINKNER_DATA" --sets "$set_name" \
    --sample "$sample" --llm-url "$LINKNER_LLM_URL" --llm-model "$LINKNER_LLM_MODEL" \
    --llm-timeout 600 --threads 1 --out "$out/run$i.md" --plots "$out/plots" \
    --json-out "$out/run$i.json" -q
done

python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
rows = []
for i in range(1, runs + 1):
    r = json.load(open(f"{out}/run{i}.json"))
    s = r["sets"][0]["run"]
    rows.append((i, 100 * s["scores"]["local"]["f1"], 100 * s["scores"]["linked"]["f1"],
                 100 * s["delta"]["low"], 100 * s["delta"]["high"], s["stats"]["routed"]))
print("| run | local F1 | linked F1 | Δ 95 % CI | routed |")
print("|---|---|---|---|---|")
for i, lo, li, a, b, n in rows:
    print(f"| {i} | {lo:.2f} | {li:.2f} | [{a:+.2f}, {b:+.2f}] | {n} |")
linked = [r[2] for r in rows]
sd = statistics.stdev(linked) if len(linked) > 1 else 0.0
print(f"\nlinked F1: min {min(linked):.2f}, max {max(linked):.2f}, "
      f"range {max(linked) - min(linked):.2f}, sd {sd:.2f} over {len(linked)} fresh runs")
PY
