"""Bad input to the league commands: one line naming what is wrong, exit 2, never a traceback.

One SQLite league (`ladder`, Orchard, greedy against planner, one round played by a scoring stub) is
built for the module through the service, and the real `coworld` CLI is run against it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coworld_pipeline.league.service import LeagueService
from tests.conftest import run_cli
from tests.league.conftest import FAST, ORCHARD_MANIFEST, orchard_league, scores_by_slot

HUGE = "9" * 30  # more than a 64-bit INTEGER
GIANT = "9" * 5000  # more than int() converts
SERVE_PORT = 38661


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("league-bad-input")
    db = f"sqlite:///{home / 'league.db'}"
    svc = LeagueService(db, home)
    try:
        orchard_league(svc, "ladder", players=("greedy", "planner"))
        svc.run_round("ladder", episode_runner=scores_by_slot(1, 0))
        svc.create_league("other", "orchard", variants=["duel"])  # a second league, with no rounds
    finally:
        svc.close()
    return {**os.environ, "COWORLD_HOME": str(home), "COWORLD_DATABASE_URL": db}


def _usage_error(env: dict[str, str], *args: str) -> str:
    proc = run_cli(*args, env=env, timeout=120)
    assert proc.returncode == 2, (args[:3], proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return " ".join(proc.stderr.split())  # Rich wraps long lines


def _all_usage_errors(env: dict[str, str], commands: list[tuple[str, ...]]) -> list[str]:
    with ThreadPoolExecutor(max_workers=3) as pool:  # each one is mostly interpreter start-up
        return list(pool.map(lambda args: _usage_error(env, *args), commands))


@pytest.mark.parametrize("number", [HUGE, GIANT], ids=["30-digits", "5000-digits"])
def test_numbers_no_row_can_hold_are_unknown_refs(env: dict[str, str], number: str) -> None:
    version = f"greedy:v{number}"
    commands: list[tuple[str, ...]] = [
        ("submit", version, "--league", "ladder"),
        *[
            (cmd, "--policy", version)
            for cmd in ("episodes", "memberships", "submissions", "events", "replays")
        ],
        ("optimize", "--league", "ladder", "--policy", version, "--runtime", "process"),
    ]
    for out in _all_usage_errors(env, commands):
        assert "unknown policy version 'greedy:v" in out, out
    rounds: list[tuple[str, ...]] = [
        ("rounds", f"ladder.r{number}"),
        ("results", f"ladder.r{number}"),
        ("rounds", f"r{number}", "--league", "ladder"),
        *[(cmd, "--round", f"ladder.r{number}") for cmd in ("episodes", "events", "replays")],
    ]
    for out in _all_usage_errors(env, rounds):
        assert "unknown round 'ladder.r" in out or "unknown round 'r" in out, out
    for out in _all_usage_errors(
        env, [("episodes", f"ladder.r{number}.e1"), ("episodes", f"ladder.r1.e{number}")]
    ):
        assert "unknown episode request 'ladder.r" in out, out


def test_config_values_beyond_the_bounds_name_their_key(env: dict[str, str]) -> None:
    deep = "[" * 30000 + "]" * 30000
    create = ("league", "create", "c", "--coworld", "orchard")
    seed, trees, nan, no_key = _all_usage_errors(
        env,
        [
            (*create, "--config", f"seed={GIANT}"),
            (*create, "--config", f"trees={deep}"),
            (*create, "--config", "trees=[NaN]"),
            (*create, "--config", "[/]"),
        ],
    )
    assert "--config expects KEY=VALUE: an argument has no '='" in no_key, no_key
    assert "--config seed: an integer of 5000 digits; at most 32 digits" in seed, seed
    assert "--config trees: nesting is 30000 levels deep" in trees, trees
    assert "--config trees: NaN is not a JSON number" in nan, nan


def test_unknown_status_filters_are_refused_with_the_choices(env: dict[str, str]) -> None:
    episodes, memberships, rounds = _all_usage_errors(
        env,
        [
            ("episodes", "--status", "nope"),
            ("memberships", "--status", "nope"),
            ("rounds", "--status", "nope"),
        ],
    )
    assert (
        "--status: unknown status 'nope' (choose: pending | running | succeeded | failed | cancelled)"
        in episodes
    )
    assert "(choose: qualifying | active | quarantined | retired)" in memberships, memberships
    assert "(choose: running | completed | failed | cancelled)" in rounds, rounds
    proc = run_cli("episodes", "--status", "succeeded", "--json", env=env)
    assert proc.returncode == 0 and '"status": "succeeded"' in proc.stdout, proc.stderr


def test_serve_refuses_an_empty_host(env: dict[str, str]) -> None:
    out = _usage_error(env, "serve", "--host", "", "--port", str(SERVE_PORT))
    assert "--host must not be empty" in out, out


def test_round_run_exit_code_says_whether_anything_ran(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = f"sqlite:///{tmp_path / 'league.db'}"
    svc = LeagueService(db, home)
    try:
        svc.upload_coworld(ORCHARD_MANIFEST)
        # 7 entrants, 1000 episodes a pair: 21,000 episodes, more than a round may schedule.
        svc.create_league(
            "big", "orchard", variants=["duel"], commissioner_config={"episodes_per_pair": 1000}
        )
        for n in range(7):
            svc.upload_policy(
                "coworld/orchard:0.1.0", f"p{n}", run=["python", "-m", "orchard.players.greedy"]
            )
            svc.submit(f"p{n}", "big")
        svc.upload_policy("coworld/orchard:0.1.0", "crasher", run=["python", "-c", "import sys; sys.exit(3)"])
        svc.create_league(
            "fragile",
            "orchard",
            variants=["duel"],
            config_overrides=FAST,
            failure_policy={"failed_slot_budget": 0},
        )
        svc.submit("crasher", "fragile")
        svc.submit("p0", "fragile")
    finally:
        svc.close()
    env = {**os.environ, "COWORLD_HOME": str(home), "COWORLD_DATABASE_URL": db}
    # Refused before any episode existed (more than a round may schedule): bad settings, exit 2.
    refused = run_cli("round", "run", "--league", "big", env=env)
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert "failed" in refused.stdout and "at most 20,000" in " ".join(refused.stdout.split())
    # Played, then failed (its failed-seat budget was spent): exit 1.
    failed = run_cli("round", "run", "--league", "fragile", "--runtime", "process", "--json", env=env)
    assert failed.returncode == 1, (failed.stdout, failed.stderr)
    assert '"status": "failed"' in failed.stdout and "failed-slot budget exceeded" in failed.stdout
    assert "Traceback" not in refused.stderr + failed.stderr


def test_a_corrupt_results_json_is_a_usage_error_naming_the_file(env: dict[str, str]) -> None:
    svc = LeagueService(env["COWORLD_DATABASE_URL"], Path(env["COWORLD_HOME"]))
    try:
        workspace = Path(svc.episode("ladder.r1.e2").workspace)
    finally:
        svc.close()
    results = workspace / "results.json"
    kept = results.read_bytes()
    try:
        results.write_text('{"scores": [1, ')  # truncated mid-write
        out = _usage_error(env, "episode-results", "ladder.r1.e2")
        assert "results.json is not valid JSON" in out, out
    finally:
        results.write_bytes(kept)
    proc = run_cli("episode-results", "ladder.r1.e2", "--json", env=env)
    assert proc.returncode == 0 and '"scores"' in proc.stdout, proc.stderr


def test_a_huge_reference_is_named_by_its_head_and_length(env: dict[str, str]) -> None:
    ref = "x" * 10_000
    for out in _all_usage_errors(
        env, [("results", ref), ("league", "pause", ref), ("submit", ref, "-l", "ladder")]
    ):
        assert "(10000 characters)" in out and len(out) < 400, out[:500]


def test_filters_beside_an_id_and_other_leagues_refs_are_refused(env: dict[str, str]) -> None:
    with_id, round_with_id, episode_elsewhere, round_elsewhere, events_elsewhere = _all_usage_errors(
        env,
        [
            ("episodes", "ladder.r1.e1", "--status", "failed"),
            ("rounds", "ladder.r1", "--status", "failed"),
            ("episodes", "ladder.r1.e1", "--league", "other"),
            ("episodes", "--league", "other", "--round", "ladder.r1"),
            ("events", "--round", "ladder.r1", "--league", "other"),
        ],
    )
    assert "--status filters a listing: it cannot be combined with an episode id" in with_id, with_id
    assert "--status filters a listing: it cannot be combined with a round id" in round_with_id
    assert "episode 'ladder.r1.e1' is not in league 'other'" in episode_elsewhere, episode_elsewhere
    assert "round 'ladder.r1' is not in league 'other'" in round_elsewhere, round_elsewhere
    assert "round 'ladder.r1' is not in league 'other'" in events_elsewhere, events_elsewhere
    # rN.eM within --league still resolves in that league.
    proc = run_cli("episodes", "r1.e1", "--league", "ladder", "--json", env=env)
    assert proc.returncode == 0, proc.stderr


def test_an_empty_home_or_database_is_refused(env: dict[str, str]) -> None:
    home, db = _all_usage_errors(env, [("leagues", "--home", ""), ("coworlds", "--db", " ")])
    assert "--home must not be empty (an unset shell variable?)" in home, home
    assert "--db must not be empty" in db, db
