"""Random player: a uniformly random move every tick.

Deterministic: the move is a hash of (config seed, slot, tick), all taken from the observation, so the same
observation sequence always yields the same moves (no wall clock, no global RNG state).
"""

from __future__ import annotations

import hashlib
from typing import Any

from orchard.players.client import run_player

MOVES = ("stay", "up", "down", "left", "right")


def choose_action(observation: dict[str, Any]) -> str:
    key = f"orchard-random:{observation.get('seed', 0)}:{observation['slot']}:{observation['tick']}"
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return MOVES[int.from_bytes(digest[:8], "big") % len(MOVES)]


def main() -> int:
    return run_player("random", choose_action)


if __name__ == "__main__":
    raise SystemExit(main())
