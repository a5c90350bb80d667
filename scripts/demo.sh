#!/usr/bin/env bash
# The main job: set up (no Docker needed), then run the Orchard demo league in `dagster dev`, with
# `coworld serve` beside it (replays and live games, linked from the episode pages).
# Embedded defaults: league database and episode artifacts in .coworld/, Dagster instance in
# .dagster_home/ (both git-ignored), the `process` runtime. Open http://127.0.0.1:3000.
#   DEMO_PORT=3000  DEMO_HOST=127.0.0.1  DEMO_SERVE_PORT=3001  COWORLD_RUNTIME=docker (after setup)
#   COWORLD_HOME=...  DEMO_DAGSTER_HOME=... (a directory with its own dagster.yaml)
# Ctrl-C or SIGTERM stops everything it started within ~10 s; the round being played is resumed by
# the next start.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
SETUP_SKIP_DOCKER="${SETUP_SKIP_DOCKER:-1}" bash scripts/setup.sh
export COWORLD_HOME="${COWORLD_HOME:-$REPO/.coworld}"
export COWORLD_RUNTIME="${COWORLD_RUNTIME:-process}"
export COWORLD_DEMO=1
HOST="${DEMO_HOST:-127.0.0.1}"
PORT="${DEMO_PORT:-3000}"
SERVE_PORT="${DEMO_SERVE_PORT:-3001}"
STOP_SECONDS="${DEMO_STOP_SECONDS:-8}"  # then whatever is left is killed
export COWORLD_SERVE_URL="${COWORLD_SERVE_URL:-http://$HOST:$SERVE_PORT}"
# The instance lives in DAGSTER_HOME, and `dagster dev` runs from there: with DAGSTER_HOME unset it
# would announce (and make) a temporary instance directory it does not use, and with it set but run
# from the repo it warns that ./dagster.yaml is ignored. The default home gets the repo's dagster.yaml
# with its directories made absolute, written afresh on every start.
if [[ -n "${DEMO_DAGSTER_HOME:-}" ]]; then
  export DAGSTER_HOME="$DEMO_DAGSTER_HOME"
else
  export DAGSTER_HOME="$REPO/.dagster_home"
  mkdir -p "$DAGSTER_HOME"
  sed "s#base_dir: \.dagster_home#base_dir: $DAGSTER_HOME#" dagster.yaml > "$DAGSTER_HOME/dagster.yaml"
fi

# Each service runs in a process group of its own (job control), so stopping the group reaches all
# it started: the Dagster webserver, daemon, code servers and run workers. Signal dispositions are
# reset for them: a shell started in the background ignores SIGINT, and `dagster dev` gives SIGTERM
# whatever SIGINT has -- ignored, it could then only be SIGKILLed.
set -m
(cd "$DAGSTER_HOME" && exec env --default-signal=INT,TERM,HUP "$REPO/.venv/bin/dagster" dev \
  -w "$REPO/workspace.yaml" -h "$HOST" -p "$PORT") &
DAGSTER_GROUP=$!
env --default-signal=INT,TERM,HUP .venv/bin/coworld serve --host "$HOST" --port "$SERVE_PORT" &
SERVE_GROUP=$!
set +m
echo "demo league (Dagster UI): http://$HOST:$PORT  (assets: episodes, round_results, standings)"
echo "replays and live games:   http://$HOST:$SERVE_PORT"

alive() {  # process $1 exists and is not a zombie
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" && [[ $state != Z* ]]
}
group_alive() {  # any live (non-zombie) process left in process group $1
  ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

stopping=0
stop() {
  [[ $stopping == 1 ]] && return
  stopping=1
  trap '' INT TERM HUP
  echo "demo: stopping" >&2
  local group deadline=$((SECONDS + STOP_SECONDS))
  for group in "$DAGSTER_GROUP" "$SERVE_GROUP"; do kill -TERM -- "-$group" 2>/dev/null || true; done
  # `dagster dev` shuts its webserver and daemon down (a run worker stops its step; episodes it
  # leaves running are requeued by the next start). What outlives it, such as code servers still
  # draining, is killed once it has exited.
  while (( SECONDS < deadline )) && { alive "$DAGSTER_GROUP" || alive "$SERVE_GROUP"; }; do
    sleep 0.2
  done
  for group in "$DAGSTER_GROUP" "$SERVE_GROUP"; do
    if alive "$group"; then
      echo "demo: $( ps -o args= -p "$group" | cut -c1-60) did not stop in ${STOP_SECONDS}s: killed" >&2
    fi
    group_alive "$group" && kill -KILL -- "-$group" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM HUP
status=0
wait -n "$DAGSTER_GROUP" "$SERVE_GROUP" || status=$?  # one service ending ends the demo
stop
exit "$status"
