#!/usr/bin/env bash
# The demo: builds Vigil, starts a vigil-server on an embedded SQLite database in .vigil-demo/,
# enrolls THIS machine's agent, reports once, and prints what the security team sees: the fleet
# table and this device's checks with reasons. Run as root (sudo) to let the agent read
# /etc/shadow; without it, password_policy honestly reports ERROR.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
BUILD_DIR=build scripts/build.sh >/dev/null
B=build
D=.vigil-demo
rm -rf "$D"
mkdir -p "$D"
chmod 700 "$D"
head -c 32 /dev/urandom | base64 > "$D/enroll-secret"
chmod 600 "$D/enroll-secret"
"$B/server/vigil-server" --listen 127.0.0.1:0 --data-dir "$D/server" \
  --enroll-secret-file "$D/enroll-secret" --ready-file "$D/server.addr" 2>"$D/server.log" &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$D/server.addr" ] && break; sleep 0.05; done
ADDR=$(cat "$D/server.addr")
echo "vigil-server listening on $ADDR (data in $D/server)"
DEVICE=$("$B/agent/vigil-agent" enroll --server "$ADDR" --enroll-secret-file "$D/enroll-secret" \
  --state-dir "$D/agent" 2>/dev/null)
echo "this machine enrolled as $DEVICE"
"$B/agent/vigil-agent" once --server "$ADDR" --state-dir "$D/agent" 2>/dev/null || true
echo
echo "== vigilctl devices"
"$B/server/vigilctl" --server "$ADDR" devices
echo
echo "== vigilctl device $DEVICE"
"$B/server/vigilctl" --server "$ADDR" device "$DEVICE"
