"""Orchard game rules: a pure, deterministic simulation with no I/O.

Everything here is a function of the config (including ``seed``) and the sequence of actions passed to
:meth:`Orchard.step`. The same inputs always produce byte-identical :func:`replay_bytes` output.

Coordinates: ``x`` grows to the right (0..width-1), ``y`` grows downward (0..height-1),
so ``up`` is ``y - 1``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

GAME_NAME = "orchard"
GAME_VERSION = "0.1.0"
REPLAY_FORMAT = "orchard-replay/1"

MOVES: dict[str, tuple[int, int]] = {
    "stay": (0, 0),
    "up": (0, -1),
    "down": (0, 1),
    "left": (-1, 0),
    "right": (1, 0),
}
MOVE_NAMES = tuple(MOVES)

# Scores are kept internally in twelfths so that a fruit shared by 1, 2, 3 or 4 players splits exactly.
SHARE_UNIT = 12
# How far ahead (in ticks) a player can see a tree's ripening schedule.
LOOKAHEAD_TICKS = 24

DEFAULT_WIDTH = 11
DEFAULT_HEIGHT = 9
DEFAULT_TREES = 10
DEFAULT_CONNECT_TIMEOUT = 30.0
DEFAULT_FINAL_LINGER = 5.0
DEFAULT_TURN_TIMEOUT = 10.0
DEFAULT_SILENT_PLAYER_TIMEOUT = 30.0

MIN_SLOTS = 2
MAX_SLOTS = 4


class ConfigError(ValueError):
    """The game config does not satisfy the config schema."""


# --------------------------------------------------------------------------------------------------
# Deterministic RNG (SplitMix64): tiny, portable, independent of Python's `random` implementation.
# --------------------------------------------------------------------------------------------------
_MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next_u64() % n

    def between(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi]."""
        return lo + self.below(hi - lo + 1)

    def weighted(self, weights: list[int]) -> int:
        roll = self.below(sum(weights))
        for index, weight in enumerate(weights):
            if roll < weight:
                return index
            roll -= weight
        return len(weights) - 1


# --------------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------------
CONFIG_KEYS = {
    "tokens",
    "players",
    "seed",
    "max_ticks",
    "tick_rate",
    "width",
    "height",
    "trees",
    "player_connect_timeout_seconds",
    "final_linger_seconds",
    "turn_timeout_seconds",
    "silent_player_timeout_seconds",
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def validate_config(config: Any, *, require_tokens: bool = True) -> dict[str, Any]:
    """Check ``config`` against the rules of the manifest's config_schema and return it with defaults filled.

    Raises :class:`ConfigError` with a human-readable message.
    """
    if not isinstance(config, dict):
        raise ConfigError("config must be a JSON object")
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
    required = ["players", "seed", "max_ticks", "tick_rate"] + (["tokens"] if require_tokens else [])
    missing = [key for key in required if key not in config]
    if missing:
        raise ConfigError(f"missing required config keys: {', '.join(missing)}")

    players = config["players"]
    if not isinstance(players, list) or not MIN_SLOTS <= len(players) <= MAX_SLOTS:
        raise ConfigError(f"players must be an array of {MIN_SLOTS}..{MAX_SLOTS} objects")
    for index, player in enumerate(players):
        if not isinstance(player, dict) or set(player) - {"name"}:
            raise ConfigError(f"players[{index}] must be an object with only a 'name' field")
        if not isinstance(player.get("name"), str) or not player["name"]:
            raise ConfigError(f"players[{index}].name must be a non-empty string")

    if "tokens" in config:
        tokens = config["tokens"]
        if not isinstance(tokens, list) or not MIN_SLOTS <= len(tokens) <= MAX_SLOTS:
            raise ConfigError(f"tokens must be an array of {MIN_SLOTS}..{MAX_SLOTS} strings")
        if not all(isinstance(token, str) and token for token in tokens):
            raise ConfigError("every token must be a non-empty string")
        if len(tokens) != len(players):
            raise ConfigError(
                f"config has {len(tokens)} tokens but {len(players)} players; they must match (one per slot)"
            )

    if not _is_int(config["seed"]):
        raise ConfigError("seed must be an integer")
    if not _is_int(config["max_ticks"]) or not 1 <= config["max_ticks"] <= 10000:
        raise ConfigError("max_ticks must be an integer in 1..10000")
    if not _is_number(config["tick_rate"]) or config["tick_rate"] < 0:
        raise ConfigError("tick_rate must be a number >= 0")

    normalized = dict(config)
    for key, default, lo, hi in (
        ("width", DEFAULT_WIDTH, 5, 40),
        ("height", DEFAULT_HEIGHT, 5, 40),
        ("trees", DEFAULT_TREES, 1, 60),
    ):
        value = config.get(key, default)
        if not _is_int(value) or not lo <= value <= hi:
            raise ConfigError(f"{key} must be an integer in {lo}..{hi}")
        normalized[key] = value
    if normalized["trees"] > normalized["width"] * normalized["height"] // 3:
        raise ConfigError("too many trees for the board: trees must be <= width*height/3")
    for key, default, lo, hi in (
        ("player_connect_timeout_seconds", DEFAULT_CONNECT_TIMEOUT, 0, None),
        ("final_linger_seconds", DEFAULT_FINAL_LINGER, 0, 600),
        ("turn_timeout_seconds", DEFAULT_TURN_TIMEOUT, 0.01, 3600),
        ("silent_player_timeout_seconds", DEFAULT_SILENT_PLAYER_TIMEOUT, 0, 3600),
    ):
        value = config.get(key, default)
        if not _is_number(value) or value < lo or (hi is not None and value > hi):
            raise ConfigError(
                f"{key} must be a number >= {lo:g}" + (f" and <= {hi}" if hi is not None else "")
            )
        normalized[key] = value
    return normalized


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config without secrets (tokens), safe for replays, viewers and logs."""
    return {key: value for key, value in config.items() if key != "tokens"}


# --------------------------------------------------------------------------------------------------
# Board generation
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fruit:
    id: int
    tree: int
    ripe: int  # first tick at which the fruit can be harvested
    rot: int  # first tick at which it is gone (harvestable while ripe <= tick < rot)
    value: int


@dataclass
class Tree:
    id: int
    x: int
    y: int
    fruits: list[Fruit] = field(default_factory=list)


# value 1..5, rarer when higher; higher-value fruit rots faster.
_VALUE_WEIGHTS = [30, 26, 20, 14, 10]
_LIFETIME_BY_VALUE = {1: (7, 11), 2: (6, 10), 3: (5, 9), 4: (4, 7), 5: (3, 6)}


def start_positions(width: int, height: int, slots: int) -> list[tuple[int, int]]:
    """Slot 0 top-left, slot 1 bottom-right, slot 2 top-right, slot 3 bottom-left."""
    corners = [(0, 0), (width - 1, height - 1), (width - 1, 0), (0, height - 1)]
    return corners[:slots]


def _schedule(rng: SplitMix64, tree_id: int, max_ticks: int, first_id: int) -> list[Fruit]:
    fruits: list[Fruit] = []
    tick = rng.between(1, 14)
    while tick <= max_ticks:
        value = 1 + rng.weighted(_VALUE_WEIGHTS)
        lo, hi = _LIFETIME_BY_VALUE[value]
        rot = tick + rng.between(lo, hi)
        fruits.append(Fruit(first_id + len(fruits), tree_id, tick, rot, value))
        tick = rot + rng.between(4, 18)
    return fruits


def generate_trees(config: dict[str, Any]) -> list[Tree]:
    """Point-symmetric tree layout (fair for every seat) with mirrored ripening schedules."""
    width, height, count = config["width"], config["height"], config["trees"]
    rng = SplitMix64(config["seed"] ^ 0x0C0A4D5EED)
    blocked = set(start_positions(width, height, MAX_SLOTS))
    # keep the squares next to each start free too, so nobody begins adjacent to a tree
    for sx, sy in list(blocked):
        for dx, dy in MOVES.values():
            blocked.add((sx + dx, sy + dy))
    has_center = width % 2 == 1 and height % 2 == 1
    center = (width // 2, height // 2)
    positions: list[tuple[int, int]] = []
    if count % 2 == 1 and has_center:
        positions.append(center)
    target = count if (count % 2 == 0 or has_center) else count - 1
    taken = set(positions) | {center}
    cells = [(x, y) for y in range(height) for x in range(width)]
    for _ in range(20000):
        if len(positions) >= target:
            break
        x, y = cells[rng.below(len(cells))]
        mirror = (width - 1 - x, height - 1 - y)
        if (x, y) == mirror or {(x, y), mirror} & (taken | blocked):
            continue
        positions.extend([(x, y), mirror])
        taken.update({(x, y), mirror})
    trees: list[Tree] = []
    next_fruit = 0
    schedules: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for index, (x, y) in enumerate(positions):
        mirror = (width - 1 - x, height - 1 - y)
        tree = Tree(index, x, y)
        if mirror in schedules:
            base = schedules[mirror]
        else:
            base = [(f.ripe, f.rot, f.value) for f in _schedule(rng, index, config["max_ticks"], 0)]
            schedules[(x, y)] = base
        for ripe, rot, value in base:
            tree.fruits.append(Fruit(next_fruit, index, ripe, rot, value))
            next_fruit += 1
        trees.append(tree)
    return trees


def manhattan(a: tuple[int, int] | list[int], b: tuple[int, int] | list[int]) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def score_value(twelfths: int) -> float | int:
    """Public score: an int when whole, else a float rounded to 4 decimals."""
    if twelfths % SHARE_UNIT == 0:
        return twelfths // SHARE_UNIT
    return round(twelfths / SHARE_UNIT, 4)


# --------------------------------------------------------------------------------------------------
# The game
# --------------------------------------------------------------------------------------------------
class Orchard:
    """One episode. Call :meth:`step` once per tick with one move per slot until :attr:`done`."""

    def __init__(self, config: dict[str, Any], policy_names: list[str] | None = None) -> None:
        self.config = validate_config(config, require_tokens=False)
        self.width: int = self.config["width"]
        self.height: int = self.config["height"]
        self.max_ticks: int = self.config["max_ticks"]
        self.seed: int = self.config["seed"]
        self.names = [player["name"] for player in self.config["players"]]
        self.slots = len(self.names)
        self.policy_names = list(policy_names) if policy_names and len(policy_names) == self.slots else None
        self.trees = generate_trees(self.config)
        self.fruits: list[Fruit] = [fruit for tree in self.trees for fruit in tree.fruits]
        self.positions: list[tuple[int, int]] = start_positions(self.width, self.height, self.slots)
        self.tick = 0
        self.score_units = [0] * self.slots
        self.fruit_harvested = [0] * self.slots
        self.harvested: dict[int, list[int]] = {}  # fruit id -> slots that shared it
        self.rotted: set[int] = set()
        self.contested = 0
        self.wall_bumps = [0] * self.slots
        self.leader: int | None = None
        self.lead_changes = 0
        self.last_events: dict[str, Any] = {"harvests": [], "rotted": []}
        self.frames: list[dict[str, Any]] = [self._frame(actions=None)]

    # ---- queries ---------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.tick >= self.max_ticks

    def ripe_fruit(self, tree: Tree, tick: int | None = None) -> Fruit | None:
        tick = self.tick if tick is None else tick
        for fruit in tree.fruits:
            if fruit.ripe <= tick < fruit.rot and fruit.id not in self.harvested:
                return fruit
            if fruit.ripe > tick:
                break
        return None

    def scores(self) -> list[float | int]:
        return [score_value(units) for units in self.score_units]

    def _tree_view(self, tree: Tree) -> dict[str, Any]:
        ripe = self.ripe_fruit(tree)
        upcoming = [
            {"ripe": fruit.ripe, "rot": fruit.rot, "value": fruit.value}
            for fruit in tree.fruits
            if self.tick < fruit.ripe <= self.tick + LOOKAHEAD_TICKS
        ]
        return {
            "id": tree.id,
            "x": tree.x,
            "y": tree.y,
            "fruit": None if ripe is None else {"ripe": ripe.ripe, "rot": ripe.rot, "value": ripe.value},
            "upcoming": upcoming,
        }

    def snapshot(self) -> dict[str, Any]:
        """Full public state: enough for a late-joining viewer (or a player) to render and decide."""
        return {
            "game": GAME_NAME,
            "tick": self.tick,
            "max_ticks": self.max_ticks,
            "width": self.width,
            "height": self.height,
            "seed": self.seed,
            "lookahead": LOOKAHEAD_TICKS,
            "player_names": self.names,
            "policy_names": self.policy_names,
            "positions": [list(pos) for pos in self.positions],
            "scores": self.scores(),
            "fruit_harvested": list(self.fruit_harvested),
            "trees": [self._tree_view(tree) for tree in self.trees],
            "last_harvests": self.last_events["harvests"],
            "last_rotted": self.last_events["rotted"],
            "leader": self.leader,
            "lead_changes": self.lead_changes,
            "done": self.done,
        }

    def observation(self, slot: int) -> dict[str, Any]:
        view = self.snapshot()
        view["type"] = "observation"
        view["slot"] = slot
        return view

    # ---- dynamics ---------------------------------------------------------------------------------
    def step(self, actions: list[str]) -> dict[str, Any]:
        """Advance one tick. ``actions[i]`` is slot i's move; anything unknown counts as ``stay``."""
        if self.done:
            raise RuntimeError("episode is over")
        if len(actions) != self.slots:
            raise ValueError(f"expected {self.slots} actions, got {len(actions)}")
        moves = [action if action in MOVES else "stay" for action in actions]
        new_positions = []
        for slot, move in enumerate(moves):
            x, y = self.positions[slot]
            dx, dy = MOVES[move]
            nx, ny = x + dx, y + dy
            if 0 <= nx < self.width and 0 <= ny < self.height:
                new_positions.append((nx, ny))
            else:
                if move != "stay":
                    self.wall_bumps[slot] += 1
                new_positions.append((x, y))
        self.positions = new_positions
        self.tick += 1

        harvests: list[list[int | float]] = []
        rotted: list[int] = []
        for tree in self.trees:
            fruit = self.ripe_fruit(tree)
            if fruit is not None:
                pickers = [slot for slot, pos in enumerate(self.positions) if pos == (tree.x, tree.y)]
                if pickers:
                    share = fruit.value * SHARE_UNIT // len(pickers)
                    self.harvested[fruit.id] = pickers
                    if len(pickers) > 1:
                        self.contested += 1
                    for slot in pickers:
                        self.score_units[slot] += share
                        self.fruit_harvested[slot] += 1
                        harvests.append([slot, tree.id, score_value(share)])
            for fruit in tree.fruits:
                if fruit.rot == self.tick and fruit.id not in self.harvested:
                    self.rotted.add(fruit.id)
                    rotted.append(tree.id)
        self._update_leader()
        self.last_events = {"harvests": harvests, "rotted": rotted}
        self.frames.append(self._frame(actions=moves))
        return self.last_events

    def _update_leader(self) -> None:
        best = max(self.score_units)
        leaders = [slot for slot, units in enumerate(self.score_units) if units == best]
        if len(leaders) == 1 and best > 0:
            if self.leader is not None and leaders[0] != self.leader:
                self.lead_changes += 1
            self.leader = leaders[0]

    def _frame(self, actions: list[str] | None) -> dict[str, Any]:
        fruit_values = []
        for tree in self.trees:
            ripe = self.ripe_fruit(tree)
            fruit_values.append(0 if ripe is None else ripe.value)
        return {
            "tick": self.tick,
            "positions": [list(pos) for pos in self.positions],
            "scores": self.scores(),
            "actions": actions,
            "harvests": self.last_events["harvests"] if actions is not None else [],
            "rotted": self.last_events["rotted"] if actions is not None else [],
            "fruit": fruit_values,
            "leader": self.leader,
        }

    # ---- outcome ------------------------------------------------------------------------------
    def winner(self) -> int | None:
        best = max(self.score_units)
        leaders = [slot for slot, units in enumerate(self.score_units) if units == best]
        return leaders[0] if len(leaders) == 1 else None

    def results(self) -> dict[str, Any]:
        """Deterministic results (the server may add ``episode_seconds``)."""
        return {
            "scores": self.scores(),
            "fruit_harvested": list(self.fruit_harvested),
            "ticks": self.tick,
            "winner": self.winner(),
            "lead_changes": self.lead_changes,
            "fruit_rotted": len(self.rotted),
            "contested_harvests": self.contested,
        }

    def replay(self) -> dict[str, Any]:
        return {
            "format": REPLAY_FORMAT,
            "game": GAME_NAME,
            "version": GAME_VERSION,
            "config": public_config(self.config),
            "width": self.width,
            "height": self.height,
            "max_ticks": self.max_ticks,
            "player_names": self.names,
            "policy_names": self.policy_names,
            "trees": [
                {
                    "id": tree.id,
                    "x": tree.x,
                    "y": tree.y,
                    "schedule": [[f.ripe, f.rot, f.value] for f in tree.fruits],
                }
                for tree in self.trees
            ],
            "frames": self.frames,
            "results": self.results(),
        }


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def replay_bytes(game: Orchard) -> bytes:
    return canonical_json(game.replay()) + b"\n"


def play_episode(config: dict[str, Any], policies: list, policy_names: list[str] | None = None) -> Orchard:
    """Run a whole episode in-process: ``policies[i](observation) -> move`` for slot i."""
    game = Orchard(config, policy_names=policy_names)
    while not game.done:
        game.step([policy(game.observation(slot)) for slot, policy in enumerate(policies)])
    return game
