#!/usr/bin/env bash
# Builds the reference packages' example game (paintarena) of each generation as a local image,
# registry-free like examples/orchard/build_image.sh: FROM our Debian-built python base, wheels
# downloaded on the host and installed offline, `docker build --network none`.
#   coworld-ref/paintarena:<version>   e.g. coworld-ref/paintarena:0.1.64
# The sources come from the reference venvs (scripts/reference-venvs.sh). The reference Dockerfiles
# start FROM python:3.12-slim (no registry here), so the build context is assembled with our own
# Dockerfile that lays the example out the way each generation's `run` paths expect.
# An image is rebuilt only when its sources change (their hash is an image label).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${COWORLD_SHARED_TOOLS:-$REPO/../shared/tools}"
ROOT="${COWORLD_REFVENVS:-$REPO/.refvenvs}"
BASE="${BASE_IMAGE:-coworld/python-base:bookworm}"
REF_BASE="coworld-ref/python-web:bookworm"
if [[ -z "${DOCKER:-}" ]]; then
  if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
export DOCKER
log() { printf '[reference-images %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

bash "$REPO/scripts/reference-venvs.sh"
"$DOCKER" image inspect "$BASE" >/dev/null 2>&1 || bash "$REPO/examples/orchard/build_image.sh" >&2

# The web stack every paintarena generation pins (fastapi + uvicorn + websockets 15).
REQ_HASH="ref-web-1"
if [[ "$("$DOCKER" image inspect -f '{{index .Config.Labels "io.coworld.ref-hash"}}' "$REF_BASE" 2>/dev/null)" != "$REQ_HASH" ]]; then
  log "building $REF_BASE"
  ctx="$(mktemp -d)"
  printf 'fastapi==0.115.5\nuvicorn==0.34.2\nwebsockets==15.0.1\n' >"$ctx/req.txt"
  "$TOOLS/docker/download-wheels.sh" "$BASE" "$ctx/wheels" "$ctx/req.txt" 2>&1 | grep -v '^WARNING: Location' >&2
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE
COPY wheels /tmp/wheels
RUN pip install --no-index --find-links /tmp/wheels -r /tmp/wheels/requirements.txt && rm -rf /tmp/wheels
LABEL io.coworld.ref-hash=$REQ_HASH
DOCKERFILE
  "$DOCKER" build -q --network none -t "$REF_BASE" "$ctx" >/dev/null
  rm -rf "$ctx"
fi

for version in ${REFERENCE_VERSIONS:-0.1.0 0.1.11 0.1.64}; do
  src="$(echo "$ROOT/$version"/lib/python3*/site-packages/coworld/examples/paintarena)"
  [[ -d "$src" ]] || { echo "no paintarena example in $ROOT/$version" >&2; exit 2; }
  tag="coworld-ref/paintarena:$version"
  hash="$( (cd "$src" && find . -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum; echo "$REQ_HASH") | sha256sum | cut -c1-16)"
  if [[ "$("$DOCKER" image inspect -f '{{index .Config.Labels "io.coworld.ref-hash"}}' "$tag" 2>/dev/null)" == "$hash" ]]; then
    continue
  fi
  log "building $tag from $src"
  ctx="$(mktemp -d)"
  if [[ -f "$src/game/server.py" && ! -f "$src/__init__.py" ]]; then
    # 0.1.0: the manifest runs /app/game/server.py and /app/player/player.py
    mkdir -p "$ctx/app"
    cp -r "$src/game" "$src/player" "$ctx/app/"
  else
    # 0.1.11+: the manifest runs `python -m coworld.examples.paintarena.<module>`
    mkdir -p "$ctx/app/coworld/examples"
    touch "$ctx/app/coworld/__init__.py" "$ctx/app/coworld/examples/__init__.py"
    cp -r "$src" "$ctx/app/coworld/examples/paintarena"
  fi
  find "$ctx/app" -name '__pycache__' -prune -exec rm -rf {} +
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $REF_BASE
COPY app /app
RUN python -m compileall -q /app
ENV PYTHONPATH=/app PYTHONUNBUFFERED=1
WORKDIR /app
LABEL io.coworld.ref-hash=$hash
CMD ["python", "-c", "raise SystemExit('set run in the manifest')"]
DOCKERFILE
  "$DOCKER" build -q --network none -t "$tag" "$ctx" >/dev/null
  rm -rf "$ctx"
done
log "reference images ready"
