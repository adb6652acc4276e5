#!/usr/bin/env bash
# Starts and stops llama.cpp's llama-server on 127.0.0.1 (installed by scripts/setup-llm.sh).
#
#   scripts/llm-server.sh start MODEL PORT   MODEL: small | quality | a path to a .gguf file
#   scripts/llm-server.sh stop [PORT]        stops the server on PORT (all of ours without PORT)
#   scripts/llm-server.sh status [PORT]
#
# `start` is idempotent: when a healthy server of ours already listens on PORT it is reused. It
# waits for /health, writes $LINKNER_CACHE/llm/server-PORT.pid and prints on stdout
#   LINKNER_LLM_URL=http://127.0.0.1:PORT/v1
#   LINKNER_LLM_MODEL=<alias>
# so callers can `eval "$(scripts/llm-server.sh start small 8181)"; export LINKNER_LLM_URL ...`.
# Settings: 1 thread (-t 1; 2 threads stall on 2 cores under other load), 4 slots (-np 4), and a
# context of $LINKNER_LLM_CTX tokens (default 8192: 2048 per slot, room for the prompt with
# examples). LINKNER_LLM_SLOTS=1 is the deterministic setting for reproducible fresh runs: with
# several slots llama.cpp batches concurrent requests together, and an answer's log-probabilities
# can then differ in the last digits from run to run (scripts/fresh-runs.sh measures it);
# LINKNER_LLM_THREADS sets -t. The server log is $LINKNER_CACHE/llm/server-PORT.log.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/env.sh
source "$here/env.sh"

LLM_DIR="$LINKNER_CACHE/llm"
MODELS_DIR="$LLM_DIR/models"
LLAMA_VENV="${LINKNER_LLAMA_VENV:-$LINKNER_CACHE/llama-venv}"
CTX="${LINKNER_LLM_CTX:-8192}"
THREADS="${LINKNER_LLM_THREADS:-1}"
SLOTS="${LINKNER_LLM_SLOTS:-4}"
mkdir -p "$LLM_DIR"

log() { echo "[linkner llm-server] $*" >&2; }

healthy() {
  curl -fsS --max-time 2 "http://127.0.0.1:$1/health" >/dev/null 2>&1
}

# True when the pid recorded in file $1 (server-PORT.pid) is still the server started for PORT
# (a pid reused by another process after a crash is not ours: never signal it).
alive() {
  [ -f "$1" ] || return 1
  local pid port
  pid="$(cat "$1")"
  port="${1##*/server-}"
  port="${port%.pid}"
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/cmdline" ]; then
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "--port $port "
  fi
}

cmd_start() {
  local model="${1:-}" port="${2:-}"
  if [ -z "$model" ] || [ -z "$port" ]; then
    echo "usage: $0 start small|quality|PATH.gguf PORT" >&2
    exit 2
  fi
  local path alias
  case "$model" in
    small) path="$MODELS_DIR/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" ;;
    quality) path="$MODELS_DIR/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf" ;;
    *) path="$model" ;;
  esac
  if [ ! -f "$path" ]; then
    log "model file $path not found (run scripts/setup-llm.sh small|quality)"
    exit 1
  fi
  alias="$(basename "$path" .gguf)"
  local stamp="$LLAMA_VENV/.linkner-llama-ok-v2"
  local bin="${LLAMA_SERVER:-}"
  if [ -z "$bin" ] && [ -f "$stamp" ]; then
    bin="$(cat "$stamp")"
  fi
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    log "llama-server not installed (run scripts/setup-llm.sh small)"
    exit 1
  fi
  local pidf="$LLM_DIR/server-$port.pid" logf="$LLM_DIR/server-$port.log"
  if alive "$pidf" && healthy "$port"; then
    local running
    running="$(cat "$LLM_DIR/server-$port.model" 2>/dev/null || true)"
    if [ "$running" = "$path" ]; then
      log "reusing the server on port $port (pid $(cat "$pidf"))"
      echo "LINKNER_LLM_URL=http://127.0.0.1:$port/v1"
      echo "LINKNER_LLM_MODEL=$alias"
      return 0
    fi
    log "port $port serves another model ($running); restarting it"
    cmd_stop "$port"
  elif healthy "$port"; then
    log "port $port is taken by a server that is not ours; refusing to start"
    exit 1
  fi
  log "starting $alias on 127.0.0.1:$port (-t $THREADS -np $SLOTS -c $CTX)"
  # setsid: its own process group, so stopping it never touches the caller.
  setsid "$bin" -m "$path" --host 127.0.0.1 --port "$port" -t "$THREADS" -np "$SLOTS" -c "$CTX" \
    -a "$alias" >"$logf" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid" > "$pidf"
  echo "$path" > "$LLM_DIR/server-$port.model"
  local waited=0
  until healthy "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "server exited during start-up; last lines of $logf:"
      tail -n 20 "$logf" >&2 || true
      rm -f "$pidf"
      exit 1
    fi
    if [ "$waited" -ge 300 ]; then
      log "server not healthy after 150 s; stopping it (log: $logf)"
      cmd_stop "$port"
      exit 1
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  log "ready (pid $pid)"
  echo "LINKNER_LLM_URL=http://127.0.0.1:$port/v1"
  echo "LINKNER_LLM_MODEL=$alias"
}

stop_one() {
  local pidf="$1"
  if alive "$pidf"; then
    local pid
    pid="$(cat "$pidf")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped pid $pid"
  fi
  rm -f "$pidf"
}

cmd_stop() {
  if [ -n "${1:-}" ]; then
    stop_one "$LLM_DIR/server-$1.pid"
  else
    local f
    for f in "$LLM_DIR"/server-*.pid; do
      [ -e "$f" ] && stop_one "$f"
    done
  fi
  return 0
}

cmd_status() {
  local f port found=1
  for f in "$LLM_DIR"/server-*.pid; do
    [ -e "$f" ] || continue
    port="${f##*/server-}"
    port="${port%.pid}"
    if [ -n "${1:-}" ] && [ "$1" != "$port" ]; then continue; fi
    if alive "$f" && healthy "$port"; then
      echo "port $port: running (pid $(cat "$f"), $(cat "$LLM_DIR/server-$port.model" 2>/dev/null))"
      found=0
    else
      echo "port $port: not running (stale pid file)"
    fi
  done
  return $found
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  status) shift; cmd_status "$@" ;;
  *) echo "usage: $0 start MODEL PORT | stop [PORT] | status [PORT]" >&2; exit 2 ;;
esac
