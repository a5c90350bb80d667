"""Rounds: which leagues are due, opening a round, advancing it, closing it (completed, failed or
cancelled). Every decision, refusals included, is an event written in the same transaction.

A round is driven by its commissioner (dialogue.py): opening sends `round_start`; advancing reports
finished episodes; the round closes once the commissioner sent `round_complete` and nothing it
scheduled is still running (what it left pending is cancelled).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coworld_pipeline.contract.commissioner import RoundAbort, RoundComplete
from coworld_pipeline.league import dialogue, ids, reads, resolve
from coworld_pipeline.league.commissioners import make_commissioner
from coworld_pipeline.league.errors import LeagueError
from coworld_pipeline.league.models import (
    Division,
    EpisodeRequestRow,
    Event,
    GraduationChangeRow,
    League,
    Membership,
    Round,
    RoundResult,
    utcnow,
)
from coworld_pipeline.league.standings import division_rows
from coworld_pipeline.league.status import ELIGIBLE, OPEN, TERMINAL, EpisodeStatus, RoundStatus
from coworld_pipeline.league.unit import Store, json_text, lock_league, record_event
from coworld_pipeline.league.verdicts import cancel_episodes
from coworld_pipeline.league.views import RoundOpening, RoundProgress, RoundView

# A schedule ticks on minute boundaries and opens a round a moment after its tick; without slack the
# next tick (one interval later, to the second) would find the league a moment short of due and skip,
# so a 1-minute league would play every other minute.
DUE_SLACK = timedelta(seconds=15)


@dataclass(frozen=True)
class ScheduleDecision:
    """Whether a league with a cadence is due for a round now, and if not, why."""

    league_id: str  # raw
    league_name: str
    due: bool
    reason: str | None = None


def _decide(s: Session, league: League, now: datetime) -> ScheduleDecision:
    last = s.execute(
        select(Round).where(Round.league_id == league.id).order_by(Round.round_number.desc()).limit(1)
    ).scalar_one_or_none()
    if league.paused:
        return ScheduleDecision(league.id, league.name, False, "paused")
    if last is not None and last.status == RoundStatus.RUNNING:
        return ScheduleDecision(league.id, league.name, False, f"round {last.round_number} is still open")
    if last is not None:
        due_at = last.started_at + timedelta(minutes=league.interval_minutes or 0) - DUE_SLACK
        if due_at > now:
            return ScheduleDecision(league.id, league.name, False, f"not due until {due_at:%H:%M:%S} UTC")
    return ScheduleDecision(league.id, league.name, True)


def schedule_decisions(store: Store, now: datetime | None = None) -> list[ScheduleDecision]:
    """Every league with a cadence (`interval_minutes`): due now, or why not."""
    now = now or utcnow()

    def fn(s: Session) -> list[ScheduleDecision]:
        leagues = s.execute(
            select(League).where(League.interval_minutes.is_not(None)).order_by(League.created_at)
        ).scalars()
        return [_decide(s, league, now) for league in leagues]

    return store.read(fn)


def due_leagues(store: Store, now: datetime | None = None) -> list[str]:
    """Leagues with an interval, not paused, no open round, whose last round started an interval ago."""
    return [d.league_id for d in schedule_decisions(store, now) if d.due]


def explain_idle(store: Store, decisions: list[ScheduleDecision], trigger: str) -> None:
    """An event for each league the schedule leaves alone, saying why — once per reason, not per tick."""
    idle = [d for d in decisions if not d.due]
    if not idle:
        return

    def fn(s: Session) -> None:
        for d in idle:
            headline = f"no round opened for {d.league_name}: {d.reason}"
            last = s.execute(
                select(Event.headline)
                .where(Event.league_id == d.league_id, Event.event_type == "schedule_skipped")
                .order_by(Event.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            if last != headline:
                record_event(
                    s, "schedule_skipped", headline, league_id=d.league_id, reason=d.reason, trigger=trigger
                )

    store.write(fn)


def _refusal(s: Session, league: League) -> str | None:
    """Why no round may open now, or None."""
    if league.paused:
        return "league is paused"
    running = s.execute(
        select(Round).where(Round.league_id == league.id, Round.status == RoundStatus.RUNNING)
    ).scalar_one_or_none()
    if running is not None:
        return f"round {running.round_number} is still open ({ids.public('round', running.id)})"
    per_div = dict(
        s.execute(
            select(Membership.division_id, func.count())
            .where(Membership.league_id == league.id, Membership.status.in_(ELIGIBLE))
            .group_by(Membership.division_id)
        ).all()
    )
    if not any(n >= 2 for n in per_div.values()):
        return (
            f"fewer than 2 eligible entrants in every division (eligible: {sum(per_div.values())}); "
            "submit policies with `coworld submit`"
        )
    return None


def open_round(store: Store, league_ref: str, trigger: str = "manual") -> RoundOpening:
    """Open the next round and run the commissioner's first step, or refuse (with an event) and say why."""

    def fn(s: Session) -> RoundOpening:
        league = lock_league(s, resolve.league(s, league_ref).id)
        refuse = _refusal(s, league)
        if refuse is not None:
            record_event(
                s,
                "round_refused",
                f"no round opened for {league.name}: {refuse}",
                league_id=league.id,
                trigger=trigger,
                reason=refuse,
            )
            return RoundOpening(None, refuse)
        number = (
            s.execute(select(func.max(Round.round_number)).where(Round.league_id == league.id)).scalar() or 0
        ) + 1
        rnd = Round(
            league_id=league.id,
            round_number=number,
            status=RoundStatus.RUNNING,
            trigger=trigger,
            open_marker=league.id,
            commissioner=league.commissioner,
            failed_slots=0,
        )
        s.add(rnd)
        s.flush()
        record_event(
            s,
            "round_opened",
            f"round {number} of {league.name} opened ({trigger})",
            league_id=league.id,
            round_id=rnd.id,
            trigger=trigger,
        )
        start = dialogue.round_start(s, league, rnd)
        try:
            dialogue.pump(s, league, rnd, [start.to_json_dict()])
            _maybe_close(s, league, rnd)
        except dialogue.RoundFailure as err:
            _fail_round(s, league, rnd, str(err))
        return RoundOpening(rnd.id)

    try:
        return store.write(fn)
    except IntegrityError:  # another process opened a round at the same moment (rounds.open_marker)
        return RoundOpening(None, "another process opened a round at the same moment")


def open_round_of(store: Store, league_ref: str) -> str | None:
    """The raw id of the league's open round, if any."""

    def fn(s: Session) -> str | None:
        league = resolve.league(s, league_ref)
        return s.execute(
            select(Round.id).where(Round.league_id == league.id, Round.status == RoundStatus.RUNNING)
        ).scalar_one_or_none()

    return store.read(fn)


def _unreported(s: Session, rnd: Round) -> list[EpisodeRequestRow]:
    return list(
        s.execute(
            select(EpisodeRequestRow)
            .where(
                EpisodeRequestRow.round_id == rnd.id,
                EpisodeRequestRow.status.in_(TERMINAL),
                EpisodeRequestRow.reported.is_(False),
            )
            .order_by(EpisodeRequestRow.finished_at, EpisodeRequestRow.id)
        ).scalars()
    )


def advance_round(store: Store, round_id: str) -> RoundProgress:
    """Report finished episodes to the commissioner, act on its answers, close the round when done."""

    def fn(s: Session) -> RoundProgress:
        rnd = resolve.round_(s, round_id)
        league = lock_league(s, rnd.league_id)
        s.refresh(rnd)
        new_ids: list[str] = []
        was_running = rnd.status == RoundStatus.RUNNING
        if was_running:
            try:
                budget = league.failure_policy.get("failed_slot_budget")
                if budget is not None and rnd.failed_slots > budget:
                    raise dialogue.RoundFailure(
                        f"failed-slot budget exceeded: {rnd.failed_slots} failed seats > {budget} "
                        "allowed per round"
                    )
                unreported = _unreported(s, rnd)
                inbound = [dialogue.report_message(e) for e in unreported]
                for e in unreported:
                    e.reported = True
                if inbound:
                    new_ids = dialogue.pump(s, league, rnd, inbound)
                _maybe_close(s, league, rnd)
            except dialogue.RoundFailure as err:
                _fail_round(s, league, rnd, str(err))
        # Under the league's lock: exactly one caller sees the round close.
        return _progress(s, rnd, new_ids, closed_now=was_running and rnd.status != RoundStatus.RUNNING)

    return store.write(fn)


def _progress(s: Session, rnd: Round, new_ids: list[str], closed_now: bool = False) -> RoundProgress:
    rows = s.execute(
        select(EpisodeRequestRow.id, EpisodeRequestRow.status).where(EpisodeRequestRow.round_id == rnd.id)
    ).all()
    counts: dict[str, int] = {}
    for _, status in rows:
        counts[str(status)] = counts.get(str(status), 0) + 1
    return RoundProgress(
        round_id=rnd.id,
        status=str(rnd.status),
        new_pending=tuple(new_ids),
        pending=tuple(sorted(i for i, st in rows if st == EpisodeStatus.PENDING)),
        running=tuple(sorted(i for i, st in rows if st == EpisodeStatus.RUNNING)),
        counts=counts,
        error=rnd.error,
        closed_now=closed_now,
    )


def _maybe_close(s: Session, league: League, rnd: Round) -> None:
    open_rows = list(
        s.execute(
            select(EpisodeRequestRow).where(
                EpisodeRequestRow.round_id == rnd.id, EpisodeRequestRow.status.in_(OPEN)
            )
        ).scalars()
    )
    if rnd.complete_message is None:
        if not open_rows and not _unreported(s, rnd):
            raise dialogue.RoundFailure(
                "commissioner stalled: no episode is pending and it sent no round_complete"
            )
        return
    pending = [e for e in open_rows if e.status == EpisodeStatus.PENDING]
    if pending:  # the commissioner is finished: what it left unplayed is cancelled
        cancel_episodes(s, league, pending, "the commissioner completed the round without it")
    if any(e.status == EpisodeStatus.RUNNING for e in open_rows):
        return
    complete = RoundComplete.model_validate({k: v for k, v in rnd.complete_message.items() if k != "type"})
    _finish_round(s, league, rnd, complete)


def _record_rankings(
    s: Session, league: League, rnd: Round, msg: RoundComplete, divisions: dict, by_pv: dict
) -> int:
    skipped, recorded = [], 0
    for div_result in msg.results:
        if div_result.division_id not in divisions:
            skipped.append(f"unknown division {div_result.division_id}")
            continue
        for r in div_result.rankings:
            m = by_pv.get(r.policy_version_id)
            if m is None or m.division_id != div_result.division_id:
                skipped.append(f"{r.policy_version_id} is not in division {div_result.division_id}")
                continue
            s.add(
                RoundResult(
                    round_id=rnd.id,
                    division_id=div_result.division_id,
                    policy_version_id=r.policy_version_id,
                    rank=r.rank,
                    score=r.score,
                    result_metadata=r.result_metadata,
                )
            )
            recorded += 1
    if skipped:
        record_event(
            s,
            "rankings_rejected",
            f"{len(skipped)} ranking row(s) ignored",
            league_id=league.id,
            round_id=rnd.id,
            reasons=skipped[:50],
        )
    return recorded


def _apply_graduations(
    s: Session, league: League, rnd: Round, msg: RoundComplete, divisions: dict, members: dict
) -> None:
    labels = resolve.labels(s, [m.policy_version_id for m in members.values()])
    for change in msg.graduation_changes:
        m = members.get(change.membership_id)
        reason = None
        if m is None:
            reason = f"unknown membership {change.membership_id}"
        elif change.to_division_id not in divisions:
            reason = f"unknown division {change.to_division_id}"
        elif m.status not in ELIGIBLE:
            reason = f"membership is {m.status}"
        if reason:
            record_event(
                s,
                "graduation_rejected",
                f"graduation change ignored: {reason}",
                league_id=league.id,
                round_id=rnd.id,
                change=change.model_dump(),
            )
            continue
        assert m is not None
        if m.division_id == change.to_division_id:
            continue
        s.add(
            GraduationChangeRow(
                round_id=rnd.id,
                membership_id=m.id,
                from_division_id=m.division_id,
                to_division_id=change.to_division_id,
                reason=change.reason,
            )
        )
        old, new = divisions[m.division_id], divisions[change.to_division_id]
        record_event(
            s,
            "graduation",
            f"{labels.get(m.policy_version_id)} {old.name} → {new.name}: {change.reason}",
            league_id=league.id,
            round_id=rnd.id,
            division_id=new.id,
            policy_version_id=m.policy_version_id,
            from_division_id=old.id,
        )
        m.division_id = change.to_division_id
        m.updated_at = utcnow()


def _finish_round(s: Session, league: League, rnd: Round, msg: RoundComplete) -> None:
    divisions = {
        d.id: d for d in s.execute(select(Division).where(Division.league_id == league.id)).scalars()
    }
    members = {
        m.id: m for m in s.execute(select(Membership).where(Membership.league_id == league.id)).scalars()
    }
    by_pv = {m.policy_version_id: m for m in members.values()}
    recorded = _record_rankings(s, league, rnd, msg, divisions, by_pv)
    _apply_graduations(s, league, rnd, msg, divisions, members)
    rnd.status = RoundStatus.COMPLETED
    rnd.open_marker = None
    rnd.completed_at = utcnow()
    rnd.round_display = msg.round_display
    rnd.carry_state = json_text(msg.state) if msg.state is not None else None
    counts = reads.status_counts(s, EpisodeRequestRow.status, EpisodeRequestRow.round_id == rnd.id)
    record_event(
        s,
        "round_completed",
        f"round {rnd.round_number} of {league.name} completed: "
        f"{counts.get('succeeded', 0)} rated, {counts.get('failed', 0)} failed, "
        f"{counts.get('cancelled', 0)} cancelled episode(s)",
        league_id=league.id,
        round_id=rnd.id,
        episodes=counts,
        rankings=recorded,
    )
    s.flush()
    for div in divisions.values():
        top = [r for r in division_rows(s, league, div) if r.rank is not None][:5]
        if top:
            record_event(
                s,
                "standings_updated",
                f"{div.name}: " + ", ".join(f"{r.rank}. {r.label} ({r.rating:.2f})" for r in top),
                league_id=league.id,
                round_id=rnd.id,
                division_id=div.id,
                top=[{"label": r.label, "rating": r.rating, "episodes": r.episodes} for r in top],
            )


def _fail_round(s: Session, league: League, rnd: Round, reason: str) -> None:
    """Fail the round: abort the commissioner, cancel what has not started, keep what was played."""
    if rnd.commissioner_state:
        commissioner = make_commissioner(league.commissioner, league.commissioner_config)
        try:
            state, _ = commissioner.handle(
                RoundAbort(reason=reason).to_json_dict(), json.loads(rnd.commissioner_state)
            )
            rnd.commissioner_state = json_text(state)
        except Exception:  # the round is failing anyway
            pass
    pending = list(
        s.execute(
            select(EpisodeRequestRow).where(
                EpisodeRequestRow.round_id == rnd.id, EpisodeRequestRow.status == EpisodeStatus.PENDING
            )
        ).scalars()
    )
    cancel_episodes(s, league, pending, f"round failed: {reason}")
    for e in pending:
        e.reported = True
    rnd.status = RoundStatus.FAILED
    rnd.open_marker = None
    rnd.error = reason
    rnd.completed_at = utcnow()
    record_event(
        s,
        "round_failed",
        f"round {rnd.round_number} of {league.name} failed: {reason}",
        league_id=league.id,
        round_id=rnd.id,
        reason=reason,
        cancelled=len(pending),
    )


def cancel_round(store: Store, round_id: str, reason: str = "cancelled by user") -> RoundView:
    def fn(s: Session) -> RoundView:
        rnd = resolve.round_(s, round_id)
        league = lock_league(s, rnd.league_id)
        s.refresh(rnd)
        if rnd.status != RoundStatus.RUNNING:
            raise LeagueError(f"round {ids.public('round', rnd.id)} is {rnd.status}, not open")
        _fail_round(s, league, rnd, reason)
        rnd.status = RoundStatus.CANCELLED
        return reads.round_view(s, rnd)

    return store.write(fn)


def round_start_message(store: Store, round_id: str) -> dict[str, Any]:
    """The `round_start` a container commissioner would receive for this round."""

    def fn(s: Session) -> dict[str, Any]:
        rnd = resolve.round_(s, round_id)
        return dialogue.round_start(s, s.get(League, rnd.league_id), rnd).to_json_dict()

    return store.read(fn)


def commissioner_message(store: Store, round_id: str, message: Any) -> list[dict[str, Any]]:
    """Accept one message from a commissioner for an open round (the `/round` driver's entry point).

    Returns the platform's answers (`episodes_accepted` / `episodes_rejected`). Invalid messages
    raise CommissionerProtocolError and change nothing.
    """

    def fn(s: Session) -> list[dict[str, Any]]:
        rnd = resolve.round_(s, round_id)
        league = lock_league(s, rnd.league_id)
        s.refresh(rnd)
        if rnd.status != RoundStatus.RUNNING:
            raise LeagueError(f"round {ids.public('round', rnd.id)} is {rnd.status}, not open")
        answers, _ = dialogue.receive(s, league, rnd, message, strict=True)
        return answers

    return store.write(fn)


def nothing_to_do(store: Store, league_ref: str, reason: str, **payload: Any) -> None:
    """Record a scheduler tick that decided to do nothing, and why."""

    def fn(s: Session) -> None:
        league = resolve.league(s, league_ref)
        record_event(
            s,
            "nothing_to_do",
            f"{league.name}: nothing to do because {reason}",
            league_id=league.id,
            reason=reason,
            **payload,
        )

    store.write(fn)


def partitions_archived(store: Store, round_ref: str, keys: list[str], reason: str) -> None:
    """Record that the orchestrator archived these episode partition keys of a closed round (the
    episodes themselves, their attempts and artifacts stay in the league database)."""

    def fn(s: Session) -> None:
        rnd = resolve.round_(s, round_ref)
        record_event(
            s,
            "partitions_archived",
            f"{len(keys)} episode partition(s) of a closed round archived: {reason}",
            league_id=rnd.league_id,
            round_id=rnd.id,
            keys=keys,  # <= ARCHIVE_PER_TICK (500) per event
            count=len(keys),
        )

    store.write(fn)
