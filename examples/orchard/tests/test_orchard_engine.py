"""Pure engine rules and determinism."""

from __future__ import annotations

import json

import pytest
from orchard.engine import (
    ConfigError,
    Orchard,
    play_episode,
    replay_bytes,
    start_positions,
    validate_config,
)
from orchard.players import greedy, planner
from orchard.players import random as random_player
from orchard_testlib import make_config


def _config(**extra):
    config = make_config(**extra)
    config.pop("tokens")
    return config


def test_same_seed_same_actions_identical_replay_bytes():
    first = play_episode(_config(seed=11, max_ticks=80), [greedy.choose_action, planner.choose_action])
    second = play_episode(_config(seed=11, max_ticks=80), [greedy.choose_action, planner.choose_action])
    assert replay_bytes(first) == replay_bytes(second)
    other = play_episode(_config(seed=12, max_ticks=80), [greedy.choose_action, planner.choose_action])
    assert replay_bytes(first) != replay_bytes(other)


def test_replay_is_canonical_json_with_one_frame_per_tick():
    game = play_episode(_config(seed=3, max_ticks=30), [random_player.choose_action, greedy.choose_action])
    replay = json.loads(replay_bytes(game))
    assert replay["format"] == "orchard-replay/1"
    assert [frame["tick"] for frame in replay["frames"]] == list(range(31))
    assert "tokens" not in replay["config"]
    assert "episode_seconds" not in replay["results"]
    assert replay["results"] == game.results()


def test_board_is_point_symmetric_and_trees_avoid_starts():
    game = Orchard(_config(seed=21, trees=12, width=12, height=10))
    spots = {(tree.x, tree.y): [(f.ripe, f.rot, f.value) for f in tree.fruits] for tree in game.trees}
    assert len(spots) == 12
    for (x, y), schedule in spots.items():
        assert spots[(11 - x, 9 - y)] == schedule
    starts = set(start_positions(12, 10, 4))
    assert not starts & set(spots)


def test_moves_walls_and_harvest_split():
    game = Orchard(_config(seed=8, max_ticks=200))
    game.step(["up", "right"])  # slot 0 bumps the top edge, slot 1 bumps the right edge
    assert game.positions == [(0, 0), (game.width - 1, game.height - 1)]
    assert game.wall_bumps == [1, 1]
    # put both players on a tree just before its first fruit ripens, then wait together
    tree = game.trees[0]
    fruit = tree.fruits[0]
    game.positions = [(tree.x, tree.y), (tree.x, tree.y)]
    while game.tick < fruit.ripe - 1:
        game.step(["stay", "stay"])
        assert game.ripe_fruit(tree) is None or game.tick >= fruit.ripe
    before = list(game.score_units)
    events = game.step(["stay", "stay"])
    assert game.tick == fruit.ripe
    gained = [after - b for after, b in zip(game.score_units, before, strict=True)]
    assert gained[0] == gained[1] == fruit.value * 12 // 2
    assert sorted(h[0] for h in events["harvests"] if h[1] == tree.id) == [0, 1]
    assert game.contested == 1


def test_unpicked_fruit_rots():
    game = Orchard(_config(seed=9, max_ticks=200))
    fruit = game.trees[0].fruits[0]
    while game.tick < fruit.rot:
        game.step(["stay", "stay"])
    assert fruit.id in game.rotted
    assert game.ripe_fruit(game.trees[0]) is None or game.ripe_fruit(game.trees[0]).id != fruit.id


def test_lead_changes_and_winner():
    game = Orchard(_config(seed=1, max_ticks=10))
    game.score_units = [12, 0]
    game._update_leader()
    game.score_units = [12, 24]
    game._update_leader()
    game.score_units = [36, 24]
    game._update_leader()
    assert game.lead_changes == 2
    assert game.winner() == 0
    game.score_units = [36, 36]
    assert game.winner() is None


def test_observation_exposes_upcoming_ripening():
    game = Orchard(_config(seed=4))
    obs = game.observation(1)
    assert obs["slot"] == 1 and obs["tick"] == 0 and obs["seed"] == 4
    upcoming = [entry for tree in obs["trees"] for entry in tree["upcoming"]]
    assert upcoming, "players must see ripening times ahead"
    assert all(0 < entry["ripe"] <= obs["lookahead"] for entry in upcoming)


def test_players_are_pure_functions_of_the_observation():
    game = Orchard(_config(seed=6))
    for module in (random_player, greedy, planner):
        obs = game.observation(0)
        assert module.choose_action(obs) == module.choose_action(json.loads(json.dumps(obs)))
        assert module.choose_action(obs) in ("up", "down", "left", "right", "stay")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tokens": ["a"]}, "tokens"),
        ({"tokens": ["a", "b", "c"]}, "3 tokens but 2 players"),
        ({"max_ticks": 0}, "max_ticks"),
        ({"tick_rate": -1}, "tick_rate"),
        ({"colour": "red"}, "unknown config keys"),
        ({"players": [{"name": ""}, {"name": "b"}]}, "name"),
        ({"trees": 40}, "too many trees"),
    ],
)
def test_config_validation(change, message):
    config = {**make_config(), **change}
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_config_defaults():
    config = validate_config(make_config())
    assert (config["width"], config["height"], config["trees"]) == (11, 9, 10)
    assert config["player_connect_timeout_seconds"] == 30
