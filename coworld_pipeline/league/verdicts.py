"""Verdicts: recording how an episode attempt ended, and what follows from it.

* success: per-slot scores stored, ratings updated (openskill, per division), qualifying members
  become active, failure streaks reset;
* an infrastructure failure (anything not a player's fault): retried up to the league's
  `infra_retries`, then failed without touching any rating or charging anyone;
* a player failure (crashed / never connected, with a slot): charged to that slot's membership,
  which is quarantined after `quarantine_after` consecutive failures, with the evidence.

An outcome counts only if the row is still `running` with the attempt that produced it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coworld_pipeline.league import ids, reads, resolve
from coworld_pipeline.league.errors import NotFound
from coworld_pipeline.league.handoff import EpisodeOutcome
from coworld_pipeline.league.models import (
    Division,
    EpisodeRequestRow,
    EpisodeSlot,
    League,
    Membership,
    Rating,
    Round,
    utcnow,
)
from coworld_pipeline.league.ratings import MU, SIGMA, Standing, apply_episode, credit
from coworld_pipeline.league.standings import write_rating
from coworld_pipeline.league.status import ELIGIBLE, EpisodeStatus, MembershipStatus, RoundStatus
from coworld_pipeline.league.unit import Store, lock_league, record_event
from coworld_pipeline.league.views import EpisodeView
from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType


def readable_key(s: Session, e: EpisodeRequestRow) -> str:
    """`league.rN.eM`: how events name an episode (the CLI accepts it, it is its partition key)."""
    return resolve.episode_keys(s, [e])[e.id]


def episode_event(
    s: Session, league: League, e: EpisodeRequestRow, event_type: str, headline: str, **payload: Any
) -> None:
    """An event about one episode (its league, round and id filled in)."""
    record_event(s, event_type, headline, league_id=league.id, round_id=e.round_id, ereq_id=e.id, **payload)


def cancel_episode(e: EpisodeRequestRow, reason: str) -> None:
    e.status = EpisodeStatus.CANCELLED
    e.error = {"error_type": "cancelled", "message": reason, "blame": "platform", "slot": None}
    e.error_type = "cancelled"
    e.finished_at = utcnow()


NAMED_IN_HEADLINE = 20  # cancelled episodes a headline names; the payload lists them all


def cancel_episodes(s: Session, league: League, rows: list[EpisodeRequestRow], reason: str) -> list[str]:
    """Cancel `rows` and write one `episodes_cancelled` event per round naming them (a cancellation
    is a scheduler decision like any other: `coworld events --round` says which and why). Returns
    their public ids."""
    for e in rows:
        cancel_episode(e, reason)
    keys = resolve.episode_keys(s, rows)
    by_round: dict[str, list[EpisodeRequestRow]] = {}
    for e in rows:
        by_round.setdefault(e.round_id, []).append(e)
    for round_id, members in by_round.items():
        names = [keys.get(e.id) or ids.public("ereq", e.id) or e.id for e in members]
        shown = ", ".join(names[:NAMED_IN_HEADLINE])
        more = f" and {len(names) - NAMED_IN_HEADLINE} more" if len(names) > NAMED_IN_HEADLINE else ""
        record_event(
            s,
            "episodes_cancelled",
            f"{len(members)} pending episode(s) cancelled ({reason}): {shown}{more}",
            league_id=league.id,
            round_id=round_id,
            reason=reason,
            episodes=names,
            ereq_ids=[ids.public("ereq", e.id) for e in members],
        )
    return [ids.public("ereq", e.id) or e.id for e in rows]


def record_outcome(store: Store, ereq_id: str, attempt: int, outcome: EpisodeOutcome) -> EpisodeView:
    """Record one attempt's outcome and return the episode as it now stands.

    Ignored (with a `late_result_ignored` event) unless the row is running with this attempt.
    """
    raw = ids.raw_id("ereq", ereq_id)

    def fn(s: Session) -> EpisodeView:
        league_id = s.execute(select(EpisodeRequestRow.league_id).where(EpisodeRequestRow.id == raw)).scalar()
        if league_id is None:
            raise NotFound(f"unknown episode request {ereq_id!r}")
        league = lock_league(s, league_id)
        e = s.execute(select(EpisodeRequestRow).where(EpisodeRequestRow.id == raw)).scalar_one()
        s.refresh(e)
        labels = resolve.labels(s, e.policy_version_ids)
        if e.status != EpisodeStatus.RUNNING or e.attempt != attempt:
            episode_event(
                s,
                league,
                e,
                "late_result_ignored",
                f"outcome of attempt {attempt} ignored: episode is {e.status} at attempt {e.attempt}",
            )
            return reads.episode_view(e, labels, store.episode_workspace(e.id))
        e.workspace = str(outcome.workspace or store.episode_workspace(e.id))
        e.wall_seconds = outcome.wall_seconds
        e.artifacts = outcome.artifacts
        failure, scores = outcome.error, outcome.scores
        if failure is None and (scores is None or len(scores) != len(e.policy_version_ids)):
            failure = EpisodeFailure(
                ErrorType.PLATFORM_ERROR,
                f"episode reported success without one score per slot (scores={scores!r})",
            )
        if failure is None:
            assert scores is not None
            _record_success(s, league, e, [float(x) for x in scores], outcome.results, labels)
        else:
            record_failure(s, league, s.get(Round, e.round_id), e, attempt, failure, labels)
        return reads.episode_view(e, labels, store.episode_workspace(e.id))

    return store.write(fn)


def _rating_rows(s: Session, division_id: str, pvs: list[str]) -> dict[str, Rating]:
    rows = {}
    for pv in pvs:
        row = s.get(Rating, (division_id, pv))
        if row is None:
            row = Rating(
                division_id=division_id,
                policy_version_id=pv,
                mu=MU,
                sigma=SIGMA,
                episodes=0,
                wins=0,
                score_sum=0.0,
            )
            s.add(row)
        rows[pv] = row
    return rows


def _record_success(
    s: Session,
    league: League,
    e: EpisodeRequestRow,
    scores: list[float],
    results: dict | None,
    labels: dict[str, str],
) -> None:
    e.status, e.scores, e.results, e.error, e.error_type = (
        EpisodeStatus.SUCCEEDED,
        scores,
        results,
        None,
        None,
    )
    e.finished_at = utcnow()
    for slot_row in s.execute(select(EpisodeSlot).where(EpisodeSlot.ereq_id == e.id)).scalars():
        slot_row.score = scores[slot_row.slot]
    credited = credit(e.policy_version_ids, scores)
    div = s.execute(select(Division).where(Division.id == e.division_id).with_for_update()).scalar_one()
    rows = _rating_rows(s, div.id, list(credited))
    table = {pv: Standing(r.mu, r.sigma, r.episodes, r.wins, r.score_sum) for pv, r in rows.items()}
    before = {pv: st.mu for pv, st in table.items()}
    rated = apply_episode(table, credited)
    if rated:
        div.rating_seq += 1
        e.rated_seq = div.rating_seq
        for pv, row in rows.items():
            write_rating(row, table[pv])
    members = s.execute(
        select(Membership).where(
            Membership.league_id == league.id, Membership.policy_version_id.in_(list(credited))
        )
    ).scalars()
    for m in members:
        m.consecutive_failures, m.failure_episode_ids = 0, []
        if m.status == MembershipStatus.QUALIFYING:
            m.status, m.status_reason, m.updated_at = (
                MembershipStatus.ACTIVE,
                "completed a first episode",
                utcnow(),
            )
            record_event(
                s,
                "membership_activated",
                f"{labels[m.policy_version_id]} is active (first episode completed)",
                league_id=league.id,
                policy_version_id=m.policy_version_id,
            )
    verdict = f"episode {readable_key(s, e)} " + ("rated: " if rated else "not rated (one entrant): ")
    episode_event(
        s,
        league,
        e,
        "episode_rated" if rated else "episode_unrated",
        verdict + ", ".join(f"{labels[pv]}={sc:g}" for pv, sc in credited.items()),
        division_id=e.division_id,
        seats=[
            {"slot": i, "policy_version_id": pv, "label": labels[pv], "score": scores[i]}
            for i, pv in enumerate(e.policy_version_ids)
        ],
        credited={labels[pv]: sc for pv, sc in credited.items()},
        ratings={
            labels[pv]: {"mu_before": before[pv], "mu": table[pv].mu, "sigma": table[pv].sigma}
            for pv in credited
        }
        if rated
        else {},
    )


def record_failure(
    s: Session,
    league: League,
    rnd: Round,
    e: EpisodeRequestRow,
    attempt: int,
    failure: EpisodeFailure,
    labels: dict[str, str],
) -> None:
    err = failure.to_json()
    e.error, e.error_type = err, err["error_type"]
    played_by = {"played_by": e.played_by} if e.played_by else {}  # who had the failed attempt
    e.attempt_errors = [*list(e.attempt_errors or []), {**err, "attempt": attempt, **played_by}]
    if failure.infrastructure:  # not the player's fault: retried, then failed without charging anyone
        retries = int(league.failure_policy.get("infra_retries", 2))
        if attempt <= retries and rnd.status == RoundStatus.RUNNING:
            e.status = EpisodeStatus.PENDING
            episode_event(
                s,
                league,
                e,
                "episode_retried",
                f"episode {readable_key(s, e)} attempt {attempt} failed "
                f"({failure.error_type.value}, blame {failure.blame}); retry {attempt} of {retries}",
                error=err,
                attempt=attempt,
            )
            return
        e.status, e.finished_at = EpisodeStatus.FAILED, utcnow()
        rnd.failed_slots += len(e.policy_version_ids)
        episode_event(
            s,
            league,
            e,
            "episode_failed",
            f"episode {readable_key(s, e)} failed after {attempt} attempt(s) "
            f"({failure.error_type.value}, blame {failure.blame}): not rated, no entrant charged",
            error=err,
            workspace=e.workspace,
        )
        return
    e.status, e.finished_at = EpisodeStatus.FAILED, utcnow()
    rnd.failed_slots += 1
    slot = failure.slot if failure.slot is not None and 0 <= failure.slot < len(e.policy_version_ids) else 0
    pv = e.policy_version_ids[slot]
    episode_event(
        s,
        league,
        e,
        "episode_failed",
        f"episode {readable_key(s, e)} failed: {labels[pv]} in slot {slot} "
        f"({failure.error_type.value}); not rated",
        policy_version_id=pv,
        error=err,
        workspace=e.workspace,
        log=str(Path(e.workspace or "") / "logs" / f"policy_agent_{slot}.log"),
    )
    m = s.execute(
        select(Membership).where(Membership.league_id == league.id, Membership.policy_version_id == pv)
    ).scalar_one_or_none()
    if m is None:
        return
    m.consecutive_failures += 1
    m.failure_episode_ids = [*list(m.failure_episode_ids or []), e.id]
    m.updated_at = utcnow()
    if (
        m.consecutive_failures >= int(league.failure_policy.get("quarantine_after", 3))
        and m.status in ELIGIBLE
    ):
        _quarantine(s, league, m, labels[pv], failure)


def _evidence(m: Membership, failing: list[EpisodeRequestRow]) -> list[dict]:
    out = []
    for f in failing:
        slots = [i for i, pv in enumerate(f.policy_version_ids) if pv == m.policy_version_id]
        slot = (f.error or {}).get("slot")
        slot = slot if slot in slots else slots[0]
        ws = Path(f.workspace or "")
        out.append(
            {
                "ereq_id": ids.public("ereq", f.id),
                "error_type": f.error_type,
                "message": (f.error or {}).get("message", "")[:500],
                "slot": slot,
                "workspace": str(ws),
                "log": str(ws / "logs" / f"policy_agent_{slot}.log"),
                "error_info": str(ws / "error_info.json"),
            }
        )
    return out


def _quarantine(s: Session, league: League, m: Membership, label: str, failure: EpisodeFailure) -> None:
    failing = list(
        s.execute(select(EpisodeRequestRow).where(EpisodeRequestRow.id.in_(m.failure_episode_ids))).scalars()
    )
    m.status = MembershipStatus.QUARANTINED
    m.status_reason = (
        f"{m.consecutive_failures} consecutive player failures (last: "
        f"{failure.error_type.value}: {failure.message[:200]})"
    )
    m.updated_at = utcnow()
    pending = s.execute(
        select(EpisodeRequestRow).where(
            EpisodeRequestRow.league_id == league.id, EpisodeRequestRow.status == EpisodeStatus.PENDING
        )
    ).scalars()
    mine = [e for e in pending if m.policy_version_id in e.policy_version_ids]
    cancelled = cancel_episodes(s, league, mine, f"{label} was quarantined")
    record_event(
        s,
        "policy_quarantined",
        f"{label} quarantined in {league.name}: {m.status_reason}"
        + (f"; {len(cancelled)} pending episode(s) of it cancelled" if cancelled else ""),
        league_id=league.id,
        policy_version_id=m.policy_version_id,
        division_id=m.division_id,
        reason=m.status_reason,
        failing_episodes=_evidence(m, failing),
        cancelled_episodes=cancelled,
    )
