"""Reference -> row lookups. Every lookup accepts a public id (`league_…`), a raw UUID or a name.

All of them run inside the caller's transaction and raise `NotFound` with a hint naming the command
that creates the missing thing.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from coworld_pipeline.league import ids
from coworld_pipeline.league.errors import LeagueError, NotFound
from coworld_pipeline.league.models import (
    CoworldVersion,
    Division,
    EpisodeRequestRow,
    League,
    Policy,
    PolicyVersion,
    Round,
)

RowT = TypeVar("RowT")


def _by_id(s: Session, model: type[RowT], kind: str, ref: str) -> RowT | None:
    raw = ids.raw_id(kind, ref)
    return s.get(model, raw) if ids.looks_like_uuid(raw) else None


def league(s: Session, ref: str) -> League:
    row = _by_id(s, League, "league", ref)
    row = row or s.execute(select(League).where(League.name == ref)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"unknown league {ref!r}")
    return row


def coworld(s: Session, ref: str) -> CoworldVersion:
    row = _by_id(s, CoworldVersion, "coworld", ref)
    if row is None and ref.startswith("sha256:"):
        row = s.execute(select(CoworldVersion).where(CoworldVersion.content_hash == ref)).scalar_one_or_none()
    if row is None:
        name, _, version = ref.partition(":")
        q = select(CoworldVersion).where(CoworldVersion.name == name)
        if version:
            q = q.where(CoworldVersion.version == version)
        row = s.execute(q.order_by(CoworldVersion.created_at.desc()).limit(1)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"unknown coworld {ref!r} (upload it with `coworld upload-coworld MANIFEST`)")
    return row


def policy_version(s: Session, ref: str) -> PolicyVersion:
    """NAME (the newest version), NAME:vN, NAME:N or a policy version id."""
    row = _by_id(s, PolicyVersion, "policy_version", ref)
    if row is not None:
        return row
    name, sep, ver = ref.rpartition(":")
    if not sep:
        name, ver = ref, ""
    policy = s.execute(select(Policy).where(Policy.name == name)).scalar_one_or_none()
    if policy is None:
        raise NotFound(
            f"unknown policy {name!r} (upload it with `coworld upload-policy IMAGE --name {name}`)"
        )
    q = select(PolicyVersion).where(PolicyVersion.policy_id == policy.id)
    if ver:
        digits = ver[1:] if ver.startswith("v") else ver
        if not digits.isdigit() or int(digits) < 1:
            raise LeagueError(f"bad policy version {ref!r}: use NAME, NAME:vN or NAME:N with N > 0")
        row = s.execute(q.where(PolicyVersion.version == int(digits))).scalar_one_or_none()
    else:
        row = s.execute(q.order_by(PolicyVersion.version.desc()).limit(1)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"unknown policy version {ref!r}")
    return row


def division(s: Session, ref: str, in_league: League | None = None) -> Division:
    """A division id, or a division name within `in_league`."""
    row = _by_id(s, Division, "division", ref)
    if row is None and in_league is not None:
        row = s.execute(
            select(Division).where(Division.league_id == in_league.id, Division.name == ref)
        ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"unknown division {ref!r}")
    return row


def round_(s: Session, ref: str) -> Round:
    row = _by_id(s, Round, "round", ref)
    if row is None:
        raise NotFound(f"unknown round {ref!r}")
    return row


def episode(s: Session, ref: str) -> EpisodeRequestRow:
    row = _by_id(s, EpisodeRequestRow, "ereq", ref)
    if row is None:
        raise NotFound(f"unknown episode request {ref!r}")
    return row


def labels(s: Session, pv_ids: Any) -> dict[str, str]:
    """`name:vN` of each policy version id."""
    wanted = set(pv_ids)
    if not wanted:
        return {}
    rows = s.execute(
        select(PolicyVersion.id, Policy.name, PolicyVersion.version)
        .join(Policy, Policy.id == PolicyVersion.policy_id)
        .where(PolicyVersion.id.in_(wanted))
    ).all()
    return {r[0]: f"{r[1]}:v{r[2]}" for r in rows}
