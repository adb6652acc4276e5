#!/usr/bin/env bash
# Installs (once) the real services the `linkner serve` tests run against, from Debian's
# registry: `redis-server` (the shared answer cache), `chromium` (the page, in a headless
# browser) and `prometheus` (a real scrape of /metrics). The tests start each of them
# themselves on a free loopback port and stop them by pid; nothing is started here (the
# packages' own services are kept from starting).
#
# Idempotent: a second run only checks that the binaries are there. Needs root or sudo the
# first time (CI runs as root).
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
if [ "${#need[@]}" -eq 0 ]; then
  exit 0
fi
echo "[linkner] installing ${need[*]} from Debian (tests of linkner serve)" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "[linkner] need root (or sudo) to apt-get install ${need[*]}" >&2
    exit 1
  }
  sudo=(sudo)
fi
# No service starts at install time (no init system in containers; the tests start their own).
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod +x "$policy"
  made_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
if [ "$made_policy" -eq 1 ]; then
  "${sudo[@]}" rm -f "$policy"
fi
for b in redis-server chromium prometheus; do
  command -v "$b" >/dev/null 2>&1 || { echo "[linkner] $b is still missing after apt-get" >&2; exit 1; }
done
echo "[linkner] services installed: $(redis-server --version | cut -d' ' -f3), $(chromium --version 2>/dev/null), $(prometheus --version 2>&1 | head -1)" >&2
