"""End to end on the DockerRunLauncher profile (deploy/docker/): every Dagster run in its own container.

The profile as deployed on one host: the code location is a container of coworld/pipeline:dev
(`deploy/docker/code_server.sh start`), `dagster dev` (webserver + daemon) runs on the host with
deploy/docker/dagster.yaml as its instance and deploy/docker/workspace.yaml's gRPC location, and
DockerRunLauncher starts each run in a container of the same image whose episodes play as sibling
containers on the engine. A round of Orchard duels runs; one run container is killed with
`docker kill` while its game plays. The commissioner sensor is stopped for that moment, because
in this profile it could also see the dead worker pid and fail the run itself: so the run's
FAILURE can only come from run monitoring. Then, with the sensor back: the killed run's episodes
are requeued and finished by other runs, the round completes with every episode counted once,
standings materialize, and no container of the test is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coworld_pipeline.runtime import firewall
from coworld_pipeline.runtime.janitor import LABEL_MANAGED, LABEL_OWNER, LABEL_ROLE, LABEL_RUN
from tests.conftest import IN_CI, docker_ready
from tests.defs.dagster_dev import DagsterDev, RoundUnderFire, instance_yaml, wait_for_demo_standings
from tests.defs.helpers import REPO, wait_for
from tests.defs.test_dagster_docker import docker_objects_owned_by

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PROFILE = REPO / "deploy" / "docker"
IMAGE = "coworld/pipeline:dev"
DAGSTER_PORT = 18800
CODE_SERVER_PORT = 18801
# 6 duels in runs of 2 episodes, two runs at a time (the pool): one run is killed in the first
# wave, the third run and the one replaying the killed run's episodes make the second. Each run
# container costs ~10-15 s of start-up (Dagster and the definitions load) on a loaded 2-core host.
EPISODES_PER_PAIR = 2
CONTAINER_ID_TAG = "docker/container_id"  # set by DockerRunLauncher on every run it launches
SENSOR = {
    "repositoryLocationName": "coworld",
    "repositoryName": "__repository__",
    "sensorName": "commissioner",
}
SETTINGS = {
    "COWORLD_DEMO": "0",
    "COWORLD_RUNTIME": "docker",
    "COWORLD_EPISODES_PER_RUN": "2",
    "COWORLD_EPISODE_PARALLELISM": "2",
    "COWORLD_GAME_MEMORY": "256m",
    "COWORLD_PLAYER_MEMORY": "256m",
}


@pytest.fixture(scope="session")
def pipeline_image() -> str:
    """coworld/pipeline:dev, built once per session (the script skips it when its inputs match)."""
    if not docker_ready():
        if IN_CI:
            pytest.fail("CI must provide a Docker engine (run scripts/setup.sh)")
        pytest.skip("needs Docker: run scripts/setup.sh")
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(PROFILE / "build_image.sh")], capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(f"{IMAGE} ready in {time.monotonic() - started:.1f}s")
    return proc.stdout.strip().splitlines()[-1]


def containers_labelled(*labels: str) -> list[str]:
    """Every container (running or not) carrying all of `labels` (`key=value`)."""
    filters = [arg for label in labels for arg in ("--filter", f"label={label}")]
    out = subprocess.run(["docker", "ps", "-aq", *filters], capture_output=True, text=True, check=True)
    return out.stdout.split()


class Deployment:
    """The profile on this host: the code-server container, then `dagster dev` against it."""

    def __init__(self, root: Path, image: str):
        self.label = f"io.coworld.test=run-launcher-{uuid.uuid4().hex[:8]}"  # ours, on every container
        self.code_server = f"cwp-test-code-{uuid.uuid4().hex[:8]}"
        dagster_home, coworld_home = root / "dagster_home", root / "coworld_home"
        instance_yaml(dagster_home, PROFILE / "dagster.yaml")
        workspace = root / "workspace.yaml"
        text = (PROFILE / "workspace.yaml").read_text()
        assert "port: 4000" in text
        workspace.write_text(text.replace("port: 4000", f"port: {CODE_SERVER_PORT}"))
        # Only these COWORLD_* reach the containers (the session's own COWORLD_HOME must not).
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("COWORLD_")}
        self.env = {
            **base_env,
            **SETTINGS,
            "DAGSTER_HOME": str(dagster_home),
            "COWORLD_HOME": str(coworld_home),
            "PIPELINE_IMAGE": image,
            "CODE_SERVER_PORT": str(CODE_SERVER_PORT),
            "CODE_SERVER_NAME": self.code_server,
            "DEPLOY_LABELS": self.label,
        }
        self.dev: DagsterDev | None = None
        try:
            self.code_server_script("start")
            self.dev = DagsterDev(
                root,
                SETTINGS,
                port=DAGSTER_PORT,
                instance_template=PROFILE / "dagster.yaml",
                workspace=workspace,
            )
        except BaseException:
            self.stop()
            raise

    def code_server_script(self, action: str) -> None:
        proc = subprocess.run(
            ["bash", str(PROFILE / "code_server.sh"), action],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, f"code_server.sh {action}: {proc.stderr[-4000:]}"

    def stop(self) -> None:
        """Stop dagster dev, then the code server, then anything of ours still on the engine."""
        try:
            if self.dev is not None:
                self.dev.stop()
                self.dev = None
        finally:
            self.code_server_script("stop")
            leftovers = containers_labelled(self.label)
            if leftovers:
                subprocess.run(["docker", "rm", "-f", *leftovers], capture_output=True, check=False)


@pytest.fixture
def deployment(tmp_path: Path, docker_images: None, pipeline_image: str) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path / "dev", pipeline_image)
    yield deployment
    deployment.stop()


# ---- Dagster's side, over GraphQL --------------------------------------------------------------


def sensor_state(dev: DagsterDev) -> dict[str, Any]:
    data = dev.gql(
        """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
             ... on Sensor { sensorState { id status ticks(limit: 1) { id status } } } } }""",
        {"s": SENSOR},
    )
    return data["sensorOrError"]["sensorState"]


def stop_sensor(dev: DagsterDev) -> None:
    """Stop the commissioner and wait until no tick of it is in progress.

    The stop is repeated while the sensor reads as running: Dagster's sensor daemon ends each tick
    by reading the sensor's state and writing it back with the tick's data (SensorLaunchContext._write),
    so a stop that lands between that read and that write is lost and the sensor runs on. Whether
    that or a tick of over a minute kept the sensor busy in one CI run is not known: a timeout now
    prints the sensor's last state and dagster dev's log.
    """
    seen: list[dict[str, Any]] = []

    def quiet() -> bool:
        state = sensor_state(dev)
        seen[:] = [state]
        if state["status"] != "STOPPED":
            dev.gql("mutation($id: String) { stopSensor(id: $id) { __typename } }", {"id": state["id"]})
            return False
        return all(t["status"] != "STARTED" for t in state["ticks"])

    try:
        wait_for(quiet, 90, "the commissioner sensor to stop with no tick in progress", 0.5)
    except AssertionError as exc:
        said = dev.log_tail(3000)
        raise AssertionError(f"{exc}; its last state: {seen}; dagster dev said: {said}") from None


def start_sensor(dev: DagsterDev) -> None:
    dev.gql("mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename } }", {"s": SENSOR})


def failure_message(dev: DagsterDev, run_id: str) -> str:
    data = dev.gql(
        """query($id: ID!) { runOrError(runId: $id) { ... on Run { eventConnection { events {
             __typename ... on MessageEvent { message } } } } } }""",
        {"id": run_id},
    )
    events = data["runOrError"]["eventConnection"]["events"]
    return next((e["message"] for e in events if e["__typename"] == "RunFailureEvent"), "")


def guarded_game_of(workers: dict[str, dict[str, Any]]) -> tuple[str, str] | None:
    """(worker, game container) of an episode a run worker of `workers` plays right now, once the
    host firewall rule of that episode's network is in the host's INPUT chain: the run container
    installed it (network and PID namespaces of the host, NET_ADMIN)."""
    import docker

    client = docker.from_env(timeout=10)
    games = client.containers.list(filters={"label": [LABEL_MANAGED, f"{LABEL_ROLE}=game"]}, sparse=True)
    guarded = {comment for _, _, comment in firewall.episode_rules()}
    for container in games:
        labels = container.attrs.get("Labels") or {}
        if labels.get(LABEL_OWNER) in workers and firewall.rule_comment(labels.get(LABEL_RUN, "")) in guarded:
            return labels[LABEL_OWNER], container.attrs["Names"][0].lstrip("/")
    return None


def worker_in_container(worker: str, container_id: str) -> bool:
    """Whether the run worker `<host>:<pid>` runs inside `container_id` (its cgroup names it)."""
    try:
        return container_id in Path(f"/proc/{worker.rpartition(':')[2]}/cgroup").read_text()
    except OSError:
        return False


def test_every_run_in_its_own_container_and_a_killed_one_is_caught_by_run_monitoring(
    deployment: Deployment,
):
    dev = deployment.dev
    assert dev is not None
    started = time.monotonic()
    print(f"code server + dagster dev ready in {dev.ready_seconds:.1f}s (dagster dev)")
    league_round = RoundUnderFire.open(dev, "docker-runs", EPISODES_PER_PAIR)

    def run_to_kill():
        """(run, worker, game) once a run container plays an episode."""
        workers = league_round.started_runs_by_worker()
        found = guarded_game_of(workers)
        return (workers[found[0]], *found) if found else None

    victim, worker, game = wait_for(run_to_kill, 240, "a run container playing a guarded docker episode", 0.5)
    container_id = victim["tags"][CONTAINER_ID_TAG]
    inspected = json.loads(
        subprocess.run(["docker", "inspect", container_id], capture_output=True, text=True, check=True).stdout
    )[0]
    labels = inspected["Config"]["Labels"]
    assert labels["dagster/run_id"] == victim["runId"]
    assert deployment.label.partition("=")[2] == labels["io.coworld.test"], "the code location's labels"
    assert inspected["Config"]["Image"] == IMAGE
    assert worker_in_container(worker, container_id), f"run worker {worker} is not in {container_id[:12]}"

    stop_sensor(dev)  # from here on only run monitoring can fail the killed run
    print(
        f"docker kill {container_id[:12]} (run {victim['runId'][:8]}, game {game}) "
        f"{time.monotonic() - started:.1f}s in"
    )
    subprocess.run(["docker", "kill", container_id], capture_output=True, check=True)
    killed_at = time.monotonic()

    def victim_failed() -> bool:
        return any(r["runId"] == victim["runId"] and r["status"] == "FAILURE" for r in dev.runs())

    wait_for(victim_failed, 60, "run monitoring to fail the killed run", 0.5)
    print(f"run monitoring failed the run {time.monotonic() - killed_at:.1f}s after docker kill")
    message = failure_message(dev, victim["runId"])
    assert message.startswith("Detected run worker status"), f"not failed by run monitoring: {message!r}"
    print(f"its failure: {message.splitlines()[0][:160]}")
    start_sensor(dev)

    # The killed run could not remove its game and players; the sensor's janitor does.
    wait_for(lambda: not docker_objects_owned_by({worker}), 60, f"the containers of {worker} removed", 1)
    league_round.assert_nothing_lost(victim["runId"], killed_at)

    wait_for_demo_standings(dev)

    # Every Dagster run of the instance (the round's episode runs and whatever collates the round)
    # ran in a container of its own, launched by DockerRunLauncher from the code location's image.
    def finished_runs() -> list[dict[str, Any]] | None:
        runs = dev.runs()
        return runs if all(r["status"] in ("SUCCESS", "FAILURE") for r in runs) else None

    runs = wait_for(finished_runs, 120, "every run of the round to finish", 1)
    kinds = sorted({r["tags"].get("coworld/kind", "?") for r in runs})
    containers = [r["tags"].get(CONTAINER_ID_TAG) for r in runs]
    assert all(containers) and len(set(containers)) == len(runs), "one container per run"
    assert all(r["tags"].get("dagster/image") == IMAGE for r in runs)
    assert [r["runId"] for r in runs if r["status"] == "FAILURE"] == [victim["runId"]]
    # The killed run's episodes were finished (materialized) by other runs.
    by_partition = {m["partition"]: m["runId"] for m in dev.materializations("episodes", limit=1000)}
    interrupted = [
        e.key
        for e in league_round.service.episodes(round_ref=league_round.round_pub, limit=1000)
        if any(a["error_type"] == "interrupted" for a in e.attempt_errors)
    ]
    assert interrupted and all(by_partition[k] != victim["runId"] for k in interrupted), by_partition

    # Nothing left: run containers remove themselves, their episodes' containers are gone.
    wait_for(
        lambda: not containers_labelled(deployment.label, "io.coworld.deploy=run"),
        60,
        "every run container removed (auto_remove)",
        1,
    )
    assert not docker_objects_owned_by(league_round.workers())
    deployment.stop()
    assert containers_labelled(deployment.label) == []
    print(
        f"{len(runs)} runs ({', '.join(kinds)}) in {len(set(containers))} containers; "
        f"whole test {time.monotonic() - started:.1f}s"
    )
