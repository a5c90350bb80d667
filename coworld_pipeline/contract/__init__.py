"""The Coworld contract as pydantic models plus the semantic checks JSON Schema cannot express.

Nothing here knows about Docker, processes or Dagster: these modules only parse and validate.
Exports resolve lazily (PEP 562): building the pydantic models costs start-up time that commands
which only need `problems` should not pay.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coworld_pipeline.contract.episode_request import EpisodeRequest, PlayerSpec, parse_episode_request
    from coworld_pipeline.contract.manifest import CoworldManifest, load_manifest, parse_manifest
    from coworld_pipeline.contract.problems import ContractError, Problem
    from coworld_pipeline.contract.results import validate_results

_EXPORTS = {
    "EpisodeRequest": "episode_request",
    "PlayerSpec": "episode_request",
    "parse_episode_request": "episode_request",
    "CoworldManifest": "manifest",
    "load_manifest": "manifest",
    "parse_manifest": "manifest",
    "ContractError": "problems",
    "Problem": "problems",
    "validate_results": "results",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
