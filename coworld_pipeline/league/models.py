"""League database tables (SQLAlchemy 2). The schema itself is created by the alembic migrations.

Primary keys are UUID strings (`new_id`); the public, prefixed forms (`league_…`, `div_…`, `round_…`,
`ereq_…`, `cow_…`) are derived in `ids.py`. Times are naive UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

BigId = BigInteger().with_variant(Integer, "sqlite")


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class CoworldVersion(Base):
    __tablename__ = "coworld_versions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(100))
    content_hash: Mapped[str] = mapped_column(String(80), unique=True)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    source_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Policy(Base):
    __tablename__ = "policies"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PolicyVersion(Base):
    __tablename__ = "policy_versions"
    __table_args__ = (
        UniqueConstraint("policy_id", "version", name="uq_policy_version_number"),
        UniqueConstraint("policy_id", "runnable_hash", name="uq_policy_version_runnable"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    policy_id: Mapped[str] = mapped_column(ForeignKey("policies.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    image: Mapped[str] = mapped_column(Text)
    run: Mapped[list[Any]] = mapped_column(JSON, default=list)
    env: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Names only in clear; values Fernet-encrypted (see secrets.py). Never printed.
    secret_env_keys: Mapped[list[Any]] = mapped_column(JSON, default=list)
    secret_env_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    runnable_hash: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class League(Base):
    __tablename__ = "leagues"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    coworld_version_id: Mapped[str] = mapped_column(ForeignKey("coworld_versions.id"), index=True)
    variants: Mapped[list[Any]] = mapped_column(JSON)
    commissioner: Mapped[str] = mapped_column(String(50))
    commissioner_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    config_overrides: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    failure_policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    interval_minutes: Mapped[float | None] = mapped_column(Float, nullable=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Supporting roles the league runs on its episodes: {"reporter": ref, "grader": ref, "diagnoser": ref};
    # a ref is a manifest runnable id, "default" or a softmax/default-* image; absent = off (0002).
    roles: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Division(Base):
    __tablename__ = "divisions"
    __table_args__ = (
        UniqueConstraint("league_id", "level", name="uq_division_level"),
        UniqueConstraint("league_id", "name", name="uq_division_name"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    league_id: Mapped[str] = mapped_column(ForeignKey("leagues.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[int] = mapped_column(Integer)  # 1 = top
    rating_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("league_id", "policy_version_id", name="uq_membership_league_pv"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    league_id: Mapped[str] = mapped_column(ForeignKey("leagues.id"), index=True)
    division_id: Mapped[str] = mapped_column(ForeignKey("divisions.id"), index=True)
    policy_version_id: Mapped[str] = mapped_column(ForeignKey("policy_versions.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))  # qualifying | active | quarantined | retired
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failure_episode_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Submission(Base):
    __tablename__ = "submissions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    league_id: Mapped[str] = mapped_column(ForeignKey("leagues.id"), index=True)
    policy_version_id: Mapped[str] = mapped_column(ForeignKey("policy_versions.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))  # accepted | already_member
    membership_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Round(Base):
    __tablename__ = "rounds"
    __table_args__ = (UniqueConstraint("league_id", "round_number", name="uq_round_number"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    league_id: Mapped[str] = mapped_column(ForeignKey("leagues.id"), index=True)
    round_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))  # running | completed | failed | cancelled
    trigger: Mapped[str] = mapped_column(String(100))
    # Equals league_id while the round is open, NULL after: the unique index allows one open round.
    open_marker: Mapped[str | None] = mapped_column(String(36), nullable=True, unique=True)
    commissioner: Mapped[str] = mapped_column(String(50))
    commissioner_state: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON, <= 10 MiB
    carry_state: Mapped[str | None] = mapped_column(Text, nullable=True)  # round_complete.state, JSON
    complete_message: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    round_display: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    failed_slots: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class EpisodeRequestRow(Base):
    __tablename__ = "episode_requests"
    __table_args__ = (
        UniqueConstraint("round_id", "request_id", name="uq_episode_request_id"),
        Index("ix_episode_requests_round_status", "round_id", "status"),
        Index("ix_episode_requests_status_claimed", "status", "claimed_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), index=True)
    league_id: Mapped[str] = mapped_column(ForeignKey("leagues.id"), index=True)
    division_id: Mapped[str] = mapped_column(ForeignKey("divisions.id"), index=True)
    request_id: Mapped[str] = mapped_column(String(200))  # the commissioner's id
    variant_id: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(BigInteger)
    game_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    policy_version_ids: Mapped[list[Any]] = mapped_column(JSON)  # index = slot
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20))  # pending | running | succeeded | failed | cancelled
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    scores: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    results: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    artifacts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error_type: Mapped[str | None] = mapped_column(String(50), nullable=True)
    attempt_errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    workspace: Mapped[str | None] = mapped_column(Text, nullable=True)
    reported: Mapped[bool] = mapped_column(Boolean, default=False)
    rated_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    wall_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # {"worker": ..., "engine": ...} of the current attempt's claimant (league/play.py), set at claim
    played_by: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class EpisodeSlot(Base):
    """One seat of one episode: who sat there and (after success) the score it got."""

    __tablename__ = "episode_slots"
    ereq_id: Mapped[str] = mapped_column(ForeignKey("episode_requests.id"), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy_version_id: Mapped[str] = mapped_column(ForeignKey("policy_versions.id"), index=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)


class Rating(Base):
    __tablename__ = "ratings"
    division_id: Mapped[str] = mapped_column(ForeignKey("divisions.id"), primary_key=True)
    policy_version_id: Mapped[str] = mapped_column(ForeignKey("policy_versions.id"), primary_key=True)
    mu: Mapped[float] = mapped_column(Float)
    sigma: Mapped[float] = mapped_column(Float)
    episodes: Mapped[int] = mapped_column(Integer, default=0)
    wins: Mapped[int] = mapped_column(Integer, default=0)
    score_sum: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class RoundResult(Base):
    __tablename__ = "round_results"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), index=True)
    division_id: Mapped[str] = mapped_column(ForeignKey("divisions.id"))
    policy_version_id: Mapped[str] = mapped_column(ForeignKey("policy_versions.id"))
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    result_metadata: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class GraduationChangeRow(Base):
    __tablename__ = "graduation_changes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), index=True)
    membership_id: Mapped[str] = mapped_column(ForeignKey("memberships.id"))
    from_division_id: Mapped[str] = mapped_column(ForeignKey("divisions.id"))
    to_division_id: Mapped[str] = mapped_column(ForeignKey("divisions.id"))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Event(Base):
    """One scheduler decision (opened, refused, scheduled, rejected, retried, quarantined, …)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_league_id", "league_id", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    event_type: Mapped[str] = mapped_column(String(60), index=True)
    league_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    division_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    round_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    ereq_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    policy_version_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    headline: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
