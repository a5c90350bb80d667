"""Planner player: searches short sequences of future harvests, including fruit that has not ripened yet.

For each candidate fruit it computes the earliest tick it could hold it (walking, then waiting under the tree
if it arrives early) and estimates whether an opponent gets there first. A depth-limited search over the best
few candidates picks the sequence with the highest time-discounted value, and the player takes the first step
of that sequence. Pure function of the observation.
"""

from __future__ import annotations

from typing import Any

from orchard.players.client import run_player
from orchard.players.common import (
    Position,
    distance,
    harvest_tick,
    my_position,
    opponent_positions,
    step_toward,
    visible_fruit,
)

DISCOUNT = 0.9
DEPTH = 3
BRANCHING = 5


def _contest_factor(
    when: int, fruit: dict[str, Any], opponents: list[Position], now: int, max_ticks: int
) -> float:
    """Expected share of the fruit if we arrive at ``when``, given the opponents' earliest arrival."""
    factor = 1.0
    for opponent in opponents:
        theirs = harvest_tick(opponent, now, fruit, max_ticks)
        if theirs is None or theirs > when:
            continue
        factor *= 0.5 if theirs == when else 0.2
    return factor


def _expand(
    pos: Position,
    now: int,
    start: int,
    remaining: list[dict[str, Any]],
    opponents: list[Position],
    max_ticks: int,
) -> list[tuple[float, int, dict[str, Any]]]:
    options = []
    for fruit in remaining:
        when = harvest_tick(pos, now, fruit, max_ticks)
        if when is None:
            continue
        gain = (
            fruit["value"]
            * _contest_factor(when, fruit, opponents, start, max_ticks)
            * DISCOUNT ** (when - start)
        )
        options.append((gain, when, fruit))
    options.sort(key=lambda item: (-item[0], item[1], item[2]["tree"], item[2]["ripe"]))
    return options[:BRANCHING]


def _search(
    pos: Position,
    now: int,
    start: int,
    remaining: list[dict[str, Any]],
    opponents: list[Position],
    max_ticks: int,
    depth: int,
) -> float:
    if depth == 0:
        return 0.0
    best = 0.0
    for gain, when, fruit in _expand(pos, now, start, remaining, opponents, max_ticks):
        rest = [other for other in remaining if other is not fruit]
        total = gain + _search(fruit["pos"], when, start, rest, opponents, max_ticks, depth - 1)
        best = max(best, total)
    return best


def plan(observation: dict[str, Any]) -> tuple[float, Position | None]:
    """Best discounted value and the tree position to walk to first (None when nothing is worth chasing)."""
    me = my_position(observation)
    now = observation["tick"]
    max_ticks = observation["max_ticks"]
    opponents = opponent_positions(observation)
    fruit = visible_fruit(observation)
    best_value, best_target, best_key = 0.0, None, None
    for gain, when, first in _expand(me, now, now, fruit, opponents, max_ticks):
        rest = [other for other in fruit if other is not first]
        total = gain + _search(first["pos"], when, now, rest, opponents, max_ticks, DEPTH - 1)
        key = (-total, when, first["tree"])
        if best_key is None or key < best_key:
            best_value, best_target, best_key = total, first["pos"], key
    return best_value, best_target


def choose_action(observation: dict[str, Any]) -> str:
    me = my_position(observation)
    _, target = plan(observation)
    if target is None:
        # idle: drift toward the middle of the orchard, where the next ripening is likely closest
        trees = observation["trees"]
        if not trees:
            return "stay"
        cx = round(sum(t["x"] for t in trees) / len(trees))
        cy = round(sum(t["y"] for t in trees) / len(trees))
        target = (cx, cy)
    if distance(me, target) == 0:
        return "stay"
    return step_toward(me, target)


def main() -> int:
    return run_player("planner", choose_action)


if __name__ == "__main__":
    raise SystemExit(main())
