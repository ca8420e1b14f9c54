#!/usr/bin/env bash
# The demo: builds Vigil, initialises a server data directory in .vigil-demo/ (private CA, TLS
# certificate, enroll secret, enrollment bundle), starts vigil-server over TLS 1.3 with client
# certificates required, enrolls THIS machine's agent from the bundle, reports once, and prints
# what the security team sees with an admin token: the fleet table, this device's checks with
# reasons, and the verified audit log. Run as root (sudo) to let the agent read /etc/shadow;
# without it, password_policy honestly reports ERROR.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
BUILD_DIR=build scripts/build.sh >/dev/null
B=build
D=.vigil-demo
rm -rf "$D"
mkdir -p "$D"
chmod 700 "$D"
"$B/server/vigil-server" init --data-dir "$D/server" --server-address 127.0.0.1:7400 >/dev/null
"$B/server/vigil-server" token create --data-dir "$D/server" --role admin --name demo-admin \
  >"$D/admin.token" 2>/dev/null
chmod 600 "$D/admin.token"
"$B/server/vigil-server" --listen 127.0.0.1:0 --data-dir "$D/server" --require-client-cert \
  --ready-file "$D/server.addr" 2>"$D/server.log" &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$D/server.addr" ] && break; sleep 0.05; done
ADDR=$(cat "$D/server.addr")
echo "vigil-server listening on $ADDR over TLS 1.3 (data and CA in $D/server)"
DEVICE=$("$B/agent/vigil-agent" enroll --bundle "$D/server/enroll-bundle.json" --server "$ADDR" \
  --state-dir "$D/agent" 2>/dev/null)
echo "this machine enrolled as $DEVICE (client certificate in $D/agent/device.crt)"
"$B/agent/vigil-agent" once --server "$ADDR" --state-dir "$D/agent" 2>/dev/null || true
ctl() { "$B/server/vigilctl" --server "$ADDR" --ca "$D/server/tls/ca.crt" --token-file "$D/admin.token" "$@"; }
echo
echo "== vigilctl devices"
ctl devices
echo
echo "== vigilctl device $DEVICE"
ctl device "$DEVICE"
echo
echo "== vigilctl audit"
ctl audit
ctl audit verify
