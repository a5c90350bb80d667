"""The league overview: what an operator wants to see first, in one read.

The current round and how far it is (played / failed / running / pending of its total), the episodes
that failed in the last rounds and why, the entrants in quarantine and why, and when the next round
opens (or why it will not: paused, no cadence, the round still open). The CLI prints it
(`coworld league overview`, `coworld leagues`) and the Dagster `standings` asset shows it as its
metadata.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coworld_pipeline.league import ids, readable, resolve
from coworld_pipeline.league.models import EpisodeRequestRow, League, Membership, Round, utcnow
from coworld_pipeline.league.rounds import DUE_SLACK  # a due league opens at the tick just before
from coworld_pipeline.league.status import EpisodeStatus, MembershipStatus, RoundStatus
from coworld_pipeline.league.views import iso

JsonDict = dict[str, Any]
RECENT_ROUNDS = 2  # failures of the current round and the one before it
MAX_FAILURES = 10


@dataclass(frozen=True)
class RoundStatusLine:
    key: str  # league.rN
    number: int
    status: str  # running | completed | failed | cancelled
    played: int  # succeeded
    failed: int
    running: int
    pending: int
    cancelled: int
    total: int
    started_at: datetime | None
    completed_at: datetime | None

    @property
    def progress(self) -> str:
        """`12/18 played, 2 failed, 1 running, 3 pending`: what is left out is zero."""
        parts = [f"{self.played}/{self.total} played"]
        for word, n in (("failed", self.failed), ("running", self.running), ("pending", self.pending)):
            if n:
                parts.append(f"{n} {word}")
        if self.cancelled:
            parts.append(f"{self.cancelled} cancelled")
        return ", ".join(parts)

    def to_json(self) -> JsonDict:
        return {
            "key": self.key,
            "number": self.number,
            "status": self.status,
            "played": self.played,
            "failed": self.failed,
            "running": self.running,
            "pending": self.pending,
            "cancelled": self.cancelled,
            "total": self.total,
            "progress": self.progress,
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
        }


@dataclass(frozen=True)
class FailureLine:
    episode: str  # league.rN.eM
    episode_id: str  # ereq_…
    error_type: str
    blame: str | None
    policy: str | None  # the seat blamed, when a player is
    message: str

    def to_json(self) -> JsonDict:
        return {
            "episode": self.episode,
            "episode_id": self.episode_id,
            "error_type": self.error_type,
            "blame": self.blame,
            "policy": self.policy,
            "message": self.message,
        }


@dataclass(frozen=True)
class QuarantineLine:
    policy: str  # name:vN
    reason: str
    since: datetime | None

    def to_json(self) -> JsonDict:
        return {"policy": self.policy, "reason": self.reason, "since": iso(self.since)}


@dataclass(frozen=True)
class LeagueOverview:
    league: str  # name
    league_id: str
    paused: bool
    interval_minutes: float | None
    current_round: RoundStatusLine | None  # the newest round, open or not
    next_round_at: datetime | None  # the schedule tick expected to open it (None: none expected)
    next_round: str  # the same in words, or why no round will open
    failures: tuple[FailureLine, ...]  # the newest MAX_FAILURES of `failures_total`
    failures_total: int  # failed episodes of the last RECENT_ROUNDS rounds
    quarantines: tuple[QuarantineLine, ...]
    entrants: dict[str, int]  # membership status -> count

    @property
    def failures_title(self) -> str:
        """`failed episodes (last 2 rounds: 10 of 12 shown; coworld episodes ... for all)`."""
        shown, total = len(self.failures), self.failures_total
        count = f"{shown} of {total} shown" if shown < total else f"{total}"
        more = (
            f"; coworld episodes --league {shlex.quote(self.league)} --status failed lists all"
            if shown < total
            else ""
        )
        return f"failed episodes (last {RECENT_ROUNDS} rounds: {count}{more})"

    @property
    def headline(self) -> str:
        """One line: `orchard-demo: round 3 running (12/18 played, 2 failed); next round ~10:42 UTC`."""
        if self.current_round is None:
            now = "no round yet"
        else:
            r = self.current_round
            now = f"round {r.number} {r.status} ({r.progress})"
        extra = f"; {len(self.quarantines)} quarantined" if self.quarantines else ""
        return f"{self.league}: {now}; next round: {self.next_round}{extra}"

    def to_json(self) -> JsonDict:
        return {
            "league": self.league,
            "league_id": self.league_id,
            "paused": self.paused,
            "interval_minutes": self.interval_minutes,
            "current_round": self.current_round.to_json() if self.current_round else None,
            "next_round_at": iso(self.next_round_at),
            "next_round": self.next_round,
            "failures": [f.to_json() for f in self.failures],
            "failures_total": self.failures_total,
            "quarantines": [q.to_json() for q in self.quarantines],
            "entrants": dict(self.entrants),
            "headline": self.headline,
        }


def _round_line(s: Session, league: League, rnd: Round) -> RoundStatusLine:
    counts = dict.fromkeys(EpisodeStatus, 0)
    for status in s.execute(
        select(EpisodeRequestRow.status).where(EpisodeRequestRow.round_id == rnd.id)
    ).scalars():
        counts[EpisodeStatus(status)] += 1
    return RoundStatusLine(
        key=readable.round_key(league.name, ids.public("league", league.id) or "", rnd.round_number),
        number=rnd.round_number,
        status=str(rnd.status),
        played=counts[EpisodeStatus.SUCCEEDED],
        failed=counts[EpisodeStatus.FAILED],
        running=counts[EpisodeStatus.RUNNING],
        pending=counts[EpisodeStatus.PENDING],
        cancelled=counts[EpisodeStatus.CANCELLED],
        total=sum(counts.values()),
        started_at=rnd.started_at,
        completed_at=rnd.completed_at,
    )


def _next_tick(at: datetime) -> datetime:
    """The first minute boundary at or after `at` (the schedule's default cron is every minute)."""
    floor = at.replace(second=0, microsecond=0)
    return floor if floor == at else floor + timedelta(minutes=1)


def _next_round(league: League, last: Round | None, now: datetime) -> tuple[datetime | None, str]:
    if league.interval_minutes is None:
        return None, "manual (no cadence: coworld round run, or --interval-minutes)"
    if league.paused:
        return None, "paused (coworld league resume)"
    if last is not None and last.status == RoundStatus.RUNNING:
        return None, f"when round {last.round_number} closes (cadence {league.interval_minutes:g} min)"
    due = now if last is None else last.started_at + timedelta(minutes=league.interval_minutes) - DUE_SLACK
    at = _next_tick(max(due, now))
    return at, f"~{at:%H:%M} UTC (cadence {league.interval_minutes:g} min)"


def _failures_total(s: Session, rounds: list[Round]) -> int:
    if not rounds:
        return 0
    return int(
        s.execute(
            select(func.count())
            .select_from(EpisodeRequestRow)
            .where(
                EpisodeRequestRow.round_id.in_([r.id for r in rounds]),
                EpisodeRequestRow.status == EpisodeStatus.FAILED,
            )
        ).scalar_one()
    )


def _failures(s: Session, league: League, rounds: list[Round]) -> list[FailureLine]:
    if not rounds:
        return []
    rows = list(
        s.execute(
            select(EpisodeRequestRow)
            .where(
                EpisodeRequestRow.round_id.in_([r.id for r in rounds]),
                EpisodeRequestRow.status == EpisodeStatus.FAILED,
            )
            .order_by(EpisodeRequestRow.finished_at.desc(), EpisodeRequestRow.id)
            .limit(MAX_FAILURES)
        ).scalars()
    )
    keys = resolve.episode_keys(s, rows)
    labels = resolve.labels(s, [pv for e in rows for pv in e.policy_version_ids])
    out = []
    for e in rows:
        error = e.error or {}
        slot = error.get("slot")
        blamed = (
            e.policy_version_ids[slot]
            if error.get("blame") == "player"
            and isinstance(slot, int)
            and 0 <= slot < len(e.policy_version_ids)
            else None
        )
        out.append(
            FailureLine(
                episode=keys.get(e.id, ids.public("ereq", e.id) or ""),
                episode_id=ids.public("ereq", e.id) or "",
                error_type=e.error_type or "unknown",
                blame=error.get("blame"),
                policy=labels.get(blamed) if blamed else None,
                message=str(error.get("message") or "").strip().splitlines()[0][:300]
                if error.get("message")
                else "",
            )
        )
    return out


def league_overview(s: Session, league_ref: str, now: datetime | None = None) -> LeagueOverview:
    now = now or utcnow()
    league = resolve.league(s, league_ref)
    recent = list(
        s.execute(
            select(Round)
            .where(Round.league_id == league.id)
            .order_by(Round.round_number.desc())
            .limit(RECENT_ROUNDS)
        ).scalars()
    )
    members = list(s.execute(select(Membership).where(Membership.league_id == league.id)).scalars())
    entrants: dict[str, int] = {}
    for m in members:
        entrants[str(m.status)] = entrants.get(str(m.status), 0) + 1
    quarantined = [m for m in members if m.status == MembershipStatus.QUARANTINED]
    labels = resolve.labels(s, [m.policy_version_id for m in quarantined])
    next_at, next_words = _next_round(league, recent[0] if recent else None, now)
    return LeagueOverview(
        league=league.name,
        league_id=ids.public("league", league.id) or "",
        paused=bool(league.paused),
        interval_minutes=league.interval_minutes,
        current_round=_round_line(s, league, recent[0]) if recent else None,
        next_round_at=next_at,
        next_round=next_words,
        failures=tuple(_failures(s, league, recent)),
        failures_total=_failures_total(s, recent),
        quarantines=tuple(
            QuarantineLine(
                labels.get(m.policy_version_id, m.policy_version_id), m.status_reason or "", m.updated_at
            )
            for m in sorted(quarantined, key=lambda m: m.updated_at or now, reverse=True)
        ),
        entrants=entrants,
    )


def league_overviews(s: Session, now: datetime | None = None) -> list[LeagueOverview]:
    """Every league's overview, oldest league first."""
    leagues = s.execute(select(League).order_by(League.created_at)).scalars()
    return [league_overview(s, ids.public("league", lg.id) or lg.id, now) for lg in leagues]
