"""The Coworld contract as pydantic models plus the semantic checks JSON Schema cannot express.

Nothing here knows about Docker, processes or Dagster: these modules only parse and validate.
"""

from coworld_pipeline.contract.episode_request import EpisodeRequest, PlayerSpec, parse_episode_request
from coworld_pipeline.contract.manifest import CoworldManifest, load_manifest, parse_manifest
from coworld_pipeline.contract.problems import ContractError, Problem
from coworld_pipeline.contract.results import validate_results

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
