#!/usr/bin/env bash
# Two vigil-server replicas on one PostgreSQL database (VIGIL_TEST_POSTGRES_URL), over TLS with
# client certificates: a device enrolled through one replica reports through the other, the
# security team reads the same fleet from either, a revocation made on one is enforced by the
# other, and the audit log both append to stays one verifiable chain.
# Usage: replicas_test.sh VIGIL_SERVER VIGIL_AGENT VIGILCTL FIXTURES_DIR
set -euo pipefail
SERVER_BIN=$1 AGENT_BIN=$2 CTL_BIN=$3 FIXTURES=$4
if [ -z "${VIGIL_TEST_POSTGRES_URL:-}" ]; then
  if [ "${VIGIL_REQUIRE_POSTGRES:-}" = 1 ]; then
    echo "FAIL: VIGIL_REQUIRE_POSTGRES=1 but VIGIL_TEST_POSTGRES_URL is not set" >&2; exit 1
  fi
  echo "replicas: not run (VIGIL_TEST_POSTGRES_URL is not set; scripts/pg.sh start DIR PORT)"
  exit 0
fi
WORK=$(mktemp -d /tmp/vigil-replicas.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -5 "$WORK"/server-*.log >&2 || true; exit 1; }
step() { echo "--- $*"; }

# A schema of its own, so runs never see each other's rows.
SCHEMA="vigil_e2e_$$_$RANDOM"
psql "$VIGIL_TEST_POSTGRES_URL" -qc "CREATE SCHEMA $SCHEMA" >/dev/null
STORE="${VIGIL_TEST_POSTGRES_URL}?options=-csearch_path%3D$SCHEMA"

step "init on PostgreSQL; two replicas share the data directory's TLS material and the database"
"$SERVER_BIN" init --data-dir "$WORK/data" --store "$STORE" --server-address 127.0.0.1:7400 >/dev/null
"$SERVER_BIN" token create --data-dir "$WORK/data" --store "$STORE" --role admin --name ops \
  >"$WORK/admin.token" 2>/dev/null
start() {
  rm -f "$WORK/ready-$1"
  "$SERVER_BIN" --listen 127.0.0.1:0 --data-dir "$WORK/data" --store "$STORE" \
    --require-client-cert --ready-file "$WORK/ready-$1" >>"$WORK/server-$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do [ -s "$WORK/ready-$1" ] && break; sleep 0.05; done
  [ -s "$WORK/ready-$1" ] || fail "replica $1 did not start"
}
start a
start b
A=$(cat "$WORK/ready-a") B=$(cat "$WORK/ready-b")
ctl() { "$CTL_BIN" --server "$1" --ca "$WORK/data/tls/ca.crt" --token-file "$WORK/admin.token" "${@:2}"; }

step "enroll through replica A, report through replica B, read from both"
DEV=$("$AGENT_BIN" enroll --bundle "$WORK/data/enroll-bundle.json" --server "$A" --state-dir "$WORK/agent" 2>/dev/null)
"$AGENT_BIN" once --server "$B" --state-dir "$WORK/agent" --root "$FIXTURES/e2e/compliant" 2>/dev/null \
  || fail "report through replica B failed"
"$AGENT_BIN" once --server "$A" --state-dir "$WORK/agent" --root "$FIXTURES/e2e/noncompliant" 2>/dev/null \
  || fail "report through replica A failed"
for r in "$A" "$B"; do
  [ "$(ctl "$r" device "$DEV" --format json | jq -r .device.status)" = NON_COMPLIANT ] \
    || fail "replica $r does not see the latest status"
  [ "$(ctl "$r" device "$DEV" --format json | jq '.history | length')" = 2 ] \
    || fail "replica $r does not see both attestations"
done

step "a replay through the other replica is still a replay"
cp "$WORK/agent/sequence" "$WORK/sequence.saved"
echo 1 > "$WORK/agent/sequence"
set +e; "$AGENT_BIN" once --server "$B" --state-dir "$WORK/agent" --root "$FIXTURES/e2e/compliant" 2>/dev/null; set -e
[ "$(ctl "$A" device "$DEV" --format json | jq -r .device.status)" = TAMPERED ] \
  || fail "a reused sequence through replica B was not flagged"

step "revoked on A, refused by B"
DEV2=$("$AGENT_BIN" enroll --bundle "$WORK/data/enroll-bundle.json" --server "$B" --state-dir "$WORK/agent2" 2>/dev/null)
ctl "$A" device revoke "$DEV2" --reason "lost" >/dev/null
set +e; "$AGENT_BIN" once --server "$B" --state-dir "$WORK/agent2" --root "$FIXTURES/e2e/compliant" 2>/dev/null; rc=$?; set -e
[ $rc -eq 1 ] || fail "replica B accepted a report of a device revoked on A"
[ "$(ctl "$B" device "$DEV2" --format json | jq '.history | length')" = 0 ] || fail "stored after revocation"

step "a replica killed mid-ingest (SIGKILL): every acknowledged attestation is stored, the rest arrive through the other"
for i in 1 2 3 4 5 6; do
  "$AGENT_BIN" enroll --bundle "$WORK/data/enroll-bundle.json" --server "$B" --state-dir "$WORK/fleet$i" \
    >"$WORK/fleet$i.id" 2>/dev/null
done
LOOPS=()
for i in 1 2 3 4 5 6; do
  ( for _ in $(seq 40); do
      "$AGENT_BIN" once --server "$A" --state-dir "$WORK/fleet$i" --root "$FIXTURES/e2e/compliant" \
        --rpc-timeout 2 2>>"$WORK/fleet$i.log" || true
    done ) &
  LOOPS+=($!)
done
sleep 0.7
kill -9 "${PIDS[0]}"
wait "${PIDS[0]}" 2>/dev/null || true
for p in "${LOOPS[@]}"; do wait "$p" 2>/dev/null || true; done
for i in 1 2 3 4 5 6; do
  "$AGENT_BIN" once --server "$B" --state-dir "$WORK/fleet$i" --root "$FIXTURES/e2e/compliant" 2>/dev/null \
    || fail "agent $i could not deliver its queue through replica B"
  id=$(cat "$WORK/fleet$i.id")
  last=$(tr -d '\n' < "$WORK/fleet$i/sequence")
  json=$(ctl "$B" device "$id" --format json --history 1000)
  seqs=$(jq -c '[.history[].sequence | tonumber] | sort' <<<"$json")
  [ "$seqs" = "$(jq -nc --argjson n "$last" '[range(1; $n + 1)]')" ] \
    || fail "agent $i: stored sequences $seqs, expected 1..$last"
  [ "$(jq -r .device.status <<<"$json")" = COMPLIANT ] || fail "agent $i: $(jq -r .device.status <<<"$json")"
  [ -z "$(ls "$WORK/fleet$i/outbox" | grep '\.att$' || true)" ] || fail "agent $i: outbox not empty"
done
acked=$(cat "$WORK"/fleet?.log | grep -c 'acknowledged' || true)
failed=$(cat "$WORK"/fleet?.log | grep -c 'sending failed' || true)
[ "$acked" -gt 0 ] && [ "$failed" -gt 0 ] || fail "the kill did not land mid-ingest ($acked runs acknowledged, $failed failed)"
echo "    $(( $(cat "$WORK"/fleet*/sequence | paste -sd+) )) attestations, all stored once, none lost ($acked runs acknowledged by A before the kill, $failed queued after it)"

step "one audit chain across replicas"
start a
A=$(cat "$WORK/ready-a")
ctl "$A" audit verify >/dev/null || fail "audit chain does not verify through A"
ctl "$B" audit verify >/dev/null || fail "audit chain does not verify through B"
n=$(ctl "$B" audit --format json --limit 1000 | jq '[.entries[] | select(.action=="device.enroll")] | length')
[ "$n" = 8 ] || fail "expected 8 enrollments in the audit log, got $n"
PGOPTIONS="--client-min-messages=warning" psql "$VIGIL_TEST_POSTGRES_URL" -qc "DROP SCHEMA $SCHEMA CASCADE" >/dev/null
echo "replicas: all steps passed"
