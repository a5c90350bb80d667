"""Jobs the commissioner sensor requests: play a batch of episodes, collate a round, refresh standings.

All run in-process (one run worker process, no per-step subprocess): a run's cost is dominated by
starting that process, and episodes already run in their own processes or containers. With
`COWORLD_EXECUTOR=celery`, `play_episodes` runs its step on a Celery worker instead (celery_executor.py).
"""

from __future__ import annotations

import dagster as dg

from coworld_pipeline.defs.league.assets import episodes, round_results, standings
from coworld_pipeline.defs.league.celery_executor import play_executor

PLAY_EPISODES = "play_episodes"
COLLATE_ROUND = "collate_round"
REFRESH_STANDINGS = "refresh_standings"

play_episodes_job = dg.define_asset_job(
    PLAY_EPISODES,
    selection=dg.AssetSelection.assets(episodes),
    executor_def=play_executor(),
    description="Play a range of episode partitions (K at most) and check their results.",
)

collate_round_job = dg.define_asset_job(
    COLLATE_ROUND,
    selection=dg.AssetSelection.assets(round_results),
    executor_def=dg.in_process_executor,
    description="Record a closed round's rankings.",
)

refresh_standings_job = dg.define_asset_job(
    REFRESH_STANDINGS,
    selection=dg.AssetSelection.assets(standings),
    executor_def=dg.in_process_executor,
    description="Render a league's standings.",
)
