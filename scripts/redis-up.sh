#!/usr/bin/env bash
# redis-up.sh - a Redis server for the Celery executor (broker and result backend), from Debian.
#
#   scripts/redis-up.sh [up]   install redis-server when missing, start one on COWORLD_REDIS_PORT
#                              unless one answers there already, wait for it, print its URL on stdout
#   scripts/redis-up.sh down   stop the server this script started on that port (nothing else)
#
# Settings: COWORLD_REDIS_PORT (18821), COWORLD_REDIS_DIR (/tmp/coworld-redis-<port>: pidfile, log).
# The server binds 127.0.0.1 only and keeps nothing on disk (a broker restart loses queued tasks;
# the league loses nothing: its claims are leases in the league database).
set -euo pipefail
PORT="${COWORLD_REDIS_PORT:-18821}"
DIR="${COWORLD_REDIS_DIR:-/tmp/coworld-redis-$PORT}"
ACTION="${1:-up}"
log() { printf '[redis-up %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
[[ "$PORT" =~ ^[0-9]+$ ]] || { echo "COWORLD_REDIS_PORT must be a port number, got '$PORT'" >&2; exit 2; }

ping() { redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; }

case "$ACTION" in
  up)
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
      log "apt-get install redis-server"
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }
    fi
    if ! ping; then
      mkdir -p "$DIR"
      log "starting redis-server on 127.0.0.1:$PORT ($DIR)"
      redis-server --port "$PORT" --bind 127.0.0.1 --daemonize yes --pidfile "$DIR/redis.pid" \
        --logfile "$DIR/redis.log" --dir "$DIR" --save '' --appendonly no >&2
      for _ in $(seq 1 100); do ping && break; sleep 0.1; done
      ping || { echo "redis-server did not answer on port $PORT; see $DIR/redis.log" >&2; exit 1; }
    fi
    echo "redis://127.0.0.1:$PORT/0"
    ;;
  down)
    # Only the server whose pidfile we wrote: never a Redis someone else runs on that port.
    if [[ -s "$DIR/redis.pid" ]] && kill -0 "$(cat "$DIR/redis.pid")" 2>/dev/null; then
      pid="$(cat "$DIR/redis.pid")"
      redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      log "stopped redis-server on port $PORT"
    fi
    rm -rf "$DIR"
    ;;
  *)
    echo "usage: $0 [up|down]" >&2
    exit 2
    ;;
esac
