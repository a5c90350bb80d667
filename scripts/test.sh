#!/usr/bin/env bash
# The project's test command: set up (idempotent), lint, then every test, Docker and browser ones included.
# Extra arguments go to pytest (e.g. scripts/test.sh -k orchard).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
bash scripts/setup.sh
if [[ -z "${COWORLD_TEST_POSTGRES_URL:-}" && "$(id -u)" == 0 ]]; then
  COWORLD_TEST_POSTGRES_URL="$(bash scripts/postgres-up.sh)"
  export COWORLD_TEST_POSTGRES_URL
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
export COWORLD_TEST_ARTIFACTS="${COWORLD_TEST_ARTIFACTS:-$REPO/test-artifacts}"
# pytest exits 5 when no test ran: that is a failure here, like any other non-zero code.
# --durations: the slowest tests in every CI log, where the suite's time goes.
exec .venv/bin/pytest -p no:cacheprovider -q -ra --durations=15 "$@"
