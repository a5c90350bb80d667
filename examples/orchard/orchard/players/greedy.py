"""Greedy player: walk to the ripe fruit with the best value per step that can still be reached before
it rots.

It ignores fruit that is not ripe yet (except to pre-position when nothing is ripe) and ignores opponents.
"""

from __future__ import annotations

from typing import Any

from orchard.players.client import run_player
from orchard.players.common import distance, harvest_tick, my_position, step_toward, visible_fruit


def choose_action(observation: dict[str, Any]) -> str:
    me = my_position(observation)
    now = observation["tick"]
    max_ticks = observation["max_ticks"]
    best_key = None
    target = None
    for fruit in visible_fruit(observation):
        if fruit["ripe"] > now:
            continue
        when = harvest_tick(me, now, fruit, max_ticks)
        if when is None:
            continue
        steps = distance(me, fruit["pos"])
        key = (-fruit["value"] / (steps + 1), steps, fruit["tree"])
        if best_key is None or key < best_key:
            best_key, target = key, fruit["pos"]
    if target is None:
        # nothing ripe in reach: head for the tree that ripens soonest
        upcoming = [f for f in visible_fruit(observation) if f["ripe"] > now]
        if not upcoming:
            return "stay"
        soonest = min(upcoming, key=lambda f: (f["ripe"], distance(me, f["pos"]), f["tree"]))
        target = soonest["pos"]
    return step_toward(me, target)


def main() -> int:
    return run_player("greedy", choose_action)


if __name__ == "__main__":
    raise SystemExit(main())
