#!/usr/bin/env bash
# Installs each published reference package (PyPI `coworld`) in its own venv under .refvenvs/<version>,
# so generation tests can run the reference CLI and read its example games. Idempotent: a venv whose
# marker file exists is kept. Versions: REFERENCE_VERSIONS (default "0.1.0 0.1.11 0.1.64").
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="${COWORLD_REFVENVS:-$REPO/.refvenvs}"
PY="${REFERENCE_PYTHON:-python3}"
log() { printf '[reference-venvs %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
mkdir -p "$ROOT"
install() {
  local version="$1" venv="$ROOT/$1"
  log "installing coworld==$version into $venv"
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  # The venv's bundled pip backtracks for many minutes over botocore releases; a current one does not.
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' >&2 || true
  "$venv/bin/pip" install -q --disable-pip-version-check "coworld==$version" 2>&1 | grep -v '^WARNING: Location' >&2 || true
  "$venv/bin/python" -c 'import coworld.cli' || { echo "coworld==$version did not install" >&2; return 1; }
  touch "$venv/.installed"
}
# The installs are mostly downloads: run them side by side.
pids=()
for version in ${REFERENCE_VERSIONS:-0.1.0 0.1.11 0.1.64}; do
  [[ -e "$ROOT/$version/.installed" ]] && continue
  install "$version" & pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit "$status"
