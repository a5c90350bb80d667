"""Scale-out on Dagster's Celery executor: two hosts, each a Celery worker with its own Docker engine.

`dagster dev` (COWORLD_EXECUTOR=celery, Redis from `scripts/redis-up.sh` as broker and result
backend) requests the round's episode runs as usual; each run's step goes to whichever Celery worker
is free. Worker `a` (host `cw-host-a`) plays on the main engine, worker `b` (host `cw-host-b`) on a
second `dockerd` that `scripts/docker-engine-up.sh` starts for this test (own socket, data root,
bridge, address pool) and removes afterwards; each host has its own hostname (tests/defs/celery_hosts.py).

Once `b` has played an episode and is playing another, it is SIGKILLed with its pool process.
The round still completes: every episode succeeded and was rated exactly once, the ones `b` held
show an `interrupted` attempt played by `b` and were finished by `a`, both workers played episodes,
each episode names its worker and engine (league, Dagster metadata, `coworld episodes`), every
run ends (the killed step is redelivered, so no coordinator waits forever), and nothing is left
on either engine once `b`'s host runs its janitor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from coworld_pipeline.league.views import EpisodeView
from tests.conftest import IN_CI
from tests.defs.celery_hosts import (
    MAIN_ENGINE,
    REPO,
    CeleryWorker,
    janitor_as,
    labelled_objects,
    redis_answers,
    script,
)
from tests.defs.dagster_dev import DagsterDev, RoundUnderFire
from tests.defs.helpers import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REDIS_PORT = 18821
REDIS_DB = 1  # the benchmark uses another one: a queue of either never reaches the other
DAGSTER_PORT = 18822
ENGINE_ENV = {"COWORLD_ENGINE_NAME": "cw-b2", "COWORLD_ENGINE_NET": "10.213"}
EPISODES_PER_PAIR = 4  # 12 duels in runs of 2: enough for both workers, a kill and a redelivery
VISIBILITY_TIMEOUT = 30  # > a step (2 episodes at once, ~5-10 s here); the killed step waits this long
IN_FLIGHT = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}


@dataclass
class Hosts:
    redis_url: str
    engine_b: str
    env: dict[str, str]  # what dagster dev and both workers share
    root: Path


@pytest.fixture
def hosts(tmp_path: Path, docker_images: None) -> Iterator[Hosts]:
    if os.geteuid() != 0:  # a second dockerd, its bridge and `unshare --uts` need root (CI is root)
        (pytest.fail if IN_CI else pytest.skip)("needs root: a second dockerd and per-host hostnames")
    started_redis = not redis_answers(REDIS_PORT)
    port_env = {"COWORLD_REDIS_PORT": str(REDIS_PORT)}
    engine_up = False
    try:
        url = script("redis-up.sh", "up", env=port_env).rsplit("/", 1)[0] + f"/{REDIS_DB}"
        flush = ["redis-cli", "-p", str(REDIS_PORT), "-n", str(REDIS_DB), "flushdb"]
        subprocess.run(flush, check=True, capture_output=True)
        engine_up = True
        engine_b = script("docker-engine-up.sh", "up", env=ENGINE_ENV)
        script("docker-engine-up.sh", "load", "coworld/orchard:0.1.0", env=ENGINE_ENV)
        env = {
            "COWORLD_DEMO": "0",
            "COWORLD_RUNTIME": "docker",
            "COWORLD_EXECUTOR": "celery",
            "COWORLD_CELERY_BROKER_URL": url,
            "COWORLD_CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "COWORLD_LEASE_SECONDS": "10",  # the killed worker's claims lapse quickly
            "COWORLD_EPISODES_PER_RUN": "2",
            "COWORLD_EPISODE_PARALLELISM": "2",
            "COWORLD_GAME_MEMORY": "256m",
            "COWORLD_PLAYER_MEMORY": "256m",
        }
        yield Hosts(url, engine_b, env, tmp_path)
    finally:
        if engine_up:
            script("docker-engine-up.sh", "down", env=ENGINE_ENV)
        if started_redis:
            script("redis-up.sh", "down", env=port_env)


def by_worker(episodes: list[EpisodeView]) -> Counter[str]:
    return Counter((e.played_by or {}).get("worker", "?") for e in episodes)


def test_two_hosts_share_a_round_and_a_killed_worker_loses_nothing(hosts: Hosts):
    started = time.monotonic()
    dev = DagsterDev(hosts.root / "dev", hosts.env, port=DAGSTER_PORT)
    env = {**hosts.env, "DAGSTER_HOME": str(dev.dagster_home), "COWORLD_HOME": str(dev.coworld_home)}
    a = CeleryWorker("a", "cw-host-a", MAIN_ENGINE, env, hosts.root / "worker-a.log")
    b = CeleryWorker("b", "cw-host-b", hosts.engine_b, env, hosts.root / "worker-b.log")
    try:
        for worker in (a.start(), b.start()):
            worker.wait_ready()
        print(f"dagster dev and two workers ready {time.monotonic() - started:.1f}s in")
        league_round = RoundUnderFire.open(dev, "scale-out", EPISODES_PER_PAIR)
        service = league_round.service

        def episodes() -> list[EpisodeView]:
            return service.episodes(round_ref=league_round.round_pub, limit=1000)

        def b_is_playing_again() -> list[EpisodeView] | None:
            mine = [e for e in episodes() if (e.played_by or {}).get("worker") == b.node]
            playing = [e for e in mine if e.status == "running"]
            return playing if playing and any(e.status == "succeeded" for e in mine) else None

        wait_for(b_is_playing_again, 300, f"{b.node} to play its second batch", 0.3)
        b.kill()
        killed_at = time.monotonic()
        # What b held at its death, read once it can claim nothing more (it may have claimed one
        # more episode since the check above) and long before its leases lapse (10 s).
        held = [e for e in episodes() if e.status == "running" and by_worker([e]).get(b.node)]
        assert held, "b held no episode when it was killed"
        print(f"killed {b.node} {killed_at - started:.1f}s in, playing {[e.key for e in held]}")

        info = wait_for(
            lambda: (lambda r: r if r.status != "running" else None)(service.round(league_round.round_pub)),
            300,
            "the round to complete after the kill",
            1,
        )
        print(f"round completed {time.monotonic() - killed_at:.1f}s after the kill")
        assert info.status == "completed" and info.episodes == {"succeeded": league_round.total}, info

        final = episodes()
        rated = [
            e.episode_request_id
            for e in service.events(league_round.league.id, event_type="episode_rated", limit=1000)
        ]
        assert sorted(rated) == sorted(e.id for e in final), "every episode rated exactly once"
        counts = by_worker(final)
        print(f"episodes per worker: {dict(counts)}")
        assert set(counts) == {a.node, b.node} and min(counts.values()) >= 1, counts
        for e in final:  # each worker played on its own engine
            assert e.played_by == {"worker": e.played_by["worker"], "engine": e.played_by["engine"]}
            engine = MAIN_ENGINE if e.played_by["worker"] == a.node else hosts.engine_b
            assert e.played_by["engine"] == engine, e.played_by
        # What b held when it died: an interrupted attempt played by b, then finished by a.
        lost = {e.id for e in held}
        for e in final:
            interrupted = [x for x in e.attempt_errors if x["error_type"] == "interrupted"]
            if e.id in lost:
                assert [x["played_by"]["worker"] for x in interrupted] == [b.node], e.attempt_errors
                assert e.played_by["worker"] == a.node and b.node in interrupted[0]["message"]
            else:
                assert interrupted == [], e.attempt_errors

        # No coordinator waits forever: the killed step is redelivered, so every run ends.
        wait_for(
            lambda: (
                not [
                    r for r in dev.runs({"coworld/round": league_round.round_pub}) if r["status"] in IN_FLIGHT
                ]
            ),
            VISIBILITY_TIMEOUT + 180,
            "every episode run of the round to finish",
            2,
        )
        print(f"every run finished {time.monotonic() - killed_at:.1f}s after the kill")

        # Shown where an operator looks: the episode's metadata in Dagster, and `coworld episodes`.
        materialized = wait_for(
            lambda: (lambda ms: ms if {m["partition"] for m in ms} >= {e.key for e in final} else None)(
                dev.materializations("episodes", limit=1000)
            ),
            120,
            "every episode partition materialized",
            2,
        )
        shown = {(m["metadata"].get("worker"), m["metadata"].get("engine")) for m in materialized}
        assert {(a.node, MAIN_ENGINE), (b.node, hosts.engine_b)} <= shown, shown
        one = next(e for e in final if e.id in lost)
        cli = subprocess.run(
            [str(Path(sys.executable).with_name("coworld")), "episodes", one.key, "--json"],
            cwd=REPO,
            env={**env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["played_by"] == {"worker": a.node, "engine": MAIN_ENGINE}
    finally:
        a.stop()
        b.stop()
        dev.stop()

    # b's host (its next platform process) removes what its dead worker left on its engine; a's
    # finished episodes removed their own containers.
    assert labelled_objects(MAIN_ENGINE, "cw-host-a") == []
    janitor_as("cw-host-b", hosts.engine_b, env)
    assert labelled_objects(hosts.engine_b) == []
    print(f"whole test {time.monotonic() - started:.1f}s (dagster dev ready in {dev.ready_seconds:.1f}s)")
