"""The driver-level standings reader answers exactly as the service, or steps aside."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from coworld_pipeline.league.errors import NotFound
from coworld_pipeline.league.service import LeagueService
from coworld_pipeline.league.standings_reader import read_standings
from tests.conftest import REPO, run_cli
from tests.league.conftest import FakeOutcome, orchard_league


def _graduated_league(svc: LeagueService) -> None:
    """Two divisions, ratings, a member moved by graduation (its old rating row stays), an unrated member."""
    orchard_league(
        svc,
        "L",
        players=("random", "greedy", "planner"),
        divisions=2,
        commissioner_config={"graduation": "percentile"},
    )
    strength = {"random:v1": 1.0, "greedy:v1": 2.0, "planner:v1": 3.0}

    def runner(request, workspace, secrets):
        return FakeOutcome(workspace, [strength[n] + 0.25 * i for i, n in enumerate(request.policy_names)])

    run = svc.run_round("L", parallel=1, episode_runner=runner)
    assert run.progress is not None and run.progress.status == "completed"
    svc.upload_policy("img", "late", run=["x"])
    svc.submit("late", "L")


def test_reader_matches_service(svc: LeagueService, db_url: str):
    _graduated_league(svc)
    groups = svc.standings("L")
    assert len(groups) == 2
    moved = [m for m in svc.memberships("L") if m.division.id != groups[0].division.id]
    assert moved, "graduation should have moved a member to the other division"
    rows = [r for g in groups for r in g.standings]
    assert any(r.label == "late:v1" and r.episodes == 0 for r in rows)
    assert sum(r.episodes > 0 for r in rows) >= 2

    league_id = groups[0].league.id
    assert read_standings(db_url, "L") == groups
    assert read_standings(db_url, league_id) == groups
    for g in groups:
        div_id = g.division.id
        assert read_standings(db_url, div_id) == svc.standings(league_id, div_id) == [g]

    for ref, message in (("nope", "unknown league 'nope'"), ("div_nope", "unknown division 'div_nope'")):
        with pytest.raises(NotFound, match=message):
            read_standings(db_url, ref)


def test_reader_steps_aside_for_databases_it_does_not_know(tmp_path: Path, home: Path):
    missing = tmp_path / "none.db"
    assert read_standings(f"sqlite:///{missing}", "L") is None
    assert not missing.exists()  # a read never creates the database
    assert read_standings("sqlite://", "L") is None
    assert read_standings("mysql://u@localhost/x", "L") is None

    url = f"sqlite:///{tmp_path / 'old.db'}"
    LeagueService(url, home).close()
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0000'")
    assert read_standings(url, "L") is None  # not this code's schema: the service migrates and answers


# `coworld results` run in-process, reporting afterwards whether SQLAlchemy was ever imported.
_RESULTS_PROBE = """
import atexit, sys
atexit.register(lambda: print("sqlalchemy imported:", "sqlalchemy" in sys.modules, file=sys.stderr))
from coworld_cli.main import main
sys.argv = ["coworld", *sys.argv[1:]]
main()
"""


def test_cli_results_reads_without_the_service(tmp_path: Path, home: Path):
    """The CLI answers from the reader (same JSON, SQLAlchemy never imported); unknown targets exit 2."""
    url = f"sqlite:///{tmp_path / 'league.db'}"
    svc = LeagueService(url, home)
    _graduated_league(svc)
    expected = [g.to_json() for g in svc.standings("L")]
    svc.close()
    env = {"COWORLD_DATABASE_URL": url, "COWORLD_HOME": str(home)}
    env = {**os.environ, **env}
    proc = subprocess.run(
        [sys.executable, "-c", _RESULTS_PROBE, "results", "L", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == expected
    assert "sqlalchemy imported: False" in proc.stderr
    table = run_cli("results", "L", "--limit", "1", env=env)
    assert table.returncode == 0, table.stderr
    top = max((g["standings"] for g in expected), key=len)  # --limit applies per division
    assert len(top) >= 2
    assert top[0]["label"] in table.stdout and top[1]["label"] not in table.stdout
    assert f"{len(top) - 1} more (rows 2-{len(top)})" in table.stdout
    for ref in ("nope", "div_nope"):
        proc = run_cli("results", ref, env=env)
        assert proc.returncode == 2 and "unknown" in proc.stderr and "Traceback" not in proc.stderr


def test_only_rated_entrants_have_a_rank(tmp_path: Path, home: Path):
    """An entrant with no rated episode is listed below the ranked ones with no rank, in the JSON
    and the table (it used to show as rank n+1 with the prior's rating, or rank 1 in a new league)."""
    url = f"sqlite:///{tmp_path / 'league.db'}"
    svc = LeagueService(url, home)
    _graduated_league(svc)
    rows = [r for g in svc.standings("L") for r in g.standings]
    svc.close()
    late = next(r for r in rows if r.label == "late:v1")
    assert late.section == "unrated" and late.rank is None and late.to_json()["rank"] is None
    for g in read_standings(url, "L") or []:
        ranked = [r.rank for r in g.standings if r.section == "ranked"]
        assert ranked == list(range(1, len(ranked) + 1))
        assert all(r.rank is None for r in g.standings if r.section != "ranked")
    env = {**os.environ, "COWORLD_DATABASE_URL": url, "COWORLD_HOME": str(home), "COLUMNS": "200"}
    table = run_cli("results", "L", env=env)
    assert table.returncode == 0, table.stderr
    late_line = next(line for line in table.stdout.splitlines() if "late:v1" in line)
    assert late_line.split("│")[1].strip() == "-", late_line
    assert "1 not ranked yet (-): no rated episode; the rating shown is the prior" in table.stdout
