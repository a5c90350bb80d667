"""Geometry helpers shared by the bundled players (pure functions of an observation)."""

from __future__ import annotations

from typing import Any

Position = tuple[int, int]


def distance(a: Position | list[int], b: Position | list[int]) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def step_toward(origin: Position | list[int], target: Position | list[int]) -> str:
    """First move of a shortest path; closes the larger gap first, x before y on ties."""
    dx = target[0] - origin[0]
    dy = target[1] - origin[1]
    if dx == 0 and dy == 0:
        return "stay"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def my_position(observation: dict[str, Any]) -> Position:
    x, y = observation["positions"][observation["slot"]]
    return (x, y)


def opponent_positions(observation: dict[str, Any]) -> list[Position]:
    slot = observation["slot"]
    return [(x, y) for index, (x, y) in enumerate(observation["positions"]) if index != slot]


def visible_fruit(observation: dict[str, Any]) -> list[dict[str, Any]]:
    """Every fruit the observation shows (ripe now or ripening within the lookahead), flattened:
    ``{"tree", "pos", "ripe", "rot", "value"}``."""
    out = []
    for tree in observation["trees"]:
        pos = (tree["x"], tree["y"])
        entries = ([tree["fruit"]] if tree.get("fruit") else []) + list(tree.get("upcoming", []))
        for entry in entries:
            out.append(
                {
                    "tree": tree["id"],
                    "pos": pos,
                    "ripe": entry["ripe"],
                    "rot": entry["rot"],
                    "value": entry["value"],
                }
            )
    return out


def harvest_tick(pos: Position, now: int, fruit: dict[str, Any], max_ticks: int) -> int | None:
    """Earliest tick at which a player at ``pos`` at tick ``now`` can hold this fruit, or None if it rots
    first (or the episode ends first). Moving one square per tick; the harvest check happens after moves."""
    arrive = now + distance(pos, fruit["pos"])
    when = max(arrive, fruit["ripe"], now + 1)
    if when >= fruit["rot"] or when > max_ticks:
        return None
    return when
