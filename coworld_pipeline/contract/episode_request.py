"""The episode request: one episode's manifest, token-free config and per-slot player runnables."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coworld_pipeline.contract import os_limits
from coworld_pipeline.contract.bounded_schema import validation_budget
from coworld_pipeline.contract.generations import strip_unknown
from coworld_pipeline.contract.limits import MAX_SLOTS, bounds_problems
from coworld_pipeline.contract.manifest import CoworldManifest, ManifestRunnable, check_game_config
from coworld_pipeline.contract.problems import ContractError, Problem, pydantic_problems


class PlayerSpec(ManifestRunnable):
    """One slot's runnable: image, run argv, env (0.1.64: and resources). Extra keys are ignored."""


class EpisodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str | None = Field(default=None, alias="$schema")
    manifest: CoworldManifest
    game_config: dict[str, Any]
    players: list[PlayerSpec] = Field(max_length=MAX_SLOTS)
    episode_tags: dict[str, str] = Field(default_factory=dict)
    policy_names: list[str] | None = Field(
        default=None,
        max_length=MAX_SLOTS,
        description="One display name per slot, passed to the game as COWORLD_POLICY_NAMES.",
    )

    @property
    def slot_count(self) -> int:
        return len(self.players)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def request_problems(request: EpisodeRequest) -> list[Problem]:
    problems = check_game_config(
        request.manifest, request.game_config, "$.game_config", expected_slots=len(request.players)
    )
    if request.policy_names is not None and len(request.policy_names) != len(request.players):
        problems.append(
            Problem(
                "$.policy_names",
                f"has {len(request.policy_names)} names for {len(request.players)} players",
            )
        )
    for i, p in enumerate(request.players):
        if not p.image.strip():
            problems.append(Problem(f"$.players[{i}].image", "must not be empty"))
    # NUL bytes, bad env names, argv/env sizes: refused here rather than by execve at run time.
    problems += os_limits.request_problems(request)
    return problems


def validate_request(request: EpisodeRequest, source: str = "episode request") -> EpisodeRequest:
    with validation_budget():
        problems = request_problems(request)
    if problems:
        raise ContractError(source, problems)
    return request


def parse_episode_request(
    data: Any, manifest: CoworldManifest | None = None, source: str = "episode request"
) -> EpisodeRequest:
    """Validate a decoded request; when `manifest` is given the embedded one must equal it."""
    if not isinstance(data, dict):
        raise ContractError(source, [Problem("$", "an episode request must be a JSON object")])
    bounds = bounds_problems(data)
    if bounds:
        raise ContractError(source, bounds)
    # The embedded manifest may have fields no generation defines: dropped with warnings, as in a
    # manifest file. The request's own keys stay strict (its shape is the platform's, not a game's).
    warnings: list[Problem] = []
    if isinstance(data.get("manifest"), dict):
        manifest_data, warnings = strip_unknown(data["manifest"], [CoworldManifest], ["manifest"])
        data = {**data, "manifest": manifest_data}
    try:
        request = EpisodeRequest.model_validate(data)
    except ValidationError as exc:
        raise ContractError(source, pydantic_problems(exc)) from None
    if manifest is not None and request.manifest.to_json_dict() != manifest.to_json_dict():
        raise ContractError(
            source, [Problem("$.manifest", "episode request manifest does not match the manifest given")]
        )
    # The embedded manifest passed the structural models; its semantic checks still apply.
    from coworld_pipeline.contract.manifest import semantic_problems

    request.manifest._warnings = warnings
    with validation_budget():  # one budget for the embedded manifest and the request
        problems = [
            Problem("$.manifest" + p.path[1:], p.message) for p in semantic_problems(request.manifest)
        ]
        # A config is only checked against a manifest that is itself valid (its schema may not be).
        problems += os_limits.request_problems(request) if problems else request_problems(request)
    if problems:
        raise ContractError(source, problems)
    return request


def certification_request(manifest: CoworldManifest) -> EpisodeRequest:
    """The request certification runs: the fixture's config and its resolved players."""
    players = []
    for cp in manifest.certification.players:
        declared = manifest.player_runnable(cp.player_id)
        if declared.file is not None:
            raise ContractError(
                "certification",
                [
                    Problem(
                        f"$.player[{manifest.player.index(declared)}].file",
                        "game-hosted players (player `file`, game.player_runtime 'game-hosted') cannot "
                        "run here yet: this platform starts each player itself (container or process); "
                        "give the player an `image` instead",
                    )
                ],
            )
        players.append(
            PlayerSpec(
                image=declared.image,
                run=list(declared.run),
                env=dict(declared.env),
                resources=declared.resources,
            )
        )
    return EpisodeRequest(
        manifest=manifest,
        game_config=json.loads(json.dumps(manifest.certification.game_config)),
        players=players,
    )


def with_seed(request: EpisodeRequest, seed: int) -> EpisodeRequest:
    """Set `seed` in the config; only games whose config_schema declares `seed` take one."""
    props = request.manifest.game.config_schema.get("properties") or {}
    if "seed" not in props:
        raise ContractError(
            "--seed",
            [Problem("$.game.config_schema.properties", "this game's config has no 'seed' property")],
        )
    return request.model_copy(update={"game_config": {**request.game_config, "seed": seed}})
