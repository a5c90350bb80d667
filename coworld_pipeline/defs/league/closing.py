"""What a closed round materializes: its `round_results` partition and its league's `standings`.

Both are computed from the league database, so they can be logged by whoever sees the round close:

* the `episodes` run whose last episode closed it (`advance_round(...).closed_now`: exactly one caller,
  it holds the league's lock) logs both right away, a few hundred milliseconds after that episode
  was recorded, instead of two more Dagster runs (~5 s each) requested by the sensor's next tick;
* otherwise (a round closed by a CLI runner, by the sensor itself, or by a run whose partitions are
  not known yet) the sensor requests the `collate_round` and `refresh_standings` runs, as before.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from coworld_pipeline.defs.league.metadata import round_metadata, standings_metadata
from coworld_pipeline.defs.league.overview_metadata import overview_metadata
from coworld_pipeline.defs.league.partitions import league_partitions, round_partitions
from coworld_pipeline.league.readable import league_part
from coworld_pipeline.league.service import LeagueService
from coworld_pipeline.runtime.artifacts import ArtifactStore

ROUND_RESULTS_KEY = dg.AssetKey("round_results")
STANDINGS_KEY = dg.AssetKey("standings")


def league_standings_metadata(
    service: LeagueService, store: ArtifactStore, league_ref: str
) -> dict[str, Any]:
    """The `standings` asset's metadata for one league: the overview first (the top of its page),
    then the standings per division, then the best-graded episodes when the league grades them."""
    from coworld_pipeline.defs.knowledge.assets import best_graded_metadata
    from coworld_pipeline.defs.knowledge.core import Knowledge

    view = service.leagues(league_ref)[0]
    divisions = service.standings(view.id)
    after = view.last_round.number if view.last_round else 0
    metadata = {
        **overview_metadata(service.overview(view.id)),
        **standings_metadata(view.name, divisions, after),
    }
    if "grader" in view.roles:  # grades live in the knowledge store (defs/knowledge)
        metadata.update(best_graded_metadata(Knowledge(service, store), view.id))
    return metadata


def closed_round_materializations(
    instance: dg.DagsterInstance, service: LeagueService, store: ArtifactStore, round_id: str
) -> list[dg.AssetMaterialization]:
    """The round's `round_results` and its league's `standings`, or [] when their partitions are not
    known to the instance yet (the sensor adds them; it then collates the round with runs)."""
    info = service.round(round_id)
    league_key = league_part(info.league.name or "", info.league.id)
    if not (
        instance.has_dynamic_partition(round_partitions.name, info.key)
        and instance.has_dynamic_partition(league_partitions.name, league_key)
    ):
        return []
    return [
        dg.AssetMaterialization(
            asset_key=ROUND_RESULTS_KEY,
            partition=info.key,
            metadata={**round_metadata(info), "collated_by": "the episodes run that closed the round"},
        ),
        dg.AssetMaterialization(
            asset_key=STANDINGS_KEY,
            partition=league_key,
            metadata=league_standings_metadata(service, store, info.league.id),
        ),
    ]
