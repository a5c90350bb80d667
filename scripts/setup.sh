#!/usr/bin/env bash
# Idempotent set-up of everything the platform and its tests need on a fresh Debian machine:
# system packages (Chromium for viewer tests, PostgreSQL, mmdebstrap), the Python venv, a Docker
# engine, and the images the tests and the demo use. Safe to re-run; fast when all is in place.
#   SETUP_SKIP_DOCKER=1  skip the Docker engine and images (process-runtime-only set-up)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${COWORLD_SHARED_TOOLS:-$REPO/../shared/tools}"
cd "$REPO"
log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
}

if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
  apt_install chromium postgresql mmdebstrap docker-compose redis-server  # docker-compose: `coworld build`; redis: the Celery broker
fi

if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import coworld_pipeline, dagster, pytest' >/dev/null 2>&1 ||
   [[ pyproject.toml -nt .venv/.installed ]]; then
  log "installing the project into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch .venv/.installed
fi

if [[ "${SETUP_SKIP_DOCKER:-0}" != 1 ]]; then
  [[ -x "$TOOLS/docker/docker-up.sh" ]] || { echo "shared tools not found at $TOOLS" >&2; exit 2; }
  "$TOOLS/docker/docker-up.sh" >&2
  DOCKER=/usr/bin/docker
  [[ -x $DOCKER ]] || DOCKER=docker
  # The Orchard script builds the shared base image (registry-free) and the Orchard image.
  if ! $DOCKER image inspect coworld/orchard:0.1.0 >/dev/null 2>&1 ||
     [[ -n "$(find examples/orchard/orchard examples/orchard/Dockerfile -newer .venv/.orchard-image 2>/dev/null | head -1)" ]] ||
     [[ ! -e .venv/.orchard-image ]]; then
    log "building coworld/orchard:0.1.0"
    bash examples/orchard/build_image.sh >&2
    touch .venv/.orchard-image
  fi
  # The DockerRunLauncher profile's image (tests/defs/test_docker_run_launcher.py), in the
  # background: on a fresh machine its base takes ~1.5 min, mostly Debian and PyPI downloads, which
  # overlap with the reference packages' below. Up to date, it takes ~2 s.
  pipeline_log="$(mktemp "${TMPDIR:-/tmp}/pipeline-image.XXXXXX")"
  bash deploy/docker/build_image.sh >"$pipeline_log" 2>&1 &
  pipeline_pid=$!
  log "building coworld/testkit:dev"
  $DOCKER build -q --network none -t coworld/testkit:dev tests/fixtures/testkit >/dev/null
  # The published reference packages (their own venvs) and their example games (tests/generations).
  log "reference packages and coworld-ref/paintarena images"
  bash scripts/reference-images.sh >&2
  if ! wait "$pipeline_pid"; then
    cat "$pipeline_log" >&2
    rm -f "$pipeline_log"
    echo "building coworld/pipeline:dev failed (deploy/docker/build_image.sh, output above)" >&2
    exit 1
  fi
  grep -h '^\[pipeline-image' "$pipeline_log" | tail -1 >&2 || true
  rm -f "$pipeline_log"
else
  bash scripts/reference-venvs.sh >&2
fi
# `coworld` on the PATH, as the README writes it: /usr/local/bin when writable, else ~/.local/bin
# (never over a `coworld` that is not this checkout's link).
for bin_dir in /usr/local/bin "$HOME/.local/bin"; do
  link="$bin_dir/coworld"
  { mkdir -p "$bin_dir" && [[ -w $bin_dir ]]; } 2>/dev/null || continue
  [[ -e $link && ! -L $link ]] && { log "$link exists and is not ours: not replaced"; continue; }
  [[ "$(readlink "$link" 2>/dev/null)" == "$REPO/.venv/bin/coworld" ]] ||
    { ln -sfn "$REPO/.venv/bin/coworld" "$link" && log "coworld linked at $link"; }
  [[ ":$PATH:" == *":$bin_dir:"* ]] || log "add $bin_dir to PATH to run coworld"
  break
done
log "ready"
