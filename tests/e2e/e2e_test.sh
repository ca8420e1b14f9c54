#!/usr/bin/env bash
# End-to-end: a real vigil-server on 127.0.0.1 (port chosen by the kernel) over TLS 1.3 with the
# private CA from `vigil-server init`, a real vigil-agent enrolled from the bundle against
# fixture roots (with a client certificate), and vigilctl with role tokens, as the security team
# would use them. Then the security rows: TLS versions, tokens and roles, mutual TLS, approval,
# revocation, key rotation, the audit log and its tamper check, and no secrets in any log.
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

echo "vgs_0123456789ab_not-the-right-secret-at-all" > "$WORK/wrong-secret"
cat > "$WORK/policy.json" <<'JSON'
{"screenLock": {"maxIdleSeconds": 900, "requirePassword": true, "maxLockDelaySeconds": 5},
 "password": {"minLength": 12, "minClasses": 3, "maxAgeDays": 365, "maxFailedAttempts": 10},
 "usbStorage": {"mode": "BLOCKED"}, "checkinWindowSeconds": 3600}
JSON

# Extra server flags for the next start (e.g. --require-client-cert).
SERVER_FLAGS=()
start_server() {
  rm -f "$WORK/ready"
  "$SERVER_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/data" --policy "$WORK/policy.json" \
    --ready-file "$WORK/ready" "${SERVER_FLAGS[@]}" >>"$WORK/server.log" 2>&1 &
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
CA="$WORK/data/tls/ca.crt"
ctl() { "$CTL_BIN" --server "$ADDR" --ca "$CA" --token-file "$WORK/admin.token" "$@"; }
agent_once() { "$AGENT_BIN" once --server "$ADDR" --state-dir "$WORK/state" --root "$1" 2>>"$WORK/agent.log"; }
device_json() { ctl device "$DEVICE" --format json --history 1000; }
history_len() { device_json | jq '.history | length'; }
status_of() { device_json | jq -r '.device.status'; }

step "bad input is refused with exit 2 and names the field"
echo '{"screenLock": {"maxIdleSecs": 60}}' > "$WORK/bad-policy.json"
set +e
out=$("$SERVER_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/x" --policy "$WORK/bad-policy.json" \
      --insecure 2>&1); rc=$?
set -e
[ $rc -eq 2 ] || fail "bad policy: exit $rc"
grep -q maxIdleSecs <<<"$out" || fail "bad policy message does not name the field: $out"
echo '{"server": "127.0.0.1:1", "stateDir": "/tmp/x", "intervalSecond": 60}' > "$WORK/bad-config.json"
set +e
out=$("$AGENT_BIN" once --config "$WORK/bad-config.json" 2>&1); rc=$?
set -e
[ $rc -eq 2 ] || fail "bad config: exit $rc"
grep -q intervalSecond <<<"$out" || fail "bad config message does not name the field: $out"

step "init: private CA, server certificate, first enroll secret, bundle; tokens"
"$SERVER_BIN" init --data-dir "$WORK/data" --server-address 127.0.0.1:7400 >/dev/null
[ "$(stat -c %a "$WORK/data/tls/ca.key")" = 600 ] || fail "CA key is not 0600"
[ "$(stat -c %a "$WORK/data/enroll-bundle.json")" = 600 ] || fail "bundle is not 0600"
set +e; "$SERVER_BIN" init --data-dir "$WORK/data" --server-address 127.0.0.1:7400 2>/dev/null; rc=$?; set -e
[ $rc -eq 2 ] || fail "a second init must refuse to replace the CA (exit $rc)"
SECRET=$(jq -r .enrollSecret "$WORK/data/enroll-bundle.json")
for role in admin viewer approver; do
  "$SERVER_BIN" token create --data-dir "$WORK/data" --role $role --name "e2e-$role" \
    >"$WORK/$role.token" 2>/dev/null
  chmod 600 "$WORK/$role.token"
done
set +e; "$SERVER_BIN" token create --data-dir "$WORK/data" --role root --name x 2>/dev/null; rc=$?; set -e
[ $rc -eq 2 ] || fail "an unknown role must be refused (exit $rc)"

step "plaintext is refused off loopback"
set +e; out=$("$SERVER_BIN" --listen 0.0.0.0:0 --data-dir "$WORK/x" --insecure 2>&1); rc=$?; set -e
[ $rc -eq 2 ] || fail "--insecure on 0.0.0.0: exit $rc"
grep -q loopback <<<"$out" || fail "no reason given: $out"

start_server
step "server on $ADDR (TLS)"

step "TLS 1.3 only: a TLS 1.2 handshake fails, TLS 1.3 verifies against the CA; plaintext fails"
if echo | timeout 5 openssl s_client -tls1_2 -connect "$ADDR" >"$WORK/tls12.log" 2>&1 && \
   grep -q "Cipher is [A-Z]" "$WORK/tls12.log"; then
  fail "a TLS 1.2 handshake succeeded: $(grep 'Cipher is' "$WORK/tls12.log")"
fi
echo | timeout 5 openssl s_client -tls1_3 -connect "$ADDR" -CAfile "$CA" >"$WORK/tls13.log" 2>&1 || true
grep -q "New, TLSv1.3" "$WORK/tls13.log" || fail "no TLS 1.3 handshake: $(tail -5 "$WORK/tls13.log")"
grep -q "Verify return code: 0 (ok)" "$WORK/tls13.log" || fail "server certificate does not verify"
set +e; "$CTL_BIN" --server "$ADDR" --insecure --token-file "$WORK/admin.token" summary 2>/dev/null; rc=$?; set -e
[ $rc -eq 1 ] || fail "plaintext vigilctl against the TLS server: exit $rc"
set +e; "$CTL_BIN" --server "$ADDR" --token-file "$WORK/admin.token" summary 2>/dev/null; rc=$?; set -e
[ $rc -eq 1 ] || fail "vigilctl trusting only the system roots must not accept the private CA: exit $rc"

step "tokens: none, forged, a viewer changing things: all refused (exit 4)"
set +e
"$CTL_BIN" --server "$ADDR" --ca "$CA" summary 2>/dev/null; rc1=$?
VIGIL_TOKEN="vgt_0123456789ab_forged" "$CTL_BIN" --server "$ADDR" --ca "$CA" summary 2>/dev/null; rc2=$?
"$CTL_BIN" --server "$ADDR" --ca "$CA" --token-file "$WORK/viewer.token" device revoke dev-x --reason r 2>/dev/null; rc3=$?
"$CTL_BIN" --server "$ADDR" --ca "$CA" --token-file "$WORK/viewer.token" audit 2>/dev/null; rc4=$?
set -e
[ "$rc1 $rc2 $rc3 $rc4" = "4 4 4 4" ] || fail "token checks: exits $rc1 $rc2 $rc3 $rc4"
VIGIL_TOKEN_FILE="$WORK/viewer.token" "$CTL_BIN" --server "$ADDR" --ca "$CA" summary >/dev/null \
  || fail "a viewer cannot read"

step "wrong enroll secret: rejected, nothing stored"
set +e
"$AGENT_BIN" enroll --server "$ADDR" --ca "$CA" --enroll-secret-file "$WORK/wrong-secret" --state-dir "$WORK/rogue" 2>/dev/null
rc=$?
set -e
[ $rc -ne 0 ] || fail "enrollment with a wrong secret succeeded"
[ "$(ctl summary --format json | jq -r '.total // "0"')" = 0 ] || fail "a device was stored"

step "enroll and report a compliant machine"
DEVICE=$("$AGENT_BIN" enroll --bundle "$WORK/data/enroll-bundle.json" --server "$ADDR" --state-dir "$WORK/state" 2>>"$WORK/agent.log")
[ "$(stat -c %a "$WORK/state/device.key")" = 600 ] || fail "device key is not 0600"
[ -s "$WORK/state/device.crt" ] || fail "no client certificate issued at enrollment"
openssl x509 -in "$WORK/state/device.crt" -noout -subject | grep -q "CN = $DEVICE" \
  || fail "client certificate is not for $DEVICE"
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

step "vigilctl: tags, filters, history, alerts, export, usage errors"
ctl device tag "$DEVICE" laptop team-eng | grep -q "tags: laptop,team-eng" || fail "device tag"
[ "$(ctl devices --tag laptop --format json | jq -r '[.devices[].deviceId] | join(",")')" = "$DEVICE" ] || fail "--tag"
[ "$(ctl devices --tag nobody --format json | jq '.devices | length')" = 0 ] || fail "--tag nobody"
[ "$(ctl devices --not-seen-since 1h --format json | jq '.devices | length')" = 0 ] || fail "--not-seen-since 1h"
[ "$(ctl devices --not-seen-since 0s --format json | jq '.devices | length')" = 1 ] || fail "--not-seen-since 0s"
[ "$(ctl devices --limit 1 --format json | jq '.devices | length')" = 1 ] || fail "--limit"
ctl devices --format csv | head -1 | grep -q $'^device_id,hostname,status,status_reason,failing_checks,last_seen,last_sequence,enrolled_at,os,os_name,tags\r$' || fail "devices csv"
[ "$(ctl history "$DEVICE" --format json | jq -r '[.entries[].status] | join(",")')" = "NON_COMPLIANT,COMPLIANT" ] || fail "history"
[ "$(ctl history "$DEVICE" --limit 1 --format csv | wc -l)" = 2 ] || fail "history --limit"
ctl alerts --device "$DEVICE" --format json | jq -e '.alerts[] | select(.kind=="device.non_compliant" and .previousStatus=="COMPLIANT")' >/dev/null || fail "no alert"
ctl export --format csv --output "$WORK/evidence.csv" 2>/dev/null || fail "export csv"
[ "$(stat -c %a "$WORK/evidence.csv")" = 600 ] || fail "export file mode"
head -1 "$WORK/evidence.csv" | grep -q $'^device_id,hostname,sequence,issued_at,received_at,device_status,check,check_status,reason,evidence,digest\r$' || fail "export header"
[ "$(ctl export --format json | jq -r --arg d "$DEVICE" 'select(.device.deviceId==$d) | .sequence' | sort -n | paste -sd,)" = "1,2" ] || fail "export json"
[ "$(ctl export --format json | jq -s 'map(.checks | length) | add')" = "$(($(wc -l < "$WORK/evidence.csv") - 1))" ] || fail "csv rows != checks"
set +e
ctl export --format csv --output "$WORK/no-such-dir/x.csv" 2>/dev/null; rc1=$?
out=$(ctl devices --status NONCOMPLIANT 2>&1); rc2=$?
ctl devics 2>/dev/null; rc3=$?
"$CTL_BIN" --server "$ADDR" --ca "$CA" --token-file "$WORK/viewer.token" device tag "$DEVICE" x 2>/dev/null; rc4=$?
ctl history dev-nope 2>/dev/null; rc5=$?
ctl export 2>/dev/null; rc6=$?
set -e
[ "$rc1 $rc2 $rc3 $rc4 $rc5 $rc6" = "1 2 2 4 3 2" ] || fail "vigilctl exits: $rc1 $rc2 $rc3 $rc4 $rc5 $rc6"
grep -q "one of: COMPLIANT NON_COMPLIANT" <<<"$out" || fail "bad status message: $out"
"$CTL_BIN" export --help | grep -q "JSON Lines" || fail "export --help"
"$CTL_BIN" help devices | grep -q -- "--not-seen-since" || fail "help devices"

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

step "mutual TLS required: the agent reports with its certificate; without one, refused, nothing stored"
stop_server
SERVER_FLAGS=(--require-client-cert)
start_server
DEV2=$("$AGENT_BIN" enroll --bundle "$WORK/data/enroll-bundle.json" --server "$ADDR" --state-dir "$WORK/state2" 2>>"$WORK/agent.log")
once2() { "$AGENT_BIN" once --server "$ADDR" --state-dir "$WORK/state2" --root "$FIXTURES/e2e/compliant" 2>>"$WORK/agent.log"; }
hist2() { ctl device "$DEV2" --format json --history 1000 | jq '.history | length'; }
once2 || fail "agent with its client certificate could not report"
[ "$(hist2)" = 1 ] || fail "expected one attestation for $DEV2"
mv "$WORK/state2/device.crt" "$WORK/device2.crt"
set +e; once2; rc=$?; set -e
[ $rc -eq 1 ] || fail "a report without a client certificate: exit $rc"
[ "$(hist2)" = 1 ] || fail "a report without a client certificate was stored"
ctl stats --format json | jq -e '.counters[] | select(.name=="report.rejected.no_client_cert") | (.value | tonumber) >= 1' >/dev/null \
  || fail "the rejection was not counted"
mv "$WORK/device2.crt" "$WORK/state2/device.crt"
once2 || fail "the queued attestation was not delivered once the certificate was back"
[ "$(hist2)" = 3 ] || fail "expected 3 attestations for $DEV2, got $(hist2)"

step "approval mode: a new device is PENDING, its reports wait queued until an admin approves"
stop_server
SERVER_FLAGS=(--require-client-cert --approve-devices)
start_server
DEV3=$("$AGENT_BIN" enroll --bundle "$WORK/data/enroll-bundle.json" --server "$ADDR" --state-dir "$WORK/state3" 2>>"$WORK/agent.log")
once3() { "$AGENT_BIN" once --server "$ADDR" --state-dir "$WORK/state3" --root "$FIXTURES/e2e/compliant" 2>>"$WORK/agent.log"; }
[ "$(ctl device "$DEV3" --format json | jq -r .device.status)" = PENDING ] || fail "expected PENDING"
set +e; once3; rc=$?; set -e
[ $rc -eq 1 ] || fail "a pending device's report: exit $rc"
[ "$(ls "$WORK/state3/outbox" | grep -c '\.att$')" = 1 ] || fail "the pending device's attestation is not kept queued"
[ "$(ctl device "$DEV3" --format json | jq '.history | length')" = 0 ] || fail "a pending device's report was stored"
set +e; "$CTL_BIN" --server "$ADDR" --ca "$CA" --token-file "$WORK/viewer.token" device approve "$DEV3" 2>/dev/null; rc=$?; set -e
[ $rc -eq 4 ] || fail "a viewer approved a device (exit $rc)"
ctl device approve "$DEV3" >/dev/null || fail "admin could not approve"
once3 || fail "the approved device could not report"
[ "$(ctl device "$DEV3" --format json | jq '.history | length')" = 2 ] || fail "queued + new attestation not both stored"
[ "$(ctl device "$DEV3" --format json | jq -r .device.status)" = COMPLIANT ] || fail "approved device not COMPLIANT"

step "key rotation: signed by the old and the new key; reports continue under the new key"
old_key=$(sha256sum "$WORK/state2/device.key" | cut -d' ' -f1)
"$AGENT_BIN" rotate-key --server "$ADDR" --state-dir "$WORK/state2" 2>>"$WORK/agent.log" >/dev/null || fail "rotate-key failed"
[ "$(sha256sum "$WORK/state2/device.key" | cut -d' ' -f1)" != "$old_key" ] || fail "the key did not change"
[ "$(stat -c %a "$WORK/state2/device.key")" = 600 ] || fail "the new key is not 0600"
once2 || fail "no report after the rotation"
[ "$(hist2)" = 4 ] || fail "expected 4 attestations after the rotation"
[ "$(ctl device "$DEV2" --format json | jq -r .device.status)" = COMPLIANT ] || fail "rotation left the device $(ctl device "$DEV2" --format json | jq -r .device.status)"

step "revocation: the device's reports are refused and nothing is stored; it cannot enroll again"
ctl device revoke "$DEV2" --reason "laptop reported stolen" >/dev/null || fail "revoke failed"
[ "$(ctl device "$DEV2" --format json | jq -r .device.status)" = REVOKED ] || fail "expected REVOKED"
set +e; once2; rc=$?; set -e
[ $rc -eq 1 ] || fail "a revoked device's report: exit $rc"
[ "$(hist2)" = 4 ] || fail "a revoked device's report was stored"
set +e; "$AGENT_BIN" enroll --bundle "$WORK/data/enroll-bundle.json" --server "$ADDR" --state-dir "$WORK/state2" 2>/dev/null; rc=$?; set -e
[ $rc -ne 0 ] || fail "a revoked device enrolled again"

step "tokens can be revoked; enroll secrets rotated"
"$SERVER_BIN" token revoke --data-dir "$WORK/data" e2e-viewer >/dev/null
set +e; "$CTL_BIN" --server "$ADDR" --ca "$CA" --token-file "$WORK/viewer.token" summary 2>/dev/null; rc=$?; set -e
[ $rc -eq 4 ] || fail "a revoked token still works (exit $rc)"
"$SERVER_BIN" secret create --data-dir "$WORK/data" --name rotated --bundle "$WORK/bundle2.json" \
  --server-address "$ADDR" >/dev/null
"$SERVER_BIN" secret revoke --data-dir "$WORK/data" initial >/dev/null
set +e; "$AGENT_BIN" enroll --bundle "$WORK/data/enroll-bundle.json" --server "$ADDR" --state-dir "$WORK/state4" 2>/dev/null; rc=$?; set -e
[ $rc -eq 2 ] || fail "the revoked initial secret still enrolls (exit $rc)"
"$AGENT_BIN" enroll --bundle "$WORK/bundle2.json" --state-dir "$WORK/state5" 2>>"$WORK/agent.log" >/dev/null \
  || fail "the new secret's bundle does not enroll"

step "audit log: every security event, readable by admin and approver, verified, anchored"
audit=$(ctl audit --format json --limit 1000)
for action in enroll_secret.create token.create token.revoke device.enroll device.approve \
              device.rotate_key device.revoke device.tampered auth.failed enroll_secret.revoke; do
  jq -e --arg a "$action" '[.entries[] | select(.action==$a)] | length > 0' <<<"$audit" >/dev/null \
    || fail "no audit entry for $action"
done
"$CTL_BIN" --server "$ADDR" --ca "$CA" --token-file "$WORK/approver.token" audit >/dev/null \
  || fail "an approver cannot read the audit log"
verified=$(ctl audit verify) || fail "audit log does not verify: $verified"
HEAD=$(grep -o 'head [0-9a-f]*' <<<"$verified" | cut -d' ' -f2)
ctl audit verify --expect-head "$HEAD" >/dev/null || fail "the recorded head is not found"
stop_server
# Someone with access to the database file removes the guard and edits a revocation's record.
sqlite3 "$WORK/data/vigil.db" "DROP TRIGGER audit_no_update; UPDATE audit SET detail='routine' WHERE action='device.revoke';"
start_server
set +e; out=$(ctl audit verify 2>&1); rc=$?; set -e
[ $rc -eq 5 ] || fail "an edited audit log verified (exit $rc): $out"
grep -q "does NOT verify" <<<"$out" || fail "no reason given: $out"

step "server certificate renewal: same CA, agents and vigilctl keep working"
old_cert=$(sha256sum "$WORK/data/tls/server.crt" | cut -d' ' -f1)
stop_server
"$SERVER_BIN" cert renew --data-dir "$WORK/data" --san 127.0.0.1,localhost >/dev/null
[ "$(sha256sum "$WORK/data/tls/server.crt" | cut -d' ' -f1)" != "$old_cert" ] || fail "certificate not renewed"
start_server
once3 || fail "the agent does not accept the renewed certificate"
ctl summary >/dev/null || fail "vigilctl does not accept the renewed certificate"

step "no secret, token or key in any log"
for f in "$WORK"/*.log; do
  for secret in "$SECRET" $(cat "$WORK"/*.token) $(jq -r .enrollSecret "$WORK/bundle2.json"); do
    if grep -qF -- "${secret:17}" "$f"; then fail "$(basename "$f") contains a secret or token"; fi
  done
  if grep -q "PRIVATE KEY" "$f"; then fail "$(basename "$f") contains a private key"; fi
done

stop_server
echo "e2e: all steps passed"
