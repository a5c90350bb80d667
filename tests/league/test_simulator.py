"""The simulator: league commissioners and ratings driven by synthetic policies of known skill."""

from __future__ import annotations

import math
import random

import pytest

from coworld_pipeline.contract.commissioner import ScheduleEpisodes
from coworld_pipeline.league.ratings import BETA, recompute
from coworld_pipeline.league.simulator import (
    Simulation,
    _validate_schedule,
    draw_scores,
    game_information,
    information_floor,
    kendall_tau,
    simulate,
    synthetic_skills,
)


def test_kendall_tau():
    truth = {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.0}
    assert kendall_tau(["a", "b", "c", "d"], truth) == 1.0
    assert kendall_tau(["d", "c", "b", "a"], truth) == -1.0
    assert kendall_tau(["b", "a", "c", "d"], truth) == pytest.approx(1 - 2 / 6)  # one pair of six
    assert kendall_tau(["a"], truth) == 1.0


@pytest.mark.parametrize("model", ["plackett-luce", "thurstone"])
def test_outcome_models(model):
    rng = random.Random(5)
    scores = draw_scores([10.0, 20.0, 30.0, 40.0], rng, model)
    assert sorted(scores) == [0.0, 1.0, 2.0, 3.0]  # seat scores are placements
    assert draw_scores([0.0, 1000.0], rng, model) == [0.0, 1.0]  # a huge gap always wins
    gap = 4.0
    wins = sum(draw_scores([gap, 0.0], rng, model)[0] == 1.0 for _ in range(20000)) / 20000
    if model == "plackett-luce":  # openskill's 2-player likelihood
        expected = 1 / (1 + math.exp(-gap / (math.sqrt(2) * BETA)))
    else:  # Gaussian performances with sd beta
        expected = 0.5 * (1 + math.erf(gap / (math.sqrt(2) * BETA) / math.sqrt(2)))
    assert wins == pytest.approx(expected, abs=0.012)
    with pytest.raises(ValueError):
        draw_scores([1.0, 2.0], rng, "elo")


def test_synthetic_skills_are_reproducible_and_carry_no_order_in_their_keys():
    a = synthetic_skills(32, random.Random(1))
    assert a == synthetic_skills(32, random.Random(1))
    assert list(a) == [f"p{i:02d}" for i in range(32)]
    assert kendall_tau(list(a), a) < 0.5
    wide = synthetic_skills(32, random.Random(1), spread=2.0)
    assert (max(wide.values()) - min(wide.values())) == pytest.approx(2 * (max(a.values()) - min(a.values())))


def test_round_robin_round_through_the_real_commissioner_and_ratings():
    skills = {"a": 60.0, "b": 40.0, "c": 20.0, "d": 0.0}  # far apart: the order is unmistakable
    rounds: list[int] = []
    result = simulate(
        "round-robin", skills, seed=1, max_rounds=2, on_round=lambda s: rounds.append(s.episodes)
    )
    sim = result.sim
    assert rounds == [12, 24] and sim.per_round == [12, 12]  # 6 pairs x 2 seatings per round
    assert result.reason == "round limit 2 reached" and not result.stopped
    assert sim.ranking() == ["a", "b", "c", "d"]
    assert all(sim.table[k].episodes == 12 for k in skills)
    ranked = sim.last_complete["results"][0]["rankings"]
    assert [r["policy_version_id"] for r in ranked] == ["a", "b", "c", "d"]
    again = simulate("round-robin", skills, seed=1, max_rounds=2).sim
    assert again.standings() == sim.standings()  # the same seed plays the same league
    # the history replays into the same table (what another estimator is fed)
    assert len(sim.history) == 24 and all(len(credited) == 2 for credited in sim.history)
    replayed = recompute(([*c], [*c.values()]) for c in sim.history)
    assert {k: (r.mu, r.sigma) for k, r in replayed.items()} == {
        k: (r.mu, r.sigma) for k, r in sim.table.items()
    }


@pytest.mark.parametrize(
    ("strategy", "slots"), [("swiss", 2), ("adaptive", 2), ("adaptive", 4), ("elimination", 2)]
)
def test_every_strategy_runs_and_learns(strategy, slots):
    skills = synthetic_skills(8, random.Random(2), spread=3.0)
    result = simulate(strategy, skills, slots=slots, seed=3, max_episodes=400, max_rounds=60)
    assert result.sim.rejected == 0  # everything it scheduled was valid
    assert kendall_tau(result.sim.ranking(), skills) > 0.5


def test_stop_predicate_and_episode_limit_end_a_round_midway():
    skills = synthetic_skills(6, random.Random(4))
    result = simulate("round-robin", skills, seed=0, stop=lambda s: s.episodes == 7)
    assert result.stopped and result.sim.episodes == 7
    result = simulate("adaptive", skills, seed=0, max_episodes=9)
    assert not result.stopped and result.sim.episodes == 9
    with pytest.raises(ValueError):
        simulate("round-robin", skills, model="elo")


def test_the_platform_checks_apply_to_schedules():
    sim = Simulation(skills={"a": 1.0, "b": 2.0}, slots=2)
    msg = ScheduleEpisodes.model_validate(
        {
            "episodes": [
                {"request_id": "1", "variant_id": "sim", "policy_version_ids": ["a", "b"]},
                {"request_id": "1", "variant_id": "sim", "policy_version_ids": ["a", "b"]},
                {"request_id": "2", "variant_id": "other", "policy_version_ids": ["a", "b"]},
                {"request_id": "3", "variant_id": "sim", "policy_version_ids": ["a"]},
                {"request_id": "4", "variant_id": "sim", "policy_version_ids": ["a", "zz"]},
            ]
        }
    )
    accepted, errors = _validate_schedule(msg, sim, set())
    assert [e["request_id"] for e in accepted] == ["1"]
    assert set(errors) == {"1", "2", "3", "4"} and "duplicate" in errors["1"]


def test_game_information_is_the_plackett_luce_fisher_information():
    scale2 = 2 * BETA * BETA  # the simulator's Plackett-Luce scale is sqrt(2) beta
    gap = 5.0
    p = 1 / (1 + math.exp(-gap / math.sqrt(scale2)))
    # two players: each learns p (1 - p) / scale^2 about its skill
    assert game_information([gap, 0.0]) == pytest.approx(2 * p * (1 - p) / scale2)
    # evenly matched groups carry the most: sum over the stages (m players left) of 1 - 1/m
    assert game_information([25.0] * 4) == pytest.approx((3 / 4 + 2 / 3 + 1 / 2) / scale2)
    assert game_information([25.0, 24.0, 26.0, 25.5]) < game_information([25.0] * 4)
    assert game_information([0.0, 100.0]) < 1e-6 * game_information([0.0, 0.0])  # a foregone result


def test_information_floor():
    same = {f"p{i}": 25.0 for i in range(6)}
    assert information_floor(same, 2) == pytest.approx(1.0)  # every game is evenly matched
    assert information_floor(same, 4) == pytest.approx(1.0)
    narrow = synthetic_skills(16, random.Random(3), spread=1.0)
    wide = synthetic_skills(16, random.Random(3), spread=3.0)
    for slots in (2, 4):  # the wider the field, the less a random game tells
        assert 0.0 < information_floor(wide, slots) < information_floor(narrow, slots) < 1.0


def test_the_benchmarks_map_fit_ranks_simulated_episodes_at_least_as_well_as_the_league():
    from benchmarks.map_estimate import MapRanking

    skills = synthetic_skills(8, random.Random(6), spread=2.0)
    sim = simulate("round-robin", skills, slots=4, seed=2, max_episodes=60).sim
    fit = MapRanking(skills)
    for credited in sim.history:
        fit.add(credited)
    fit.fit(max_steps=20)
    assert kendall_tau(fit.ranking(), skills) >= kendall_tau(sim.ranking(), skills)
    assert kendall_tau(fit.ranking(), skills) > 0.7
    assert all(abs(s - 25.0) < 4 * 25.0 for s in fit.skills)  # the prior keeps the fit finite
