#!/usr/bin/env bash
# vigil-loadgen against a real vigil-server on 127.0.0.1 (port chosen by the kernel) over TLS 1.3
# with the CA from `vigil-server init`: 20 simulated agents enroll and report for 2 s in a closed
# and an open loop, and the number of attestations loadgen saw acknowledged OK equals what the
# server counted as accepted (vigilctl stats) and the fleet holds exactly the enrolled devices
# (vigilctl summary). Then with --require-client-cert: without --mtls every report is refused,
# with --mtls (each agent's own certificate) all are stored. Bad flags exit 2 naming the flag;
# a wrong enroll secret exits 3 with a clear message.
# Usage: loadgen_test.sh VIGIL_SERVER VIGIL_LOADGEN VIGILCTL
set -euo pipefail
SERVER_BIN=$1 LOADGEN_BIN=$2 CTL_BIN=$3
WORK=$(mktemp -d /tmp/vigil-loadgen.XXXXXX)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
  wait 2>/dev/null || true
  if [ "${KEEP:-}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$WORK/server.log" ] && tail -20 "$WORK/server.log" >&2; exit 1; }
step() { echo "--- $*"; }

SERVER_FLAGS=()
start_server() {
  rm -f "$WORK/ready"
  "$SERVER_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/data" --report-rate 0 \
    --ready-file "$WORK/ready" "${SERVER_FLAGS[@]}" >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do [ -s "$WORK/ready" ] && break; sleep 0.05; done
  [ -s "$WORK/ready" ] || fail "server did not start"
  ADDR=$(cat "$WORK/ready")
}
# Sanitizer builds report into the logs of background processes: a report there fails the test.
check_logs() {
  if grep -qE 'ERROR: [A-Za-z]+Sanitizer|runtime error:|WARNING: ThreadSanitizer' "$WORK"/*.log; then
    grep -hE -A40 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$WORK"/*.log >&2
    fail "sanitizer report in a log"
  fi
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=; check_logs; }
ctl() { "$CTL_BIN" --server "$ADDR" --ca "$WORK/data/tls/ca.crt" --token-file "$WORK/admin.token" "$@"; }
counter() { ctl stats --format json | jq -r --arg n "$1" '[.counters[]? | select(.name == $n) | .value | tonumber] | add // 0'; }
devices() { ctl summary --format json | jq -r '.total // 0 | tonumber'; }
loadgen() { "$LOADGEN_BIN" --bundle "$WORK/data/enroll-bundle.json" --server "$ADDR" "$@" 2>>"$WORK/loadgen.log"; }

step "bad flags: exit 2, the message names the flag"
for args in "--agents 0" "--batch 101" "--duration 1s" "--rate -1" "--threads x" "--agnets 3"; do
  set +e; out=$("$LOADGEN_BIN" --bundle /nonexistent $args 2>&1); rc=$?; set -e
  flag=${args%% *}
  [ $rc -eq 2 ] || fail "$args: exit $rc"
  grep -q -- "$flag" <<<"$out" || fail "$args: message does not name $flag: $(head -1 <<<"$out")"
done
set +e; out=$("$LOADGEN_BIN" --bundle "$WORK/none.json" 2>&1); rc=$?; set -e
[ $rc -eq 2 ] && grep -q -- "--bundle" <<<"$out" || fail "missing bundle: exit $rc: $out"

step "init; server on 127.0.0.1 with TLS and no per-device rate limit"
"$SERVER_BIN" init --data-dir "$WORK/data" --server-address 127.0.0.1:7400 >/dev/null
"$SERVER_BIN" token create --data-dir "$WORK/data" --role admin --name loadgen-test \
  >"$WORK/admin.token" 2>/dev/null
chmod 600 "$WORK/admin.token"
start_server
step "server on $ADDR"

step "closed loop: 20 agents, 2 s, TLS; acked OK = what the server accepted"
loadgen --agents 20 --duration 2 --connections 2 --json >"$WORK/closed.json" \
  || fail "loadgen exit $? (closed loop): $(cat "$WORK/closed.json") $(tail -5 "$WORK/loadgen.log")"
ACKED=$(jq -r .acked_ok "$WORK/closed.json")
SENT=$(jq -r .attestations_sent "$WORK/closed.json")
[ "$ACKED" -gt 0 ] || fail "nothing acknowledged: $(cat "$WORK/closed.json")"
[ "$ACKED" = "$SENT" ] || fail "sent $SENT, acked $ACKED"
[ "$(jq -r .enroll.agents "$WORK/closed.json")" = 20 ] || fail "not 20 agents enrolled"
[ "$(jq -r .enroll.client_certificates "$WORK/closed.json")" = 20 ] || fail "no client certificates"
[ "$(counter report.accepted)" = "$ACKED" ] \
  || fail "loadgen acked $ACKED, server accepted $(counter report.accepted)"
[ "$(counter report.accepted_history)" = 0 ] || fail "attestations stored as history"
[ "$(devices)" = 20 ] || fail "fleet has $(devices) devices, not 20"
echo "closed loop: $ACKED attestations acknowledged and stored, $(jq -r .throughput_per_s "$WORK/closed.json")/s"

step "open loop: 20 agents at 100 attestations/s in batches of 2 for 2 s (text output)"
loadgen --agents 20 --duration 2 --rate 100 --batch 2 >"$WORK/open.txt" \
  || fail "loadgen exit $? (open loop): $(cat "$WORK/open.txt")"
grep -q "open loop at 100 attestations/s" "$WORK/open.txt" || fail "mode not printed: $(cat "$WORK/open.txt")"
grep -qE "p50 [0-9.]+ +p90 [0-9.]+ +p99 [0-9.]+ +max [0-9.]+" "$WORK/open.txt" || fail "no latency line"
OPEN=$(sed -nE 's/^ +acknowledged OK \(0\) +([0-9]+).*/\1/p' "$WORK/open.txt")
SENT=$(sed -nE 's/^ +attestations sent +([0-9]+).*/\1/p' "$WORK/open.txt")
[ -n "$OPEN" ] && [ "$OPEN" -gt 0 ] && [ "$OPEN" = "$SENT" ] || fail "open loop: sent $SENT, acked $OPEN"
# 100 calls were due; on a loaded machine (sanitizer builds) some may be reported behind schedule.
grep -q "behind schedule" "$WORK/open.txt" || [ "$OPEN" = 200 ] \
  || fail "open loop: expected 200 attestations acknowledged, got $OPEN"
[ "$(counter report.accepted)" = $((ACKED + OPEN)) ] \
  || fail "server accepted $(counter report.accepted), loadgen acked $((ACKED + OPEN))"
[ "$(devices)" = 40 ] || fail "fleet has $(devices) devices, not 40"
stop_server

step "--require-client-cert: without --mtls every report is refused (exit 1), with --mtls all stored"
SERVER_FLAGS=(--require-client-cert)
start_server
set +e; loadgen --agents 5 --duration 0.5 >"$WORK/nocert.txt"; rc=$?; set -e
[ $rc -eq 1 ] || fail "without a client certificate: exit $rc: $(cat "$WORK/nocert.txt")"
grep -q "16 UNAUTHENTICATED" "$WORK/nocert.txt" || fail "no UNAUTHENTICATED: $(cat "$WORK/nocert.txt")"
grep -q -- "--mtls" "$WORK/nocert.txt" || fail "no hint to use --mtls"
[ "$(counter report.accepted)" = 0 ] || fail "a report without a certificate was stored"
loadgen --agents 20 --duration 2 --mtls --json >"$WORK/mtls.json" \
  || fail "loadgen exit $? (--mtls): $(cat "$WORK/mtls.json") $(tail -5 "$WORK/loadgen.log")"
MTLS=$(jq -r .acked_ok "$WORK/mtls.json")
[ "$MTLS" -gt 0 ] && [ "$MTLS" = "$(jq -r .attestations_sent "$WORK/mtls.json")" ] \
  || fail "--mtls: $(cat "$WORK/mtls.json")"
[ "$(jq -r .connections "$WORK/mtls.json")" = 20 ] || fail "--mtls: not one connection per agent"
[ "$(counter report.accepted)" = "$MTLS" ] \
  || fail "--mtls: loadgen acked $MTLS, server accepted $(counter report.accepted)"
[ "$(devices)" = 65 ] || fail "fleet has $(devices) devices, not 40 + 5 + 20"
echo "mutual TLS: $MTLS attestations acknowledged and stored"

step "a wrong enroll secret: exit 3 with a clear message, nothing enrolled"
jq '.enrollSecret = "vgs_0123456789ab_not-the-right-secret-at-all"' "$WORK/data/enroll-bundle.json" \
  >"$WORK/wrong-bundle.json"
chmod 600 "$WORK/wrong-bundle.json"
set +e
out=$("$LOADGEN_BIN" --bundle "$WORK/wrong-bundle.json" --server "$ADDR" --agents 5 --duration 1 2>&1)
rc=$?
set -e
[ $rc -eq 3 ] || fail "wrong secret: exit $rc: $out"
grep -q "PERMISSION_DENIED" <<<"$out" && grep -q "enroll secret" <<<"$out" \
  || fail "wrong secret: unclear message: $out"
[ "$(devices)" = 65 ] || fail "a device was enrolled with a wrong secret"

step "a bundle others can read is refused (it holds the enroll secret)"
chmod 644 "$WORK/wrong-bundle.json"
set +e; out=$("$LOADGEN_BIN" --bundle "$WORK/wrong-bundle.json" --server "$ADDR" 2>&1); rc=$?; set -e
[ $rc -eq 2 ] && grep -q "chmod 600" <<<"$out" || fail "readable bundle: exit $rc: $out"
stop_server
echo "PASS"
