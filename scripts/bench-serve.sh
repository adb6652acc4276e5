#!/usr/bin/env bash
# Load test of `linkner serve` against its Python peer (scripts/serve_peer.py: the same trained
# tagger in PyTorch + transformers behind FastAPI + uvicorn), issue 21.
#
#   bash scripts/bench-serve.sh                 # LLM off: linkner serve, then the peer
#   LLM=1 bash scripts/bench-serve.sh           # ... then linkner with the LLM and a budget
#   SERVERS=linkner RATES="50 100" DURATION=10 bash scripts/bench-serve.sh
#
# One server at a time, on a free loopback port: start, wait for GET /healthz, warm up (closed
# loop, dev tweets), then for each arrival rate an open-loop run of `oha` at a fixed rate
# (`-q RATE -z DURATION --latency-correction -w`: latency counted from each request's scheduled
# time, so a server that falls behind is not flattered by coordinated omission; requests still
# in flight at the end are waited for). Bodies: `{"text": TWEET}`, one TwitterNER test tweet
# per request (words joined by one space), drawn by oha uniformly at random from the same file
# of 3,257 tweets for every server and rate (`-Z`: oha picks a random line per request, it has
# no sequential or seeded mode). Per rate: p50/p99/max latency, achieved rate (2xx responses /
# duration), errors (non-2xx and transport errors), server CPU seconds (utime + stime from
# /proc/PID/stat, before/after) and peak RSS during the run (VmHWM after resetting it through
# /proc/PID/clear_refs). The sweep stops at the first rate with p99 > P99_MS or an error; REFINE
# rates are then tried between the last good and the first bad one. "Max rate" = the highest
# rate with p99 <= P99_MS, no error and >= 95 % of the target achieved.
#
# Environment (defaults):
#   LINKNER_BIN=target/release/linkner   MODEL=$LINKNER_CACHE/models/twitterner-minilm-ce
#   THREADS=2 (LibTorch threads of linkner, torch threads of the peer)
#   PEER_MAX_BATCH=32 (peer's dynamic batch; 1 = one request per forward)
#   SERVERS="linkner peer" (also: peer1 = the peer with --max-batch 1; "" = none)
#   LINKNER_EXTRA="" / PEER_EXTRA="": more flags, e.g. "--precision bf16" / "--bf16"
#   WARM_N=300 dev tweets of closed-loop warm-up per server (LLM_WARM_N=20 with the LLM on)
#   RATES="10 25 50 100 150 200 300 400 500 600 800 1000 1200 1500"  DURATION=20 (seconds)
#   P99_MS=200  REFINE=2  CONNS=128 (oha connections)  OHA_THREADS=1 (oha's tokio threads)
#   OUT=target/bench-serve (results.json, results.md, server logs)
#   AGREE_N=200: the first N test tweets are sent one by one to each server before the load and
#     the entities of linkner and the peer compared (same tagger, same answers over HTTP)
#   LLM=0|1: also linkner with the LLM on: --config $LLM_CONFIG (configs/twitterner.json, its
#     answer cache turned off in a temporary copy so that repeated tweets are not free)
#     --latency-budget-ms $LLM_BUDGET_MS (2000) against llama-server started by
#     scripts/llm-server.sh (model $LLM_MODEL=quality, port: a free one), rates $LLM_RATES
#     ("2 5 10 25 50 100"), sweep stopped at p99 > $LLM_P99_MS (budget + 500); with
#     LLM_BODY_BUDGET=1 (default) each body also carries "options": {"latency_budget_ms": BUDGET}
#     (a request without it gets the request timeout as its budget)
#   OHA=$LINKNER_CACHE/tools/bin/oha (cargo install oha --locked --root $LINKNER_CACHE/tools)
#
# The load generator shares the machine with the server (2 cores here): oha runs on one tokio
# thread. Run it on an otherwise idle machine (no cargo build); it warns when the load average
# is above 1.
set -euo pipefail
# The whole script is one block, read before it runs: editing the file during a run is safe.
{
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$here/env.sh"
cd "$root"

export LINKNER_BIN="${LINKNER_BIN:-target/release/linkner}"
export MODEL="${MODEL:-$LINKNER_CACHE/models/twitterner-minilm-ce}"
export THREADS="${THREADS:-2}"
export PEER_MAX_BATCH="${PEER_MAX_BATCH:-32}"
export SERVERS="${SERVERS-linkner peer}"
export RATES="${RATES:-10 25 50 100 150 200 300 400 500 600 800 1000 1200 1500}"
export DURATION="${DURATION:-20}"
export P99_MS="${P99_MS:-200}"
export REFINE="${REFINE:-2}"
export CONNS="${CONNS:-128}"
export OHA_THREADS="${OHA_THREADS:-1}"
export OUT="${OUT:-target/bench-serve}"
export AGREE_N="${AGREE_N:-200}"
export LINKNER_EXTRA="${LINKNER_EXTRA:-}"
export PEER_EXTRA="${PEER_EXTRA:-}"
export WARM_N="${WARM_N:-300}"
export LLM_WARM_N="${LLM_WARM_N:-20}"
export LLM="${LLM:-0}"
export LLM_CONFIG="${LLM_CONFIG:-configs/twitterner.json}"
export LLM_BUDGET_MS="${LLM_BUDGET_MS:-2000}"
export LLM_RATES="${LLM_RATES:-2 5 10 25 50 100}"
export LLM_P99_MS="${LLM_P99_MS:-$((LLM_BUDGET_MS + 500))}"
export LLM_MODEL="${LLM_MODEL:-quality}"
export LLM_BODY_BUDGET="${LLM_BODY_BUDGET:-1}"
export OHA="${OHA:-$LINKNER_CACHE/tools/bin/oha}"
export PYTHON="$LINKNER_VENV/bin/python"
export TEST_DATA="${TEST_DATA:-$LINKNER_DATA/twitterner/test.txt}"
export DEV_DATA="${DEV_DATA:-$LINKNER_DATA/twitterner/dev.txt}"

if [ ! -x "$OHA" ]; then
  echo "oha not found at $OHA: nice -n 10 cargo install oha --locked --root $LINKNER_CACHE/tools" >&2
  exit 1
fi
case " $SERVERS " in *" linkner "*)
  if [ ! -x "$LINKNER_BIN" ]; then
    echo "$LINKNER_BIN not found: cargo build --release -p linkner-cli (or set LINKNER_BIN)" >&2
    exit 1
  fi ;;
esac
"$PYTHON" -c "import fastapi, uvicorn" 2>/dev/null || bash "$here/setup-python.sh"
mkdir -p "$OUT"

llm_port=""
cleanup() {
  if [ -n "$llm_port" ]; then bash "$here/llm-server.sh" stop "$llm_port" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
if [ "$LLM" = "1" ]; then
  llm_port="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  eval "$(bash "$here/llm-server.sh" start "$LLM_MODEL" "$llm_port")"
  export LINKNER_LLM_URL LINKNER_LLM_MODEL
fi

"$PYTHON" - <<'PY'
import json, os, signal, socket, subprocess, sys, tempfile, time, urllib.request

E = os.environ
OUT = E["OUT"]
DUR = int(E["DURATION"])
CLK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print("[bench-serve]", *a, file=sys.stderr, flush=True)


def tweets(path):
    out, words = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if words:
                    out.append(" ".join(words))
                    words = []
                continue
            words.append(line.rsplit(" ", 1)[0])  # split on the last ASCII space only
    if words:
        out.append(" ".join(words))
    return out


def bodies(path, texts, options=None):
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            b = {"text": t}
            if options:
                b["options"] = options
            f.write(json.dumps(b, ensure_ascii=False) + "\n")
    return path


TEST = bodies(os.path.join(OUT, "bodies-test.jsonl"), tweets(E["TEST_DATA"]))
DEV = bodies(os.path.join(OUT, "bodies-dev.jsonl"), tweets(E["DEV_DATA"]))
LLM_OPTIONS = {"latency_budget_ms": int(E["LLM_BUDGET_MS"])} if E["LLM_BODY_BUDGET"] == "1" else None
TEST_LLM = bodies(os.path.join(OUT, "bodies-test-llm.jsonl"), tweets(E["TEST_DATA"]), LLM_OPTIONS)
DEV_LLM = bodies(os.path.join(OUT, "bodies-dev-llm.jsonl"), tweets(E["DEV_DATA"]), LLM_OPTIONS)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime, stime (fields 14, 15)


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def reset_hwm(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def oha(url, body_file, extra):
    cmd = [E["OHA"], "--no-tui", "--output-format", "json", "-m", "POST",
           "-T", "application/json", "-Z", body_file,
           "--worker-threads", E["OHA_THREADS"]] + extra + [url]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"oha failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def start(name):
    port = free_port()
    logf = open(os.path.join(OUT, f"server-{name}.log"), "w")
    if name in ("linkner", "linkner-llm"):
        cmd = [E["LINKNER_BIN"], "serve", "--host", "127.0.0.1", "--port", str(port),
               "--threads", E["THREADS"]]
        cmd += E["LINKNER_EXTRA"].split()
        if name == "linkner":
            cmd += ["--model", E["MODEL"], "--policy", "never"]
        else:
            with open(E["LLM_CONFIG"]) as f:
                cfg = json.load(f)
            cfg["llm"]["cache"] = False
            tmp = os.path.join(OUT, "llm-config.json")
            with open(tmp, "w") as f:
                json.dump(cfg, f, indent=1)
            cmd += ["--config", tmp, "--latency-budget-ms", E["LLM_BUDGET_MS"],
                    "--llm-url", E["LINKNER_LLM_URL"], "--llm-model", E["LINKNER_LLM_MODEL"]]
    else:
        batch = "1" if name == "peer1" else E["PEER_MAX_BATCH"]
        cmd = [E["PYTHON"], "scripts/serve_peer.py", "--model", E["MODEL"], "--host", "127.0.0.1",
               "--port", str(port), "--threads", E["THREADS"], "--max-batch", batch]
        cmd += E["PEER_EXTRA"].split()
    log(name, "starting:", " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {logf.name}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.time() - t0 > 300:
            raise RuntimeError(f"{name}: no /healthz after 300 s")
        time.sleep(0.5)
    log(name, f"up after {time.time() - t0:.1f} s, pid {proc.pid}, RSS {status_kb(proc.pid, 'VmRSS') / 1024:.0f} MiB")
    return proc, base, cmd


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


METRICS = ["linkner_documents_total", "linkner_entities_total", "linkner_routed_total",
           "linkner_llm_requests_total", "linkner_llm_failures_total",
           "linkner_budget_skipped_total", "linkner_deadline_missed_total",
           "linkner_tagger_batch_size_sum", "linkner_tagger_batch_size_count"]


def metrics(url):
    """Sums of linkner's Prometheus counters of interest (None for the peer)."""
    base = url.rsplit("/v1/", 1)[0]
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in METRICS:
            try:
                out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
            except ValueError:
                pass
    return out


def one_rate(proc, url, rate):
    body = TEST_LLM if E.get("CURRENT") == "linkner-llm" else TEST
    pid = proc.pid
    m0 = metrics(url) if "linkner" in E.get("CURRENT", "") else None
    reset_hwm(pid)
    c0 = cpu_s(pid)
    t0 = time.time()
    d = oha(url, body, ["-q", str(rate), "-z", f"{DUR}s", "-w", "--latency-correction",
                        "-c", E["CONNS"]])
    wall = time.time() - t0
    c1 = cpu_s(pid)
    codes = {int(k): v for k, v in d.get("statusCodeDistribution", {}).items()}
    ok = sum(v for k, v in codes.items() if 200 <= k < 300)
    bad_status = sum(v for k, v in codes.items() if not 200 <= k < 300)
    transport = sum(d.get("errorDistribution", {}).values())
    lat = d["latencyPercentiles"]
    ms = lambda x: None if x is None else round(1000 * x, 1)  # noqa: E731
    row = {
        "rate": rate,
        "requests": ok + bad_status,
        "achieved_rps": round(ok / DUR, 1),
        "p50_ms": ms(lat.get("p50")),
        "p99_ms": ms(lat.get("p99")),
        "max_ms": ms(d["summary"].get("slowest")),
        "errors": bad_status + transport,
        "error_kinds": {**{str(k): v for k, v in codes.items() if not 200 <= k < 300},
                        **d.get("errorDistribution", {})},
        "cpu_s": round(c1 - c0, 2),
        "cpu_cores": round((c1 - c0) / wall, 2),
        "cpu_ms_per_request": round(1000 * (c1 - c0) / max(ok, 1), 2),
        "peak_rss_mib": round(status_kb(pid, "VmHWM") / 1024, 1),
        "wall_s": round(wall, 1),
    }
    m1 = metrics(url) if m0 is not None else None
    if m0 is not None and m1 is not None:
        delta = {k.replace("linkner_", "").replace("_total", ""): m1.get(k, 0) - m0.get(k, 0)
                 for k in METRICS}
        n = delta.pop("tagger_batch_size_count")
        total = delta.pop("tagger_batch_size_sum")
        delta["mean_tagger_batch"] = round(total / n, 2) if n else None
        row["server_counts"] = {k: (round(v) if isinstance(v, float) and k != "mean_tagger_batch" else v)
                                for k, v in delta.items()}
    return row


def good(row, limit):
    return (row["p99_ms"] is not None and row["p99_ms"] <= limit and row["errors"] == 0
            and row["achieved_rps"] >= 0.95 * row["rate"])


def entities_of(url, texts):
    """Entities (start, end, label) of each text, one request each, in order."""
    out = []
    for t in texts:
        req = urllib.request.Request(url, data=json.dumps({"text": t}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            a = json.load(r)["annotations"][0]
        out.append(sorted((e["entity"]["start"], e["entity"]["end"], e["entity"]["label"])
                          for e in a["entities"]))
    return out


def sweep(name, rates, limit):
    E["CURRENT"] = name
    proc, base, cmd = start(name)
    url = base + "/v1/annotate"
    result = {"server": name, "command": cmd, "rows": []}
    try:
        result["rss_after_load_mib"] = round(status_kb(proc.pid, "VmRSS") / 1024, 1)
        result["load_peak_rss_mib"] = round(status_kb(proc.pid, "VmHWM") / 1024, 1)
        n = int(E["AGREE_N"])
        if n and name != "linkner-llm":
            with open(TEST, encoding="utf-8") as f:
                texts = [json.loads(line)["text"] for _, line in zip(range(n), f)]
            result["entities_first_tweets"] = entities_of(url, texts)
        # Warm-up: closed loop, dev tweets (never the measured ones); with the LLM a few, one
        # at a time, so that no LLM backlog is left for the measured runs.
        warm, conns = (E["LLM_WARM_N"], "1") if name == "linkner-llm" else (E["WARM_N"], "4")
        w = oha(url, DEV_LLM if name == "linkner-llm" else DEV, ["-n", warm, "-c", conns])
        log(name, f"warm-up: {warm} dev tweets, {w['summary']['requestsPerSec']:.1f}/s closed loop "
                  f"({conns} connections), p99 {1000 * (w['latencyPercentiles'].get('p99') or 0):.0f} ms")
        time.sleep(2)
        last_good, first_bad = None, None
        for rate in rates:
            row = one_rate(proc, url, rate)
            result["rows"].append(row)
            log(name, json.dumps(row))
            if good(row, limit):
                last_good = rate
            else:
                first_bad = rate
                break
        if first_bad is not None:
            lo = last_good or 0
            for _ in range(int(E["REFINE"])):
                mid = (lo + first_bad) // 2
                if mid <= lo or mid >= first_bad:
                    break
                row = one_rate(proc, url, mid)
                row["refine"] = True
                result["rows"].append(row)
                log(name, json.dumps(row))
                if good(row, limit):
                    lo = last_good = mid
                else:
                    first_bad = mid
        result["max_rate"] = last_good
        result["first_bad_rate"] = first_bad
        result["peak_rss_mib"] = round(status_kb(proc.pid, "VmHWM") / 1024, 1)
    finally:
        stop(proc)
    return result


def table(res, limit):
    llm = res["server"] == "linkner-llm"
    extra = " mean batch | routed | LLM calls | kept local by budget | late answers |" if llm else " mean batch |"
    lines = [f"### {res['server']} (p99 limit {limit:.0f} ms)", "",
             "| rate /s | achieved /s | p50 ms | p99 ms | max ms | errors | CPU s | CPU cores | CPU ms/req | peak RSS MiB |" + extra,
             "|---:" * (15 if llm else 11) + "|"]
    for r in sorted(res["rows"], key=lambda r: r["rate"]):
        mark = "" if good(r, limit) else " ✗"
        c = r.get("server_counts") or {}
        more = f" {c.get('mean_tagger_batch', '–')} |"
        if llm:
            more += (f" {c.get('routed', '–')} | {c.get('llm_requests', '–')} | {c.get('budget_skipped', '–')} |"
                     f" {c.get('deadline_missed', '–')} |")
        lines.append(f"| {r['rate']}{mark} | {r['achieved_rps']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | "
                     f"{r['errors']} | {r['cpu_s']} | {r['cpu_cores']} | {r['cpu_ms_per_request']} | {r['peak_rss_mib']} |" + more)
    lines += ["", f"max rate at p99 <= {limit} ms: **{res.get('max_rate')}**/s "
              f"(first failing rate: {res.get('first_bad_rate')}); RSS after model load "
              f"{res.get('rss_after_load_mib')} MiB", ""]
    return "\n".join(lines)


def main():
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    if load > 1.0:
        log(f"warning: load average {load:.2f} before the run: other work shares the CPU")
    rates = [int(r) for r in E["RATES"].split()]
    limit = float(E["P99_MS"])
    meta = {
        "duration_s": DUR, "threads": int(E["THREADS"]), "peer_max_batch": int(E["PEER_MAX_BATCH"]),
        "conns": int(E["CONNS"]), "oha_threads": int(E["OHA_THREADS"]), "p99_limit_ms": limit,
        "model": E["MODEL"], "tweets": E["TEST_DATA"],
        "linkner_extra": E["LINKNER_EXTRA"], "peer_extra": E["PEER_EXTRA"], "load_average_before": load,
        "cpus": os.cpu_count(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "oha": subprocess.run([E["OHA"], "--version"], capture_output=True, text=True).stdout.strip(),
    }
    results = []
    md = ["## linkner serve vs Python peer (FastAPI + uvicorn + transformers), LLM off", ""]
    for name in E["SERVERS"].split():
        res = sweep(name, rates, limit)
        results.append(res)
        md.append(table(res, limit))
    by = {r["server"]: r for r in results}
    if "linkner" in by and "peer" in by and "entities_first_tweets" in by["linkner"]:
        a = [set(map(tuple, x)) for x in by["linkner"]["entities_first_tweets"]]
        b = [set(map(tuple, x)) for x in by["peer"]["entities_first_tweets"]]
        same = sum(len(x & y) for x, y in zip(a, b))
        union = sum(len(x | y) for x, y in zip(a, b))
        meta["http_agreement"] = {"tweets": len(a), "identical_entities": same, "union": union,
                                  "agreement": round(same / union, 4) if union else 1.0}
        md.append(f"Same answers over HTTP: {same} of {union} entities identical on the first "
                  f"{len(a)} test tweets ({100 * same / max(union, 1):.1f} %).\n")
    if "linkner" in by and "peer" in by and by["peer"].get("max_rate"):
        ratio = (by["linkner"].get("max_rate") or 0) / by["peer"]["max_rate"]
        meta["ratio_linkner_over_peer"] = round(ratio, 2)
        md.append(f"**max throughput at p99 <= {limit:.0f} ms: linkner {by['linkner'].get('max_rate')}/s, "
                  f"peer {by['peer']['max_rate']}/s, ratio {ratio:.2f}x**\n")
    if E["LLM"] == "1":
        llm_limit = float(E["LLM_P99_MS"])
        res = sweep("linkner-llm", [int(r) for r in E["LLM_RATES"].split()], llm_limit)
        res["latency_budget_ms"] = int(E["LLM_BUDGET_MS"])
        results.append(res)
        md.append(f"## linkner serve with the LLM on ({E['LINKNER_LLM_MODEL']}), latency budget {E['LLM_BUDGET_MS']} ms\n")
        md.append(table(res, llm_limit))
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    text = "\n".join(md)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    log("wrote", os.path.join(OUT, "results.json"), "and results.md")


main()
PY
exit
}
