"""The round schedule: every minute (COWORLD_ROUND_SCHEDULE), open a round in each league whose cadence is due.

A league's cadence is its `interval_minutes` (`coworld league create --interval-minutes`); the
league layer decides which leagues are due (`due_leagues`: not paused, no open round, last round
started at least one interval ago). Opening a round runs the commissioner's first step; the
commissioner sensor then plays it. The schedule itself launches no run.
"""


import dagster as dg

from coworld_pipeline.defs.league.jobs import play_episodes_job
from coworld_pipeline.defs.league.resources import LeagueResource
from coworld_pipeline.defs.league.settings import SETTINGS


def open_due_rounds(service, trigger: str) -> list[str]:
    opened = []
    for league_id in service.due_leagues():
        round_id = service.open_round(league_id, trigger=trigger)
        if round_id is not None:
            opened.append(round_id)
    return opened


@dg.schedule(
    name="open_rounds",
    cron_schedule=SETTINGS.round_schedule,
    job=play_episodes_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Opens a round in every league whose cadence (interval_minutes) is due.",
)
def open_rounds(context: dg.ScheduleEvaluationContext, league: LeagueResource) -> dg.SkipReason:
    service = league.service()
    if SETTINGS.demo:
        from coworld_pipeline.demo import ensure_demo_league

        ensure_demo_league(service)
    when = context.scheduled_execution_time
    opened = open_due_rounds(service, trigger=f"schedule {when.isoformat() if when else 'now'}")
    if opened:
        return dg.SkipReason(f"opened {len(opened)} round(s): {', '.join(opened)} (the commissioner plays them)")
    return dg.SkipReason("no league is due")
