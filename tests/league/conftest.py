"""League fixtures: a fresh database per test (SQLite file, or a new Postgres database), orchard helpers."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from coworld_pipeline.league.service import LeagueService
from coworld_pipeline.league.views import LeagueView, StandingRow
from tests.conftest import IN_CI, ORCHARD_DIR

ORCHARD_MANIFEST = ORCHARD_DIR / "coworld_manifest.json"
# Fast orchard episodes: few ticks and no linger for viewers.
FAST = {"max_ticks": 30, "final_linger_seconds": 0, "player_connect_timeout_seconds": 20}
PLAYERS = ("random", "greedy", "planner")


def postgres_url() -> str | None:
    url = os.environ.get("COWORLD_TEST_POSTGRES_URL")
    if url:
        return url
    if IN_CI:
        pytest.fail(
            "CI must set COWORLD_TEST_POSTGRES_URL (scripts/test.sh starts scripts/postgres-up.sh's server)"
        )
    pytest.skip(
        "set COWORLD_TEST_POSTGRES_URL to run the Postgres variant "
        '(export COWORLD_TEST_POSTGRES_URL="$(bash scripts/postgres-up.sh)")'
    )
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'league.db'}"
        return
    base = postgres_url()
    assert base is not None
    name = f"coworld_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def svc(db_url: str, home: Path) -> Iterator[LeagueService]:
    service = LeagueService(db_url, home)
    yield service
    service.close()


def orchard_league(
    svc: LeagueService,
    name: str = "orchard-league",
    players: tuple[str, ...] = PLAYERS,
    variant: str = "duel",
    overrides: dict[str, Any] | None = None,
    **kwargs: Any,
) -> LeagueView:
    svc.upload_coworld(ORCHARD_MANIFEST)
    for p in players:
        svc.upload_policy("coworld/orchard:0.1.0", p, run=["python", "-m", f"orchard.players.{p}"])
    league = svc.create_league(
        name, "orchard", variants=[variant], config_overrides={**FAST, **(overrides or {})}, **kwargs
    )
    for p in players:
        svc.submit(p, name)
    return league


def orchard_copy(dest: Path, game_run: list[str] | None = None) -> Path:
    """Orchard's manifest in another directory (the orchard package linked next to it)."""
    dest.mkdir(parents=True, exist_ok=True)
    manifest = json.loads(ORCHARD_MANIFEST.read_text())
    if game_run is not None:
        manifest["game"]["runnable"]["run"] = game_run
    path = dest / "coworld_manifest.json"
    path.write_text(json.dumps(manifest, indent=2))
    link = dest / "orchard"
    if not link.exists():
        link.symlink_to(ORCHARD_DIR / "orchard", target_is_directory=True)
    return path


class FakeOutcome:
    """What the runtime returns, for unit tests that inject an episode runner."""

    def __init__(self, workspace: Path, scores: list[float] | None = None, error: Any = None):
        self.workspace = workspace
        self.scores = scores
        self.results = {"scores": scores} if scores is not None else None
        self.error = error
        self.wall_seconds = 0.01

    @property
    def ok(self) -> bool:
        return self.error is None


def scores_by_slot(*values: float):
    """An episode runner that gives slot i the score values[i] (and writes the usual files)."""
    calls: list[Any] = []

    def runner(request, workspace: Path, secrets):
        calls.append((request, workspace, secrets))
        workspace.mkdir(parents=True, exist_ok=True)
        n = len(request.players)
        scores = [float(values[i % len(values)]) for i in range(n)]
        (workspace / "results.json").write_text(json.dumps({"scores": scores}))
        return FakeOutcome(workspace, scores)

    runner.calls = calls  # type: ignore[attr-defined]
    return runner


def by_label(svc: LeagueService, league: str) -> dict[str, StandingRow]:
    return {r.label: r for g in svc.standings(league) for r in g.standings}
