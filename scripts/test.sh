#!/usr/bin/env bash
# The README's test command. Sets up what the tests need (LibTorch venv, llama-server and the
# small test model, a font for the plots; idempotent, cached outside the clone under
# $LINKNER_CACHE), then runs the format, lint and documentation checks, the pure-Rust (flex)
# tagger tests, the whole test suite with the LibTorch (`tch`) backend on, and a downstream app
# outside the workspace. CI runs exactly this (see .ci/run).
#
# The tests that talk to a real LLM (llama-server with the small model, started by each test on
# its own port) FAIL here when the server or the model is missing (LINKNER_REQUIRE_LLM=1), and
# each one that got real answers writes a line to $LINKNER_LLM_TEST_RECORD: the run ends with
# `real-LLM tests run: N` and fails when a real-LLM test did not run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup-python.sh
# llama.cpp's llama-server and the small test model (Qwen2.5-Coder-0.5B-Instruct); the tests that
# talk to a real LLM start and stop their own server on 127.0.0.1 with it.
bash scripts/setup-llm.sh small
# The real services of the `linkner serve` tests (Debian's redis-server, chromium, prometheus);
# each test starts its own on a free loopback port and stops it by pid.
bash scripts/setup-services.sh
# shellcheck source=scripts/env.sh
source scripts/env.sh

log() { echo "[linkner] $*" >&2; }

# --- The real-LLM tests: required, on their own servers, counted --------------------------------
export LINKNER_REQUIRE_LLM=1
# A server exported by the user is not what CI tests: every test starts its own.
unset LINKNER_LLM_URL LINKNER_LLM_MODEL
# Found the way scripts/llm-server.sh finds it.
llama_stamp="${LINKNER_LLAMA_VENV:-$LINKNER_CACHE/llama-venv}/.linkner-llama-ok-v2"
if [ -n "${LLAMA_SERVER:-}" ]; then
  [ -x "$LLAMA_SERVER" ] || { log "LLAMA_SERVER=$LLAMA_SERVER is not executable"; exit 1; }
elif ! { [ -f "$llama_stamp" ] && [ -x "$(cat "$llama_stamp")" ]; }; then
  log "llama-server is not installed ($llama_stamp): scripts/setup-llm.sh small failed?"
  exit 1
fi
if [ ! -f "$LINKNER_CACHE/llm/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf.ok" ]; then
  log "the small test model is missing under $LINKNER_CACHE/llm/models"
  exit 1
fi
# The ports of the tests' servers; a server left on one by a killed run is stopped by the pid
# that scripts/llm-server.sh recorded for it (never by name).
test_ports=(
  "${LINKNER_LLM_TEST_PORT:-18181}"
  "${LINKNER_LINK_TEST_PORT:-18182}"
  "${LINKNER_CLI_LINK_TEST_PORT:-18183}"
  "${LINKNER_QUICKSTART_TEST_PORT:-18184}"
  "${LINKNER_OPENAI_TEST_PORT:-18185}"
  "${LINKNER_REPORT_TEST_PORT:-18186}"
  "${LINKNER_STREAM_TEST_PORT:-18187}"
  "${LINKNER_SERVE_TEST_PORT:-18188}"
)
for port in "${test_ports[@]}"; do
  bash scripts/llm-server.sh stop "$port"
done
# Each real-LLM test appends its name here after real answers (tests/support/local_server.rs).
expected_llm_tests=(
  real_server::real_llama_server
  real_llm::real_llm_then_server_down
  cli_link::link_against_the_real_local_llm_server
  cli_bench_report::report_on_tiny_data_with_the_real_local_llm
  example_quickstart::example_runs
  example_openai::example_runs
  example_token_classification::example_runs
  token_classification::pipeline_with_the_real_local_llm_server
  cli_schema::link_with_a_schema_file_against_the_real_local_llm_server
  cli_stream::annotate_streams_through_the_real_local_llm_server_under_a_latency_budget
  cli_serve::serve_with_the_real_local_llm_server
)
LINKNER_LLM_TEST_RECORD="$(mktemp "${TMPDIR:-/tmp}/linkner-llm-tests.XXXXXX")"
export LINKNER_LLM_TEST_RECORD
llm_tests_run() { cut -f1 "$LINKNER_LLM_TEST_RECORD" | sort -u | grep -c . || true; }
on_exit() {
  local status=$?
  echo "real-LLM tests run: $(llm_tests_run)"
  rm -f "$LINKNER_LLM_TEST_RECORD"
  exit "$status"
}
trap on_exit EXIT

# --- A font for the plots' text (the plot test fails without one) -------------------------------
font_ok() {
  [ -n "${LINKNER_FONT:-}" ] && [ -f "$LINKNER_FONT" ] && return 0
  local f
  for f in /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/share/fonts/TTF/DejaVuSans.ttf \
    /usr/share/fonts/dejavu/DejaVuSans.ttf \
    /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf \
    /usr/share/fonts/truetype/freefont/FreeSans.ttf; do
    [ -f "$f" ] && return 0
  done
  return 1
}
if ! font_ok; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    log "installing a font for the plots (Debian package fonts-dejavu-core)"
    apt-get install -y -q fonts-dejavu-core >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q fonts-dejavu-core >/dev/null; }
  fi
  font_ok || { log "no font for the plots: install fonts-dejavu-core or set LINKNER_FONT"; exit 1; }
fi

# --- Checks and tests, each timed ----------------------------------------------------------------
start=$(date +%s)
step() {
  local name="$1" t0
  shift
  log "$name"
  t0=$(date +%s)
  "$@"
  log "$name: $(( $(date +%s) - t0 ))s"
}
# Without LibTorch and without Python on PATH: what a pure-Rust user builds.
pure_rust() {
  env -u LIBTORCH_USE_PYTORCH PATH="${PATH#"$LINKNER_VENV/bin:"}" "$@"
}

step "cargo fmt --check" cargo fmt --all -- --check
# File and function sizes (docs/architecture.md, "Code shape"); needs the rustfmt layout above.
step "code shape" python3 scripts/check-shape.py
# One path per public item, no cross-crate re-export, and docs/architecture.md's list is true.
step "public items" python3 scripts/public-items.py --check
step "cargo clippy -D warnings" cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo doc -D warnings" env RUSTDOCFLAGS="-D warnings" \
  cargo doc --workspace --no-deps --locked
if cargo tree -p linkner-tagger --no-default-features -e normal,build --locked | grep -q torch-sys; then
  log "the pure-Rust build of linkner-tagger depends on torch-sys"
  exit 1
fi
# The light linker (no tagger, no HTTP backend: a program that brings its own LocalTagger and
# LlmClassifier) pulls in neither burn, LibTorch nor reqwest.
heavy="$(cargo tree -p linkner --no-default-features -e normal --locked | grep -E 'burn|torch-sys|reqwest' || true)"
if [ -n "$heavy" ]; then
  log "linkner --no-default-features depends on heavy crates:"
  echo "$heavy" >&2
  exit 1
fi
# Every crate packages (metadata, versions on path dependencies, files inside the crate).
step "cargo package --workspace" cargo package --workspace --no-verify --allow-dirty --locked --quiet
step "light linker builds and tests (no default features)" \
  cargo test -p linkner --no-default-features --locked --lib
# The pure-Rust build, tested: all the tagger's tests on burn's flex backend, without LibTorch
# and without Python on PATH (their reference outputs come from the venv's Python, which the
# tests find by its path, LINKNER_VENV). Compiling burn a second time without LibTorch is most
# of its cost (docs/benchmarks.md); the tests themselves take under a minute.
step "pure-Rust tagger tests (flex backend, no LibTorch, no Python on PATH)" \
  pure_rust cargo test -p linkner-tagger --no-default-features --locked
step "building tests" cargo test --workspace --locked --no-run
step "running tests" cargo test --workspace --locked
step "downstream app outside the workspace" bash scripts/downstream-app.sh

# Every real-LLM test must have talked to the server.
missing=()
for t in "${expected_llm_tests[@]}"; do
  grep -q "^$t	" "$LINKNER_LLM_TEST_RECORD" || missing+=("$t")
done
if [ "$(llm_tests_run)" -eq 0 ] || [ "${#missing[@]}" -gt 0 ]; then
  log "real-LLM tests that did not get answers from the server: ${missing[*]:-all}"
  exit 1
fi
log "tests done in $(( $(date +%s) - start ))s (after set-up)"
