"""Play one league round now, without Dagster: open (or join) the round, run its episodes in a thread pool.

Several runners may work on the same round at once (other processes, the Dagster layer): episodes
are claimed atomically, so each is played once, and every runner keeps advancing the round until
the commissioner completes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from coworld_pipeline.league import ids
from coworld_pipeline.league.service import EpisodeRunner, LeagueService, RoundProgress

ProgressCallback = Callable[[RoundProgress, "tuple[str, str] | None"], None]


@dataclass
class RoundRun:
    league_id: str
    round_id: str | None
    opened: bool
    resumed: bool
    refused: str | None = None
    progress: RoundProgress | None = None
    played: dict[str, str] = field(default_factory=dict)
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
            "episodes": self.progress.counts if self.progress else {},
            "played_here": {ids.public("ereq", k): v for k, v in self.played.items()},
            "wall_seconds": round(self.wall_seconds, 3),
        }


def run_round(
    service: LeagueService,
    league_ref: str,
    parallel: int = 1,
    runtime_name: str = "process",
    trigger: str = "cli",
    on_progress: ProgressCallback | None = None,
    episode_runner: EpisodeRunner | None = None,
    artifact_store: Any = None,
    poll_seconds: float = 0.25,
) -> RoundRun:
    started = time.monotonic()
    league_id = service.resolve_league_id(league_ref)
    timeout = float(service.leagues(league_id)[0]["failure_policy"].get("episode_timeout_seconds", 600.0))
    service.requeue_stale(timeout * 1.5 + 60)  # episodes whose worker died long ago
    round_id = service.open_round_for(league_id)
    resumed = round_id is not None
    if round_id is None:
        round_id = service.open_round(league_id, trigger)
        if round_id is None:
            refused = service.events(league_id, event_type="round_refused", limit=1)
            reason = refused[-1]["payload"].get("reason") if refused else "refused"
            if not refused:  # lost a race: another process opened it; join that one
                round_id = service.open_round_for(league_id)
            if round_id is None:
                return RoundRun(
                    league_id, None, False, False, refused=reason, wall_seconds=time.monotonic() - started
                )
            resumed = True
    run = RoundRun(league_id, round_id, opened=not resumed, resumed=resumed)
    progress = service.advance_round(round_id)
    if on_progress:
        on_progress(progress, None)
    inflight: dict[Future[str], str] = {}
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="episode") as pool:
        while True:
            if not progress.done:
                busy = set(inflight.values())
                for eid in service.pending_episodes(round_id):
                    if len(inflight) >= parallel:
                        break
                    if eid not in busy:
                        fut = pool.submit(
                            service.execute_episode, eid, runtime_name, artifact_store, episode_runner
                        )
                        inflight[fut] = eid
            if not inflight:
                progress = service.advance_round(round_id)
                if on_progress:
                    on_progress(progress, None)
                if progress.done:
                    break
                if not progress.pending and progress.running:
                    time.sleep(poll_seconds)  # episodes running in another process
                continue
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for fut in done:
                eid = inflight.pop(fut)
                status = fut.result()
                run.played[eid] = status
                progress = service.advance_round(round_id)
                if on_progress:
                    on_progress(progress, (eid, status))
    run.progress = progress
    run.wall_seconds = time.monotonic() - started
    return run
