#!/usr/bin/env bash
# The README's main job on a fresh machine.
#
# Today (foundation stage) it sets up LibTorch, builds the `linkner` CLI and scores the CoNLL-03
# test set against itself with the conlleval-exact scorer. When the linker lands this becomes:
# train the default tagger if no checkpoint is cached, start the local LLM server, annotate a few
# sentences and run `linkner link` on the OOV test set.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup-python.sh
# shellcheck source=scripts/env.sh
source scripts/env.sh
cargo build --locked -p linkner-cli
linkner="$CARGO_TARGET_DIR/debug/linkner"
test_file="$LINKNER_DATA/conll03/conll/test.txt"
if [ ! -f "$test_file" ]; then
  echo "CoNLL-03 not found at $test_file: set LINKNER_DATA to your datasets folder (see README)" >&2
  exit 1
fi
echo "== linkner score: CoNLL-03 test gold against itself =="
"$linkner" score --gold "$test_file" --pred "$test_file"
echo
echo "(the full pipeline — tagger + uncertainty + local LLM — is wired in by the linker issue)"
