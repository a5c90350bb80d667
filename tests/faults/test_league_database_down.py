"""The league database goes down mid-round (a PostgreSQL server of the test's own, stopped like a
crash while an episode plays): `coworld round run` stops with one clear `database error` line (exit
1, no traceback) and leaves no game or player behind; once the server is back, the next runner
requeues the episode whose outcome could not be recorded (its lease lapsed), plays it again and
rates it once. The attempt played during the outage keeps its files."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from coworld_pipeline.league.service import LeagueService
from tests.conftest import COWORLD, REPO, leftover_runnables, our_processes, run_cli, wait_for
from tests.faults.helpers import LEAGUE, FaultLeague, fault_league
from tests.faults.private_postgres import PrivatePostgres

PG_PORT = 18250
# Connects 3 s late: the episode is surely playing (claimed, not yet recorded) when the server stops.
LATE_PLAYER = [
    "python",
    "-c",
    "import runpy, time; time.sleep(3); runpy.run_module('testkit.player', run_name='__main__')",
]


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(PG_PORT)
    try:
        server.start()
        server.create_database()
        yield server
    finally:
        server.remove()


def test_database_down_mid_round_then_back(tmp_path: Path, postgres: PrivatePostgres) -> None:
    league = fault_league(tmp_path, db_url=postgres.url, faulty_run=LATE_PLAYER, connect_timeout=30)
    league.svc.close()  # its pooled connections would die with the server; reopened below
    env = {
        **os.environ,
        "COWORLD_HOME": str(league.home),
        "COWORLD_DATABASE_URL": postgres.url,
        "COWORLD_LEASE_SECONDS": "4",
    }
    argv = [*COWORLD, "round", "run", "--league", LEAGUE, "--runtime", "process", "--json"]
    first = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: any("testkit.game" in c for c in our_processes()), 90, "the game to start", 0.02)
        postgres.stop()
        out, err = first.communicate(timeout=180)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 1, (out, err)
    assert "Traceback" not in err
    answer = json.loads(out)
    assert answer["ok"] is False and answer["error"].startswith("database error: "), answer
    assert leftover_runnables() == []  # the runner ended its game and players before exiting

    postgres.start()
    svc = LeagueService(postgres.url, league.home)
    try:
        back = FaultLeague(svc, league.home)
        stuck = back.only_episode()
        # Its outcome could not be recorded: still claimed by the dead runner, counted nowhere.
        assert stuck.status == "running" and stuck.attempts == 1
        assert back.rated_games() == {"steady:v1": 0, "faulty:v1": 0}
        played = Path(stuck.workspace)
        assert (played / "results.json").exists() and (played / "logs" / "game.stdout.log").exists()

        second = run_cli(*argv[len(COWORLD) :], env=env, timeout=300)
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["status"] == "completed"
        episode = back.only_episode()
        assert episode.status == "succeeded" and episode.attempts == 2, episode.attempt_errors
        # The unrecorded attempt is typed: interrupted (its lease lapsed), never a failure of anyone.
        (lost,) = episode.attempt_errors
        assert lost["error_type"] == "interrupted" and "lease" in lost["message"], lost
        assert back.rated_games() == {"steady:v1": 1, "faulty:v1": 1}  # rated once
        assert len(back.events("episode_rated")) == 1
        assert back.failures_charged() == {"steady:v1": 0, "faulty:v1": 0}
        # Nothing lost: the attempt played during the outage is kept beside the one that counted.
        kept = Path(episode.workspace) / "previous_attempts" / "attempt-1"
        assert (kept / "results.json").exists() and (kept / "logs" / "policy_agent_1.log").exists()
    finally:
        svc.close()
