"""Fixtures for the Orchard tests (helpers live in orchard_testlib.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from orchard_testlib import ORCHARD_DIR, GameProcess, start_game


@pytest.fixture
def game_factory(tmp_path: Path) -> Iterator[Callable[..., GameProcess]]:
    started: list[GameProcess] = []

    def factory(config: dict[str, Any], name: str = "game", **kwargs: Any) -> GameProcess:
        game = start_game(tmp_path / name, config, **kwargs)
        started.append(game)
        return game

    yield factory
    for game in started:
        game.stop()


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    return json.loads((ORCHARD_DIR / "coworld_manifest.json").read_text())
