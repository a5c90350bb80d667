"""The Coworld contract as pydantic models plus the semantic checks JSON Schema cannot express.

Nothing here knows about Docker, processes or Dagster: these modules only parse and validate.
Exports resolve lazily (PEP 562): building the pydantic models costs start-up time that commands
which only need `problems` should not pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coworld_pipeline.lazy import lazy_exports

if TYPE_CHECKING:
    from coworld_pipeline.contract.episode_request import EpisodeRequest, PlayerSpec, parse_episode_request
    from coworld_pipeline.contract.manifest import CoworldManifest, load_manifest, parse_manifest
    from coworld_pipeline.contract.problems import ContractError, Problem
    from coworld_pipeline.contract.results import validate_results

_EXPORTS = {
    "EpisodeRequest": "coworld_pipeline.contract.episode_request",
    "PlayerSpec": "coworld_pipeline.contract.episode_request",
    "parse_episode_request": "coworld_pipeline.contract.episode_request",
    "CoworldManifest": "coworld_pipeline.contract.manifest",
    "load_manifest": "coworld_pipeline.contract.manifest",
    "parse_manifest": "coworld_pipeline.contract.manifest",
    "ContractError": "coworld_pipeline.contract.problems",
    "Problem": "coworld_pipeline.contract.problems",
    "validate_results": "coworld_pipeline.contract.results",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "ContractError",
    "CoworldManifest",
    "EpisodeRequest",
    "PlayerSpec",
    "Problem",
    "load_manifest",
    "parse_episode_request",
    "parse_manifest",
    "validate_results",
]
