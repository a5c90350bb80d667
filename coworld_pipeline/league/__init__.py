"""The league layer: who plays whom, what counts, and what users can see. Dagster-free.

`LeagueService` (service.py) is the entry point; `run_round` (runner.py) plays one round now.
"""

from coworld_pipeline.league.service import LeagueError, LeagueService, NotFound, RoundProgress

__all__ = ["LeagueError", "LeagueService", "NotFound", "RoundProgress"]
