"""The league layer: who plays whom, what counts, and what users can see. Dagster-free.

`LeagueService` (service.py) is the entry point; `run_round` (runner.py) plays one round now.
Exports resolve lazily so that light modules (`errors`, `location`, `standings_reader`) can be
imported without SQLAlchemy, which alone costs ~0.35 s of start-up on a 2-core machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coworld_pipeline.lazy import lazy_exports

if TYPE_CHECKING:
    from coworld_pipeline.league.errors import LeagueError, NotFound
    from coworld_pipeline.league.service import LeagueService, RoundProgress

__all__ = ["LeagueError", "LeagueService", "NotFound", "RoundProgress"]

__getattr__ = lazy_exports(
    __name__,
    {
        "LeagueError": "coworld_pipeline.league.errors",
        "NotFound": "coworld_pipeline.league.errors",
        "LeagueService": "coworld_pipeline.league.service",
        "RoundProgress": "coworld_pipeline.league.service",
    },
)
