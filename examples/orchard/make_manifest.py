"""Regenerate coworld_manifest.json and coworld_manifest_template.json from this file and docs/*.md.

    python examples/orchard/make_manifest.py          # rewrite both files
    python examples/orchard/make_manifest.py --check  # exit 1 if either file is stale

The docs are inlined as text documents because the manifest must be self-contained (no public URL here).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSION = "0.1.0"
IMAGE = f"coworld/orchard:{VERSION}"
TEMPLATE_IMAGE = "{{ORCHARD_IMAGE}}"
# 0.1.64 reporters are references to platform reporter versions ("owner/name@version"). The
# container that implements this one on a container platform (ours) is declared in the results
# schema's `x-coworld-reporters` keyword: the package image runs `python -m orchard.reporter`.
REPORTER_REFERENCE = "coworldexamples/orchard-reporter@1"
REPORTER_IMPLEMENTATION = {
    "id": "orchard-reporter",
    "name": "Orchard reporter",
    "description": "Markdown match report plus a parquet event log (ts, player, key, value).",
    "run": ["python", "-m", "orchard.reporter"],
}
# The 0.1.64 certifier requires at least three.
TAGS = ["grid", "simultaneous-move", "multiplayer"]

CONFIG_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Orchard game config",
    "type": "object",
    "additionalProperties": False,
    "required": ["tokens", "players", "seed", "max_ticks", "tick_rate"],
    "properties": {
        "tokens": {
            "description": "Per-slot secrets, injected by the runner; one per entry of players.",
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 2,
            "maxItems": 4,
        },
        "players": {
            "description": "One entry per slot; its length is the slot count of the config.",
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 1}},
            },
            "minItems": 2,
            "maxItems": 4,
        },
        "seed": {"type": "integer", "description": "Board layout and ripening schedule seed."},
        "max_ticks": {"type": "integer", "minimum": 1, "maximum": 10000},
        "tick_rate": {
            "type": "number",
            "minimum": 0,
            "description": "Ticks per second; 0 = advance as soon as every connected player has acted.",
        },
        "width": {"type": "integer", "minimum": 5, "maximum": 40, "default": 11},
        "height": {"type": "integer", "minimum": 5, "maximum": 40, "default": 9},
        "trees": {
            "type": "integer",
            "minimum": 1,
            "maximum": 60,
            "default": 10,
            "description": "Number of trees; must also be <= width*height/3.",
        },
        "player_connect_timeout_seconds": {"type": "number", "minimum": 0, "default": 30},
        "turn_timeout_seconds": {
            "type": "number",
            "minimum": 0.01,
            "maximum": 3600,
            "default": 10,
            "description": "With tick_rate 0: how long to wait for connected players to act before the tick "
            "advances anyway (late players stay).",
        },
        "silent_player_timeout_seconds": {
            "type": "number",
            "minimum": 0,
            "maximum": 3600,
            "default": 30,
            "description": "A connected player that sends no action for this long (while the game waits on "
            "it, paused time excluded) is reported through COGAME_PLAYER_FAILURE_URI and the episode ends "
            "without results; without that URI it just stays. 0 never judges a player silent.",
        },
        "final_linger_seconds": {
            "type": "number",
            "minimum": 0,
            "maximum": 600,
            "default": 5,
            "description": "After the end, how long the game waits for a /global viewer that has not seen "
            "the final state yet before exiting.",
        },
    },
}

RESULTS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Orchard results",
    "type": "object",
    "additionalProperties": False,
    "required": ["scores", "fruit_harvested", "ticks", "winner", "lead_changes"],
    "properties": {
        "scores": {
            "description": "Total fruit value harvested per slot (shared fruit split equally).",
            "type": "array",
            "items": {"type": "number", "minimum": 0},
            "minItems": 2,
            "maxItems": 4,
            "x-display": {"label": "Fruit value", "higher_is_better": True, "per_seat": True},
        },
        "fruit_harvested": {
            "description": "Number of fruit (or shares of fruit) each slot harvested.",
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
            "minItems": 2,
            "maxItems": 4,
            "x-display": {"label": "Fruit picked", "higher_is_better": True, "per_seat": True},
        },
        "ticks": {"type": "integer", "minimum": 0},
        "winner": {
            "description": "Slot with the strictly highest score, null on a tie.",
            "type": ["integer", "null"],
            "minimum": 0,
        },
        "lead_changes": {"type": "integer", "minimum": 0},
        "fruit_rotted": {"type": "integer", "minimum": 0},
        "contested_harvests": {"type": "integer", "minimum": 0},
        "episode_seconds": {
            "description": "Wall-clock seconds from game start to results written (not part of the replay).",
            "type": "number",
            "minimum": 0,
        },
    },
    "x-coworld-reporters": {REPORTER_REFERENCE: REPORTER_IMPLEMENTATION},
}


def _doc(name: str) -> dict:
    return {"type": "text", "value": (HERE / "docs" / name).read_text(encoding="utf-8")}


def _runnable(kind: str, ident: str, name: str, description: str, module: str) -> dict:
    return {
        "type": kind,
        "id": ident,
        "name": name,
        "description": description,
        "image": IMAGE,
        "run": ["python", "-m", module],
    }


def names(count: int, prefix: str = "Orchard Keeper") -> list[dict]:
    return [{"name": f"{prefix} {i + 1}"} for i in range(count)]


def build_manifest() -> dict:
    return {
        "tags": TAGS,
        "game": {
            "name": "orchard",
            "version": VERSION,
            "description": "Simultaneous-move grid game for 2-4 players: walk to fruit trees and harvest "
            "fruit as it ripens on a seeded, visible schedule. Contested fruit is split.",
            "owner": "coworld-pipeline examples",
            "config_schema": CONFIG_SCHEMA,
            "results_schema": RESULTS_SCHEMA,
            "runnable": {"type": "game", "image": IMAGE, "run": ["python", "-m", "orchard.game"], "env": {}},
            "protocols": {"player": _doc("player_protocol.md"), "global": _doc("global_protocol.md")},
            "docs": {
                "readme": {"type": "text", "value": (HERE / "README.md").read_text(encoding="utf-8")},
                "pages": [
                    {"id": "rules.md", "title": "Orchard rules", "content": _doc("rules.md")},
                    {"id": "play_orchard.md", "title": "Playing Orchard", "content": _doc("play_orchard.md")},
                ],
            },
        },
        "player": [
            _runnable(
                "player",
                "random",
                "Random",
                "Uniformly random moves, seeded from the config seed.",
                "orchard.players.random",
            ),
            _runnable(
                "player",
                "greedy",
                "Greedy",
                "Chases the best value-per-step ripe fruit in reach.",
                "orchard.players.greedy",
            ),
            _runnable(
                "player",
                "planner",
                "Planner",
                "Searches sequences of future harvests and avoids races it would lose.",
                "orchard.players.planner",
            ),
        ],
        "reporter": [{"reporter": REPORTER_REFERENCE}],
        "commissioner": [],
        "grader": [
            _runnable(
                "grader",
                "orchard-drama-grader",
                "Orchard drama grader",
                "Scores how interesting an episode was from lead changes and the final margin.",
                "orchard.grader",
            ),
        ],
        "diagnoser": [
            _runnable(
                "diagnoser",
                "orchard-diagnoser",
                "Orchard diagnoser",
                "Advice for one slot: fruit it missed, races it lost, wasted moves.",
                "orchard.diagnoser",
            ),
        ],
        "optimizer": [
            _runnable(
                "optimizer",
                "orchard-optimizer",
                "Orchard optimizer",
                "Turns reports, grades and diagnoses into concrete policy recommendations.",
                "orchard.optimizer",
            ),
        ],
        "variants": [
            {
                "id": "duel",
                "name": "Duel",
                "description": "Two players, 100 ticks at bot speed (tick_rate 0).",
                "game_config": {"players": names(2), "seed": 1, "max_ticks": 100, "tick_rate": 0},
            },
            {
                "id": "duel-live",
                "name": "Duel (live)",
                "description": "Two players, 160 ticks at 8 ticks per second, for humans and spectators.",
                "game_config": {
                    "players": names(2),
                    "seed": 2,
                    "max_ticks": 160,
                    "tick_rate": 8,
                    "player_connect_timeout_seconds": 120,
                },
            },
            {
                "id": "four",
                "name": "Four-way",
                "description": "Four players on a 13x11 board with 16 trees, 120 ticks at bot speed.",
                "game_config": {
                    "players": names(4),
                    "seed": 3,
                    "max_ticks": 120,
                    "tick_rate": 0,
                    "width": 13,
                    "height": 11,
                    "trees": 16,
                },
            },
        ],
        "certification": {
            "game_config": {
                "players": [{"name": "Greedy"}, {"name": "Planner"}, {"name": "Random"}],
                "seed": 7,
                "max_ticks": 60,
                "tick_rate": 0,
            },
            # Every bundled player has a slot (the 0.1.64 certifier requires it).
            "players": [{"player_id": "greedy"}, {"player_id": "planner"}, {"player_id": "random"}],
        },
    }


def _replace_images(node, image: str):
    if isinstance(node, dict):
        return {
            key: (image if key == "image" else _replace_images(value, image)) for key, value in node.items()
        }
    if isinstance(node, list):
        return [_replace_images(item, image) for item in node]
    return node


def build_template() -> dict:
    template = _replace_images(copy.deepcopy(build_manifest()), TEMPLATE_IMAGE)
    del template["game"]["version"]
    return template


def render(value: dict) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only verify the files are up to date")
    args = parser.parse_args(argv)
    outputs = {
        HERE / "coworld_manifest.json": render(build_manifest()),
        HERE / "coworld_manifest_template.json": render(build_template()),
    }
    stale = [path for path, text in outputs.items() if not path.exists() or path.read_text("utf-8") != text]
    if args.check:
        for path in stale:
            print(f"stale: {path} (run python {Path(__file__).name})", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
