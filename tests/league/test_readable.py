"""Readable identities: `league.rN.eM` episodes and `league.rN` rounds, resolved wherever an id is."""

from __future__ import annotations

import os

import pytest

from coworld_pipeline.league import readable
from coworld_pipeline.league.errors import LeagueError, NotFound
from coworld_pipeline.league.service import LeagueService
from tests.conftest import run_cli
from tests.league.conftest import orchard_league, scores_by_slot


def two_leagues(svc: LeagueService) -> None:
    """Leagues `alpha` and `beta`, one played round each (3 episodes: round-robin of 3, 1 per pair)."""
    orchard_league(svc, "alpha", commissioner_config={"episodes_per_pair": 1})
    svc.create_league("beta", "orchard", variants=["duel"], commissioner_config={"episodes_per_pair": 1})
    for p in ("random", "greedy", "planner"):
        svc.submit(p, "beta")
    for name in ("alpha", "beta"):
        run = svc.run_round(name, parallel=1, episode_runner=scores_by_slot(1.0, 2.0))
        assert run.progress is not None and run.progress.status == "completed"


def test_keys_are_positions_in_creation_order_and_resolve_back(svc: LeagueService):
    two_leagues(svc)
    alpha = svc.episodes(league_ref="alpha")
    by_creation = sorted(alpha, key=lambda e: (e.created_at, e.id))
    assert [e.key for e in by_creation] == ["alpha.r1.e1", "alpha.r1.e2", "alpha.r1.e3"]
    for e in alpha:
        assert svc.episode(e.key).id == e.id  # the readable key
        assert svc.episode(e.id).key == e.key  # the id still works, and knows its key
        short = e.key.removeprefix("alpha.")
        assert svc.episode(short, league_ref="alpha").id == e.id  # r1.e2 with --league
        assert svc.episode(short.replace(".", "-"), league_ref="alpha").id == e.id  # r1-e2, as events say
    # Events name episodes by that key.
    rated = svc.events("alpha", event_type="episode_rated", limit=10)
    assert sorted(ev.headline.split()[1] for ev in rated) == sorted(e.key for e in alpha)
    (rnd,) = svc.rounds(league_ref="beta").entries
    assert rnd.key == "beta.r1" and svc.round("beta.r1").id == rnd.id
    assert svc.rounds(round_ref="r1", league_ref="beta").entries[0].id == rnd.id


def test_short_forms_that_match_several_leagues_are_refused_with_the_candidates(svc: LeagueService):
    two_leagues(svc)
    with pytest.raises(LeagueError) as err:
        svc.episode("r1-e2")
    message = str(err.value)
    assert "ambiguous" in message and "alpha.r1.e2" in message and "beta.r1.e2" in message
    with pytest.raises(LeagueError, match=r"round 'r1' is ambiguous: it matches alpha.r1, beta.r1"):
        svc.round("r1")
    with pytest.raises(NotFound, match=r"LEAGUE\.rN\.eM"):
        svc.episode("alpha.r1.e4")
    with pytest.raises(NotFound, match="unknown league 'gamma'"):
        svc.episode("gamma.r1.e1")


def test_a_runs_partition_keys_resolve_in_one_read_as_each_would_alone(svc: LeagueService):
    """`episode_ids` (a Dagster run's partition range) resolves full keys per round, raw ids and
    short forms as `episode` does, and refuses an unknown key the same way."""
    two_leagues(svc)
    episodes = svc.episodes(league_ref="alpha") + svc.episodes(league_ref="beta")
    refs = [e.key for e in episodes] + [episodes[0].id, episodes[3].id.removeprefix("ereq_")]
    assert svc.episode_ids(refs) == {ref: svc.episode(ref).id.removeprefix("ereq_") for ref in refs}
    with pytest.raises(NotFound, match=r"LEAGUE\.rN\.eM"):
        svc.episode_ids([episodes[0].key, "alpha.r1.e4"])
    with pytest.raises(NotFound, match="unknown league 'gamma'"):
        svc.episode_ids(["gamma.r1.e1"])
    with pytest.raises(LeagueError, match="ambiguous"):
        svc.episode_ids(["r1-e2"])


def test_cli_accepts_readable_keys_and_exits_2_on_ambiguity(svc: LeagueService, db_url: str, home):
    two_leagues(svc)
    env = {**os.environ, "COWORLD_HOME": str(home), "COWORLD_DATABASE_URL": db_url}
    ambiguous = run_cli("episode-logs", "r1.e1", env=env, timeout=120)
    assert ambiguous.returncode == 2, ambiguous
    assert "alpha.r1.e1" in ambiguous.stderr + ambiguous.stdout and "Traceback" not in ambiguous.stderr
    listing = run_cli("episode-logs", "r1.e1", "--league", "beta", "--json", env=env, timeout=120)
    assert listing.returncode == 0, listing
    assert svc.episode("beta.r1.e1").id in listing.stdout


def test_names_that_cannot_be_partition_keys_fall_back_to_the_league_id():
    assert readable.league_part("orchard-demo", "league_x") == "orchard-demo"
    for bad in ("two words", "a...b", "-flag", "tab\there", ""):
        assert readable.league_part(bad, "league_x") == "league_x"
    assert readable.parse_episode("orchard-demo.r3.e13") == readable.ParsedRef("orchard-demo", 3, 13)
    assert readable.parse_episode("r3-e13") == readable.ParsedRef(None, 3, 13)
    assert readable.parse_episode("a.b.r3.e13") == readable.ParsedRef("a.b", 3, 13)
    assert readable.parse_round("orchard-demo.r3") == readable.ParsedRef("orchard-demo", 3)
    assert readable.parse_episode("ereq_123") is None and readable.parse_episode("r0.e1") is None
