"""Bad input to the league's lookups and runner ends in one clear error, in bounded time.

Readable references with numbers no row can hold (`ladder.r<30 digits>`, `greedy:v<5000 digits>`)
name nothing: they used to reach SQLite (OverflowError) or int() (ValueError beyond 4300 digits).
A secret key that cannot decrypt the policies' secrets stops a round at once: it used to requeue and
retry the same claim forever.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from coworld_pipeline.league import readable
from coworld_pipeline.league.errors import NotFound
from coworld_pipeline.league.play import Played
from coworld_pipeline.league.secrets import SecretKeyError
from coworld_pipeline.league.service import LeagueService
from coworld_pipeline.league.views import RoundProgress
from tests.league.conftest import ORCHARD_MANIFEST, orchard_league, scores_by_slot

HUGE = "9" * 30  # more than a 64-bit INTEGER
GIANT = "9" * 5000  # more than int() converts


def test_numbers_beyond_a_row_are_not_readable_numbers() -> None:
    assert readable.number(str(2**63 - 1)) == 2**63 - 1
    assert readable.number("0007") == 7
    for digits in (str(2**63), HUGE, GIANT, "0", "000", "", "١", "²"):
        assert readable.number(digits) is None, digits
    assert readable.parse_round(f"ladder.r{GIANT}") is None
    assert readable.parse_episode(f"ladder.r1.e{GIANT}") is None
    assert readable.parse_episode(f"r{HUGE}-e1") is None
    assert readable.looks_like_round(f"ladder.r{GIANT}")  # a round, just not one that exists
    assert readable.parse_episode("ladder.r3.e13") == readable.ParsedRef("ladder", 3, 13)


def test_huge_round_episode_and_version_numbers_are_not_found(svc: LeagueService) -> None:
    orchard_league(svc, "ladder", players=("greedy", "planner"))
    svc.run_round("ladder", episode_runner=scores_by_slot(1, 0))
    assert svc.episode("ladder.r1.e1").key == "ladder.r1.e1"
    for ref in (f"ladder.r{HUGE}", f"ladder.r{GIANT}", f"r{HUGE}"):
        with pytest.raises(NotFound, match="unknown round"):
            svc.round(ref)
        with pytest.raises(NotFound, match="unknown round"):
            svc.episodes(round_ref=ref, league_ref="ladder")
    for ref in (f"ladder.r{HUGE}.e1", f"ladder.r1.e{GIANT}", f"r1.e{HUGE}"):
        with pytest.raises(NotFound, match="unknown episode"):
            svc.episode(ref, "ladder")
    for ref in (f"greedy:v{HUGE}", f"greedy:{GIANT}", f"greedy:v{GIANT}"):
        with pytest.raises(NotFound, match="unknown policy version"):
            svc.episodes(policy_ref=ref)
        with pytest.raises(NotFound, match="unknown policy version"):
            svc.submit(ref, "ladder")


def test_a_wrong_secret_key_stops_the_round_without_charging_anyone(
    db_url: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = LeagueService(db_url, home)  # stores the secret with the home's own key
    owner.upload_coworld(ORCHARD_MANIFEST)
    owner.upload_policy("coworld/orchard:0.1.0", "planner", run=["python"], secret_env={"A": "1"})
    owner.upload_policy("coworld/orchard:0.1.0", "greedy", run=["python"])
    owner.create_league("skl", "orchard", variants=["duel"])
    owner.submit("planner", "skl")
    owner.submit("greedy", "skl")
    owner.close()

    monkeypatch.setenv("COWORLD_SECRET_KEY", Fernet.generate_key().decode())
    errors: list[str] = []

    def on_progress(progress: RoundProgress, played: Played | None) -> None:
        if played is not None and played.platform_error:
            errors.append(played.platform_error)
            # Before the fix the same claim failed again at once, forever: stop the test instead.
            assert len(errors) < 5, errors

    runner = scores_by_slot(1, 0)
    operator = LeagueService(db_url, home)
    try:
        with pytest.raises(SecretKeyError, match="differs from the key"):
            operator.run_round("skl", episode_runner=runner, parallel=2, on_progress=on_progress)
        assert runner.calls == []  # nothing was played
        episodes = operator.episodes(league_ref="skl")
        assert episodes and {(e.status, e.attempts) for e in episodes} == {("pending", 0)}
        assert {m.consecutive_failures for m in operator.memberships(league_ref="skl")} == {0}
    finally:
        operator.close()
