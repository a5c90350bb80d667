"""`EpisodeBatch` / `play_batch`: a slot is busy only while an episode plays.

Two ways a slot used to sit idle between episodes: while the finished episode's outcome was being
recorded, and while the caller of `play_batch` (the Dagster asset, writing events) was busy with an
earlier result. Both are shown with episodes that wait on each other (threading events, bounded by a
timeout), so the old behaviour deadlocks into a clear failure instead of passing slowly.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import coworld_pipeline.league.play as play_module
from coworld_pipeline.league.play import CallablePlayer, play_batch
from coworld_pipeline.league.service import LeagueService
from tests.league.conftest import orchard_league, scores_by_slot

TIMEOUT = 60.0


def pending_round(svc: LeagueService, episodes_per_pair: int) -> list[str]:
    league = orchard_league(svc, "batch", commissioner_config={"episodes_per_pair": episodes_per_pair})
    round_id = svc.open_round(league.id, "test").round_id
    return svc.pending_episodes(round_id)


class Gates:
    """Per-episode `started` events, and `release` events an episode waits for before it ends."""

    def __init__(self, ereq_ids: list[str], held: set[str]):
        self.started = {e: threading.Event() for e in ereq_ids}
        self.release = {e: threading.Event() for e in ereq_ids}
        for e in set(ereq_ids) - held:
            self.release[e].set()
        self.score = scores_by_slot(1.0, 2.0)

    def player(self) -> CallablePlayer:
        def fn(request, workspace: Path, secrets):
            ereq = request.episode_tags["episode_request_id"].removeprefix("ereq_")
            self.started[ereq].set()
            assert self.release[ereq].wait(TIMEOUT), f"{ereq} was never released"
            return self.score(request, workspace, secrets)

        return CallablePlayer(fn)


def test_a_slot_freed_while_the_caller_is_busy_starts_the_next_episode(svc: LeagueService):
    a, b, c, d = pending_round(svc, episodes_per_pair=2)[:4]
    gates = Gates([a, b, c, d], held={b, c})
    batch = play_batch(svc.store, gates.player(), [a, b, c, d], parallelism=2)
    first = next(batch)  # a finished (c took its slot); the caller now holds its result
    assert first.ereq_id == a and first.status == "succeeded"
    gates.release[b].set()  # b ends while the caller is still busy with a's result
    assert gates.started[d].wait(TIMEOUT), "d did not start until the caller asked for more"
    gates.release[c].set()
    rest = list(batch)
    assert sorted(p.ereq_id for p in rest) == sorted([b, c, d])
    assert {p.status for p in rest} == {"succeeded"}


def test_the_next_episode_starts_while_the_last_outcome_is_being_recorded(
    svc: LeagueService, monkeypatch: pytest.MonkeyPatch
):
    a, b = pending_round(svc, episodes_per_pair=1)[:2]
    gates = Gates([a, b], held=set())
    record = play_module.record_outcome

    def record_after_b_started(store, ereq_id, attempt, outcome):
        if ereq_id == a:  # a's slot is free: b must be playing before a's outcome is written
            assert gates.started[b].wait(TIMEOUT), "b waited for a's outcome to be recorded"
        return record(store, ereq_id, attempt, outcome)

    monkeypatch.setattr(play_module, "record_outcome", record_after_b_started)
    played = list(play_batch(svc.store, gates.player(), [a, b], parallelism=1))
    # b's outcome is not held back, so it may be recorded (and yielded) before a's: order is free.
    assert sorted((p.ereq_id, p.status) for p in played) == sorted([(a, "succeeded"), (b, "succeeded")])
    assert svc.round(svc.episode(a).round_id).episodes == {"succeeded": 2, "pending": 1}
