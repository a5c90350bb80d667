"""End to end on the docker runtime: `dagster dev` plays a league's episodes as containers.

A round of Orchard duels (game and players in their own containers) runs under the commissioner;
a run worker is killed with SIGKILL while its game container plays. Nothing is lost: the round
completes with every episode counted once, standings materialize, and no container or network of
the killed worker (or of any other run worker of this instance) is left on the engine.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from coworld_pipeline.runtime.janitor import LABEL_MANAGED, LABEL_OWNER, LABEL_ROLE
from tests.defs.dagster_dev import DagsterDev, RoundUnderFire, wait_for_demo_standings
from tests.defs.helpers import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DAGSTER_PORT = 18710
EPISODES_PER_PAIR = 3  # 9 duels: enough for two runs at once and a requeue, quick on a shared host
DOCKER_ENV = {
    "COWORLD_DEMO": "0",
    "COWORLD_RUNTIME": "docker",
    "COWORLD_EPISODES_PER_RUN": "2",  # several runs per round: one can die while the others play
    "COWORLD_EPISODE_PARALLELISM": "2",
    "COWORLD_GAME_MEMORY": "256m",
    "COWORLD_PLAYER_MEMORY": "256m",
}


def docker_objects_owned_by(owners: set[str]) -> list[str]:
    """Names of the labelled containers and networks whose owner is one of `owners` (`<host>:<pid>`).

    Other tests share the engine, so only the objects of our own run workers are ours to judge.
    """
    import docker

    client = docker.from_env(timeout=10)
    # Sparse listing: other tests remove their containers while we look (a full listing would fail).
    found = [
        f"container {c.attrs['Names'][0].lstrip('/')}"
        for c in client.containers.list(all=True, filters={"label": LABEL_MANAGED}, sparse=True)
        if (c.attrs.get("Labels") or {}).get(LABEL_OWNER) in owners
    ]
    found += [
        f"network {n.name}"
        for n in client.networks.list(filters={"label": LABEL_MANAGED})
        if (n.attrs.get("Labels") or {}).get(LABEL_OWNER) in owners
    ]
    return found


def running_game_of(workers: dict[str, dict[str, Any]]) -> tuple[str, str] | None:
    """(worker, game container name) of an episode a run worker of `workers` is playing right now."""
    import docker

    client = docker.from_env(timeout=10)
    games = client.containers.list(filters={"label": [LABEL_MANAGED, f"{LABEL_ROLE}=game"]}, sparse=True)
    for container in games:
        owner = (container.attrs.get("Labels") or {}).get(LABEL_OWNER, "")
        if owner in workers:
            return owner, container.attrs["Names"][0].lstrip("/")
    return None


@pytest.fixture
def docker_dev(tmp_path: Path, docker_images: None):
    dev = DagsterDev(tmp_path / "dev", DOCKER_ENV, port=DAGSTER_PORT)
    yield dev
    dev.stop()


def test_sigkilled_docker_run_worker_loses_nothing_and_leaves_no_container(docker_dev: DagsterDev):
    dev = docker_dev
    started = time.monotonic()
    league_round = RoundUnderFire.open(dev, "sigkill-docker", EPISODES_PER_PAIR)

    def worker_to_kill():
        """(run, worker, game container) once an episode has succeeded and another one is playing."""
        if league_round.succeeded() < 1:
            return None
        workers = league_round.started_runs_by_worker()
        found = running_game_of(workers)
        return (workers[found[0]], *found) if found else None

    victim, worker, game = wait_for(worker_to_kill, 240, "a run worker playing a docker episode", 0.5)
    print(f"killing {worker} (run {victim['runId'][:8]}, game {game}) {time.monotonic() - started:.1f}s in")
    os.kill(int(worker.rpartition(":")[2]), signal.SIGKILL)
    killed_at = time.monotonic()

    # The killed worker cannot remove its containers; the commissioner's janitor does.
    wait_for(
        lambda: not docker_objects_owned_by({worker}),
        30,  # the periodic sweep alone (every 60 s) would be too late: the requeue triggers it
        f"the containers and networks of the killed worker {worker} to be removed",
        1,
    )
    print(f"killed worker's containers removed {time.monotonic() - killed_at:.1f}s after the SIGKILL")

    league_round.assert_nothing_lost(victim["runId"], killed_at)

    wait_for_demo_standings(dev)
    # The runs that finished normally removed their own containers.
    wait_for(
        lambda: not docker_objects_owned_by(league_round.workers()),
        60,
        "no container or network of this instance's run workers",
        1,
    )
    print(f"whole test {time.monotonic() - started:.1f}s (dagster dev ready in {dev.ready_seconds:.1f}s)")
