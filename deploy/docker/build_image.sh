#!/usr/bin/env bash
# Build coworld/pipeline:dev, the image of the DockerRunLauncher deployment profile, without any
# container registry, and only when its inputs changed.
#
# The profile (single host, one Docker engine):
#   - `dagster-webserver` and `dagster-daemon` (or `dagster dev`) run on the host from the checkout's
#     .venv with DAGSTER_HOME holding deploy/docker/dagster.yaml and -w deploy/docker/workspace.yaml;
#   - the code location is served by a container of this image (deploy/docker/code_server.sh start);
#     the commissioner sensor and its janitor run there;
#   - DockerRunLauncher starts every Dagster run in its own container of this image; the run's
#     episodes play as sibling game/player containers on the same engine (/var/run/docker.sock).
# Shared state: DAGSTER_HOME (SQLite instance storage), COWORLD_HOME (the league database, SQLite
# unless COWORLD_DATABASE_URL, and the episode workspaces) and a scratch TMPDIR are host directories
# bind-mounted at the same path into the code server and every run container: the runtime
# bind-mounts workspace paths into game/player containers, so a path must mean the same on the
# host and in a run container. Run and code-server containers share the host's network namespace
# (the host firewall rules of runtime/firewall.py, games reached at their bridge address) and PID
# namespace (the `<host>:<pid>` owners of recovery.py and runtime/janitor.py stay host pids).
#
# What this script does:
#   1. makes a Docker engine answer (shared tools: docker-up.sh);
#   2. pins the project's runtime requirements from .venv, markers evaluated for the image's
#      python3 (lock.py: no re-resolution, no dev tools);
#   3. builds the base image once per lock, registry-free: the shared tools' Debian rootfs with
#      iptables plus /opt/venv holding those wheels (make-python-base-image.sh, tagged
#      coworld/pipeline-base:lock-<hash>);
#   4. hashes the inputs (lock, base image id, Dockerfile, pyproject.toml, every file under
#      coworld_pipeline/ and coworld_cli/): when the image's io.coworld.inputs label already says
#      so, it stops here ("up to date", ~2 s);
#   5. otherwise builds the project's wheel on the host (from a copy of the sources: no build/ in
#      the checkout) and `docker build --network none` installs it offline on the base.
#
# Usage: deploy/docker/build_image.sh     (from any directory; prints the image tag on stdout)
# Knobs: PIPELINE_IMAGE (default coworld/pipeline:dev), PIPELINE_BASE (default
#        coworld/pipeline-base:bookworm), PYTHON (default <repo>/.venv/bin/python), FORCE=1 to
#        rebuild even when the inputs did not change, COWORLD_SHARED_TOOLS (default <repo>/../shared/tools).
# Cost on the 2-core machine: base image ~2-3 min once per lock (mmdebstrap ~90 s, 95 wheels),
# project layer ~20-30 s, nothing to do ~2 s.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
TOOLS="${COWORLD_SHARED_TOOLS:-$REPO/../shared/tools}"
IMAGE="${PIPELINE_IMAGE:-coworld/pipeline:dev}"
BASE="${PIPELINE_BASE:-coworld/pipeline-base:bookworm}"
PY="${PYTHON:-$REPO/.venv/bin/python}"
if [[ -z "${DOCKER:-}" ]]; then
  if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
export DOCKER
log() { printf '[pipeline-image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
STARTED=$SECONDS

[[ -x "$PY" ]] || { echo "no Python at $PY: run bash scripts/setup.sh first (or set PYTHON)" >&2; exit 2; }
[[ -x "$TOOLS/docker/docker-up.sh" ]] || { echo "shared tools not found at $TOOLS (set COWORLD_SHARED_TOOLS)" >&2; exit 2; }
"$TOOLS/docker/docker-up.sh" >&2

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pipeline-image.XXXXXX")"
trap 'rm -rf -- "$WORK"' EXIT

# 2-3. the pinned requirements and their base image (rebuilt only when the lock changes). Markers
# are evaluated for the image's python3 (Debian's), asked inside the base's rootfs image, which
# make-python-base-image.sh bootstraps first if it is missing (with iptables: the run containers
# install the episode firewall rules of runtime/firewall.py in the host's network namespace;
# Debian's iptables is the nf_tables variant, as Docker's own on the host).
ROOTFS="$BASE-rootfs"
[[ "${BASE##*/}" == *:* ]] || ROOTFS="$BASE:latest-rootfs"
if ! "$DOCKER" image inspect "$ROOTFS" >/dev/null 2>&1; then
  log "bootstrapping $ROOTFS"
  EXTRA_DEBS=iptables "$TOOLS/docker/make-python-base-image.sh" "$BASE" >&2
fi
TARGET_ENV="$("$DOCKER" run -i --rm --network none "$ROOTFS" python3 - --print-environment <"$HERE/lock.py")"
"$PY" "$HERE/lock.py" --target-env "$TARGET_ENV" >"$WORK/requirements.txt"
LOCK_HASH="$(sha256sum <"$WORK/requirements.txt" | cut -c1-16)"
LOCK_TAG="${BASE%:*}:lock-$LOCK_HASH"
if ! "$DOCKER" image inspect "$LOCK_TAG" >/dev/null 2>&1; then
  log "building base image $LOCK_TAG ($(wc -l <"$WORK/requirements.txt") requirements)"
  EXTRA_DEBS=iptables REUSE_ROOTFS=1 "$TOOLS/docker/make-python-base-image.sh" "$BASE" "$WORK/requirements.txt" >&2
  "$DOCKER" tag "$BASE" "$LOCK_TAG"
fi

# 4. skip when nothing that goes into the image changed
INPUTS="$(
  {
    echo "lock $LOCK_HASH"
    "$DOCKER" image inspect --format '{{.Id}}' "$LOCK_TAG"
    cd "$REPO"
    sha256sum deploy/docker/Dockerfile pyproject.toml
    find coworld_pipeline coworld_cli -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 |
      LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
)"
CURRENT="$("$DOCKER" image inspect --format '{{ index .Config.Labels "io.coworld.inputs" }}' "$IMAGE" 2>/dev/null || true)"
if [[ "$CURRENT" == "$INPUTS" && "${FORCE:-0}" != 1 ]]; then
  log "$IMAGE is up to date (inputs $INPUTS, $((SECONDS - STARTED))s)"
  echo "$IMAGE"
  exit 0
fi

# 5. the project's wheel, built from a copy of its sources, installed offline on the base
SRC="$WORK/src"
mkdir -p "$SRC" "$WORK/context/wheels"
(cd "$REPO" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - pyproject.toml README.md coworld_pipeline coworld_cli) |
  tar -C "$SRC" -xf -
log "building the coworld-pipeline wheel"
"$PY" -m pip wheel --quiet --no-deps --disable-pip-version-check -w "$WORK/context/wheels" "$SRC" >&2
cp "$HERE/Dockerfile" "$WORK/context/Dockerfile"
"$PY" - "$REPO/pyproject.toml" >"$WORK/context/dg.toml" <<'PY'
import sys, tomllib  # [tool.dg] of pyproject.toml as a dg.toml (see the Dockerfile)
dg = tomllib.load(open(sys.argv[1], "rb"))["tool"]["dg"]
print(f'directory_type = "{dg["directory_type"]}"\n\n[project]')
for key, value in dg["project"].items():
    print(f'{key} = "{value}"')
PY
log "docker build --network none -t $IMAGE (inputs $INPUTS, FROM $LOCK_TAG)"
"$DOCKER" build --quiet --network none --build-arg BASE_IMAGE="$LOCK_TAG" \
  --label io.coworld.image=pipeline --label io.coworld.inputs="$INPUTS" -t "$IMAGE" "$WORK/context" >/dev/null
# The image this tag named before is now dangling: remove it (only ours, by label), then the base
# images of older locks, which nothing this script builds uses any more.
"$DOCKER" image prune -f --filter label=io.coworld.image=pipeline >/dev/null
"$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}' "${BASE%:*}" | grep ':lock-' | grep -vxF "$LOCK_TAG" |
  xargs -r "$DOCKER" image rm >/dev/null 2>&1 || true
log "built $IMAGE in $((SECONDS - STARTED))s"
echo "$IMAGE"
