#!/usr/bin/env bash
# Start Debian's PostgreSQL on 127.0.0.1:5432 with a `coworld` role and database for tests; print the URL.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
dpkg -s postgresql >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
version="$(ls /usr/lib/postgresql | sort -V | tail -1)"
pg_lsclusters -h | grep -q "^$version main" || pg_createcluster "$version" main >/dev/null
pg_ctlcluster "$version" main start >/dev/null 2>&1 || true  # stdout carries only the URL
for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 && break; sleep 0.5; done
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='coworld'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"CREATE ROLE coworld LOGIN SUPERUSER PASSWORD 'coworld'\""
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='coworld_test'\"" | grep -q 1 ||
  su postgres -c "createdb -O coworld coworld_test"
echo "postgresql+psycopg2://coworld:coworld@127.0.0.1:5432/coworld_test"
