"""Commissioner round-channel messages (CONTRACT §9), as pydantic models.

Every message is one JSON object whose ``type`` names its kind. `parse_message` reads ``type``,
validates the remaining fields with the matching model and raises `CommissionerProtocolError` for
an unknown type or invalid fields. Models ignore unknown fields, as the reference does, so that a
commissioner built against a newer contract (EVOLUTION §6) still talks to this platform.

Identifiers: the protocol carries raw UUID strings for leagues, divisions, rounds, memberships
and policy versions; ``request_id`` is the commissioner's own opaque string.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from coworld_pipeline.contract.problems import ContractError, Problem, pydantic_problems

# CONTRACT §9.4: the state blob is limited to 10 MiB of UTF-8 `json.dumps` output.
MAX_STATE_BYTES = 10 * 1024 * 1024
# Ours: the episodes one round may schedule, whoever its commissioner is. A round is a unit of work
# someone waits for; beyond this (a round-robin of 64 entrants in 4-slot groups is 2.5 million
# episodes) it would not end, and its plan alone would not fit in memory.
MAX_ROUND_EPISODES = 20_000


def state_size(state: Any) -> int:
    return len(json.dumps(state).encode("utf-8"))


class CommissionerProtocolError(ContractError):
    """A message that is not a valid commissioner message; `problems` name each bad field."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: ClassVar[str]

    def to_json_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.model_dump(mode="json")}

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict())


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---- platform → commissioner ---------------------------------------------------------------------


class LeagueInfo(_Part):
    id: str
    commissioner_config: dict[str, Any] | None = None


class DivisionInfo(_Part):
    id: str
    name: str
    level: int


class MembershipInfo(_Part):
    id: str
    division_id: str
    policy_version_id: str
    player_id: str | None = None
    is_champion: bool = False


class RecentResult(_Part):
    round_id: str
    division_id: str
    round_number: int
    policy_version_id: str
    rank: int
    score: float


class VariantInfo(_Part):
    id: str
    name: str
    game_config: dict[str, Any]
    # Not in the 0.1.11 message: the platform tells the commissioner the slot count of each variant
    # (the reference doc infers it from placeholder tokens; manifests' variants are token-free).
    slot_count: int | None = None


class RoundStart(_Message):
    type: ClassVar[str] = "round_start"
    round_id: str
    round_number: int
    league: LeagueInfo
    divisions: list[DivisionInfo] = Field(default_factory=list)
    memberships: list[MembershipInfo] = Field(default_factory=list)
    recent_results: list[RecentResult] = Field(default_factory=list)
    variants: list[VariantInfo] = Field(default_factory=list)
    state: Any = None


class EpisodesAccepted(_Message):
    type: ClassVar[str] = "episodes_accepted"
    request_ids: list[str]


class EpisodesRejected(_Message):
    type: ClassVar[str] = "episodes_rejected"
    request_ids: list[str]
    errors: dict[str, str] = Field(default_factory=dict)


class EpisodeScore(_Part):
    policy_version_id: str
    player_id: str | None = None
    score: float


class EpisodeResult(_Message):
    type: ClassVar[str] = "episode_result"
    request_id: str
    # One entry per slot, in slot order (a policy in several seats appears several times).
    scores: list[EpisodeScore]
    game_results: dict[str, Any] | None = None


class EpisodeFailed(_Message):
    type: ClassVar[str] = "episode_failed"
    request_id: str
    error: str
    # EVOLUTION §6 additions, optional here.
    error_type: str | None = None
    failed_policy_index: int | None = None
    failed_policy_version_id: str | None = None


class RoundAbort(_Message):
    type: ClassVar[str] = "round_abort"
    reason: str


# ---- commissioner → platform ---------------------------------------------------------------------


class ScheduledEpisode(_Part):
    request_id: str = Field(min_length=1)
    variant_id: str = Field(min_length=1)
    policy_version_ids: list[str] = Field(min_length=1)
    seed: int | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class ScheduleEpisodes(_Message):
    type: ClassVar[str] = "schedule_episodes"
    episodes: list[ScheduledEpisode]


class Ranking(_Part):
    policy_version_id: str
    player_id: str | None = None
    rank: int
    score: float
    result_metadata: dict[str, Any] = Field(default_factory=dict)


class DivisionResults(_Part):
    division_id: str
    rankings: list[Ranking] = Field(default_factory=list)


class GraduationChange(_Part):
    membership_id: str
    to_division_id: str
    reason: str


class RoundComplete(_Message):
    type: ClassVar[str] = "round_complete"
    results: list[DivisionResults] = Field(default_factory=list)
    graduation_changes: list[GraduationChange] = Field(default_factory=list)
    round_display: dict[str, Any] | None = None
    state: Any = None

    @field_validator("state")
    @classmethod
    def _state_size(cls, value: Any) -> Any:
        size = state_size(value)
        if size > MAX_STATE_BYTES:
            raise ValueError(f"state is {size} bytes; the limit is {MAX_STATE_BYTES} bytes (10 MiB)")
        return value


PLATFORM_MESSAGES: dict[str, type[_Message]] = {
    m.type: m
    for m in (RoundStart, EpisodesAccepted, EpisodesRejected, EpisodeResult, EpisodeFailed, RoundAbort)
}
COMMISSIONER_MESSAGES: dict[str, type[_Message]] = {m.type: m for m in (ScheduleEpisodes, RoundComplete)}
ALL_MESSAGES: dict[str, type[_Message]] = {**PLATFORM_MESSAGES, **COMMISSIONER_MESSAGES}

PlatformMessage = (
    RoundStart | EpisodesAccepted | EpisodesRejected | EpisodeResult | EpisodeFailed | RoundAbort
)
CommissionerMessage = ScheduleEpisodes | RoundComplete


def parse_message(
    data: Any, allowed: dict[str, type[_Message]] | None = None, source: str = "commissioner message"
) -> Any:
    """Parse one decoded message (dict or JSON text) by its ``type``.

    `allowed` restricts the accepted kinds (e.g. `COMMISSIONER_MESSAGES` for what a commissioner
    may send); anything else, an unknown type or a missing one is a `CommissionerProtocolError`.
    """
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as err:
            raise CommissionerProtocolError(source, [Problem("$", f"not JSON: {err.msg}")]) from None
    if not isinstance(data, dict):
        raise CommissionerProtocolError(source, [Problem("$", "a message must be a JSON object")])
    kinds = allowed if allowed is not None else ALL_MESSAGES
    kind = data.get("type")
    if not isinstance(kind, str):
        raise CommissionerProtocolError(source, [Problem("$.type", "missing: every message names its type")])
    if kind not in kinds:
        known = ", ".join(sorted(kinds))
        raise CommissionerProtocolError(
            source, [Problem("$.type", f"unknown message type {kind!r} (expected one of: {known})")]
        )
    fields = {k: v for k, v in data.items() if k != "type"}
    try:
        return kinds[kind].model_validate(fields)
    except ValidationError as exc:
        raise CommissionerProtocolError(f"{source} ({kind})", pydantic_problems(exc)) from None


def parse_commissioner_message(data: Any) -> CommissionerMessage:
    """A message a commissioner sent to the platform."""
    return parse_message(data, COMMISSIONER_MESSAGES, "message from the commissioner")


def parse_platform_message(data: Any) -> PlatformMessage:
    """A message the platform sent to a commissioner."""
    return parse_message(data, PLATFORM_MESSAGES, "message from the platform")


__all__ = [
    "ALL_MESSAGES",
    "COMMISSIONER_MESSAGES",
    "MAX_STATE_BYTES",
    "PLATFORM_MESSAGES",
    "CommissionerMessage",
    "CommissionerProtocolError",
    "DivisionInfo",
    "DivisionResults",
    "EpisodeFailed",
    "EpisodeResult",
    "EpisodeScore",
    "EpisodesAccepted",
    "EpisodesRejected",
    "GraduationChange",
    "LeagueInfo",
    "MembershipInfo",
    "PlatformMessage",
    "Ranking",
    "RecentResult",
    "RoundAbort",
    "RoundComplete",
    "RoundStart",
    "ScheduleEpisodes",
    "ScheduledEpisode",
    "VariantInfo",
    "parse_commissioner_message",
    "parse_message",
    "parse_platform_message",
    "state_size",
]

# `Literal` kept importable for callers that type message kinds.
MessageType = Literal[
    "round_start",
    "episodes_accepted",
    "episodes_rejected",
    "episode_result",
    "episode_failed",
    "round_abort",
    "schedule_episodes",
    "round_complete",
]
