#!/usr/bin/env bash
# Start a private PostgreSQL server for tests on 127.0.0.1 with a `coworld` role and database; print the URL.
#
# The server is our own cluster (initdb into COWORLD_POSTGRES_DIR, started with pg_ctl), not Debian's
# `main` cluster: a fresh machine may have the package's files without its `postgres` account (seen in
# CI: pg_lsclusters failed and `su postgres` found no such user), and a private port cannot collide
# with a system server that happens to run. Idempotent: a running server is reused.
#   COWORLD_POSTGRES_PORT (default 55432), COWORLD_POSTGRES_DIR (default /tmp/coworld-postgres-PORT)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PORT="${COWORLD_POSTGRES_PORT:-55432}"
DIR="${COWORLD_POSTGRES_DIR:-/tmp/coworld-postgres-$PORT}"
log() { echo "[postgres-up] $*" >&2; }  # stdout carries only the URL

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ -z "$(bindir)" ] || [ ! -x "$(bindir)/initdb" ]; then
  log "apt-get install postgresql"
  apt-get install -y -qq postgresql >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
fi
BIN="$(bindir)"
[ -x "$BIN/initdb" ] || { log "no initdb under /usr/lib/postgresql/*/bin after installing postgresql"; exit 1; }

# initdb and the server refuse to run as root: they run as the package's account, made here if absent.
id postgres >/dev/null 2>&1 || useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres
as_postgres() { runuser -u postgres -- "$@"; }

if [ ! -s "$DIR/PG_VERSION" ]; then
  log "initdb $DIR"
  rm -rf "$DIR" && mkdir -p "$DIR" && chown postgres: "$DIR" && chmod 700 "$DIR"
  as_postgres "$BIN/initdb" -D "$DIR" -U postgres --auth-local=trust --auth-host=scram-sha-256 >"$DIR.initdb.log" 2>&1 ||
    { cat "$DIR.initdb.log" >&2; exit 1; }
fi
if ! as_postgres "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
  log "starting postgres on 127.0.0.1:$PORT ($DIR)"
  as_postgres "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$DIR" start >/dev/null ||
    { tail -20 "$DIR/server.log" >&2; exit 1; }
fi

psql_admin() { as_postgres "$BIN/psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -qtAc "$1"; }
psql_admin "SELECT 1 FROM pg_roles WHERE rolname='coworld'" | grep -q 1 ||
  psql_admin "CREATE ROLE coworld LOGIN SUPERUSER PASSWORD 'coworld'" >/dev/null
psql_admin "SELECT 1 FROM pg_database WHERE datname='coworld_test'" | grep -q 1 ||
  psql_admin "CREATE DATABASE coworld_test OWNER coworld" >/dev/null
echo "postgresql+psycopg2://coworld:coworld@127.0.0.1:$PORT/coworld_test"
