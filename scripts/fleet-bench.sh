#!/usr/bin/env bash
# The security team's view of a large fleet through the real binaries: fills a fresh data
# directory's store with DEVICES simulated devices (tests/fleet_bench, which also prints the
# server-side query times), starts vigil-server on it over TLS, and prints the wall time of
# `vigilctl summary` and `vigilctl devices --status NON_COMPLIANT` (median of 9, next to
# `vigilctl --help`, the process start-up alone) and the server's resident memory.
# A benchmark that prints figures, not a test.
# Usage: scripts/fleet-bench.sh [DEVICES (default 100000)] [BUILD_DIR (default build)]
set -euo pipefail
N=${1:-100000}
B=${2:-build}
W=$(mktemp -d /tmp/vigil-fleet-bench.XXXXXX)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

"$B/server/vigil-server" init --data-dir "$W/data" --server-address 127.0.0.1:7443 >/dev/null
"$B/server/vigil-server" token create --data-dir "$W/data" --role viewer --name bench \
  >"$W/token" 2>/dev/null
"$B/tests/fleet_bench" "$N" "sqlite:$W/data/vigil.db"

"$B/server/vigil-server" --listen 127.0.0.1:0 --data-dir "$W/data" --ready-file "$W/ready" \
  >"$W/server.log" 2>&1 &
PID=$!
for _ in $(seq 600); do [ -s "$W/ready" ] && break; sleep 0.05; done
[ -s "$W/ready" ] || { echo "vigil-server did not start:" >&2; tail -5 "$W/server.log" >&2; exit 1; }
ctl() { "$B/server/vigilctl" --server "$(cat "$W/ready")" --ca "$W/data/tls/ca.crt" \
  --token-file "$W/token" "$@"; }

# Median wall time of 9 runs, in ms.
median_ms() {
  local t=()
  for _ in $(seq 9); do
    local s e
    s=$(date +%s%N)
    "$@" >/dev/null
    e=$(date +%s%N)
    t+=($(((e - s) / 1000)))
  done
  printf '%s\n' "${t[@]}" | sort -n | sed -n 5p | awk '{printf "%.1f", $1 / 1000}'
}
echo "vigilctl --help (process start-up only): $(median_ms "$B/server/vigilctl" --help) ms"
echo "vigilctl summary: $(median_ms ctl summary) ms"
echo "vigilctl devices --status NON_COMPLIANT (first page, $(ctl devices --status NON_COMPLIANT --limit 1000 \
  --format json | grep -o '"deviceId"' | wc -l) devices): $(median_ms ctl devices --status NON_COMPLIANT --limit 1000) ms"
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$PID/status")
echo "vigil-server with $N devices, after these queries: RSS $((rss / 1024)) MiB (peak $((hwm / 1024)) MiB)"
