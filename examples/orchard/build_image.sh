#!/usr/bin/env bash
# Build the Orchard image coworld/orchard:0.1.0 without contacting any container registry.
#   1. make sure a Docker engine answers (shared tools: docker-up.sh)
#   2. build the base image coworld/python-base:bookworm with requirements.txt's wheels if it is missing
#   3. docker build --network none -t coworld/orchard:0.1.0 <this directory>
# Works from any directory. Shared tools: ${COWORLD_SHARED_TOOLS:-<repo>/../shared/tools}.
# Knobs: ORCHARD_IMAGE (default coworld/orchard:0.1.0), BASE_IMAGE (default coworld/python-base:bookworm),
#        REBUILD_BASE=1 to rebuild the base image even when it exists.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
TOOLS="${COWORLD_SHARED_TOOLS:-$REPO/../shared/tools}"
IMAGE="${ORCHARD_IMAGE:-coworld/orchard:0.1.0}"
BASE="${BASE_IMAGE:-coworld/python-base:bookworm}"
if [[ -z "${DOCKER:-}" ]]; then
  if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
export DOCKER

[[ -x "$TOOLS/docker/docker-up.sh" ]] || { echo "shared tools not found at $TOOLS (set COWORLD_SHARED_TOOLS)" >&2; exit 2; }
"$TOOLS/docker/docker-up.sh"

if [[ "${REBUILD_BASE:-0}" == 1 ]] || ! "$DOCKER" image inspect "$BASE" >/dev/null 2>&1; then
  echo "building base image $BASE with $HERE/requirements.txt" >&2
  REUSE_ROOTFS=1 "$TOOLS/docker/make-python-base-image.sh" "$BASE" "$HERE/requirements.txt"
else
  echo "reusing base image $BASE" >&2
fi

"$DOCKER" build --network none --build-arg BASE_IMAGE="$BASE" -t "$IMAGE" "$HERE"
"$DOCKER" run --rm --network none "$IMAGE" python -c 'import orchard.game, websockets, pyarrow; print("orchard image ok")'
echo "built $IMAGE" >&2
