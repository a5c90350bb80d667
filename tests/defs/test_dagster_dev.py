"""End to end: `dagster dev` on a fresh instance runs the league by itself.

* the demo league appears, plays a round, and `standings` shows orchard's strength order;
* a run worker killed with SIGKILL mid-round loses nothing and counts nothing twice;
* with the S3 artifact store (a real S3-compatible server), the CLI reads the artifacts back.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from coworld_pipeline.league import LeagueService
from tests.defs.dagster_dev import DagsterDev, RoundUnderFire, session_process
from tests.defs.helpers import MotoServer, descendants, orchard_processes, proc_cmdline, proc_ppid, wait_for

pytestmark = pytest.mark.slow

STRENGTH_ORDER = ["planner:v1", "greedy:v1", "random:v1"]


@pytest.fixture
def dev_factory(tmp_path: Path):
    started: list[DagsterDev] = []

    def start(env: dict[str, str] | None = None) -> DagsterDev:
        dev = DagsterDev(tmp_path / f"dev{len(started)}", env)
        started.append(dev)
        return dev

    yield start
    for dev in started:
        dev.stop()


def completed_round_results(dev: DagsterDev) -> list[dict]:
    return [m for m in dev.materializations("round_results") if m["metadata"].get("status") == "completed"]


def test_dagster_dev_runs_the_demo_league(dev_factory):
    dev = dev_factory({"COWORLD_DEMO": "1"})
    print(f"dagster dev ready in {dev.ready_seconds:.1f}s")

    data = dev.gql(
        """{ assetNodes { assetKey { path }
               assetChecksOrError { ... on AssetChecks { checks { name blocking } } } }
             workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {
               ... on RepositoryLocation { repositories {
                 schedules { name scheduleState { status } }
                 sensors { name sensorState { status } } } } } } } } }"""
    )
    assets = {tuple(a["assetKey"]["path"]): a for a in data["assetNodes"]}
    assert set(assets) >= {("episodes",), ("round_results",), ("standings",)}
    assert assets[("episodes",)]["assetChecksOrError"]["checks"] == [
        {"name": "results_match_manifest", "blocking": True}
    ]
    (repo,) = data["workspaceOrError"]["locationEntries"][0]["locationOrLoadError"]["repositories"]
    assert {(s["name"], s["scheduleState"]["status"]) for s in repo["schedules"]} == {
        ("open_rounds", "RUNNING")
    }
    assert {(s["name"], s["sensorState"]["status"]) for s in repo["sensors"]} == {
        ("commissioner", "RUNNING"),
        ("knowledge", "RUNNING"),  # defs/knowledge: roles of leagues that enable them
    }

    rounds = wait_for(lambda: completed_round_results(dev), 240, "a completed round (round_results)", 2)
    print(f"first round collated {time.monotonic() - dev.started:.1f}s after start")
    assert json.loads(rounds[0]["metadata"]["ranking_order"])

    def standings_in_order():
        found = [json.loads(m["metadata"]["order"]) for m in dev.materializations("standings")]
        return [order for order in found if order == STRENGTH_ORDER]

    wait_for(standings_in_order, 300, f"a standings materialization ordered {STRENGTH_ORDER}", 2)
    print(f"standings in strength order {time.monotonic() - dev.started:.1f}s after start")

    # Every episode of the collated round is a materialized partition with its metadata and a passed check.
    episodes = dev.materializations("episodes", limit=500)
    assert episodes and all(m["metadata"].get("status") for m in episodes)
    succeeded = [m for m in episodes if m["metadata"]["status"] == "succeeded"]
    assert succeeded and all("slot_1_score" in m["metadata"] for m in succeeded)
    check = dev.gql(
        """{ assetNodes(assetKeys: [{path: ["episodes"]}]) { assetChecksOrError { ... on AssetChecks {
               checks { name executionForLatestMaterialization { status } } } } } }"""
    )
    checks = check["assetNodes"][0]["assetChecksOrError"]["checks"]
    assert checks[0]["executionForLatestMaterialization"]["status"] == "SUCCEEDED"


def test_sigkilled_run_worker_loses_nothing(dev_factory):
    dev = dev_factory({"COWORLD_DEMO": "0"})
    league_round = RoundUnderFire.open(dev, "sigkill", episodes_per_pair=8)

    def worker_to_kill():
        """(run, worker pid, game pid) of a run worker playing an episode, once a few are done."""
        if league_round.succeeded() < 3:
            return None
        workers = {w.rpartition(":")[2]: r for w, r in league_round.started_runs_by_worker().items()}
        for pid, cmd in orchard_processes(dev.proc.pid):
            parent = proc_ppid(pid)
            if "orchard.game" in cmd and str(parent) in workers:
                return workers[str(parent)], parent, pid
        return None

    victim, worker, game = wait_for(worker_to_kill, 180, "a run worker playing an episode mid-round", 0.2)
    assert "multiprocessing" in proc_cmdline(worker) or "dagster" in proc_cmdline(
        worker
    )  # first runs: spawned
    os.kill(worker, signal.SIGKILL)
    killed_at = time.monotonic()

    # The game and players of the killed worker die with it.
    wait_for(
        lambda: not [p for p, _ in orchard_processes() if p == game], 30, "the killed worker's game to exit"
    )
    league_round.assert_nothing_lost(victim["runId"], killed_at)

    # No game or player process is left, including orphans of the killed worker (reparented away);
    # the last episode's processes may still be exiting when its outcome closes the round.
    def left() -> list[tuple[int, str, int | None]]:
        return [(p, cmd, proc_ppid(p)) for p, cmd in orchard_processes() if session_process(p)]

    wait_for(lambda: not left(), 30, "no game/player process left", 0.2)


def warm_up(dev: DagsterDev) -> None:
    """Play a 3-episode round: its run is spawned and starts the daemon's fork server, so the runs
    launched after it are forked (defs/prefork.py)."""
    warm = RoundUnderFire.open(dev, "warmup", episodes_per_pair=1)
    wait_for(lambda: warm.service.round(warm.round_pub).status != "running", 180, "the warm-up round", 0.5)
    wait_for(
        lambda: [p for p in descendants(dev.proc.pid) if "coworld_pipeline.defs.prefork" in proc_cmdline(p)],
        120,
        "the daemon's fork server",
        0.5,
    )


def test_terminated_run_is_canceled_and_its_episodes_finish_elsewhere(dev_factory):
    """Terminating a forked run (the UI's "Terminate") cancels it; nothing is lost or counted twice."""
    dev = dev_factory({"COWORLD_DEMO": "0", "COWORLD_EPISODES_PER_RUN": "3"})
    warm_up(dev)
    league_round = RoundUnderFire.open(dev, "terminate", episodes_per_pair=4)

    def run_to_terminate():
        if league_round.succeeded() < 1:
            return None
        return next(iter(league_round.started_runs_by_worker().values()), None)

    victim = wait_for(run_to_terminate, 180, "a run in progress after the first episode", 0.2)
    # Forked from the daemon's warm fork server (defs/prefork.py), not spawned by the code server.
    assert victim["tags"]["coworld/launched_by"] == "prefork", victim["tags"]
    worker = int(victim["tags"]["coworld/run_worker_pid"])
    assert victim["tags"]["coworld/worker"].endswith(f":{worker}")
    assert "coworld_pipeline.defs.prefork" in proc_cmdline(worker)
    result = dev.gql(
        """mutation($runId: String!) { terminateRun(runId: $runId) { __typename
             ... on TerminateRunFailure { message } } }""",
        {"runId": victim["runId"]},
    )
    assert result["terminateRun"]["__typename"] == "TerminateRunSuccess", result

    def victim_status():
        status = {r["runId"]: r["status"] for r in dev.runs()}[victim["runId"]]
        return status if status in ("CANCELED", "FAILURE", "SUCCESS") else None

    assert wait_for(victim_status, 120, "the terminated run to end", 0.5) == "CANCELED"
    info = wait_for(
        lambda: (r := league_round.service.round(league_round.round_pub)).status != "running" and r,
        300,
        "the round to complete after the termination",
        1,
    )
    assert info.status == "completed" and info.episodes == {"succeeded": league_round.total}, info
    episodes = league_round.service.episodes(round_ref=league_round.round_pub, limit=1000)
    rated = [
        e.episode_request_id
        for e in league_round.service.events(league_round.league.id, event_type="episode_rated", limit=1000)
    ]
    assert sorted(rated) == sorted(e.id for e in episodes), "every episode counted exactly once"
    wait_for(
        lambda: not [p for p, _ in orchard_processes() if session_process(p)],
        30,
        "no game/player process left",
    )


def test_league_with_s3_artifacts(dev_factory, monkeypatch):
    moto = MotoServer()
    try:
        aws = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        s3_env = {
            **aws,
            "COWORLD_ARTIFACT_STORE": "s3",
            "COWORLD_S3_BUCKET": "coworld-league",
            "COWORLD_S3_PREFIX": "e2e",
            "COWORLD_S3_ENDPOINT_URL": moto.url,
        }
        from coworld_pipeline.runtime.artifacts import S3ArtifactStore

        for key, value in aws.items():
            monkeypatch.setenv(key, value)
        store = S3ArtifactStore("coworld-league", "e2e", endpoint_url=moto.url, create_bucket=True)
        dev = dev_factory({"COWORLD_DEMO": "1", **s3_env})
        wait_for(lambda: completed_round_results(dev), 240, "a completed round with S3 artifacts", 2)

        service = LeagueService(home=dev.coworld_home)
        (league,) = service.leagues("orchard-demo")
        (rnd,) = [
            r for r in service.rounds(league_ref=league.id, limit=10).entries if r.status == "completed"
        ][:1]
        episodes = service.episodes(round_ref=rnd.id, limit=100)
        assert episodes and all(e.status == "succeeded" for e in episodes)
        for e in episodes:
            files = store.list_files(e.id)
            assert {
                "results.json",
                "replay.json",
                "replay.json.z",
                "config.json",
                "logs/game.stdout.log",
            } <= set(files)
            assert all(
                uri.startswith("s3://coworld-league/e2e/episodes/") for uri in (e.artifacts or {}).values()
            )
        meta = next(
            m for m in dev.materializations("episodes", limit=200) if m["partition"] == episodes[0].key
        )
        assert meta["metadata"]["artifact:results.json"].startswith("s3://coworld-league/")

        # Read back through the store API (what `coworld episode-logs` / `replays` use): see test_s3_cli.py.
        for e in episodes:
            assert json.loads(store.fetch(e.id, "results.json"))["scores"] == e.scores
    finally:
        moto.stop()
