"""Play one league round now, without Dagster: open (or join) the round, play its episodes.

Several runners may work on the same round at once (other processes, the Dagster layer): episodes
are claimed atomically, so each is played once, and every runner keeps advancing the round until
the commissioner completes it. A runner that finds the round already open joins it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coworld_pipeline.league import claims, ids, rounds
from coworld_pipeline.league.handoff import EpisodePlayer
from coworld_pipeline.league.play import EpisodeBatch, Played
from coworld_pipeline.league.unit import Store
from coworld_pipeline.league.views import RoundProgress

ProgressCallback = Callable[[RoundProgress, "Played | None"], None]
REQUEUE_EVERY_SECONDS = min(5.0, claims.LEASE_SECONDS / 3)


@dataclass
class RoundRun:
    league_id: str  # raw
    round_id: str | None  # raw
    opened: bool
    resumed: bool
    refused: str | None = None
    progress: RoundProgress | None = None
    played: dict[str, str] = field(default_factory=dict)  # raw ereq id -> status
    wall_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "league_id": ids.public("league", self.league_id),
            "round_id": ids.public("round", self.round_id),
            "opened": self.opened,
            "resumed": self.resumed,
            "refused": self.refused,
            "status": self.progress.status if self.progress else None,
            "error": self.progress.error if self.progress else None,
            "episodes": dict(self.progress.counts) if self.progress else {},
            "played_here": {ids.public("ereq", k): v for k, v in self.played.items()},
            "wall_seconds": round(self.wall_seconds, 3),
        }


def _open_or_join(store: Store, league_id: str, trigger: str) -> tuple[str | None, bool, str | None]:
    """(round id, joined an open round, why none could be opened)."""
    round_id = rounds.open_round_of(store, league_id)
    if round_id is not None:
        return round_id, True, None
    opening = rounds.open_round(store, league_id, trigger)
    if opening.opened:
        return opening.round_id, False, None
    # Refused because another runner opened one a moment ago? Then join that one.
    round_id = rounds.open_round_of(store, league_id)
    return round_id, round_id is not None, None if round_id else opening.refused


def run_round(
    store: Store,
    league_id: str,
    player: EpisodePlayer,
    parallel: int = 1,
    trigger: str = "cli",
    on_progress: ProgressCallback | None = None,
    poll_seconds: float = 0.25,
) -> RoundRun:
    """Open (or join) the league's round and play it to the end, `parallel` episodes at a time."""
    started = time.monotonic()
    claims.requeue_stale(store)  # episodes whose runner died: their lease lapsed
    round_id, resumed, refused = _open_or_join(store, league_id, trigger)
    if round_id is None:
        return RoundRun(
            league_id, None, False, False, refused=refused, wall_seconds=time.monotonic() - started
        )
    run = RoundRun(league_id, round_id, opened=not resumed, resumed=resumed)
    progress = rounds.advance_round(store, round_id)
    if on_progress:
        on_progress(progress, None)
    last_requeue = time.monotonic()
    with EpisodeBatch(store, player, parallel) as batch:
        while True:
            if not progress.done and batch.free > 0:
                busy = batch.in_flight
                for eid in claims.pending_episodes(store, round_id):
                    if batch.free <= 0:
                        break
                    if eid not in busy:
                        batch.submit(eid)
            if not batch.in_flight:
                progress = rounds.advance_round(store, round_id)
                if on_progress:
                    on_progress(progress, None)
                if progress.done:
                    break
                if not progress.pending and progress.running:
                    # Episodes running elsewhere: poll the database, and take back the ones whose
                    # runner died (their lease lapsed) so that this round never waits forever.
                    time.sleep(poll_seconds)
                    if time.monotonic() - last_requeue >= REQUEUE_EVERY_SECONDS:
                        claims.requeue_stale(store)
                        last_requeue = time.monotonic()
                continue
            for played in batch.wait_any():
                run.played[played.ereq_id] = played.status
                progress = rounds.advance_round(store, round_id)
                if on_progress:
                    on_progress(progress, played)
    run.progress = progress
    run.wall_seconds = time.monotonic() - started
    return run
