#!/usr/bin/env bash
# Run (or remove) the code location of the DockerRunLauncher profile: a container of
# coworld/pipeline:dev serving coworld_pipeline.definitions over gRPC on the host's network.
# The profile as a whole: deploy/docker/build_image.sh; the instance: deploy/docker/dagster.yaml.
#
# Usage: deploy/docker/code_server.sh start|stop
#   start  runs the container (detached, restarted with the engine) and waits until it serves;
#          exit 1 with its log when it does not, exit 2 on bad settings (nothing started).
#   stop   removes it (the run containers it planned are not touched).
#
# Settings (environment):
#   DAGSTER_HOME, COWORLD_HOME  absolute host directories (required), bind-mounted at the same path
#       into this container and into every run container, with COWORLD_RUN_TMPDIR (default
#       $COWORLD_HOME/tmp; the containers' TMPDIR: player artifact directories are made there and
#       bind-mounted into player containers, so they must be host paths too).
#   COWORLD_*  every other one set here (COWORLD_RUNTIME defaults to docker) is passed to this
#       container and, as the code location's container context, to every run container, so that the
#       sensor that plans runs and the runs agree. COWORLD_DATABASE_URL and COWORLD_SECRET_KEY (and
#       AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) are passed by name only: run
#       containers read them from the Dagster daemon's environment when it launches them, so they
#       are never stored in a run's origin. The daemon must then have them set too.
#   PIPELINE_IMAGE (coworld/pipeline:dev), CODE_SERVER_PORT (4000, as deploy/docker/workspace.yaml),
#   CODE_SERVER_NAME (coworld-code-server), DEPLOY_LABELS ("k=v ..." added to this container and
#   to every run container).
# The sensor's janitor runs in this container: it shares the host's PID and network namespaces and
# the Docker socket, with NET_ADMIN for the episode firewall rules (see dagster.yaml).
set -euo pipefail
ACTION="${1:-}"
IMAGE="${PIPELINE_IMAGE:-coworld/pipeline:dev}"
PORT="${CODE_SERVER_PORT:-4000}"
NAME="${CODE_SERVER_NAME:-coworld-code-server}"
if [[ -z "${DOCKER:-}" ]]; then
  if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
die() { echo "code_server.sh: $*" >&2; exit 2; }

case "$ACTION" in
  stop)
    "$DOCKER" rm -f "$NAME" >/dev/null 2>&1 || true
    exit 0 ;;
  start) ;;
  *) die "usage: $0 start|stop" ;;
esac

for var in DAGSTER_HOME COWORLD_HOME; do
  [[ "${!var:-}" == /* ]] || die "$var must be an absolute host directory (got '${!var:-}')"
done
TMP_DIR="${COWORLD_RUN_TMPDIR:-$COWORLD_HOME/tmp}"
[[ "$TMP_DIR" == /* ]] || die "COWORLD_RUN_TMPDIR must be absolute (got '$TMP_DIR')"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "CODE_SERVER_PORT must be a port number (got '$PORT')"
[[ -f "$DAGSTER_HOME/dagster.yaml" ]] || die "no $DAGSTER_HOME/dagster.yaml (copy deploy/docker/dagster.yaml there)"
"$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE is missing: run deploy/docker/build_image.sh"
if "$DOCKER" container inspect "$NAME" >/dev/null 2>&1; then
  die "a container named $NAME exists already: $0 stop first"
fi
mkdir -p "$COWORLD_HOME" "$TMP_DIR"
export COWORLD_RUNTIME="${COWORLD_RUNTIME:-docker}" COWORLD_HOME DAGSTER_HOME COWORLD_RUN_TMPDIR="$TMP_DIR"

# The container context (JSON) and the matching `docker run` arguments, from this environment.
PLAN="$(python3 - "${DEPLOY_LABELS:-}" <<'PY'
import json, os, shlex, sys

SECRET = {"COWORLD_DATABASE_URL", "COWORLD_SECRET_KEY",
          "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
env = {k: v for k, v in os.environ.items() if k.startswith("COWORLD_") and k not in SECRET}
env.update(DAGSTER_HOME=os.environ["DAGSTER_HOME"], TMPDIR=os.environ["COWORLD_RUN_TMPDIR"])
env.pop("COWORLD_RUN_TMPDIR")
by_name = sorted(k for k in SECRET if k in os.environ)
shared = []  # same path inside as outside; a directory under another one is covered by it
for path in sorted({os.path.realpath(os.environ[k]) for k in ("DAGSTER_HOME", "COWORLD_HOME", "COWORLD_RUN_TMPDIR")}):
    if not any(path.startswith(p.rstrip("/") + "/") for p in shared):
        shared.append(path)
volumes = ["/var/run/docker.sock:/var/run/docker.sock"] + [f"{p}:{p}" for p in shared]
labels = dict(item.split("=", 1) for item in shlex.split(sys.argv[1]) if "=" in item)
context = {"docker": {
    "env_vars": [f"{k}={v}" for k, v in sorted(env.items())] + by_name,
    "container_kwargs": {"volumes": volumes, "labels": {"io.coworld.deploy": "run", **labels}},
}}
args = []
for k, v in sorted(env.items()):
    args += ["-e", f"{k}={v}"]
for k in by_name:
    args += ["-e", k]  # the value comes from this environment, not the command line
for v in volumes:
    args += ["-v", v]
for k, v in {"io.coworld.deploy": "code-server", **labels}.items():
    args += ["--label", f"{k}={v}"]
if any("\n" in a for a in args):
    sys.exit("code_server.sh: settings must not contain newlines")
print(json.dumps(context))
print("\n".join(args))
PY
)" || exit 2
CONTEXT="$(head -n 1 <<<"$PLAN")"
mapfile -t RUN_ARGS < <(tail -n +2 <<<"$PLAN")

"$DOCKER" run -d --name "$NAME" --restart unless-stopped \
  --network host --pid host --cap-add NET_ADMIN "${RUN_ARGS[@]}" \
  "$IMAGE" dagster api grpc --module-name coworld_pipeline.definitions --location-name coworld \
  --host 127.0.0.1 --port "$PORT" --use-python-environment-entry-point \
  --container-image "$IMAGE" --container-context "$CONTEXT" >/dev/null

# Serving once the gRPC server says so (it loads the definitions first: a few seconds). A server
# that never gets there is removed, with its log: the restart policy would retry it forever.
give_up() {
  echo "code_server.sh: $NAME $1; removed it. Its log:" >&2
  "$DOCKER" logs --tail 40 "$NAME" >&2 || true
  "$DOCKER" rm -f "$NAME" >/dev/null 2>&1 || true
  exit 1
}
for _ in $(seq 1 240); do
  if "$DOCKER" logs "$NAME" 2>&1 | grep -q "Started Dagster code server"; then
    echo "$NAME serving coworld_pipeline.definitions on 127.0.0.1:$PORT ($IMAGE)" >&2
    exit 0
  fi
  # Exited, or exited and restarted by the restart policy: it failed to load.
  [[ "$("$DOCKER" container inspect --format '{{.State.Running}} {{.RestartCount}}' "$NAME" 2>/dev/null)" == "true 0" ]] ||
    give_up "exited before serving"
  sleep 0.5
done
give_up "did not start serving within 120 s"
