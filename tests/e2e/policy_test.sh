#!/usr/bin/env bash
# Policy as code end to end: a real vigil-server (TLS), three real vigil-agents on fixture roots
# and vigilctl with role tokens, through the whole change process and exceptions:
#   - a change is proposed (admin), self-approval is refused (same person, approver token),
#     another approver approves, a viewer cannot propose;
#   - preview's numbers equal the statuses after apply; the tag override is the device's
#     effective policy (vigilctl device ID --policy); agents learn the new version from their
#     next report response and fetch the policy only then;
#   - rollback to the version a change replaced restores the previous statuses in one step;
#     rollback to any other version needs approval; review compares before and after;
#   - an exception makes a failing device EXCEPTED; at expiry (the server's clock) it flips back
#     to NON_COMPLIANT with an exception.expired and a device.non_compliant alert;
#   - every step is in the audit log, and the log verifies.
# Usage: policy_test.sh VIGIL_SERVER VIGIL_AGENT VIGILCTL FIXTURES_DIR
set -euo pipefail
SERVER_BIN=$1 AGENT_BIN=$2 CTL_BIN=$3 FIXTURES=$4
WORK=$(mktemp -d /tmp/vigil-policy.XXXXXX)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
  wait 2>/dev/null || true
  if [ "${KEEP:-}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$WORK/server.log" ] && tail -20 "$WORK/server.log" >&2; exit 1; }
step() { echo "--- $*"; }

step "server with policy version 1; tokens for alice (admin and approver), bob, a viewer"
"$SERVER_BIN" init --data-dir "$WORK/data" --server-address 127.0.0.1:7400 >/dev/null
token() { "$SERVER_BIN" token create --data-dir "$WORK/data" --role "$1" --name "$2" >"$WORK/$2.token" 2>/dev/null; }
token admin alice
token approver alice+approver
token approver bob
token viewer soc
cat > "$WORK/policy.json" <<'JSON'
{"screenLock": {"maxIdleSeconds": 900, "requirePassword": true, "maxLockDelaySeconds": 5},
 "password": {"minLength": 12, "minClasses": 3, "maxAgeDays": 365, "maxFailedAttempts": 10},
 "usbStorage": {"mode": "BLOCKED"}, "checkinWindowSeconds": 3600}
JSON
"$SERVER_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/data" --policy "$WORK/policy.json" \
  --ready-file "$WORK/ready" >>"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$WORK/ready" ] && break; sleep 0.05; done
[ -s "$WORK/ready" ] || fail "server did not start"
ADDR=$(cat "$WORK/ready")
as() { local who=$1; shift; "$CTL_BIN" --server "$ADDR" --ca "$WORK/data/tls/ca.crt" --token-file "$WORK/$who.token" "$@"; }
# Runs vigilctl expecting exit code $1.
expect_exit() {
  local want=$1; shift
  set +e; as "$@" >"$WORK/out" 2>&1; local rc=$?; set -e
  [ "$rc" = "$want" ] || fail "vigilctl $* exited $rc, expected $want: $(cat "$WORK/out")"
}
enroll() {
  "$AGENT_BIN" enroll --bundle "$WORK/data/enroll-bundle.json" --server "$ADDR" \
    --state-dir "$WORK/state-$1" 2>>"$WORK/agent-$1.log"
}
agent_once() {
  "$AGENT_BIN" once --server "$ADDR" --state-dir "$WORK/state-$1" --root "$FIXTURES/e2e/$2" \
    2>>"$WORK/agent-$1.log"
}
status_of() { as soc device "$1" --format json | jq -r '.device.status'; }
# "COMPLIANT=2 NON_COMPLIANT=1 ..." from a list of {status, count}; absent counts are 0.
counts() { jq -r '[.[] | select((.count // "0") != "0") | "\(.status)=\(.count)"] | sort | join(" ")'; }
summary_counts() { as soc summary --format json | jq '.byStatus' | counts; }

[ "$(as soc policy show --format json | jq -r '.version')" = 1 ] || fail "the start-up policy is not version 1"

A=$(enroll a); B=$(enroll b); C=$(enroll c)
agent_once a compliant; agent_once b noncompliant; agent_once c compliant
as alice device tag "$C" kiosk >/dev/null
[ "$(status_of "$A") $(status_of "$B") $(status_of "$C")" = "COMPLIANT NON_COMPLIANT COMPLIANT" ] \
  || fail "initial statuses: $(status_of "$A") $(status_of "$B") $(status_of "$C")"
BEFORE=$(summary_counts)
[ "$BEFORE" = "COMPLIANT=2 NON_COMPLIANT=1" ] || fail "initial summary: $BEFORE"

"$AGENT_BIN" status --state-dir "$WORK/state-a" --format json >"$WORK/status-a.json"
[ "$(jq -r '.enrolled' "$WORK/status-a.json") $(jq -r '.deviceId' "$WORK/status-a.json")" = "true $A" ] \
  || fail "vigil-agent status: $(cat "$WORK/status-a.json")"
[ "$(jq -r '.run.lastReportMs // "0"' "$WORK/status-a.json")" != 0 ] || fail "status: no last report"
[ "$(jq -r '.outboxDepth // "0"' "$WORK/status-a.json")" = 0 ] || fail "status: outbox not empty"

step "propose: no password or USB rule by default, kiosks need 16-character passwords"
cat > "$WORK/change.json" <<'JSON'
{"description": "kiosks: long passwords; laptops: USB and password rules move to the MDM",
 "defaultPolicy": {"screenLock": {"maxIdleSeconds": 900, "requirePassword": true,
                                  "maxLockDelaySeconds": 5},
                   "checkinWindowSeconds": 3600},
 "overrides": [{"name": "kiosk", "tag": "kiosk",
                "policy": {"password": {"minLength": 16, "minClasses": 3}}}]}
JSON
expect_exit 4 soc policy propose --file "$WORK/change.json" --reason r --rollback-plan p
expect_exit 2 alice policy propose --file "$WORK/change.json" --reason "MDM takes over"
as alice policy propose --file "$WORK/change.json" --reason "MDM takes over USB and passwords" \
  --rollback-plan "vigilctl policy rollback --to 1" --format json >"$WORK/proposed.json"
CHANGE=$(jq -r '.id' "$WORK/proposed.json")
[ "$(jq -r '.state' "$WORK/proposed.json")" = PROPOSED ] || fail "not PROPOSED: $(cat "$WORK/proposed.json")"
expect_exit 1 alice policy apply "$CHANGE"   # not approved yet

step "preview: the impact before anything takes effect"
expect_exit 4 soc policy preview "$CHANGE"   # a viewer may not scan the fleet's evidence
as bob policy preview "$CHANGE" --format json >"$WORK/preview.json"
PREDICTED=$(jq '.after' "$WORK/preview.json" | counts)
[ "$PREDICTED" = "COMPLIANT=2 NON_COMPLIANT=1" ] || fail "preview after: $PREDICTED"
[ "$(jq -r '.changed' "$WORK/preview.json")" = 2 ] || fail "preview changed: $(cat "$WORK/preview.json")"
[ "$(jq -r --arg c "$C" '.devicesChanged[] | select(.deviceId == $c) | .after' "$WORK/preview.json")" = NON_COMPLIANT ] \
  || fail "preview: the kiosk should become NON_COMPLIANT"
[ "$(jq -r --arg b "$B" '.devicesChanged[] | select(.deviceId == $b) | .after' "$WORK/preview.json")" = COMPLIANT ] \
  || fail "preview: device B should become COMPLIANT"
[ "$(summary_counts)" = "$BEFORE" ] || fail "preview changed the fleet"

step "approval: the proposer's own approver token is refused; bob approves"
expect_exit 4 alice+approver policy approve "$CHANGE"
grep -qi "someone else" "$WORK/out" || fail "self-approval refusal does not say why: $(cat "$WORK/out")"
expect_exit 4 alice policy approve "$CHANGE"   # the admin role cannot approve
as bob policy approve "$CHANGE" --reason "checked the preview" >/dev/null
expect_exit 1 bob policy approve "$CHANGE"     # already approved

step "apply: statuses equal the preview; the override is the kiosk's effective policy"
as alice policy apply "$CHANGE" --format json >"$WORK/applied.json"
[ "$(jq -r '.version' "$WORK/applied.json")" = 2 ] || fail "apply: $(cat "$WORK/applied.json")"
AFTER=$(summary_counts)
[ "$AFTER" = "$PREDICTED" ] || fail "after apply: $AFTER, preview said $PREDICTED"
[ "$(status_of "$A") $(status_of "$B") $(status_of "$C")" = "COMPLIANT COMPLIANT NON_COMPLIANT" ] \
  || fail "statuses after apply: $(status_of "$A") $(status_of "$B") $(status_of "$C")"
as soc device "$C" --policy --format json >"$WORK/kiosk-policy.json"
[ "$(jq -r '.policy.password.minLength' "$WORK/kiosk-policy.json")" = 16 ] || fail "kiosk policy: $(cat "$WORK/kiosk-policy.json")"
jq -e '.origins[] | select(.path == "password.minLength" and .override == "kiosk")' "$WORK/kiosk-policy.json" >/dev/null \
  || fail "origin of password.minLength is not the kiosk override"
[ "$(as soc device "$A" --policy --format json | jq -r '.policy.password // "none"')" = none ] \
  || fail "a laptop still has a password rule"

step "agents learn the new version from their next report and fetch the policy once"
agent_once c compliant
grep -q "policy .*+kiosk from the server" "$WORK/agent-c.log" || fail "agent c did not get the kiosk policy: $(tail -3 "$WORK/agent-c.log")"
n=$(grep -c "from the server" "$WORK/agent-c.log")
agent_once c compliant
[ "$(grep -c "from the server" "$WORK/agent-c.log")" = "$n" ] || fail "a current agent was sent the policy again"
[ "$(status_of "$C")" = NON_COMPLIANT ] || fail "kiosk after its report: $(status_of "$C")"

step "review, history and diff"
as bob policy review "$CHANGE" --format json >"$WORK/review.json"
[ "$(jq '.before.byStatus' "$WORK/review.json" | counts)" = "$BEFORE" ] || fail "review before: $(cat "$WORK/review.json")"
[ "$(jq '.now.byStatus' "$WORK/review.json" | counts)" = "$AFTER" ] || fail "review now: $(cat "$WORK/review.json")"
as soc policy diff 1 2 >"$WORK/diff.txt"
grep -q "overrides\[kiosk\]: added" "$WORK/diff.txt" || fail "diff: $(cat "$WORK/diff.txt")"

step "rollback to version 1: the previous statuses come back"
expect_exit 2 alice policy rollback --to 1
expect_exit 4 bob policy rollback --to 1 --reason "kiosk staff locked out"
as alice policy rollback --to 1 --reason "kiosk staff locked out" --format json >"$WORK/rollback.json"
[ "$(jq -r '.kind' "$WORK/rollback.json") $(jq -r '.version' "$WORK/rollback.json")" = "ROLLBACK 3" ] \
  || fail "rollback: $(cat "$WORK/rollback.json")"
[ "$(summary_counts)" = "$BEFORE" ] || fail "after rollback: $(summary_counts), before the change: $BEFORE"
[ "$(status_of "$A") $(status_of "$B") $(status_of "$C")" = "COMPLIANT NON_COMPLIANT COMPLIANT" ] \
  || fail "statuses after rollback: $(status_of "$A") $(status_of "$B") $(status_of "$C")"
# Version 3 replaced version 2; going back to 2 undoes the rollback (its plan): one step. Back
# to 1 from there is not what version 4 replaced: it needs approval.
as alice policy rollback --to 2 --reason "kiosk passwords fixed" --format json >"$WORK/rb2.json"
[ "$(jq -r '.state' "$WORK/rb2.json") $(jq -r '.version' "$WORK/rb2.json")" = "APPLIED 4" ] \
  || fail "rollback of the rollback: $(cat "$WORK/rb2.json")"
[ "$(summary_counts)" = "$AFTER" ] || fail "version 4 (the set of 2): $(summary_counts)"
as alice policy rollback --to 1 --reason "back to the start" --format json >"$WORK/rb1.json"
[ "$(jq -r '.state' "$WORK/rb1.json")" = PROPOSED ] || fail "a rollback off-plan is not a proposal: $(cat "$WORK/rb1.json")"
RB=$(jq -r '.id' "$WORK/rb1.json")
expect_exit 4 alice+approver policy approve "$RB"
as bob policy approve "$RB" >/dev/null
as alice policy apply "$RB" >/dev/null
[ "$(summary_counts)" = "$BEFORE" ] || fail "version 5 (the set of 1): $(summary_counts)"
as soc policy history >"$WORK/history.txt"
grep -q "MDM takes over" "$WORK/history.txt" || fail "history lacks the change's reason: $(cat "$WORK/history.txt")"

step "exceptions: B's failing checks are excepted, then one expires by the server's clock"
expect_exit 2 alice exception request --device "$B" --check usb_storage --reason r
as alice exception request --device "$B" --check usb_storage --reason "lab device, ticket 42" \
  --for 1d --format json >"$WORK/exc-usb.json"
as alice exception request --device "$B" --check password_policy --reason "SSO migration" \
  --for 8s --format json >"$WORK/exc-pw.json"
USB=$(jq -r '.id' "$WORK/exc-usb.json"); PW=$(jq -r '.id' "$WORK/exc-pw.json")
expect_exit 4 alice+approver exception approve "$USB"
[ "$(status_of "$B")" = NON_COMPLIANT ] || fail "a requested exception already counts"
as bob exception approve "$USB" >/dev/null
as bob exception approve "$PW" >/dev/null
[ "$(status_of "$B")" = EXCEPTED ] || fail "B with both checks excepted: $(status_of "$B")"
as soc device "$B" --format json | jq -e '.checks[] | select(.check == "usb_storage" and .status == "CHECK_EXCEPTED")' >/dev/null \
  || fail "usb_storage is not CHECK_EXCEPTED"
for _ in $(seq 150); do [ "$(status_of "$B")" = NON_COMPLIANT ] && break; sleep 0.1; done
[ "$(status_of "$B")" = NON_COMPLIANT ] || fail "B after the password exception expired: $(status_of "$B")"
[ "$(as soc exception list --device "$B" --format json | jq -r --arg id "$PW" '.exceptions[] | select(.id == $id) | .state')" = EXCEPTION_EXPIRED ] \
  || fail "the exception is not EXPIRED: $(as soc exception list --format json)"
as soc alerts --device "$B" --format json >"$WORK/alerts.json"
grep -q '"exception.expired"' "$WORK/alerts.json" || fail "no exception.expired alert: $(cat "$WORK/alerts.json")"
jq -e '.alerts[-1].kind == "device.non_compliant" and .alerts[-2].kind == "exception.expired"' "$WORK/alerts.json" >/dev/null \
  || fail "no device.non_compliant alert after expiry: $(cat "$WORK/alerts.json")"
as alice exception revoke "$USB" --reason "device replaced" >/dev/null
[ "$(as soc exception list --state active --format json | jq '.exceptions | length')" = 0 ] \
  || fail "active exceptions remain"

step "audit: every step is recorded and the log verifies"
as alice audit --format json >"$WORK/audit.json"
for action in policy.propose policy.approve policy.apply policy.reevaluate policy.rollback \
              exception.request exception.approve exception.expire exception.revoke; do
  grep -q "\"$action\"" "$WORK/audit.json" || fail "no $action in the audit log"
done
jq -e '.entries[] | select(.action == "policy.approve" and (.success // false) == false)' "$WORK/audit.json" >/dev/null \
  || fail "the refused self-approval is not in the audit log"
as alice audit verify >/dev/null || fail "the audit log does not verify"
if grep -hE 'vgt_|vgs_' "$WORK"/*.log; then fail "a secret is in a log"; fi
echo "policy e2e: OK"
