#!/usr/bin/env bash
# The dashboard in a real browser: a real vigil-server (init, tokens, serve with
# --http-listen 127.0.0.1:0) with real vigil-agents enrolled from the bundle on fixture roots
# (one compliant, one not, one enrolled that never reported), then Debian's headless Chromium
# driven through ChromeDriver (dashboard_driver.py: sign in, filter to NON_COMPLIANT, open the
# failing device, find its failing check, screenshot). Also the HTTPS port's transport rows:
# TLS 1.3 only, the certificate verifies against the CA, tokens, /metrics, and SIGTERM stops it.
# Fails, never skips: without Chromium it says to run scripts/deps.sh --test.
# Usage: dashboard_test.sh VIGIL_SERVER VIGIL_AGENT FIXTURES_DIR [SCREENSHOT.png]
#   (or VIGIL_DASHBOARD_SCREENSHOT=FILE; default: a temporary file, removed afterwards)
set -euo pipefail
SERVER_BIN=$1 AGENT_BIN=$2 FIXTURES=$3
SCREENSHOT=${VIGIL_DASHBOARD_SCREENSHOT:-${4:-}}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/vigil-dashboard.XXXXXX)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
  wait 2>/dev/null || true
  if [ "${KEEP:-}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$WORK/server.log" ] && tail -20 "$WORK/server.log" >&2; exit 1; }
step() { echo "--- $*"; }

for tool in /usr/bin/chromium /usr/bin/chromedriver; do
  [ -x "$tool" ] || fail "$tool is missing: run scripts/deps.sh --test (Debian packages chromium, chromium-driver)"
done
command -v python3 >/dev/null || fail "python3 is missing: run scripts/deps.sh --test"
[ -n "$SCREENSHOT" ] || SCREENSHOT="$WORK/dashboard.png"

cat > "$WORK/policy.json" <<'JSON'
{"screenLock": {"maxIdleSeconds": 900, "requirePassword": true, "maxLockDelaySeconds": 5},
 "password": {"minLength": 12, "minClasses": 3, "maxAgeDays": 365, "maxFailedAttempts": 10},
 "usbStorage": {"mode": "BLOCKED"}, "checkinWindowSeconds": 3600}
JSON

step "init, tokens"
"$SERVER_BIN" init --data-dir "$WORK/data" --server-address 127.0.0.1:7400 >/dev/null
for role in viewer admin; do
  "$SERVER_BIN" token create --data-dir "$WORK/data" --role $role --name "dashboard-$role" \
    >"$WORK/$role.token" 2>/dev/null
done
CA="$WORK/data/tls/ca.crt"

step "serve gRPC and HTTPS on ports chosen by the kernel"
"$SERVER_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/data" --policy "$WORK/policy.json" \
  --ready-file "$WORK/ready" --http-listen 127.0.0.1:0 --http-ready-file "$WORK/http-ready" \
  >>"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 200); do [ -s "$WORK/ready" ] && [ -s "$WORK/http-ready" ] && break; sleep 0.05; done
[ -s "$WORK/http-ready" ] || fail "server did not start (no --http-ready-file)"
ADDR=$(cat "$WORK/ready") HTTP=$(cat "$WORK/http-ready")
[ "$ADDR" != "$HTTP" ] || fail "gRPC and HTTPS share $ADDR"
URL="https://$HTTP"
step "gRPC on $ADDR, dashboard at $URL/"

step "HTTPS port: TLS 1.3 only, the certificate verifies against the CA"
if echo | timeout 5 openssl s_client -tls1_2 -connect "$HTTP" >"$WORK/tls12.log" 2>&1 && \
   grep -q "Cipher is [A-Z]" "$WORK/tls12.log"; then
  fail "a TLS 1.2 handshake succeeded on the HTTPS port"
fi
echo | timeout 5 openssl s_client -tls1_3 -connect "$HTTP" -CAfile "$CA" >"$WORK/tls13.log" 2>&1 || true
grep -q "New, TLSv1.3" "$WORK/tls13.log" || fail "no TLS 1.3 handshake: $(tail -5 "$WORK/tls13.log")"
grep -q "Verify return code: 0 (ok)" "$WORK/tls13.log" || fail "the server certificate does not verify"

# An HTTPS request with curl-free tooling: python3's ssl, trusting only the CA.
get() {  # get PATH TOKEN_FILE|- -> prints "STATUS BODY"
  python3 - "$URL$1" "$CA" "$2" <<'PY'
import ssl, sys, urllib.request, urllib.error
url, ca, token_file = sys.argv[1:4]
req = urllib.request.Request(url)
if token_file != "-":
    req.add_header("Authorization", "Bearer " + open(token_file).read().strip())
ctx = ssl.create_default_context(cafile=ca)
try:
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
PY
}
code() { get "$@" | head -1 | cut -d' ' -f1; }
body() { get "$@" | sed '1s/^[0-9]* //'; }
[ "$(code /api/v1/summary -)" = 401 ] || fail "no token must be 401"
[ "$(code /api/v1/audit "$WORK/viewer.token")" = 403 ] || fail "a viewer reading the audit log must be 403"
[ "$(code /api/v1/summary "$WORK/viewer.token")" = 200 ] || fail "a viewer cannot read the summary"

step "enroll three agents: compliant, non-compliant, and one that never reports"
enroll() {  # enroll NAME -> device id
  "$AGENT_BIN" enroll --bundle "$WORK/data/enroll-bundle.json" --server "$ADDR" \
    --state-dir "$WORK/state-$1" 2>>"$WORK/agent.log"
}
root_with_hostname() {  # a copy of a fixture root that names itself $2
  cp -r "$FIXTURES/e2e/$1" "$WORK/root-$2"
  echo "$2" >"$WORK/root-$2/etc/hostname"
}
root_with_hostname compliant design-laptop-07
root_with_hostname noncompliant eng-laptop-12
GOOD=$(enroll good) BAD=$(enroll bad) QUIET=$(enroll quiet)
"$AGENT_BIN" once --server "$ADDR" --state-dir "$WORK/state-good" --root "$WORK/root-design-laptop-07" \
  2>>"$WORK/agent.log" || fail "agent once (compliant) failed"
"$AGENT_BIN" once --server "$ADDR" --state-dir "$WORK/state-bad" --root "$WORK/root-eng-laptop-12" \
  2>>"$WORK/agent.log" || fail "agent once (non-compliant) failed"
status_of() { body "/api/v1/devices/$1" "$WORK/viewer.token" | jq -r .device.status; }
[ "$(status_of "$GOOD")" = COMPLIANT ] || fail "$GOOD is not COMPLIANT"
[ "$(status_of "$BAD")" = NON_COMPLIANT ] || fail "$BAD is not NON_COMPLIANT"
[ "$(status_of "$QUIET")" = UNKNOWN ] || fail "$QUIET is not UNKNOWN"

step "/metrics counts them"
metrics=$(body /metrics "$WORK/viewer.token")
grep -qx 'vigil_devices{status="NON_COMPLIANT"} 1' <<<"$metrics" || fail "metrics: $(grep vigil_devices <<<"$metrics")"
grep -qx 'vigil_attestations_total{result="accepted"} 2' <<<"$metrics" || fail "metrics: $(grep vigil_attestations_total <<<"$metrics")"
grep -qE '^vigil_report_duration_seconds_count 2$' <<<"$metrics" || fail "metrics: no report latency"

step "the dashboard in Chromium"
SPKI=$(openssl x509 -in "$WORK/data/tls/server.crt" -pubkey -noout | openssl pkey -pubin -outform der \
       | openssl dgst -sha256 -binary | base64)
python3 "$HERE/dashboard_driver.py" --url "$URL/" --token-file "$WORK/viewer.token" \
  --compliant "$GOOD" --failing "$BAD" --failing-check usb_storage --spki "$SPKI" \
  --screenshot "$SCREENSHOT" ${VIGIL_DASHBOARD_FLEET_SCREENSHOT:+--fleet-screenshot "$VIGIL_DASHBOARD_FLEET_SCREENSHOT"} \
  || fail "the dashboard test failed"
[ -s "$SCREENSHOT" ] || fail "no screenshot at $SCREENSHOT"

step "no token or secret in the server's log"
for f in "$WORK"/*.token; do
  secret=$(cut -d_ -f3- "$f")
  ! grep -qF "$secret" "$WORK/server.log" || fail "a token's secret is in the server log"
done

step "SIGTERM stops both ports"
kill "$SERVER_PID"
wait "$SERVER_PID" || fail "the server exited with $? on SIGTERM"
SERVER_PID=
if (exec 3<>"/dev/tcp/${HTTP%:*}/${HTTP##*:}") 2>/dev/null; then fail "the HTTPS port still accepts"; fi
if grep -qE 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$WORK"/*.log; then
  grep -hE -A30 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$WORK"/*.log >&2
  fail "sanitizer report"
fi
echo "dashboard test passed"
