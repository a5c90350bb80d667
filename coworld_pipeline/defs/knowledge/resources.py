"""The knowledge resource: how supporting roles run for league episodes (timeout, how much history).

The runtime itself (process/docker and its limits) is the league's `episode_runtime` resource: roles
run in the same sandbox as players.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from coworld_pipeline.defs.league.resources import (
    ArtifactStoreResource,
    EpisodeRuntimeResource,
    LeagueResource,
)

if TYPE_CHECKING:
    from coworld_pipeline.defs.knowledge.core import Knowledge


class KnowledgeResource(dg.ConfigurableResource):
    """Supporting-role runs of league episodes: reporter, grader, diagnoser, optimizer."""

    timeout_seconds: float = Field(default=300.0, gt=0, description="Seconds before a role run is stopped.")
    recent_episodes: int = Field(
        default=5, ge=1, description="Episodes of a policy version the diagnoser and optimizer look at."
    )

    def knowledge(
        self,
        league: LeagueResource,
        episode_runtime: EpisodeRuntimeResource,
        artifacts: ArtifactStoreResource,
    ) -> Knowledge:
        from coworld_pipeline.defs.knowledge.core import Knowledge

        return Knowledge(
            league.service(),
            artifacts.store(),
            episode_runtime.runtime,
            self.timeout_seconds,
            episode_runtime.limits() if episode_runtime.runtime == "docker" else None,
        )


@dg.definitions
def resources() -> dg.Definitions:
    raw = os.environ.get("COWORLD_ROLE_TIMEOUT_SECONDS", "").strip()
    settings = {"timeout_seconds": float(raw)} if raw else {}
    return dg.Definitions(resources={"knowledge": KnowledgeResource(**settings)})
