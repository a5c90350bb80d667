"""In-process commissioners driven purely by CONTRACT §9 messages (no database)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from coworld_pipeline.contract.commissioner import MAX_ROUND_EPISODES
from coworld_pipeline.league.commissioners import InProcessCommissioner, bracket_order, normalize_config


def round_start(
    entrants: dict[str, list[str]],
    slots: int = 2,
    number: int = 1,
    state: Any = None,
    recent: list[dict] | None = None,
) -> dict[str, Any]:
    divisions = [{"id": d, "name": d, "level": i + 1} for i, d in enumerate(entrants)]
    memberships = [
        {"id": f"m-{pv}", "division_id": d, "policy_version_id": pv}
        for d, pvs in entrants.items()
        for pv in pvs
    ]
    return {
        "type": "round_start",
        "round_id": f"round-{number}",
        "round_number": number,
        "league": {"id": "L", "commissioner_config": None},
        "divisions": divisions,
        "memberships": memberships,
        "recent_results": recent or [],
        "variants": [{"id": "v", "name": "v", "game_config": {}, "slot_count": slots}],
        "state": state,
    }


def play_round(
    com: InProcessCommissioner,
    start: dict[str, Any],
    strength: dict[str, float],
    fail: set[str] = frozenset(),
) -> tuple[list[dict], dict[str, Any], int]:
    """Accept everything, answer each episode (score = strength); return (episodes, complete, batches)."""
    state, out = com.handle(start, None)
    played: list[dict] = []
    batches = 0
    queue = list(out)
    complete = None
    while queue:
        msg = queue.pop(0)
        if msg["type"] == "round_complete":
            complete = msg
            continue
        assert msg["type"] == "schedule_episodes"
        batches += 1
        eps = msg["episodes"]
        state, more = com.handle(
            {"type": "episodes_accepted", "request_ids": [e["request_id"] for e in eps]}, state
        )
        queue += more
        for ep in eps:
            played.append(ep)
            if set(ep["policy_version_ids"]) & fail:
                bad = next(pv for pv in ep["policy_version_ids"] if pv in fail)
                reply = {
                    "type": "episode_failed",
                    "request_id": ep["request_id"],
                    "error": "player_crashed",
                    "failed_policy_version_id": bad,
                }
            else:
                reply = {
                    "type": "episode_result",
                    "request_id": ep["request_id"],
                    "scores": [
                        {"policy_version_id": pv, "score": strength[pv]} for pv in ep["policy_version_ids"]
                    ],
                }
            state, more = com.handle(reply, state)
            queue += more
    assert complete is not None
    return played, complete, batches


def seat_counts(played: list[dict]) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for ep in played:
        for seat, pv in enumerate(ep["policy_version_ids"]):
            out.setdefault(pv, Counter())[seat] += 1
    return out


def test_round_robin_two_slots_balances_games_seats_and_opponents():
    entrants = ["a", "b", "c", "d", "e"]
    com = InProcessCommissioner({"strategy": "round-robin"})
    played, done, _ = play_round(
        com, round_start({"D": entrants}), dict(zip(entrants, [5, 4, 3, 2, 1], strict=True))
    )
    games = Counter(pv for ep in played for pv in set(ep["policy_version_ids"]))
    assert set(games.values()) == {8}  # every entrant plays the same number of games: nobody starves
    assert all(c[0] == c[1] == 4 for c in seat_counts(played).values())
    pairs = Counter(frozenset(ep["policy_version_ids"]) for ep in played)
    assert len(pairs) == 10 and set(pairs.values()) == {2}
    by_pair: dict[frozenset, set] = {}
    for ep in played:
        by_pair.setdefault(frozenset(ep["policy_version_ids"]), set()).add(ep["seed"])
    assert all(len(seeds) == 1 for seeds in by_pair.values())  # both seat orders on the same map
    ranks = [r["policy_version_id"] for r in done["results"][0]["rankings"]]
    assert ranks == entrants


@pytest.mark.parametrize(("n", "games"), [(3, 4), (5, 16)])
def test_round_robin_four_slots(n, games):
    entrants = [f"p{i}" for i in range(n)]
    com = InProcessCommissioner({"strategy": "round-robin"})
    played, done, _ = play_round(
        com, round_start({"D": entrants}, slots=4), {pv: i for i, pv in enumerate(entrants)}
    )
    assert all(len(ep["policy_version_ids"]) == 4 for ep in played)
    per_entrant = Counter(pv for ep in played for pv in set(ep["policy_version_ids"]))
    assert set(per_entrant.values()) == {games}
    if n >= 4:
        assert all(len(set(c.values())) == 1 and len(c) == 4 for c in seat_counts(played).values())
    assert done["results"][0]["rankings"][0]["policy_version_id"] == entrants[-1]


def test_swiss_carries_points_and_rotates_byes():
    entrants = ["a", "b", "c", "d", "e"]
    strength = dict(zip(entrants, [5, 4, 3, 2, 1], strict=True))
    com = InProcessCommissioner({"strategy": "swiss"})
    state = None
    byes = []
    for number in (1, 2, 3):
        played, done, _ = play_round(com, round_start({"D": entrants}, number=number, state=state), strength)
        state = done["state"]
        assert all(len(set(ep["policy_version_ids"])) == 2 for ep in played)
        sitting = set(entrants) - {pv for ep in played for pv in ep["policy_version_ids"]}
        assert len(sitting) == 1
        byes.append(sitting.pop())
    assert len(set(byes)) == 3  # a different entrant sits out each round
    assert "a" not in byes  # the leader never starves
    points = state["swiss_points"]
    assert points["a"] == 3.0 and points["a"] == max(points.values())


def test_elimination_schedules_incrementally_and_ranks():
    entrants = ["a", "b", "c", "d", "e"]
    com = InProcessCommissioner({"strategy": "elimination", "episodes_per_pair": 2})
    recent = [
        {
            "round_id": "r0",
            "division_id": "D",
            "round_number": 0,
            "policy_version_id": pv,
            "rank": i + 1,
            "score": 0.0,
        }
        for i, pv in enumerate(["e", "d", "c", "b", "a"])
    ]  # weakest seeded first
    _, done, batches = play_round(
        com, round_start({"D": entrants}, recent=recent), dict(zip(entrants, [5, 4, 3, 2, 1], strict=True))
    )
    assert batches == 3  # first round, semi-finals, final: scheduled as results arrive
    ranks = {r["policy_version_id"]: r["rank"] for r in done["results"][0]["rankings"]}
    assert ranks["a"] == 1
    assert sorted(ranks.values())[:2] == [1, 2]
    assert bracket_order(8) == [0, 7, 3, 4, 1, 6, 2, 5]


def test_elimination_failing_entrant_loses():
    com = InProcessCommissioner({"strategy": "elimination"})
    _, done, _ = play_round(com, round_start({"D": ["a", "b"]}), {"a": 5, "b": 1}, fail={"a"})
    assert done["results"][0]["rankings"][0]["policy_version_id"] == "b"


def test_percentile_graduation_moves_top_and_bottom():
    com = InProcessCommissioner(
        {
            "strategy": "round-robin",
            "graduation": "percentile",
            "promote_top_pct": 25,
            "relegate_bottom_pct": 25,
        }
    )
    top = ["a", "b", "c", "d"]
    low = ["e", "f", "g", "h"]
    strength = dict(zip(top + low, [8, 7, 6, 5, 4, 3, 2, 1], strict=True))
    _, done, _ = play_round(com, round_start({"top": top, "low": low}), strength)
    moves = {c["membership_id"]: c["to_division_id"] for c in done["graduation_changes"]}
    assert moves == {"m-d": "low", "m-e": "top"}


def test_win_streak_graduation_after_three_rounds():
    com = InProcessCommissioner({"strategy": "round-robin", "graduation": "win-streak", "streak_length": 3})
    state = None
    strength = {"a": 1, "b": 2, "c": 3, "d": 4}
    for number in (1, 2, 3):
        _, done, _ = play_round(
            com, round_start({"top": ["a", "b"], "low": ["c", "d"]}, number=number, state=state), strength
        )
        state = done["state"]
        if number < 3:
            assert done["graduation_changes"] == []
    assert [c["membership_id"] for c in done["graduation_changes"]] == ["m-d"]
    assert state["streaks"]["d"] == 0


def test_no_entrants_completes_immediately():
    com = InProcessCommissioner({"strategy": "round-robin"})
    _, out = com.handle(round_start({"D": ["a"]}), None)
    assert [m["type"] for m in out] == ["round_complete"]


def test_a_round_too_large_is_refused_before_any_episode_is_made():
    """64 entrants in 4-slot groups would be 2.5 million episodes: said at once, in bounded memory."""
    entrants = [f"p{i}" for i in range(64)]
    com = InProcessCommissioner({"strategy": "round-robin"})
    with pytest.raises(ValueError, match="is 2,541,504 episodes; a round may schedule at most 20,000"):
        com.handle(round_start({"D": entrants}, slots=4), None)
    assert MAX_ROUND_EPISODES == 20_000
    with pytest.raises(ValueError, match="episodes_per_pair must be an integer from 1 to 1000"):
        normalize_config({"strategy": "round-robin", "episodes_per_pair": 10**9})
    # Just inside the bound: 2 entrants, 1000 episodes each way is a round like any other.
    _, out = InProcessCommissioner({"strategy": "round-robin", "episodes_per_pair": 1000}).handle(
        round_start({"D": ["a", "b"]}), None
    )
    assert len(out[0]["episodes"]) == 1000
