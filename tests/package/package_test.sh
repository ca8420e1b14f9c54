#!/usr/bin/env bash
# The Debian packages, installed for real: lintian, the units' systemd-analyze security scores,
# then install, silent enrollment (bundle file and debconf preseed), an unreachable server at
# install time, upgrade, remove and purge of vigil-agent, and install of vigil-server whose
# packaged server then enrolls the packaged agent.
#
# The packages go into a throwaway copy of this machine: an overlay of / on a tmpfs, entered
# with chroot, so nothing is installed on the machine itself. The test server runs on
# 127.0.0.1 from the build tree. Needs root (mount, chroot).
#
# Usage: package_test.sh BUILD_DIR   (BUILD_DIR holds the .debs from `cpack` and the binaries)
set -euo pipefail
BUILD=$(cd "${1:?usage: package_test.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
SERVER_BIN=$BUILD/server/vigil-server
CTL_BIN=$BUILD/server/vigilctl
AGENT_DEB=$(ls "$BUILD"/vigil-agent_*.deb)
SERVER_DEB=$(ls "$BUILD"/vigil-server_*.deb)

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }
[ "$(id -u)" = 0 ] || fail "needs root (overlay mount and chroot)"

WORK=$(mktemp -d /tmp/vigil-pkg.XXXXXX)
ROOT=$WORK/root
mounts=()
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
mount -t tmpfs tmpfs "$WORK" && mounts+=("$WORK")
mkdir -p "$WORK/upper" "$WORK/ovl" "$ROOT" "$WORK/host"
mount -t overlay overlay -o "lowerdir=/,upperdir=$WORK/upper,workdir=$WORK/ovl" "$ROOT" \
  || fail "cannot mount an overlay of / (needs root and overlayfs)"
mounts+=("$ROOT")
for m in proc sys dev dev/pts; do mount --bind "/$m" "$ROOT/$m" && mounts+=("$ROOT/$m"); done

# Runs a command on the copy, as a fresh noninteractive apt session would.
in_root() {
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C \
    DEBIAN_FRONTEND=noninteractive "$@"
}
apt_install() {
  in_root apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "$@" >>"$WORK/host/apt.log" 2>&1 || { tail -30 "$WORK/host/apt.log"; fail "apt-get install $*"; }
}
mode() { in_root stat -c '%a %U:%G' "$1"; }
for p in vigil-agent vigil-server; do
  ! in_root dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed \
    || fail "$p is installed on this machine: the test needs a machine without it"
done
[ ! -e "$ROOT/etc/vigil" ] || fail "/etc/vigil exists on this machine"
mkdir -p "$ROOT/tmp/pkg"
cp "$AGENT_DEB" "$SERVER_DEB" "$ROOT/tmp/pkg/"
AGENT=/tmp/pkg/$(basename "$AGENT_DEB")
SERVER=/tmp/pkg/$(basename "$SERVER_DEB")

step "lintian: no errors"
lintian --fail-on error --tag-display-limit 0 "$AGENT_DEB" "$SERVER_DEB" 2>&1 \
  | grep -v "running with root" | tee "$WORK/host/lintian.log" || true
lintian --fail-on error "$AGENT_DEB" "$SERVER_DEB" >/dev/null 2>&1 || fail "lintian reports errors"

step "systemd-analyze security (lower is better; 10 is an unhardened service)"
for unit in vigil-agent vigil-server; do
  score=$(systemd-analyze security --offline=true "$SRC/packaging/systemd/$unit.service" 2>&1 \
    | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  [ -n "$score" ] || fail "no systemd-analyze score for $unit"
  echo "$unit.service: exposure $score"
  limit=2.5; [ $unit = vigil-server ] && limit=1.5
  awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s <= l) }' || fail "$unit exposure $score > $limit"
done

# A test server on a fixed free port: the bundle names it.
port=47400
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
ADDR=127.0.0.1:$port
"$SERVER_BIN" init --data-dir "$WORK/host/data" --server-address "$ADDR" >/dev/null
"$SERVER_BIN" token create --data-dir "$WORK/host/data" --role admin --name pkg >"$WORK/host/token" 2>/dev/null
BUNDLE=$WORK/host/data/enroll-bundle.json
SECRET=$(jq -r .enrollSecret "$BUNDLE")
start_server() {
  rm -f "$WORK/host/ready"
  "$SERVER_BIN" --listen "$ADDR" --data-dir "$WORK/host/data" --require-client-cert \
    --ready-file "$WORK/host/ready" >>"$WORK/host/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do [ -s "$WORK/host/ready" ] && return; sleep 0.05; done
  fail "test server did not start"
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }
ctl() { "$CTL_BIN" --server "$ADDR" --ca "$WORK/host/data/tls/ca.crt" --token-file "$WORK/host/token" "$@"; }
reports_of() { ctl device "$1" --format json | jq -r '.device.lastSequence // 0'; }
agent_status() { in_root vigil-agent status --config /etc/vigil/agent.json --format json; }
start_server

step "install with /etc/vigil/enroll.json: enrolls silently, deletes the secret, enables the unit"
mkdir -p "$ROOT/etc/vigil"
cp "$BUNDLE" "$ROOT/etc/vigil/enroll.json"
chmod 644 "$ROOT/etc/vigil/enroll.json"  # as an admin might copy it; postinst makes it root-only
apt_install "$AGENT"
[ -x "$ROOT/usr/bin/vigil-agent" ] || fail "no /usr/bin/vigil-agent"
[ ! -e "$ROOT/etc/vigil/enroll.json" ] || fail "the bundle (enroll secret) was left after enrollment"
[ "$(mode /var/lib/vigil-agent)" = "700 root:root" ] || fail "state dir: $(mode /var/lib/vigil-agent)"
[ "$(mode /var/lib/vigil-agent/device.key)" = "600 root:root" ] || fail "key: $(mode /var/lib/vigil-agent/device.key)"
[ "$(mode /etc/vigil/agent.json)" = "644 root:root" ] || fail "agent.json: $(mode /etc/vigil/agent.json)"
[ -f "$ROOT/lib/systemd/system/vigil-agent.service" ] || fail "no unit"
[ -L "$ROOT/etc/systemd/system/multi-user.target.wants/vigil-agent.service" ] || fail "unit not enabled"
in_root dpkg-query -W -f='${Conffiles}' vigil-agent | grep -q /etc/vigil/agent.json \
  || fail "agent.json is not a conffile"
DEVICE=$(jq -r .deviceId "$ROOT/var/lib/vigil-agent/device.json")
ctl device "$DEVICE" >/dev/null || fail "the server does not know $DEVICE"
! grep -rqs -- "$SECRET" "$ROOT/var/cache/debconf" "$ROOT/var/lib/vigil-agent" "$ROOT/etc" \
  || fail "the enroll secret is on disk after enrollment"

step "the packaged agent reports (no bundle needed any more)"
in_root vigil-agent once --config /etc/vigil/agent.json 2>>"$WORK/host/agent.log" || fail "once"
[ "$(reports_of "$DEVICE")" -ge 1 ] || fail "no report stored for $DEVICE"

step "upgrade keeps the key, the device id, the outbox and a changed conffile"
stop_server
in_root vigil-agent once --config /etc/vigil/agent.json 2>>"$WORK/host/agent.log" \
  && fail "once succeeded with the server down"
depth=$(agent_status | jq -r '.outboxDepth // 0')
[ "$depth" -ge 1 ] || fail "nothing queued while the server was down (depth $depth)"
key_sum=$(sha256sum "$ROOT/var/lib/vigil-agent/device.key" | cut -d' ' -f1)
jq '.intervalSeconds = 1800' "$ROOT/etc/vigil/agent.json" >"$ROOT/etc/vigil/agent.json.tmp"
mv "$ROOT/etc/vigil/agent.json.tmp" "$ROOT/etc/vigil/agent.json"
# The next version: the same package with a higher version number.
dpkg-deb -R "$AGENT_DEB" "$WORK/host/next"
version=$(sed -n 's/^Version: //p' "$WORK/host/next/DEBIAN/control")
sed -i "s/^Version: .*/Version: $version+next1/" "$WORK/host/next/DEBIAN/control"
dpkg-deb -b --root-owner-group "$WORK/host/next" "$ROOT/tmp/pkg/next.deb" >/dev/null
apt_install /tmp/pkg/next.deb
[ "$(in_root dpkg-query -W -f='${Version}' vigil-agent)" = "$version+next1" ] || fail "not upgraded"
[ "$(sha256sum "$ROOT/var/lib/vigil-agent/device.key" | cut -d' ' -f1)" = "$key_sum" ] || fail "key changed"
[ "$(jq -r .deviceId "$ROOT/var/lib/vigil-agent/device.json")" = "$DEVICE" ] || fail "device id changed"
[ "$(agent_status | jq -r '.outboxDepth // 0')" = "$depth" ] || fail "outbox changed on upgrade"
[ "$(jq -r .intervalSeconds "$ROOT/etc/vigil/agent.json")" = 1800 ] || fail "the admin's agent.json was replaced"
start_server
before=$(reports_of "$DEVICE")
in_root vigil-agent once --config /etc/vigil/agent.json 2>>"$WORK/host/agent.log" || fail "once after upgrade"
[ "$(agent_status | jq -r '.outboxDepth // 0')" = 0 ] || fail "the outbox was not sent"
[ "$(reports_of "$DEVICE")" -ge $((before + depth + 1)) ] || fail "queued reports did not arrive"

step "remove keeps the device's state; purge deletes it"
in_root apt-get remove -y -q vigil-agent >>"$WORK/host/apt.log" 2>&1 || fail "remove"
[ ! -e "$ROOT/usr/bin/vigil-agent" ] || fail "binary left after remove"
[ -f "$ROOT/var/lib/vigil-agent/device.key" ] || fail "remove deleted the key"
in_root apt-get purge -y -q vigil-agent >>"$WORK/host/apt.log" 2>&1 || fail "purge"
[ ! -e "$ROOT/var/lib/vigil-agent" ] || fail "purge left /var/lib/vigil-agent"
[ ! -e "$ROOT/etc/vigil" ] || fail "purge left /etc/vigil: $(ls -A "$ROOT/etc/vigil")"
[ ! -e "$ROOT/etc/systemd/system/multi-user.target.wants/vigil-agent.service" ] || fail "purge left the unit enabled"

step "install with a preseeded debconf bundle (base64): enrolls; the secret is cleared from debconf"
echo "vigil-agent vigil-agent/enroll-bundle password $(base64 -w0 "$BUNDLE")" \
  | in_root debconf-set-selections
apt_install "$AGENT"
DEVICE2=$(jq -r .deviceId "$ROOT/var/lib/vigil-agent/device.json")
[ "$DEVICE2" != "$DEVICE" ] || fail "a purged device came back with its old id"
ctl device "$DEVICE2" >/dev/null || fail "the server does not know $DEVICE2"
[ ! -e "$ROOT/etc/vigil/enroll.json" ] || fail "the preseeded bundle was left in /etc/vigil"
! grep -rqs -- "$SECRET" "$ROOT/var/cache/debconf" || fail "the enroll secret stayed in debconf's database"
in_root apt-get purge -y -q vigil-agent >>"$WORK/host/apt.log" 2>&1 || fail "purge"

step "server unreachable at install: the install succeeds, the bundle stays root-only, the agent enrolls later"
stop_server
mkdir -p "$ROOT/etc/vigil"
cp "$BUNDLE" "$ROOT/etc/vigil/enroll.json"
chmod 644 "$ROOT/etc/vigil/enroll.json"
apt_install "$AGENT"
[ "$(mode /etc/vigil/enroll.json)" = "600 root:root" ] || fail "bundle not root-only: $(mode /etc/vigil/enroll.json)"
[ ! -e "$ROOT/var/lib/vigil-agent/device.json" ] || fail "enrolled with the server down?"
start_server
in_root vigil-agent once --config /etc/vigil/agent.json 2>>"$WORK/host/agent.log" || fail "late enrollment"
DEVICE3=$(jq -r .deviceId "$ROOT/var/lib/vigil-agent/device.json")
[ "$(reports_of "$DEVICE3")" -ge 1 ] || fail "no report from the late-enrolled $DEVICE3"
apt_install /tmp/pkg/next.deb
[ ! -e "$ROOT/etc/vigil/enroll.json" ] || fail "the upgrade of an enrolled device kept the bundle"
in_root apt-get purge -y -q vigil-agent >>"$WORK/host/apt.log" 2>&1 || fail "purge"
stop_server

step "vigil-server: the vigil user, a root-only data directory, the unit; it enrolls the packaged agent"
apt_install "$SERVER"
uid=$(in_root id -u vigil) || fail "no vigil user"
[ "$uid" -lt 1000 ] || fail "vigil is not a system user (uid $uid)"
[ "$(mode /var/lib/vigil-server)" = "700 vigil:vigil" ] || fail "data dir: $(mode /var/lib/vigil-server)"
[ -f "$ROOT/lib/systemd/system/vigil-server.service" ] || fail "no server unit"
[ -x "$ROOT/usr/bin/vigilctl" ] || fail "no vigilctl"
in_root runuser -u vigil -- vigil-server init --data-dir /var/lib/vigil-server --server-address "$ADDR" \
  >/dev/null || fail "init as vigil"
# The unit's command line, as the vigil user.
exec_start=$(sed -n 's/^ExecStart=//p' "$ROOT/lib/systemd/system/vigil-server.service" \
  | sed "s/\${VIGIL_LISTEN}/$ADDR/; s/ \$VIGIL_SERVER_ARGS//")
rm -f "$ROOT/tmp/ready"
# chroot --userspec execs the server itself, so SERVER_PID is the server's.
# shellcheck disable=SC2086
chroot --userspec=vigil:vigil "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin $exec_start \
  --ready-file /tmp/ready >>"$WORK/host/packaged-server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$ROOT/tmp/ready" ] && break; sleep 0.05; done
[ -s "$ROOT/tmp/ready" ] || { tail "$WORK/host/packaged-server.log"; fail "the packaged server did not start"; }
cp "$ROOT/var/lib/vigil-server/enroll-bundle.json" "$ROOT/etc/vigil/enroll.json"
apt_install "$AGENT"
[ -f "$ROOT/var/lib/vigil-agent/device.json" ] || fail "the packaged agent did not enroll with the packaged server"
in_root vigil-agent once --config /etc/vigil/agent.json 2>>"$WORK/host/agent.log" || fail "report to the packaged server"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=

step "both units under systemd, sandboxes and all (systemd-nspawn --boot, private network)"
# The copy boots a target with just the two services. Everything the agent reads must read:
# a sandbox that refuses a system call or a path shows up as ERROR evidence.
printf '[Unit]\nDescription=Vigil package test\nRequires=vigil-server.service vigil-agent.service\nAfter=vigil-server.service vigil-agent.service\n' \
  >"$ROOT/etc/systemd/system/vigil-test.target"
echo "VIGIL_LISTEN=$ADDR" >"$ROOT/etc/default/vigil-server"
in_root runuser -u vigil -- vigil-server token create --data-dir /var/lib/vigil-server --role viewer \
  --name boot >"$ROOT/root/boot.token" 2>/dev/null
DEVICE4=$(jq -r .deviceId "$ROOT/var/lib/vigil-agent/device.json")
# nspawn mounts its own /proc, /sys and /dev.
for ((i = ${#mounts[@]} - 1; i >= 2; i--)); do umount "${mounts[i]}"; done
mounts=("${mounts[@]:0:2}")
# A chroot whose /sys was bind-mounted without its submounts has no cgroup file system, which
# nspawn needs: in a mount namespace of its own, /sys made private first (so nothing propagates
# to the machine), it gets one. nspawn also needs / to be a mount point, which a chroot's is
# not: there the stage cannot run (see below).
unshare --mount --propagation unchanged sh -c '
  mountpoint -q / || { echo "/ is not a mount point (a chroot)"; exit 1; }
  mount --make-rprivate /sys || exit 1
  if [ -z "$(ls -A /sys/fs/cgroup 2>/dev/null)" ]; then mount -t cgroup2 none /sys/fs/cgroup; fi
  exec systemd-nspawn -D "$1" --boot --register=no --keep-unit --private-network -q \
    systemd.unit=vigil-test.target' sh "$ROOT" >"$WORK/host/boot.log" 2>&1 &
NSPAWN_PID=$!
boot_stop() { kill "$NSPAWN_PID" 2>/dev/null; wait "$NSPAWN_PID" 2>/dev/null || true; }
in_boot() { nsenter -t "$(pgrep -P "$NSPAWN_PID" | head -1)" -a "$@"; }
ctl_boot() {
  in_boot vigilctl --server "$ADDR" --ca /var/lib/vigil-server/tls/ca.crt \
    --token-file /root/boot.token "$@"
}
reported=
booted=
for _ in $(seq 150); do
  sleep 0.2
  if ! kill -0 "$NSPAWN_PID" 2>/dev/null; then break; fi
  [ -n "$(pgrep -P "$NSPAWN_PID")" ] && booted=1
  seq=$(ctl_boot device "$DEVICE4" --format json 2>/dev/null | jq -r '.device.lastSequence // 0') || continue
  if [ "${seq:-0}" -ge 2 ]; then reported=1; break; fi
done
if [ -z "$booted" ] && ! kill -0 "$NSPAWN_PID" 2>/dev/null; then
  # This machine cannot run a container at all (no cgroups, no mount namespaces, ...): an
  # environment limit, not a product failure. Say so loudly; everything above still ran.
  echo "SKIPPED: the systemd boot stage: systemd-nspawn cannot start a container here:" >&2
  tail -5 "$WORK/host/boot.log" >&2
  SANDBOX_STAGE=skipped
elif [ -z "$reported" ]; then
  in_boot systemctl status --no-pager vigil-server vigil-agent >&2 || true
  in_boot journalctl --no-pager -u vigil-server -u vigil-agent >&2 || true
  tail -20 "$WORK/host/boot.log" >&2
  boot_stop
  fail "the services did not report under systemd"
fi
if [ "${SANDBOX_STAGE:-}" != skipped ]; then
  for unit in vigil-server vigil-agent; do
    [ "$(in_boot systemctl is-active $unit)" = active ] || { boot_stop; fail "$unit is not active"; }
  done
  # What the agent reported from inside its sandbox must be what it sees outside it, in the same
  # container: a system call or path the sandbox refuses would change a check's status or reason.
  # (The container itself may hide things, e.g. /sys/module under a private network.)
  verdicts='[.checks[] | {check, status, reason}] | sort_by(.check)'
  ctl_boot device "$DEVICE4" --format json | jq -c "$verdicts" >"$WORK/host/sandboxed.json"
  in_boot vigil-agent collect --policy /etc/vigil/policy.json --format json 2>/dev/null \
    | jq -c "$verdicts" >"$WORK/host/unsandboxed.json"
  boot_stop
  jq -e 'length == 3' "$WORK/host/unsandboxed.json" >/dev/null || fail "no checks collected outside the sandbox"
  if ! diff "$WORK/host/unsandboxed.json" "$WORK/host/sandboxed.json" >/dev/null; then
    echo "outside the sandbox: $(cat "$WORK/host/unsandboxed.json")" >&2
    echo "inside the sandbox:  $(cat "$WORK/host/sandboxed.json")" >&2
    fail "the unit's sandbox changes what the agent sees"
  fi
fi
for m in proc sys dev dev/pts; do mount --bind "/$m" "$ROOT/$m" && mounts+=("$ROOT/$m"); done
in_root apt-get purge -y -q vigil-agent vigil-server >>"$WORK/host/apt.log" 2>&1 || fail "purge both"
[ -f "$ROOT/var/lib/vigil-server/tls/ca.key" ] || fail "purging the server deleted the fleet's CA"
echo "package test passed${SANDBOX_STAGE:+ (the systemd boot stage $SANDBOX_STAGE)}"
