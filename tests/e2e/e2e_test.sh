#!/usr/bin/env bash
# End-to-end: a real vigil-server on 127.0.0.1 (port chosen by the kernel), a real vigil-agent
# enrolled against fixture roots, and vigilctl reading the result as the security team would.
# Usage: e2e_test.sh VIGIL_SERVER VIGIL_AGENT VIGILCTL FIXTURES_DIR
set -euo pipefail
SERVER_BIN=$1 AGENT_BIN=$2 CTL_BIN=$3 FIXTURES=$4
WORK=$(mktemp -d /tmp/vigil-e2e.XXXXXX)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill -CONT "$SERVER_PID" 2>/dev/null && kill "$SERVER_PID" 2>/dev/null
  wait 2>/dev/null || true
  if [ "${KEEP:-}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$WORK/server.log" ] && tail -20 "$WORK/server.log" >&2; exit 1; }
step() { echo "--- $*"; }

head -c 32 /dev/urandom | base64 > "$WORK/secret"
echo "not-the-right-secret-at-all" > "$WORK/wrong-secret"
cat > "$WORK/policy.json" <<'JSON'
{"screenLock": {"maxIdleSeconds": 900, "requirePassword": true, "maxLockDelaySeconds": 5},
 "password": {"minLength": 12, "minClasses": 3, "maxAgeDays": 365, "maxFailedAttempts": 10},
 "usbStorage": {"mode": "BLOCKED"}, "checkinWindowSeconds": 3600}
JSON

start_server() {
  rm -f "$WORK/ready"
  "$SERVER_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/data" --policy "$WORK/policy.json" \
    --enroll-secret-file "$WORK/secret" --ready-file "$WORK/ready" >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do [ -s "$WORK/ready" ] && break; sleep 0.05; done
  [ -s "$WORK/ready" ] || fail "server did not start"
  ADDR=$(cat "$WORK/ready")
}
# Sanitizer builds (scripts/test.sh runs this under ASan+UBSan) report into the logs of background
# processes, whose exit status nobody checks: a report there fails the test.
check_logs() {
  if grep -qE 'ERROR: [A-Za-z]+Sanitizer|runtime error:|WARNING: ThreadSanitizer' "$WORK"/*.log; then
    grep -hE -A40 'ERROR: [A-Za-z]+Sanitizer|runtime error:|WARNING: ThreadSanitizer' "$WORK"/*.log >&2
    fail "sanitizer report in $(grep -lE 'Sanitizer|runtime error:' "$WORK"/*.log | xargs -n1 basename)"
  fi
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=; check_logs; }
ctl() { "$CTL_BIN" --server "$ADDR" "$@"; }
agent_once() { "$AGENT_BIN" once --server "$ADDR" --state-dir "$WORK/state" --root "$1"; }
device_json() { ctl device "$DEVICE" --format json --history 1000; }
history_len() { device_json | jq '.history | length'; }
status_of() { device_json | jq -r '.device.status'; }

step "bad input is refused with exit 2 and names the field"
echo '{"screenLock": {"maxIdleSecs": 60}}' > "$WORK/bad-policy.json"
set +e
out=$("$SERVER_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/x" --policy "$WORK/bad-policy.json" \
      --enroll-secret-file "$WORK/secret" 2>&1); rc=$?
set -e
[ $rc -eq 2 ] || fail "bad policy: exit $rc"
grep -q maxIdleSecs <<<"$out" || fail "bad policy message does not name the field: $out"
echo '{"server": "127.0.0.1:1", "stateDir": "/tmp/x", "intervalSecond": 60}' > "$WORK/bad-config.json"
set +e
out=$("$AGENT_BIN" once --config "$WORK/bad-config.json" 2>&1); rc=$?
set -e
[ $rc -eq 2 ] || fail "bad config: exit $rc"
grep -q intervalSecond <<<"$out" || fail "bad config message does not name the field: $out"

start_server
step "server on $ADDR"

step "wrong enroll secret: rejected, nothing stored"
set +e
"$AGENT_BIN" enroll --server "$ADDR" --enroll-secret-file "$WORK/wrong-secret" --state-dir "$WORK/rogue" 2>/dev/null
rc=$?
set -e
[ $rc -ne 0 ] || fail "enrollment with a wrong secret succeeded"
[ "$(ctl summary --format json | jq -r '.total // "0"')" = 0 ] || fail "a device was stored"

step "enroll and report a compliant machine"
DEVICE=$("$AGENT_BIN" enroll --server "$ADDR" --enroll-secret-file "$WORK/secret" --state-dir "$WORK/state")
[ "$(stat -c %a "$WORK/state/device.key")" = 600 ] || fail "device key is not 0600"
[ "$(status_of)" = UNKNOWN ] || fail "a freshly enrolled device should be UNKNOWN"
agent_once "$FIXTURES/e2e/compliant" || fail "agent once failed"
[ "$(status_of)" = COMPLIANT ] || { device_json; fail "expected COMPLIANT"; }
[ -z "$(ls "$WORK/state/outbox" | grep '\.att$' || true)" ] || fail "outbox not empty after ack"

step "a second fixture flips the device to NON_COMPLIANT with the failing checks"
agent_once "$FIXTURES/e2e/noncompliant" || fail "agent once failed"
[ "$(status_of)" = NON_COMPLIANT ] || { device_json; fail "expected NON_COMPLIANT"; }
failing=$(ctl devices --status NON_COMPLIANT --format json | jq -r '.devices[0].failingChecks | join(",")')
[ "$failing" = "password_policy,usb_storage" ] || fail "failing checks: $failing"
device_json | jq -e '.checks[] | select(.check=="usb_storage") | select(.status=="FAIL") | .reason' >/dev/null \
  || fail "usb_storage check is not FAIL with a reason"
ctl devices | grep -q "$DEVICE" || fail "table output lacks the device"

step "restarting the server keeps all data"
stop_server
start_server
[ "$(status_of)" = NON_COMPLIANT ] || fail "status lost across restart"
[ "$(device_json | jq '.history | length')" = 2 ] || fail "history lost across restart"

step "killing the agent before the acknowledgement loses nothing"
kill -STOP "$SERVER_PID"
"$AGENT_BIN" once --server "$ADDR" --state-dir "$WORK/state" --root "$FIXTURES/e2e/compliant" \
  --rpc-timeout 30 2>/dev/null &
AGENT_PID=$!
for _ in $(seq 100); do ls "$WORK/state/outbox" | grep -q '\.att$' && break; sleep 0.05; done
sleep 0.3
kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
ls "$WORK/state/outbox" | grep -q '00000000000000000003.att' || fail "attestation 3 not queued on disk"
kill -CONT "$SERVER_PID"
agent_once "$FIXTURES/e2e/compliant" || fail "agent once after kill failed"
seqs=$(device_json | jq -r '[.history[].sequence] | sort_by(tonumber) | join(",")')
[ "$seqs" = "1,2,3,4" ] || fail "history sequences: $seqs"
[ "$(status_of)" = COMPLIANT ] || fail "expected COMPLIANT after resend (no TAMPERED for a resend)"

step "offline: the agent queues while the server is down and delivers in order later"
stop_server
set +e; agent_once "$FIXTURES/e2e/noncompliant" 2>/dev/null; rc=$?; set -e
[ $rc -eq 1 ] || fail "agent once with the server down should exit 1, got $rc"
start_server
agent_once "$FIXTURES/e2e/compliant" || fail "agent once failed"
seqs=$(device_json | jq -r '[.history[].sequence] | sort_by(tonumber) | join(",")')
[ "$seqs" = "1,2,3,4,5,6" ] || fail "history sequences after offline period: $seqs"

step "the daemon reports at start, re-reads its config on SIGHUP and stops on SIGTERM"
cat > "$WORK/agent.json" <<JSON
{"server": "$ADDR", "stateDir": "$WORK/state", "root": "$FIXTURES/e2e/noncompliant",
 "intervalSeconds": 3600, "jitterSeconds": 0}
JSON
"$AGENT_BIN" run --config "$WORK/agent.json" 2>"$WORK/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 100); do [ "$(status_of)" = NON_COMPLIANT ] && break; sleep 0.05; done
[ "$(status_of)" = NON_COMPLIANT ] || fail "daemon did not report at start"
for _ in $(seq 40); do [ "$(history_len)" -ge 7 ] && break; sleep 0.05; done

step "a mount (as when a USB stick is mounted) makes the daemon report within a second"
before=$(history_len)
mkdir -p "$WORK/mnt"
if mount -t tmpfs vigil-e2e "$WORK/mnt" 2>/dev/null; then
  t0=$(date +%s%N)
  for _ in $(seq 100); do [ "$(history_len)" -gt "$before" ] && break; sleep 0.02; done
  t1=$(date +%s%N)
  [ "$(history_len)" -gt "$before" ] || { umount "$WORK/mnt"; fail "no report after a mount"; }
  ms=$(( (t1 - t0) / 1000000 ))
  echo "    reported ${ms} ms after the mount"
  [ "$ms" -lt 1500 ] || { umount "$WORK/mnt"; fail "report took ${ms} ms"; }
  before=$(history_len)
  umount "$WORK/mnt"
  for _ in $(seq 100); do [ "$(history_len)" -gt "$before" ] && break; sleep 0.02; done
  [ "$(history_len)" -gt "$before" ] || fail "no report after an unmount"
else
  echo "    SKIP: this environment cannot mount (needs root); covered by unit tests of the event filter"
fi

step "a kernel uevent for a block device makes the daemon report within a second"
uevent=
for f in /sys/block/*/uevent; do [ -w "$f" ] && { uevent=$f; break; }; done
before=$(history_len)
if [ -n "$uevent" ] && echo change > "$uevent" 2>/dev/null; then
  t0=$(date +%s%N)
  for _ in $(seq 100); do [ "$(history_len)" -gt "$before" ] && break; sleep 0.02; done
  t1=$(date +%s%N)
  [ "$(history_len)" -gt "$before" ] || fail "no report after a uevent on $uevent"
  ms=$(( (t1 - t0) / 1000000 ))
  echo "    reported ${ms} ms after 'change' on $uevent"
  [ "$ms" -lt 1500 ] || fail "report took ${ms} ms"
else
  echo "    SKIP: no writable /sys/block/*/uevent here (needs root and sysfs)"
fi
echo '{"server": "$ADDR", "bogusField": 1}' > "$WORK/agent.json"
kill -HUP "$DAEMON_PID"
for _ in $(seq 40); do grep -q "configuration not changed" "$WORK/daemon.log" && break; sleep 0.05; done
grep -q "bogusField" "$WORK/daemon.log" || fail "a bad config on SIGHUP was not reported"
kill -0 "$DAEMON_PID" || fail "daemon died on a bad config"
kill -TERM "$DAEMON_PID"
for _ in $(seq 40); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$DAEMON_PID" 2>/dev/null && fail "daemon did not stop on SIGTERM"
wait "$DAEMON_PID" || fail "daemon exited non-zero after SIGTERM"
contiguous=$(device_json | jq '[.history[].sequence | tonumber] | sort | . == [range(1; length + 1)]')
[ "$contiguous" = true ] || fail "history after daemon is not 1..N: $(device_json | jq -c '[.history[].sequence]')"

step "a tampered attestation is rejected, the device flagged TAMPERED, the server keeps serving"
kill -STOP "$SERVER_PID"
"$AGENT_BIN" once --server "$ADDR" --state-dir "$WORK/state" --root "$FIXTURES/e2e/compliant" \
  --rpc-timeout 1 2>/dev/null || true
kill -CONT "$SERVER_PID"
f=$(ls "$WORK/state/outbox"/*.att | head -1)
[ -n "$f" ] || fail "nothing queued to tamper with"
# Flip one byte inside the signed attestation bytes (offset 40 is within the payload).
printf '\x7f' | dd of="$f" bs=1 seek=40 conv=notrunc 2>/dev/null
set +e; agent_once "$FIXTURES/e2e/compliant" 2>/dev/null; set -e
[ "$(status_of)" = TAMPERED ] || { device_json; fail "expected TAMPERED"; }
ls "$WORK/state/outbox/rejected" | grep -q '\.reason$' || fail "rejected attestation not kept aside"
ctl summary --format json | jq -e '.byStatus[] | select(.status=="TAMPERED") | .count == "1"' >/dev/null \
  || fail "summary does not count the TAMPERED device"

stop_server
echo "e2e: all steps passed"
