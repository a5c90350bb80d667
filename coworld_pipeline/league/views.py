"""Read models: what the league tells its callers (CLI, Dagster assets, runners), as frozen dataclasses.

Every view carries public ids (`league_…`, `ereq_…`; policy versions keep their raw UUID, as in the
reference CLI) and times as naive UTC datetimes. `to_json()` gives the CLI's `--json` shape, which
mirrors the reference CLI's field names. This module imports neither SQLAlchemy nor the runtime, so
the driver-level standings reader can build the same views cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from coworld_pipeline.league.ids import public
from coworld_pipeline.league.readable import league_part, round_key
from coworld_pipeline.league.standing_views import DivisionRef, Ref
from coworld_pipeline.league.standing_views import DivisionStandings as DivisionStandings  # re-exported
from coworld_pipeline.league.standing_views import StandingRow as StandingRow  # re-exported
from coworld_pipeline.league.status import ELIGIBLE, TERMINAL, RoundStatus

JsonDict = dict[str, Any]


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


@dataclass(frozen=True)
class PolicyRef:
    id: str
    label: str | None

    def to_json(self) -> JsonDict:
        return {"id": self.id, "label": self.label}


@dataclass(frozen=True)
class CoworldRef:
    id: str
    name: str
    version: str

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"

    def to_json(self) -> JsonDict:
        return {"id": self.id, "name": self.name, "version": self.version}


@dataclass(frozen=True)
class RoundRef:
    id: str
    number: int
    status: str

    def to_json(self) -> JsonDict:
        return {"id": self.id, "number": self.number, "status": self.status}


@dataclass(frozen=True)
class CoworldView:
    id: str
    name: str
    version: str
    manifest_hash: str
    source_dir: str | None
    variants: tuple[str, ...]
    players: tuple[str, ...]
    created_at: datetime | None
    created: bool | None = None  # set by an upload: False when this manifest was already stored

    def to_json(self) -> JsonDict:
        out: JsonDict = {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "manifest_hash": self.manifest_hash,
            "source_dir": self.source_dir,
            "variants": list(self.variants),
            "players": list(self.players),
            "created_at": iso(self.created_at),
        }
        if self.created is not None:
            out["created"] = self.created
        return out


@dataclass(frozen=True)
class PolicyVersionView:
    id: str
    policy: Ref
    version: int
    image: str
    run: tuple[str, ...]
    env: dict[str, str]
    secret_env_keys: tuple[str, ...]  # names only, never values
    created_at: datetime | None

    @property
    def name(self) -> str:
        return str(self.policy.name)

    @property
    def label(self) -> str:
        return f"{self.name}:v{self.version}"

    def to_json(self) -> JsonDict:
        return {
            "id": self.id,
            "policy": self.policy.to_json(),
            "name": self.name,
            "version": self.version,
            "label": self.label,
            "image": self.image,
            "run": list(self.run),
            "env": dict(self.env),
            "secret_env_keys": list(self.secret_env_keys),
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class LeagueView:
    id: str
    name: str
    coworld: CoworldRef
    variants: tuple[str, ...]
    commissioner_key: str
    commissioner_config: JsonDict
    config_overrides: JsonDict
    failure_policy: JsonDict
    interval_minutes: float | None
    paused: bool
    divisions: tuple[DivisionRef, ...]
    memberships: dict[str, int]  # status -> count
    last_round: RoundRef | None
    created_at: datetime | None
    roles: dict[str, str] = field(default_factory=dict)  # enabled supporting roles: kind -> ref

    @property
    def key(self) -> str:
        """Its Dagster partition key: the name, unless that cannot be one (readable.league_part)."""
        return league_part(self.name, self.id)

    def to_json(self) -> JsonDict:
        return {
            "id": self.id,
            "name": self.name,
            "coworld": self.coworld.to_json(),
            "variants": list(self.variants),
            "commissioner_key": self.commissioner_key,
            "commissioner_config": self.commissioner_config,
            "config_overrides": self.config_overrides,
            "failure_policy": self.failure_policy,
            "interval_minutes": self.interval_minutes,
            "paused": self.paused,
            "divisions": [d.to_json() for d in self.divisions],
            "memberships": dict(self.memberships),
            "last_round": self.last_round.to_json() if self.last_round else None,
            "created_at": iso(self.created_at),
            "roles": dict(self.roles),
        }


@dataclass(frozen=True)
class SubmissionView:
    id: str
    status: str
    league: Ref
    policy_version: PolicyRef
    league_policy_membership_id: str | None
    membership_status: str | None
    notes: str | None
    created_at: datetime | None

    def to_json(self) -> JsonDict:
        return {
            "id": self.id,
            "status": self.status,
            "league": self.league.to_json(),
            "policy_version": self.policy_version.to_json(),
            "league_policy_membership_id": self.league_policy_membership_id,
            "membership_status": self.membership_status,
            "notes": self.notes,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class MembershipView:
    id: str
    status: str
    status_reason: str | None
    league: Ref
    division: Ref
    policy_version: PolicyRef
    consecutive_failures: int
    failure_episode_ids: tuple[str, ...]
    start_time: datetime | None
    updated_at: datetime | None

    @property
    def is_active(self) -> bool:
        return self.status in ELIGIBLE

    def to_json(self) -> JsonDict:
        return {
            "id": self.id,
            "status": self.status,
            "status_reason": self.status_reason,
            "is_active": self.is_active,
            "is_champion": False,
            "league": self.league.to_json(),
            "division": self.division.to_json(),
            "policy_version": self.policy_version.to_json(),
            "consecutive_failures": self.consecutive_failures,
            "failure_episode_ids": list(self.failure_episode_ids),
            "start_time": iso(self.start_time),
            "updated_at": iso(self.updated_at),
        }


@dataclass(frozen=True)
class DivisionView:
    id: str
    name: str
    level: int
    league: Ref
    member_count: int
    round_schedule: str
    round_structure: str
    created_at: datetime | None

    def to_json(self) -> JsonDict:
        return {
            "id": self.id,
            "name": self.name,
            "level": self.level,
            "league": self.league.to_json(),
            "member_count": self.member_count,
            "commissioner_description": {
                "round_schedule": self.round_schedule,
                "round_structure": self.round_structure,
                "leaderboard_rules": "openskill Plackett-Luce; rank by mu - 3 sigma",
            },
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class RankingView:
    """One row of a round's rankings, as the commissioner sent them."""

    division_id: str
    division: str | None
    rank: int
    score: float
    policy_version_id: str
    label: str | None
    result_metadata: JsonDict

    def to_json(self) -> JsonDict:
        return {
            "division_id": self.division_id,
            "division": self.division,
            "rank": self.rank,
            "score": self.score,
            "policy_version_id": self.policy_version_id,
            "label": self.label,
            "result_metadata": self.result_metadata,
        }


@dataclass(frozen=True)
class GraduationView:
    membership_id: str
    from_division_id: str
    to_division_id: str
    reason: str

    def to_json(self) -> JsonDict:
        return {
            "membership_id": self.membership_id,
            "from_division_id": self.from_division_id,
            "to_division_id": self.to_division_id,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RoundView:
    id: str
    round_number: int
    league: Ref
    commissioner_key: str
    trigger: str
    status: str
    error: str | None
    episodes: dict[str, int]  # status -> count
    failed_slots: int
    round_display: JsonDict | None
    started_at: datetime | None
    completed_at: datetime | None
    # Only on a detailed view (one round asked for by id):
    results: tuple[RankingView, ...] | None = None
    graduation_changes: tuple[GraduationView, ...] | None = None

    @property
    def key(self) -> str:
        """Readable: `league.rN` (readable.py), its Dagster partition key."""
        return round_key(self.league.name or "", self.league.id, self.round_number)

    def to_json(self) -> JsonDict:
        out: JsonDict = {
            "id": self.id,
            "key": self.key,
            "round_number": self.round_number,
            "league": self.league.to_json(),
            "commissioner_key": self.commissioner_key,
            "execution_backend": "league-service",
            "trigger": self.trigger,
            "status": self.status,
            "error": self.error,
            "episodes": dict(self.episodes),
            "failed_slots": self.failed_slots,
            "round_display": self.round_display,
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
        }
        if self.results is not None:
            out["results"] = [r.to_json() for r in self.results]
        if self.graduation_changes is not None:
            out["graduation_changes"] = [g.to_json() for g in self.graduation_changes]
        return out


@dataclass(frozen=True)
class RoundPage:
    entries: tuple[RoundView, ...]
    total_count: int
    limit: int
    offset: int

    def to_json(self) -> JsonDict:
        return {
            "entries": [r.to_json() for r in self.entries],
            "total_count": self.total_count,
            "limit": self.limit,
            "offset": self.offset,
        }


@dataclass(frozen=True)
class Seat:
    position: int
    policy_version_id: str
    label: str | None
    score: float | None  # None until the episode succeeded

    def to_json(self) -> JsonDict:
        return {"position": self.position, "policy_version_id": self.policy_version_id, "label": self.label}


@dataclass(frozen=True)
class EpisodeView:
    id: str
    key: str  # readable: `league.rN.eM` (readable.py), its Dagster partition key
    request_id: str
    league_id: str
    round_id: str
    division_id: str
    variant_id: str
    seed: int
    status: str
    attempts: int
    seats: tuple[Seat, ...]
    error: JsonDict | None
    attempt_errors: tuple[JsonDict, ...]
    workspace: str
    replay_path: str | None  # a local file, else where the artifact store keeps it (s3://...)
    artifacts: JsonDict | None
    wall_seconds: float | None
    created_at: datetime | None
    finished_at: datetime | None
    played_by: JsonDict | None = None  # {"worker", "engine"} of the last attempt's claimant

    @property
    def policy_version_ids(self) -> list[str]:
        return [s.policy_version_id for s in self.seats]

    @property
    def scores(self) -> list[float] | None:
        return None if any(s.score is None for s in self.seats) else [float(s.score) for s in self.seats]

    @property
    def error_type(self) -> str | None:
        return (self.error or {}).get("error_type")

    def to_json(self) -> JsonDict:
        scores = self.scores
        return {
            "id": self.id,
            "key": self.key,
            "request_id": self.request_id,
            "league_id": self.league_id,
            "round_id": self.round_id,
            "division_id": self.division_id,
            "variant_id": self.variant_id,
            "seed": self.seed,
            "status": self.status,
            "attempts": self.attempts,
            "policy_version_ids": self.policy_version_ids,
            "participants": [s.to_json() for s in self.seats],
            "scores": [
                {"position": s.position, "policy_version_id": s.policy_version_id, "score": s.score}
                for s in self.seats
            ]
            if scores is not None
            else [],
            "error": self.error,
            "attempt_errors": list(self.attempt_errors),
            "workspace": self.workspace,
            "replay_path": self.replay_path,
            "artifacts": self.artifacts,
            "wall_seconds": self.wall_seconds,
            "created_at": iso(self.created_at),
            "finished_at": iso(self.finished_at),
            "played_by": self.played_by,
        }


@dataclass(frozen=True)
class EventView:
    id: int
    event_type: str
    created_at: datetime | None
    headline: str
    league_id: str | None
    division_id: str | None
    round_id: str | None
    episode_request_id: str | None
    policy_version_id: str | None
    payload: JsonDict

    def to_json(self) -> JsonDict:
        return {
            "id": self.id,
            "event_type": self.event_type,
            "created_at": iso(self.created_at),
            "headline": self.headline,
            "league_id": self.league_id,
            "division_id": self.division_id,
            "round_id": self.round_id,
            "episode_request_id": self.episode_request_id,
            "policy_version_id": self.policy_version_id,
            "payload": self.payload,
        }


@dataclass(frozen=True)
class RoundProgress:
    """Where a round stands after one `advance_round`: its episodes by status (raw ids)."""

    round_id: str  # raw
    status: str
    new_pending: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    running: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    closed_now: bool = False  # this call closed the round (one caller only: it holds the league's lock)

    @property
    def done(self) -> bool:
        return self.status != RoundStatus.RUNNING

    @property
    def finished(self) -> int:
        return sum(n for status, n in self.counts.items() if status in TERMINAL)

    def to_json(self) -> JsonDict:
        return {
            "round_id": public("round", self.round_id),
            "status": self.status,
            "new_pending": [public("ereq", e) for e in self.new_pending],
            "pending": [public("ereq", e) for e in self.pending],
            "running": [public("ereq", e) for e in self.running],
            "counts": dict(self.counts),
            "done": self.done,
            "error": self.error,
        }


@dataclass(frozen=True)
class RoundOpening:
    """What `open_round` did: opened a round (`round_id`, raw) or refused, saying why."""

    round_id: str | None
    refused: str | None = None

    @property
    def opened(self) -> bool:
        return self.round_id is not None
