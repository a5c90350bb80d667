"""Run requests for episode batches, shared by the commissioner sensor and the round schedule.

A run of `play_episodes` plays a partition range of at most K adjacent episode keys (planning.py);
how many episodes it plays at once depends on how many slots of the `coworld_episodes` pool are idle.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from coworld_pipeline.defs.league.jobs import PLAY_EPISODES
from coworld_pipeline.defs.league.planning import KeyOrder, plan_batches
from coworld_pipeline.defs.league.settings import (
    EPISODE_POOL,
    TAG_KIND,
    TAG_LEAGUE,
    TAG_PARALLELISM,
    TAG_ROUND,
    OrchestrationSettings,
)
from coworld_pipeline.league.models import utcnow
from coworld_pipeline.league.views import RoundView

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
SCHEDULE_TRIGGER = "schedule"
SCHEDULE_HANDOFF_SECONDS = 20


def opened_by_schedule_just_now(rnd: RoundView) -> bool:
    """A round the schedule opened less than SCHEDULE_HANDOFF_SECONDS ago (it requested its first runs)."""
    if not rnd.trigger.startswith(SCHEDULE_TRIGGER) or rnd.started_at is None:
        return False
    return utcnow() - rnd.started_at < timedelta(seconds=SCHEDULE_HANDOFF_SECONDS)


def episode_run_slots(instance: dg.DagsterInstance) -> int:
    """How many episode runs may execute at once: the `coworld_episodes` pool limit (default 1)."""
    try:
        info = instance.event_log_storage.get_concurrency_info(EPISODE_POOL)
        if info.slot_count:
            return max(1, int(info.slot_count))
        return max(1, int(instance.global_op_concurrency_default_limit or 1))
    except Exception:
        return 1


def round_episode_runs_in_flight(instance: dg.DagsterInstance, round_id: str) -> bool:
    """Whether an episode run of this round is queued or in progress."""
    episode_runs = dg.RunsFilter(statuses=IN_FLIGHT, tags={TAG_ROUND: round_id, TAG_KIND: "episodes"})
    return bool(instance.get_run_records(episode_runs, limit=1))


def free_episode_slots(instance: dg.DagsterInstance) -> int:
    """Run slots of the `coworld_episodes` pool not taken by a queued or in-progress episode run."""
    slots = episode_run_slots(instance)
    in_flight = dg.RunsFilter(statuses=IN_FLIGHT, tags={TAG_KIND: "episodes"})
    busy = instance.get_run_records(in_flight, limit=slots)
    return max(0, slots - len(busy))


def episode_run_requests(
    order: KeyOrder,
    todo: list[str],
    round_id: str,
    league_id: str,
    settings: OrchestrationSettings,
    max_runs: int,
    with_run_keys: bool = False,
) -> list[dg.RunRequest]:
    """Runs of `play_episodes` for these episode keys: partition ranges of at most K adjacent keys.

    Schedules need run keys when they return several runs; the sensor does not use them (a retried
    batch may repeat a range). Call `with_parallelism` on the result before returning it.
    """
    return [
        dg.RunRequest(
            job_name=PLAY_EPISODES,
            run_key=f"{round_id}/{batch.start}..{batch.end}" if with_run_keys else None,
            tags={**batch.tags(), TAG_KIND: "episodes", TAG_ROUND: round_id, TAG_LEAGUE: league_id},
        )
        for batch in plan_batches(order, todo, settings.episodes_per_run, max_runs)
    ]


def with_parallelism(
    requests: list[dg.RunRequest], settings: OrchestrationSettings, free_slots: int
) -> list[dg.RunRequest]:
    """Tag each run with the episodes it plays at once.

    Normally the per-run parallelism p. When fewer runs are requested than there are free pool slots
    (a small round), each run gets p x (free slots // runs) instead: one run of 40 episodes playing
    4 at a time starts faster than two runs of 20 playing 2 at a time (one run-worker start-up, not
    two), for the same number of episodes at once.
    """
    boost = max(1, free_slots // len(requests)) if requests else 1
    parallelism = str(settings.parallelism * boost)
    return [r.with_replaced_attrs(tags={**r.tags, TAG_PARALLELISM: parallelism}) for r in requests]
