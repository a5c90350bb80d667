#!/usr/bin/env bash
# The main job: set up (no Docker needed), then run the Orchard demo league in `dagster dev`.
# Embedded defaults: league database and episode artifacts in .coworld/, Dagster instance in
# .dagster_home/ (both git-ignored), the `process` runtime. Open http://127.0.0.1:3000.
#   DEMO_PORT=3000  DEMO_HOST=127.0.0.1   COWORLD_RUNTIME=docker (after scripts/setup.sh)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
SETUP_SKIP_DOCKER="${SETUP_SKIP_DOCKER:-1}" bash scripts/setup.sh
export COWORLD_HOME="${COWORLD_HOME:-$REPO/.coworld}"
export COWORLD_RUNTIME="${COWORLD_RUNTIME:-process}"
export COWORLD_DEMO=1
unset DAGSTER_HOME  # dagster dev then reads ./dagster.yaml with its explicit .dagster_home/ directories
mkdir -p .dagster_home
echo "demo league: http://${DEMO_HOST:-127.0.0.1}:${DEMO_PORT:-3000} (assets: episodes, round_results, standings)" >&2
exec .venv/bin/dagster dev -w workspace.yaml -h "${DEMO_HOST:-127.0.0.1}" -p "${DEMO_PORT:-3000}"
