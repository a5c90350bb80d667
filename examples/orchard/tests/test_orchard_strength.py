"""Bundled players must be ordered by strength: random < greedy < planner.

Uses the pure engine and the same ``choose_action`` functions the websocket players run.
"""

from __future__ import annotations

from orchard.engine import play_episode
from orchard.players import greedy, planner
from orchard.players import random as random_player

EPISODES = 50


def head_to_head(strong, weak, episodes: int = EPISODES, max_ticks: int = 100) -> tuple[int, int, int]:
    wins = ties = losses = 0
    for index in range(episodes):
        config = {
            "players": [{"name": "first"}, {"name": "second"}],
            "seed": 5000 + index,
            "max_ticks": max_ticks,
            "tick_rate": 0,
        }
        if index % 2 == 0:  # alternate seats
            game = play_episode(config, [strong.choose_action, weak.choose_action])
            mine, theirs = game.score_units
        else:
            game = play_episode(config, [weak.choose_action, strong.choose_action])
            theirs, mine = game.score_units
        wins += mine > theirs
        ties += mine == theirs
        losses += mine < theirs
    return wins, ties, losses


def test_planner_beats_greedy_at_least_70_percent():
    wins, ties, losses = head_to_head(planner, greedy)
    assert wins >= 0.7 * EPISODES, (wins, ties, losses)


def test_greedy_beats_random_at_least_90_percent():
    wins, ties, losses = head_to_head(greedy, random_player)
    assert wins >= 0.9 * EPISODES, (wins, ties, losses)


def test_planner_beats_greedy_in_four_player_games():
    total = {"planner": 0, "greedy": 0}
    for index in range(10):
        config = {
            "players": [{"name": f"p{i}"} for i in range(4)],
            "seed": 7000 + index,
            "max_ticks": 120,
            "tick_rate": 0,
            "width": 13,
            "height": 11,
            "trees": 16,
        }
        order = [planner, greedy, planner, greedy] if index % 2 == 0 else [greedy, planner, greedy, planner]
        game = play_episode(config, [module.choose_action for module in order])
        for module, units in zip(order, game.score_units, strict=True):
            total["planner" if module is planner else "greedy"] += units
    assert total["planner"] > total["greedy"], total
