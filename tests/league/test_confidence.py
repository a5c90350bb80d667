"""Confidence figures for standings: intervals, "really stronger" probabilities, settled marks."""

from __future__ import annotations

import json
import random

import pytest

from coworld_pipeline.league.confidence import (
    RankConfidence,
    annotate,
    interval,
    order_settled,
    p_stronger,
    z_value,
)


def test_interval_is_the_central_normal_interval():
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
    low, high = interval(25.0, 2.0)
    assert (low, high) == pytest.approx((25.0 - 3.919928, 25.0 + 3.919928), abs=1e-6)
    assert interval(25.0, 2.0, 0.5)[1] - 25.0 == pytest.approx(2.0 * 0.674490, abs=1e-6)
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError):
            z_value(bad)


def test_p_stronger_is_the_probability_the_skills_are_in_that_order():
    # (10 - 5) / sqrt(3² + 4²) = 1 standard deviation
    assert p_stronger(10.0, 3.0, 5.0, 4.0) == pytest.approx(0.841345, abs=1e-6)
    assert p_stronger(5.0, 4.0, 10.0, 3.0) == pytest.approx(1 - 0.841345, abs=1e-6)
    assert p_stronger(7.0, 1.0, 7.0, 2.0) == 0.5
    assert p_stronger(7.0, 0.0, 6.0, 0.0) == 1.0
    # and it is what sampling the two posteriors says
    rng = random.Random(3)
    wins = sum(rng.gauss(26.0, 1.5) > rng.gauss(25.0, 2.0) for _ in range(20000))
    assert wins / 20000 == pytest.approx(p_stronger(26.0, 1.5, 25.0, 2.0), abs=0.01)


def test_annotate_marks_settled_ranks_against_both_neighbours():
    rows = annotate([("a", 40.0, 1.0), ("b", 30.0, 1.0), ("c", 29.5, 1.0), ("d", 10.0, 1.0)])
    assert [r.key for r in rows] == ["a", "b", "c", "d"] and [r.rank for r in rows] == [1, 2, 3, 4]
    assert rows[0].p_above_next == pytest.approx(1.0) and rows[-1].p_above_next is None
    assert 0.5 < rows[1].p_above_next < 0.95  # b vs c: 0.5 apart with sigma 1 each
    # a is clear of b; b and c are not clear of each other, so neither is settled; d is clear of c
    assert [r.settled for r in rows] == [True, False, False, True]
    assert rows[0].low == pytest.approx(40.0 - 1.959964, abs=1e-6)
    assert rows[0].high == pytest.approx(40.0 + 1.959964, abs=1e-6)
    data = rows[1].to_json()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {"key", "rank", "mu", "sigma", "low", "high", "p_above_next", "settled", "level"}
    with pytest.raises(AttributeError):
        rows[0].settled = False  # type: ignore[misc]  # frozen


def test_the_level_decides_what_is_settled():
    entries = [("a", 30.0, 1.0), ("b", 27.0, 1.0)]  # P(a > b) = Φ(3 / √2) ≈ 0.983
    assert all(r.settled for r in annotate(entries, 0.95))
    assert not any(r.settled for r in annotate(entries, 0.99))
    assert annotate(entries, 0.99)[0].level == 0.99


def test_edge_cases():
    assert annotate([]) == []
    (only,) = annotate([("solo", 25.0, 8.0)])
    assert isinstance(only, RankConfidence) and only.settled and only.p_above_next is None
    # a standings order that contradicts the means: the higher one is probably weaker
    (upper, _) = annotate([("x", 20.0, 0.5), ("y", 24.0, 3.0)])  # x shown first (mu - 3 sigma)
    assert upper.p_above_next < 0.5 and not upper.settled


def test_order_settled_whole_order_or_top_k():
    entries = [("a", 60.0, 1.0), ("b", 45.0, 1.0), ("c", 30.0, 1.0), ("d", 30.1, 1.0)]
    assert not order_settled(entries)
    assert order_settled(entries, top_k=2)  # a > b and b > the rest are known
    assert not order_settled(entries, top_k=3)  # c vs d is the boundary of the top 3
    assert order_settled(entries[:3])
