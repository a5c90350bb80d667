"""The round schedule: every minute (COWORLD_ROUND_SCHEDULE), open a round in each league that is due.

A league's cadence is its `interval_minutes` (`coworld league create --interval-minutes`); the
league layer decides which leagues are due (`due_leagues`: not paused, no open round, last round
started at least one interval ago). Opening a round runs the commissioner's first step; the
schedule then adds the round's episode partitions and requests their first runs itself (so a round
does not wait for the next sensor tick), and the commissioner sensor takes it from there.
"""

from collections.abc import Callable

import dagster as dg

from coworld_pipeline.defs.league.jobs import play_episodes_job
from coworld_pipeline.defs.league.partitions import (
    ADD_CHUNK,
    episode_partitions,
    league_partitions,
    round_partitions,
)
from coworld_pipeline.defs.league.planning import KeyOrder
from coworld_pipeline.defs.league.requests import (
    SCHEDULE_TRIGGER,
    episode_run_requests,
    free_episode_slots,
    with_parallelism,
)
from coworld_pipeline.defs.league.resources import LeagueResource
from coworld_pipeline.defs.league.settings import SETTINGS, OrchestrationSettings
from coworld_pipeline.league.readable import league_part
from coworld_pipeline.league.rounds import explain_idle
from coworld_pipeline.league.service import LeagueService


def open_due_rounds(
    service: LeagueService, trigger: str, log: Callable[[str], None] = lambda line: None
) -> tuple[list[str], list[str]]:
    """Open a round in every due league: (raw ids of the rounds opened, why each other league waits).

    `log` gets one line per round opened.

    Every reason is also an event (`schedule_skipped`, once per reason; refusals: `round_refused`).
    """
    decisions = service.schedule_decisions()
    opened, waiting = [], []
    for decision in decisions:
        if not decision.due:
            waiting.append(f"{decision.league_name}: {decision.reason}")
            continue
        opening = service.open_round(decision.league_id, trigger=trigger)
        if opening.round_id is not None:
            opened.append(opening.round_id)
            # The tick says what it did as plainly as what it skipped (the tick's log; its skip
            # reason lists only the leagues left waiting).
            info = service.round(opening.round_id)
            log(f"{decision.league_name}: opened round {info.round_number} ({info.key})")
        else:
            waiting.append(f"{decision.league_name}: {opening.refused}")
    explain_idle(service.store, decisions, trigger)
    return opened, waiting


def first_run_requests(
    instance: dg.DagsterInstance,
    service: LeagueService,
    round_ids: list[str],
    settings: OrchestrationSettings,
) -> list[dg.RunRequest]:
    """Partitions and runs for the first episodes of freshly opened rounds (what the sensor would do
    on its next tick, without waiting for it)."""
    order = KeyOrder(instance.get_dynamic_partitions(episode_partitions.name))
    known_rounds = set(instance.get_dynamic_partitions(round_partitions.name))
    known_leagues = set(instance.get_dynamic_partitions(league_partitions.name))
    requests: list[dg.RunRequest] = []
    for round_id in round_ids:
        info = service.round(round_id)
        league_key = league_part(info.league.name or "", info.league.id)
        key_of = service.episode_keys(round_id)  # partition keys are readable: `league.rN.eM`
        todo = [key_of[e] for e in service.pending_episodes(round_id)]
        for partitions_def, keys in (
            (episode_partitions, order.extend(todo)),
            (round_partitions, [info.key] if info.key not in known_rounds else []),
            (league_partitions, [league_key] if league_key not in known_leagues else []),
        ):
            for chunk in range(0, len(keys), ADD_CHUNK):
                instance.add_dynamic_partitions(partitions_def.name, keys[chunk : chunk + ADD_CHUNK])
        known_leagues.add(league_key)
        requests += episode_run_requests(
            order,
            todo,
            info.id,
            info.league.id,
            settings,
            settings.max_runs_per_tick - len(requests),
            with_run_keys=True,
        )
    return with_parallelism(requests, settings, free_episode_slots(instance))


@dg.schedule(
    name="open_rounds",
    cron_schedule=SETTINGS.round_schedule,
    job=play_episodes_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Opens a round in every league whose cadence (interval_minutes) is due, and requests "
    "the runs of its first episodes; the commissioner sensor drives it from there.",
)
def open_rounds(context: dg.ScheduleEvaluationContext, league: LeagueResource):
    service = league.service()
    if SETTINGS.demo:
        from coworld_pipeline.demo import ensure_demo_league

        ensure_demo_league(service)
    when = context.scheduled_execution_time
    opened, waiting = open_due_rounds(
        service, trigger=f"{SCHEDULE_TRIGGER} {when.isoformat() if when else 'now'}", log=context.log.info
    )
    for line in waiting:
        context.log.info(line)
    if not opened:
        return dg.SkipReason(
            "; ".join(waiting) or "no league has a round cadence (league create --interval-minutes)"
        )
    requests = first_run_requests(context.instance, service, opened, SETTINGS)
    return requests or dg.SkipReason(f"opened {len(opened)} round(s) with nothing to play yet")
