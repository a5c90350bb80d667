"""Claims are leases: renewed while an episode plays, requeued by any runner once they lapse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from coworld_pipeline.league.claims import renew_leases
from coworld_pipeline.league.service import LeagueService
from tests.conftest import COWORLD, REPO, run_cli, wait_for
from tests.defs.helpers import orchard_processes
from tests.league.conftest import orchard_league, scores_by_slot


def test_renewed_leases_survive_and_lapsed_ones_are_requeued(svc: LeagueService):
    orchard_league(svc, "L", players=("random", "greedy"))
    rid = svc.open_round(svc.resolve_league_id("L")).round_id
    first, second = svc.pending_episodes(rid)
    held, _ = svc.claim_and_prepare(first)
    lost, _ = svc.claim_and_prepare(second)
    assert held is not None and lost is not None
    assert sorted(svc.requeue_stale(older_than_seconds=-1)) == sorted([first, second])  # both lapsed
    # Requeued: the old attempts are not held any more, and are not renewed.
    assert sorted(renew_leases(svc.store, {first: held.attempt, second: lost.attempt})) == sorted(
        [first, second]
    )
    again, _ = svc.claim_and_prepare(first)
    assert again is not None and again.attempt == 2
    assert renew_leases(svc.store, {first: again.attempt}) == []  # renewed: it holds
    assert svc.requeue_stale(older_than_seconds=30) == []  # a fresh lease is kept
    runner = scores_by_slot(1, 0)
    assert svc.execute_episode(second, episode_runner=runner) == "succeeded"
    assert svc.episode(first).status == "running"


def _cli_env(home: Path, db_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "COWORLD_HOME": str(home),
        "COWORLD_DATABASE_URL": db_url,
        "COWORLD_LEASE_SECONDS": "4",
    }


def test_a_polling_runner_finishes_the_round_of_a_sigkilled_one(svc: LeagueService, home: Path, db_url: str):
    """Runner A is SIGKILLed mid-episode; runner B, already polling the round, requeues A's episodes
    once their lease lapses and finishes the round. Nothing is counted twice."""
    orchard_league(svc, "Kill", players=("random", "greedy", "planner"))
    env = _cli_env(home, db_url)
    argv = [*COWORLD, "round", "run", "--league", "Kill", "--runtime", "process", "--json"]
    first = subprocess.Popen(
        [*argv, "--parallel", "3"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    lid = svc.resolve_league_id("Kill")
    rid = wait_for(lambda: svc.open_round_for(lid), 60, "runner A to open the round", 0.1)
    wait_for(lambda: svc.round(f"round_{rid}").episodes.get("running", 0) >= 2, 60, "A to play", 0.05)
    second = subprocess.Popen(
        [*argv, "--parallel", "1"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    wait_for(lambda: svc.events("Kill", event_type="episode_rated"), 120, "an episode to finish", 0.05)
    # Kill A while it is playing: a game of its own is running, so that episode cannot be recorded.
    wait_for(lambda: any("orchard.game" in c for _, c in orchard_processes(first.pid)), 60, "A's game", 0.02)
    os.killpg(first.pid, signal.SIGKILL)  # runner A and its games and players
    first.wait(30)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    result = json.loads(out)
    assert result["round_id"] == f"round_{rid}" and result["resumed"] and result["status"] == "completed"
    episodes = svc.episodes(round_ref=f"round_{rid}", limit=100)
    assert {e.status for e in episodes} == {"succeeded"}
    rated = [e.episode_request_id for e in svc.events("Kill", event_type="episode_rated", limit=1000)]
    assert sorted(rated) == sorted(e.id for e in episodes), "every episode counted exactly once"
    # A's in-flight episode went back as an interrupted attempt (its lease lapsed) and B played it.
    requeued = [e for e in episodes if any(a["error_type"] == "interrupted" for a in e.attempt_errors)]
    messages = [a["message"] for e in requeued for a in e.attempt_errors if a["error_type"] == "interrupted"]
    assert requeued and all("lease" in m for m in messages), messages


def test_two_runners_started_together_both_join_the_round(svc: LeagueService, home: Path, db_url: str):
    orchard_league(svc, "Twin", players=("random", "greedy"))
    env = _cli_env(home, db_url)
    argv = [*COWORLD, "round", "run", "--league", "Twin", "--runtime", "process", "--json"]
    procs = [
        subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert len({r["round_id"] for r in results}) == 1 and all(r["status"] == "completed" for r in results)
    assert sorted(r["opened"] for r in results) == [False, True]
    assert run_cli("rounds", "--league", "Twin", "--json", env=env).returncode == 0
