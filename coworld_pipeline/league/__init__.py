"""The league layer: who plays whom, what counts, and what users can see. Dagster-free.

Modules, one job each (every public function is one short transaction on a `unit.Store`):

* `unit` — the store (database, home, secret box), transactions, events, the league-row lock;
* `resolve` — reference -> row lookups (public ids, raw ids, names);
* `catalogue` — coworlds, policy versions, leagues, submissions;
* `rounds` — due leagues, opening, advancing and closing rounds;
* `dialogue` — the commissioner message exchange (CONTRACT §9);
* `claims` — pending episodes, claim-and-prepare, requeue of lost claims;
* `verdicts` — recording outcomes: ratings, retries, quarantine;
* `play` — the one module that runs episodes (`runtime/`): `RuntimePlayer`, `play_batch`;
* `handoff` — `PreparedEpisode` out, `EpisodeOutcome` back, the `EpisodePlayer` protocol;
* `standings` / `standings_reader` — ranked tables (ORM / plain driver), recompute;
* `reads` / `views` — read-side queries and the typed read models they return;
* `status` — the status enums and their sets; `runner` — one round now, without Dagster;
* `service` — `LeagueService`, a thin facade over all of the above.

Exports resolve lazily so that light modules (`errors`, `location`, `standings_reader`, `views`) can be
imported without SQLAlchemy, which alone costs ~0.35 s of start-up on a 2-core machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coworld_pipeline.lazy import lazy_exports

if TYPE_CHECKING:
    from coworld_pipeline.league.errors import LeagueError, NotFound
    from coworld_pipeline.league.service import LeagueService
    from coworld_pipeline.league.views import RoundProgress

__all__ = ["LeagueError", "LeagueService", "NotFound", "RoundProgress"]

__getattr__ = lazy_exports(
    __name__,
    {
        "LeagueError": "coworld_pipeline.league.errors",
        "NotFound": "coworld_pipeline.league.errors",
        "LeagueService": "coworld_pipeline.league.service",
        "RoundProgress": "coworld_pipeline.league.views",
    },
)
