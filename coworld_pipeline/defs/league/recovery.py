"""Finding episodes whose Dagster run died, and putting them back in the queue.

A run records its worker (`coworld/worker=<host>:<pid>`) when it starts. The commissioner sensor
treats a run as dead when Dagster marks it failed or canceled (the code server reports a run worker
killed by SIGKILL within about a second), or when it is still "in progress" but its worker process
on this host is gone (e.g. the code server died with it); such runs are marked failed.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import Any

import dagster as dg

from coworld_pipeline.runtime.janitor import pid_alive

TAG_WORKER = "coworld/worker"


def worker_tag() -> dict[str, str]:
    return {TAG_WORKER: f"{socket.gethostname()}:{os.getpid()}"}


def worker_gone(tags: dict[str, str]) -> bool:
    """True when the run's worker ran on this host and that process no longer exists."""
    host, _, pid = tags.get(TAG_WORKER, "").rpartition(":")
    return bool(host) and host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def fail_lost_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    instance.report_engine_event(
        f"coworld: the run worker ({run.tags.get(TAG_WORKER)}) is gone; marking the run failed "
        "so that the commissioner requeues its episodes",
        run,
    )
    instance.report_run_failed(run)


def requeue_lost(service: Any, ereq_ids: Iterable[str], reason: str) -> list[str]:
    """Put episodes that are `running` but whose worker is known dead back to `pending`.

    Recorded as an `interrupted` (infrastructure) failure of the current attempt, so the league's
    retry budget applies and nothing is counted. Rows that are no longer `running` are left alone.
    Uses `LeagueService.requeue_episodes` when the league layer provides it.
    """
    wanted = sorted(set(ereq_ids))
    if not wanted:
        return []
    if hasattr(service, "requeue_episodes"):
        return list(service.requeue_episodes(wanted, reason))

    from sqlalchemy import select

    from coworld_pipeline.league import ids
    from coworld_pipeline.league.models import EpisodeRequestRow, Round
    from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType

    raw_ids = [ids.raw_id("ereq", e) for e in wanted]

    def fn(s: Any) -> list[str]:
        rows = s.execute(
            select(EpisodeRequestRow.id, EpisodeRequestRow.league_id).where(
                EpisodeRequestRow.id.in_(raw_ids), EpisodeRequestRow.status == "running"
            )
        ).all()
        out: list[str] = []
        for league_id in sorted({lid for _, lid in rows}):
            league = service._lock_league(s, league_id)
            for eid, lid in rows:
                if lid != league_id:
                    continue
                e = s.get(EpisodeRequestRow, eid)
                s.refresh(e)
                if e.status != "running":
                    continue
                failure = EpisodeFailure(ErrorType.INTERRUPTED, f"{reason} (attempt {e.attempt})")
                service._record_failure(s, league, s.get(Round, e.round_id), e, e.attempt, failure)
                out.append(ids.public("ereq", e.id))
        return out

    return service._write(fn)
