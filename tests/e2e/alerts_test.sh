#!/usr/bin/env bash
# Alerts end to end: a real vigil-server with a webhook sink (--config), a real vigil-agent
# flipping a device between fixture roots, and a real HTTP receiver on 127.0.0.1 that checks
# the HMAC signature (webhook_receiver.py). The device goes NON_COMPLIANT: one signed alert. The
# receiver goes down; the device is resolved and flips again: the alerts queue (vigilctl alerts
# shows the backlog and the error). The receiver comes back: every alert arrives, in order, once.
# Usage: alerts_test.sh VIGIL_SERVER VIGIL_AGENT VIGILCTL FIXTURES_DIR
set -euo pipefail
SERVER_BIN=$1 AGENT_BIN=$2 CTL_BIN=$3 FIXTURES=$4
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/vigil-alerts.XXXXXX)
SERVER_PID= RECEIVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
  [ -n "$RECEIVER_PID" ] && kill "$RECEIVER_PID" 2>/dev/null
  wait 2>/dev/null || true
  if [ "${KEEP:-}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$WORK/server.log" ] && tail -20 "$WORK/server.log" >&2; exit 1; }
step() { echo "--- $*"; }
command -v python3 >/dev/null || fail "python3 is missing: run scripts/deps.sh --test"

# A free port for the receiver: bind 0, read it back, close.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_receiver() {
  python3 "$HERE/webhook_receiver.py" "$PORT" "$WORK/hook.secret" "$WORK/received" &
  RECEIVER_PID=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return; sleep 0.05; done
  fail "receiver did not start"
}
stop_receiver() { kill "$RECEIVER_PID"; wait "$RECEIVER_PID" 2>/dev/null || true; RECEIVER_PID=; }
received() { if [ -f "$WORK/received" ]; then wc -l < "$WORK/received"; else echo 0; fi; }
# Waits up to 20 s for the receiver to hold N lines.
wait_received() {
  for _ in $(seq 200); do [ "$(received)" -ge "$1" ] && return; sleep 0.1; done
  fail "expected $1 alerts at the receiver, got $(received)"
}

step "server with a webhook sink; agent enrolled and compliant"
"$SERVER_BIN" init --data-dir "$WORK/data" --server-address 127.0.0.1:7400 >/dev/null
"$SERVER_BIN" token create --data-dir "$WORK/data" --role viewer --name soc > "$WORK/viewer.token" 2>/dev/null
echo "e2e-hmac-key-$RANDOM$RANDOM" > "$WORK/hook.secret"
chmod 600 "$WORK/hook.secret"
cat > "$WORK/server.json" <<JSON
{"alertRetryMaxSeconds": 2,
 "alertSinks": [{"name": "soc", "webhook": {"url": "http://127.0.0.1:$PORT/vigil",
                                            "secretFile": "$WORK/hook.secret",
                                            "timeoutSeconds": 2}}]}
JSON
cat > "$WORK/policy.json" <<'JSON'
{"screenLock": {"maxIdleSeconds": 900, "requirePassword": true, "maxLockDelaySeconds": 5},
 "password": {"minLength": 12, "minClasses": 3, "maxAgeDays": 365, "maxFailedAttempts": 10},
 "usbStorage": {"mode": "BLOCKED"}, "checkinWindowSeconds": 3600}
JSON
"$SERVER_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/data" --policy "$WORK/policy.json" \
  --config "$WORK/server.json" --ready-file "$WORK/ready" >>"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$WORK/ready" ] && break; sleep 0.05; done
[ -s "$WORK/ready" ] || fail "server did not start"
ADDR=$(cat "$WORK/ready")
ctl() { "$CTL_BIN" --server "$ADDR" --ca "$WORK/data/tls/ca.crt" --token-file "$WORK/viewer.token" "$@"; }
agent_once() { "$AGENT_BIN" once --server "$ADDR" --state-dir "$WORK/state" --root "$1" 2>>"$WORK/agent.log"; }
start_receiver
DEVICE=$("$AGENT_BIN" enroll --bundle "$WORK/data/enroll-bundle.json" --server "$ADDR" --state-dir "$WORK/state" 2>>"$WORK/agent.log")
agent_once "$FIXTURES/e2e/compliant" || fail "agent once failed"

step "NON_COMPLIANT: one signed alert with the failing checks"
agent_once "$FIXTURES/e2e/noncompliant" || fail "agent once failed"
wait_received 1
grep -q BAD-SIGNATURE "$WORK/received" && fail "a signature did not verify"
jq -e --arg d "$DEVICE" 'select(.kind=="device.non_compliant" and .deviceId==$d
    and .status=="NON_COMPLIANT" and .previousStatus=="COMPLIANT"
    and (.failingChecks | index("usb_storage")) and (.idempotencyKey | startswith("vigil-alert-")))' \
  "$WORK/received" >/dev/null || fail "alert body: $(cat "$WORK/received")"

step "receiver down: the next alerts queue, with the error on record"
stop_receiver
agent_once "$FIXTURES/e2e/compliant" || fail "agent once failed"
agent_once "$FIXTURES/e2e/noncompliant" || fail "agent once failed"
agent_once "$FIXTURES/e2e/compliant" || fail "agent once failed"
for _ in $(seq 100); do
  ctl alerts --format json | jq -e '.sinks[0].attempts >= 2' >/dev/null && break; sleep 0.1
done
ctl alerts --format json | jq -e '.sinks[0] | .name=="soc" and (.pending|tonumber)==3 and .attempts>=2
    and (.lastError | test("refused"))' >/dev/null || fail "sink state: $(ctl alerts --format json)"
[ "$(wc -l < "$WORK/received")" = 1 ] || fail "alerts arrived while the receiver was down"

step "receiver back: every alert arrives, in order, once"
start_receiver
wait_received 4
sleep 2  # nothing more may come
[ "$(wc -l < "$WORK/received")" = 4 ] || fail "duplicates: $(cat "$WORK/received")"
grep -q BAD-SIGNATURE "$WORK/received" && fail "a signature did not verify"
[ "$(jq -r .kind "$WORK/received" | paste -sd,)" = \
  "device.non_compliant,device.resolved,device.non_compliant,device.resolved" ] \
  || fail "order: $(jq -r .kind "$WORK/received" | paste -sd,)"
ids=$(jq -r .id "$WORK/received" | paste -sd,)
first=${ids%%,*}
[ "$ids" = "$first,$((first + 1)),$((first + 2)),$((first + 3))" ] || fail "ids: $ids"
ctl alerts --format json | jq -e '((.sinks[0].pending // "0")|tonumber)==0 and ((.sinks[0].attempts // 0)==0)' >/dev/null \
  || fail "sink state after recovery: $(ctl alerts --format json)"
grep -q "$(cat "$WORK/hook.secret")" "$WORK/server.log" && fail "the HMAC key is in the server log"
kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=
if grep -qE 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$WORK"/*.log; then fail "sanitizer report"; fi
echo "PASS: alerts end to end"
