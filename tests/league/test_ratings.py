"""The direct Plackett-Luce implementation matches openskill; the credit rule credits an entrant once."""

from __future__ import annotations

import random

import pytest
from openskill.models import PlackettLuce

from coworld_pipeline.league.ratings import Standing, apply_episode, credit, rate, recompute


@pytest.mark.parametrize("seed", range(5))
def test_rate_matches_openskill(seed):
    model = PlackettLuce()
    rng = random.Random(seed)
    for _ in range(200):
        n = rng.randint(2, 5)
        ratings = [(rng.uniform(5, 45), rng.uniform(0.5, 9)) for _ in range(n)]
        scores = [float(rng.randint(0, 3)) for _ in range(n)]  # plenty of ties
        expected = model.rate([[model.rating(mu=m, sigma=s)] for m, s in ratings], scores=scores)
        for (team,), (mu, sigma) in zip(expected, rate(ratings, scores), strict=True):
            assert mu == pytest.approx(team.mu, abs=1e-9)
            assert sigma == pytest.approx(team.sigma, abs=1e-9)


def test_sequence_matches_openskill():
    model = PlackettLuce()
    players = {k: model.rating() for k in "abc"}
    table: dict[str, Standing] = {}
    rng = random.Random(7)
    for _ in range(300):
        a, b = rng.sample("abc", 2)
        sa, sb = rng.random(), rng.random()
        (ra,), (rb,) = model.rate([[players[a]], [players[b]]], scores=[sa, sb])
        players[a], players[b] = ra, rb
        apply_episode(table, {a: sa, b: sb})
    for k in "abc":
        assert table[k].mu == pytest.approx(players[k].mu, abs=1e-9)
        assert table[k].sigma == pytest.approx(players[k].sigma, abs=1e-9)


def test_credit_once_mean_of_seats():
    assert credit(["a", "b", "a", "c"], [4, 1, 2, 9]) == {"a": 3.0, "b": 1.0, "c": 9.0}
    table: dict[str, Standing] = {}
    assert apply_episode(table, credit(["a", "b", "a", "c"], [4, 1, 2, 9]))
    assert {k: v.episodes for k, v in table.items()} == {"a": 1, "b": 1, "c": 1}
    assert table["c"].wins == 1 and table["a"].wins == 0
    assert not apply_episode(table, credit(["a", "a"], [1, 2]))  # self-play: unrated
    assert table["a"].episodes == 1


def test_recompute_is_order_faithful():
    eps = [(["a", "b"], [1.0, 0.0]), (["b", "a"], [2.0, 1.0]), (["a", "c"], [3.0, 3.0])]
    table = recompute(eps)
    assert table["a"].episodes == 3 and table["b"].wins == 1 and table["c"].wins == 0
