"""Reference -> row lookups. Every lookup accepts a public id (`league_…`), a raw UUID or a name;
rounds and episodes also their readable keys (`orchard-demo.r3`, `orchard-demo.r3.e13`, readable.py).

All of them run inside the caller's transaction and raise `NotFound` with a hint naming the command
that creates the missing thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from coworld_pipeline.league import ids, readable
from coworld_pipeline.league.errors import LeagueError, NotFound, quoted
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
        raise NotFound(f"unknown league {quoted(ref)}")
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
        raise NotFound(f"unknown coworld {quoted(ref)} (upload it with `coworld upload-coworld MANIFEST`)")
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
            f"unknown policy {quoted(name)} (upload it with `coworld upload-policy IMAGE --name NAME`)"
        )
    q = select(PolicyVersion).where(PolicyVersion.policy_id == policy.id)
    if ver:
        digits = ver[1:] if ver.startswith("v") else ver
        if not digits.isascii() or not digits.isdigit() or not digits.strip("0"):
            raise LeagueError(f"bad policy version {quoted(ref)}: use NAME, NAME:vN or NAME:N with N > 0")
        # A number larger than any row holds is a version nobody uploaded (readable.number).
        version = readable.number(digits)
        if version is not None:
            row = s.execute(q.where(PolicyVersion.version == version)).scalar_one_or_none()
    else:
        row = s.execute(q.order_by(PolicyVersion.version.desc()).limit(1)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"unknown policy version {quoted(ref)}")
    return row


def division(s: Session, ref: str, in_league: League | None = None) -> Division:
    """A division id, or a division name within `in_league`."""
    row = _by_id(s, Division, "division", ref)
    if row is None and in_league is not None:
        row = s.execute(
            select(Division).where(Division.league_id == in_league.id, Division.name == ref)
        ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"unknown division {quoted(ref)}")
    return row


def _candidate_leagues(s: Session, named: str | None, in_league: str | None) -> list[League]:
    """The league a readable reference names, else the one given (`--league`), else every league."""
    if named is not None:
        return [league(s, named)]
    if in_league is not None:
        return [league(s, in_league)]
    return list(s.execute(select(League).order_by(League.created_at)).scalars())


# Commands that take --league resolve `rN`/`rN.eM` in it; the others need the league in the reference.
LEAGUE_HINT = "LEAGUE.rN…, or --league where the command takes it"


def _ambiguous(kind: str, ref: str, keys: list[str]) -> LeagueError:
    return LeagueError(
        f"{kind} {quoted(ref)} is ambiguous: it matches {', '.join(keys)}; name the league ({LEAGUE_HINT})"
    )


def round_(s: Session, ref: str, in_league: str | None = None) -> Round:
    """A round id, `LEAGUE.rN`, or `rN` in `in_league` (or in the only league that has a round N)."""
    row = _by_id(s, Round, "round", ref)
    parsed = None if row is not None else readable.parse_round(ref)
    if parsed is not None:
        found = [
            r
            for lg in _candidate_leagues(s, parsed.league, in_league)
            if (r := _round_number(s, lg.id, parsed.round_number)) is not None
        ]
        if len(found) > 1:
            raise _ambiguous("round", ref, [round_key(s, r) for r in found])
        row = found[0] if found else None
    if row is None:
        raise NotFound(f"unknown round {quoted(ref)} (a round id, LEAGUE.rN, or rN with --league)")
    _in_league(s, "round", ref, row.league_id, in_league)
    return row


def _in_league(s: Session, kind: str, ref: str, league_id: str, in_league: str | None) -> None:
    """A reference that names its league (an id, `LEAGUE.rN`) and a `--league` that disagrees: an
    error, not the other league's row (or an empty table) as if the filter held."""
    if in_league is not None and league(s, in_league).id != league_id:
        raise LeagueError(f"{kind} {quoted(ref)} is not in league {quoted(in_league)}")


def round_key(s: Session, rnd: Round) -> str:
    lg = s.get(League, rnd.league_id)
    return readable.round_key(lg.name, ids.public("league", lg.id) or "", rnd.round_number)


def episode_order(s: Session, round_id: str) -> list[str]:
    """Raw ids of a round's episodes by number (e1 first): creation order, then id (readable.py)."""
    return list(
        s.execute(
            select(EpisodeRequestRow.id)
            .where(EpisodeRequestRow.round_id == round_id)
            .order_by(EpisodeRequestRow.created_at, EpisodeRequestRow.id)
        ).scalars()
    )


def episode_keys(s: Session, rows: Iterable[EpisodeRequestRow]) -> dict[str, str]:
    """Raw id -> readable key (`league.rN.eM`) of each row; one query per round involved."""
    wanted: dict[str, set[str]] = {}
    for e in rows:
        wanted.setdefault(e.round_id, set()).add(e.id)
    keys: dict[str, str] = {}
    for round_id, members in wanted.items():
        prefix = round_key(s, s.get(Round, round_id))
        for number, raw in enumerate(episode_order(s, round_id), start=1):
            if raw in members:
                keys[raw] = f"{prefix}.e{number}"
    return keys


def _round_number(s: Session, league_id: str, round_number: int) -> Round | None:
    """The league's round with this number, if it has one."""
    return s.execute(
        select(Round).where(Round.league_id == league_id, Round.round_number == round_number)
    ).scalar_one_or_none()


def episode(s: Session, ref: str, in_league: str | None = None) -> EpisodeRequestRow:
    """An episode id (`ereq_…` or raw), `LEAGUE.rN.eM`, or `rN.eM` / `rN-eM` in `in_league` (or in
    the only league that has one). A short form also matches the commissioner's own request id (what
    events quote); more than one match is an error that lists them."""
    row = _by_id(s, EpisodeRequestRow, "ereq", ref)
    parsed = None if row is not None else readable.parse_episode(ref)
    if parsed is not None:
        found: dict[str, EpisodeRequestRow] = {}
        for lg in _candidate_leagues(s, parsed.league, in_league):
            rnd = _round_number(s, lg.id, parsed.round_number)
            if rnd is None:
                continue
            order = episode_order(s, rnd.id)
            if parsed.episode is not None and parsed.episode <= len(order):
                hit = s.get(EpisodeRequestRow, order[parsed.episode - 1])
                found[hit.id] = hit
            if parsed.league is None:  # the commissioner's request id, as events show it
                for hit in s.execute(
                    select(EpisodeRequestRow).where(
                        EpisodeRequestRow.round_id == rnd.id, EpisodeRequestRow.request_id == ref
                    )
                ).scalars():
                    found[hit.id] = hit
        if len(found) > 1:
            keys = episode_keys(s, found.values())
            raise _ambiguous("episode", ref, sorted(keys.values()))
        row = next(iter(found.values()), None)
    if row is None:
        raise NotFound(
            f"unknown episode request {quoted(ref)} (an ereq_… id, LEAGUE.rN.eM, or rN.eM with --league)"
        )
    _in_league(s, "episode", ref, row.league_id, in_league)
    return row


def episode_ids(s: Session, refs: Iterable[str]) -> dict[str, str]:
    """Each episode reference -> its raw id, as `episode` resolves it. Full keys (`LEAGUE.rN.eM`)
    are resolved per round, not one by one: a Dagster run resolves its whole partition range before
    its first episode starts."""
    out: dict[str, str] = {}
    orders: dict[tuple[str, int], list[str] | None] = {}
    for ref in refs:
        parsed = readable.parse_episode(ref) if _by_id(s, EpisodeRequestRow, "ereq", ref) is None else None
        if parsed is None or parsed.league is None or parsed.episode is None:
            out[ref] = episode(s, ref).id
            continue
        at = (parsed.league, parsed.round_number)
        if at not in orders:
            rnd = _round_number(s, league(s, parsed.league).id, parsed.round_number)
            orders[at] = None if rnd is None else episode_order(s, rnd.id)
        order = orders[at]
        if order is None or parsed.episode > len(order):
            out[ref] = episode(s, ref).id  # raises NotFound naming the reference
            continue
        out[ref] = order[parsed.episode - 1]
    return out


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
