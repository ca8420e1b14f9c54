#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and demos of the PostgreSQL store.
#
#   scripts/pg.sh start DIR PORT   create (if needed) and start a cluster in DIR, listening only
#                                  on 127.0.0.1:PORT; prints postgresql://vigil@127.0.0.1:PORT/vigil
#   scripts/pg.sh stop DIR         stop it (fast shutdown); nothing to do when it is not running
#
# DIR is the data directory itself. Role and database `vigil` are created once; clients on
# 127.0.0.1 are trusted (no password), the Unix socket (in DIR, mode 0700) only admits the
# cluster's owner. Works as root (the cluster then belongs to the `postgres` user, since initdb
# refuses to run as root) and as an ordinary user. Safe to repeat. Needs Debian's `postgresql`.
set -euo pipefail

die() {
  echo "pg.sh: $*" >&2
  exit 1
}
usage() { die "usage: $0 start DIR PORT | $0 stop DIR"; }

BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$BIN" ] && [ -x "$BIN/initdb" ] || die "no PostgreSQL server found (apt-get install postgresql)"

# Commands on the cluster run as its owner: `postgres` when we are root, else ourselves.
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || die "user 'postgres' is missing (apt-get install postgresql)"
  as_owner() { (cd / && runuser -u postgres -- "$@"); }
  OWNER=postgres
else
  as_owner() { "$@"; }
  OWNER=$(id -un)
fi

running() { as_owner "$BIN/pg_ctl" status -D "$DIR" >/dev/null 2>&1; }

start() {
  [[ "$PORT" =~ ^[0-9]+$ ]] || die "PORT must be a number, not '$PORT'"
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  if [ ! -f "$DIR/PG_VERSION" ]; then
    [ -z "$(ls -A "$DIR")" ] || die "$DIR is neither empty nor a PostgreSQL data directory"
    [ "$(id -u)" -eq 0 ] && chown "$OWNER" "$DIR"
    chmod 700 "$DIR"
    as_owner test -w "$DIR" || die "$DIR is not reachable by user '$OWNER' (check its parents)"
    as_owner "$BIN/initdb" -D "$DIR" --encoding=UTF8 --locale=C.UTF-8 --auth-local=peer \
      --auth-host=reject >"$DIR.initdb.log" 2>&1 ||
      die "initdb failed; see $DIR.initdb.log"
    rm -f "$DIR.initdb.log"
    # Trust only loopback TCP (the store's URL) and the owner over the private socket.
    as_owner tee "$DIR/pg_hba.conf" >/dev/null <<'EOF'
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  peer
host    all       all   127.0.0.1/32   trust
EOF
  fi
  if running; then
    local actual
    actual=$(sed -n 4p "$DIR/postmaster.pid" 2>/dev/null || true)
    [ "$actual" = "$PORT" ] || die "the cluster in $DIR is already running on port $actual"
  else
    as_owner "$BIN/pg_ctl" start -D "$DIR" -w -t 60 -l "$DIR/server.log" \
      -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories='$DIR'" \
      >/dev/null || die "PostgreSQL did not start; see $DIR/server.log"
  fi
  for _ in $(seq 1 60); do
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" && break
    sleep 0.5
  done
  "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" || die "PostgreSQL is not accepting connections"

  psql_admin() { as_owner "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -d postgres "$@"; }
  [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname='vigil'")" = 1 ] ||
    psql_admin -c "CREATE ROLE vigil LOGIN"
  [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname='vigil'")" = 1 ] ||
    psql_admin -c "CREATE DATABASE vigil OWNER vigil"
  echo "postgresql://vigil@127.0.0.1:$PORT/vigil"
}

stop() {
  [ -d "$DIR" ] || exit 0
  [ -f "$DIR/PG_VERSION" ] || die "$DIR is not a PostgreSQL data directory"
  running || exit 0
  as_owner "$BIN/pg_ctl" stop -D "$DIR" -m fast -w -t 60 >/dev/null
}

case "${1:-}" in
  start)
    [ $# -eq 3 ] || usage
    DIR=$2 PORT=$3
    start
    ;;
  stop)
    [ $# -eq 2 ] || usage
    DIR=$2
    stop
    ;;
  *) usage ;;
esac
