"""A player that connects and then never acts: reported through COGAME_PLAYER_FAILURE_URI, not waited for.

The silent player is a real process on a real websocket: it reads every message the game sends and
answers none of them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from orchard.engine import ConfigError, validate_config
from orchard_testlib import ORCHARD_DIR, PYTHON, GameProcess, make_config, start_game, subprocess_env

SILENT_PLAYER = r"""
import json, os
from websockets.sync.client import connect
seen = 0
with connect(os.environ["COWORLD_PLAYER_WS_URL"], max_size=None) as ws:
    for raw in ws:
        message = json.loads(raw)
        if message.get("type") == "observation":
            seen += 1
            print(f"observation for tick {message.get('tick')}, not answering", flush=True)
        if message.get("type") == "final":
            print("final: " + json.dumps(message), flush=True)
            break
"""


def start_silent_player(game: GameProcess, slot: int) -> subprocess.Popen:
    log = open(game.workdir / f"silent{slot}.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [PYTHON, "-c", SILENT_PLAYER],
        cwd=ORCHARD_DIR,
        env=subprocess_env({"COWORLD_PLAYER_WS_URL": game.player_url(slot)}),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    game.players.append(proc)
    return proc


def play_with_a_silent_slot(tmp_path: Path, report: bool, **config: object) -> GameProcess:
    env = {"COGAME_PLAYER_FAILURE_URI": (tmp_path / "player_failure.json").as_uri()} if report else {}
    game = start_game(tmp_path / "g", make_config(**config), extra_env=env)
    try:
        game.start_player(0, "greedy")
        silent = start_silent_player(game, 1)
        # Bounded: the game ends by itself long before these waits run out.
        assert game.wait(timeout=60) == 0, game.stderr()
        assert silent.wait(timeout=15) == 0
        assert game.players[0].wait(timeout=15) == 0
    finally:
        game.stop()
    return game


@pytest.mark.parametrize("tick_rate", [0, 20], ids=["bot-speed", "real-time"])
def test_connected_player_that_never_acts_is_reported(tmp_path: Path, tick_rate: float):
    # With tick_rate 0 each turn would wait 30 s for the silent slot: the deadline ends it well before.
    game = play_with_a_silent_slot(
        tmp_path,
        report=True,
        seed=21,
        max_ticks=400,
        tick_rate=tick_rate,
        turn_timeout_seconds=30,
        silent_player_timeout_seconds=1.5,
    )
    report = json.loads((tmp_path / "player_failure.json").read_text())
    assert set(report) == {"message", "failed_policy_index", "kind"}
    assert report["failed_policy_index"] == 1 and report["kind"] == "player_error"
    assert report["message"].startswith("slot 1 connected but sent no action for 1.5 s"), report
    assert not (game.workdir / "results.json").exists()
    silent_log = (game.workdir / "silent1.log").read_text()
    assert "observation for tick" in silent_log, "the silent player was connected and observed"
    assert '"aborted": true' in silent_log
    assert "writing player failure report" in game.stdout()


def test_without_a_failure_uri_the_silent_slot_stays_and_the_game_finishes(tmp_path: Path):
    game = play_with_a_silent_slot(
        tmp_path,
        report=False,
        seed=22,
        max_ticks=30,
        tick_rate=0,
        turn_timeout_seconds=0.05,
        silent_player_timeout_seconds=0.2,
    )
    results = game.results()
    assert results["ticks"] == 30 and results["scores"][1] == 0
    assert game.stdout().count("slot 1 connected but sent no action") == 1  # said once, not every tick


def test_zero_never_judges_a_player_silent(tmp_path: Path):
    game = play_with_a_silent_slot(
        tmp_path,
        report=True,
        seed=23,
        max_ticks=20,
        tick_rate=0,
        turn_timeout_seconds=0.05,
        silent_player_timeout_seconds=0,
    )
    assert not (tmp_path / "player_failure.json").exists()
    assert game.results()["ticks"] == 20


def test_silent_player_timeout_is_validated():
    config = make_config()
    assert validate_config(config)["silent_player_timeout_seconds"] == 30
    for bad in (-1, "5", 3601, float("nan")):
        with pytest.raises(ConfigError, match="silent_player_timeout_seconds"):
            validate_config({**config, "silent_player_timeout_seconds": bad})
