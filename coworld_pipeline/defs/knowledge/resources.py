"""The knowledge resource: how supporting roles run for league episodes (timeout, how much history).

The runtime itself (process/docker and its limits) is the league's `episode_runtime` resource: roles
run in the same sandbox as players.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from coworld_pipeline.defs.league.resources import (
    ArtifactStoreResource,
    EpisodeRuntimeResource,
    LeagueResource,
    default_resources,
)
from coworld_pipeline.defs.league.settings import decimal

if TYPE_CHECKING:
    from coworld_pipeline.defs.knowledge.core import Knowledge


class KnowledgeResource(dg.ConfigurableResource):
    """Supporting-role runs of league episodes: reporter, grader, diagnoser, optimizer.

    Holds the league's own resources (nested: set up and torn down with this one), so a knowledge
    asset asks for this resource alone.
    """

    league: LeagueResource
    episode_runtime: EpisodeRuntimeResource
    artifacts: ArtifactStoreResource
    timeout_seconds: float = Field(default=300.0, gt=0, description="Seconds before a role run is stopped.")
    recent_episodes: int = Field(
        default=5, ge=1, description="Episodes of a policy version the diagnoser and optimizer look at."
    )

    def knowledge(self) -> Knowledge:
        from coworld_pipeline.defs.knowledge.core import Knowledge

        runtime = self.episode_runtime
        return Knowledge(
            self.league.service(),
            self.artifacts.store(),
            runtime.runtime,
            self.timeout_seconds,
            runtime.limits() if runtime.runtime == "docker" else None,
        )


@dg.definitions
def resources() -> dg.Definitions:
    league = default_resources()  # the same settings as the league's own resources (defs/league)
    nested = {key: league[key] for key in ("league", "episode_runtime", "artifacts")}
    return dg.Definitions(
        resources={
            "knowledge": KnowledgeResource(**nested, timeout_seconds=decimal("COWORLD_ROLE_TIMEOUT_SECONDS"))
        }
    )
