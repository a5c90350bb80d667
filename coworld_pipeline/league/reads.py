"""Read-side queries: rows -> typed views (views.py), with the filters the CLI offers.

Each function runs inside the caller's transaction (`Store.read`); none of them writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from coworld_pipeline.league import ids, resolve
from coworld_pipeline.league.models import (
    CoworldVersion,
    Division,
    EpisodeRequestRow,
    EpisodeSlot,
    Event,
    GraduationChangeRow,
    League,
    Membership,
    PolicyVersion,
    Round,
    RoundResult,
    Submission,
)
from coworld_pipeline.league.status import ELIGIBLE, EpisodeStatus
from coworld_pipeline.league.views import (
    CoworldRef,
    CoworldView,
    DivisionRef,
    DivisionView,
    EpisodeView,
    EventView,
    GraduationView,
    LeagueView,
    MembershipView,
    PolicyRef,
    PolicyVersionView,
    RankingView,
    Ref,
    RoundPage,
    RoundRef,
    RoundView,
    Seat,
    SubmissionView,
)


def _pub(kind: str, raw: str) -> str:
    return str(ids.public(kind, raw))


def coworld_view(cw: CoworldVersion, created: bool | None = None) -> CoworldView:
    manifest = cw.manifest
    return CoworldView(
        id=_pub("coworld", cw.id),
        name=cw.name,
        version=cw.version,
        manifest_hash=cw.content_hash,
        source_dir=cw.source_dir,
        variants=tuple(v["id"] for v in manifest.get("variants", [])),
        players=tuple(p["id"] for p in manifest.get("player", [])),
        created_at=cw.created_at,
        created=created,
    )


def policy_version_view(pv: PolicyVersion, name: str) -> PolicyVersionView:
    return PolicyVersionView(
        id=pv.id,
        policy=Ref(pv.policy_id, name),
        version=pv.version,
        image=pv.image,
        run=tuple(pv.run),
        env=dict(pv.env),
        secret_env_keys=tuple(pv.secret_env_keys),
        created_at=pv.created_at,
    )


def status_counts(s: Session, column: Any, *where: Any) -> dict[str, int]:
    """Rows per status value of `column` (Membership.status, EpisodeRequestRow.status, ...)."""
    return {str(k): int(v) for k, v in s.execute(select(column, func.count()).where(*where).group_by(column))}


def league_view(s: Session, league: League) -> LeagueView:
    cw = s.get(CoworldVersion, league.coworld_version_id)
    divs = s.execute(
        select(Division).where(Division.league_id == league.id).order_by(Division.level)
    ).scalars()
    last = s.execute(
        select(Round).where(Round.league_id == league.id).order_by(Round.round_number.desc()).limit(1)
    ).scalar_one_or_none()
    return LeagueView(
        id=_pub("league", league.id),
        name=league.name,
        coworld=CoworldRef(_pub("coworld", cw.id), cw.name, cw.version),
        variants=tuple(league.variants),
        commissioner_key=league.commissioner,
        commissioner_config=dict(league.commissioner_config),
        config_overrides=dict(league.config_overrides),
        failure_policy=dict(league.failure_policy),
        interval_minutes=league.interval_minutes,
        paused=league.paused,
        divisions=tuple(DivisionRef(_pub("division", d.id), d.name, d.level) for d in divs),
        memberships=status_counts(s, Membership.status, Membership.league_id == league.id),
        last_round=None
        if last is None
        else RoundRef(_pub("round", last.id), last.round_number, str(last.status)),
        created_at=league.created_at,
        roles=dict(league.roles or {}),
    )


def league_manifest(s: Session, ref: str) -> tuple[dict[str, Any], str | None]:
    """The manifest JSON of a league's coworld and the directory it was uploaded from (roles run there)."""
    cw = s.get(CoworldVersion, resolve.league(s, ref).coworld_version_id)
    return dict(cw.manifest), cw.source_dir


def leagues(s: Session, ref: str | None = None) -> list[LeagueView]:
    if ref:
        return [league_view(s, resolve.league(s, ref))]
    return [league_view(s, lg) for lg in s.execute(select(League).order_by(League.created_at)).scalars()]


def _names(s: Session, model: Any) -> dict[str, str]:
    return {row.id: row.name for row in s.execute(select(model)).scalars()}


def submission_view(
    sub: Submission, league_name: str | None, label: str | None, membership_status: str | None = None
) -> SubmissionView:
    return SubmissionView(
        id=_pub("submission", sub.id),
        status=str(sub.status),
        league=Ref(_pub("league", sub.league_id), league_name),
        policy_version=PolicyRef(sub.policy_version_id, label),
        league_policy_membership_id=ids.public("membership", sub.membership_id),
        membership_status=membership_status,
        notes=sub.notes,
        created_at=sub.created_at,
    )


def submissions(
    s: Session, league_ref: str | None = None, policy_ref: str | None = None, limit: int = 1000
) -> list[SubmissionView]:
    q = select(Submission)
    if league_ref:
        q = q.where(Submission.league_id == resolve.league(s, league_ref).id)
    if policy_ref:
        q = q.where(Submission.policy_version_id == resolve.policy_version(s, policy_ref).id)
    subs = s.execute(q.order_by(Submission.created_at).limit(limit)).scalars().all()
    labels = resolve.labels(s, [x.policy_version_id for x in subs])
    names = _names(s, League)
    return [submission_view(x, names.get(x.league_id), labels.get(x.policy_version_id)) for x in subs]


def memberships(
    s: Session,
    league_ref: str | None = None,
    division_ref: str | None = None,
    policy_ref: str | None = None,
    status: str | None = None,
    limit: int = 1000,
) -> list[MembershipView]:
    q = select(Membership)
    league = resolve.league(s, league_ref) if league_ref else None
    if league:
        q = q.where(Membership.league_id == league.id)
    if division_ref:
        q = q.where(Membership.division_id == resolve.division(s, division_ref, league).id)
    if policy_ref:
        q = q.where(Membership.policy_version_id == resolve.policy_version(s, policy_ref).id)
    if status:
        q = q.where(Membership.status == status)
    rows = s.execute(q.order_by(Membership.created_at).limit(limit)).scalars().all()
    labels = resolve.labels(s, [m.policy_version_id for m in rows])
    league_names, division_names = _names(s, League), _names(s, Division)
    return [
        MembershipView(
            id=_pub("membership", m.id),
            status=str(m.status),
            status_reason=m.status_reason,
            league=Ref(_pub("league", m.league_id), league_names.get(m.league_id)),
            division=Ref(_pub("division", m.division_id), division_names.get(m.division_id)),
            policy_version=PolicyRef(m.policy_version_id, labels.get(m.policy_version_id)),
            consecutive_failures=m.consecutive_failures,
            failure_episode_ids=tuple(_pub("ereq", x) for x in m.failure_episode_ids or []),
            start_time=m.created_at,
            updated_at=m.updated_at,
        )
        for m in rows
    ]


def divisions(
    s: Session, division_ref: str | None = None, league_ref: str | None = None
) -> list[DivisionView]:
    league = resolve.league(s, league_ref) if league_ref else None
    if division_ref:
        divs = [resolve.division(s, division_ref, league)]
    else:
        q = select(Division)
        if league:
            q = q.where(Division.league_id == league.id)
        divs = list(s.execute(q.order_by(Division.league_id, Division.level)).scalars())
    out = []
    for d in divs:
        lg = s.get(League, d.league_id)
        members = s.execute(
            select(func.count())
            .select_from(Membership)
            .where(Membership.division_id == d.id, Membership.status.in_(ELIGIBLE))
        ).scalar()
        out.append(
            DivisionView(
                id=_pub("division", d.id),
                name=d.name,
                level=d.level,
                league=Ref(_pub("league", lg.id), lg.name),
                member_count=int(members or 0),
                round_schedule=f"every {lg.interval_minutes:g} minutes"
                if lg.interval_minutes
                else "manual (coworld round run)",
                round_structure=lg.commissioner,
                created_at=d.created_at,
            )
        )
    return out


def rankings(s: Session, rnd: Round) -> list[RankingView]:
    rows = (
        s.execute(
            select(RoundResult)
            .where(RoundResult.round_id == rnd.id)
            .order_by(RoundResult.division_id, RoundResult.rank)
        )
        .scalars()
        .all()
    )
    labels = resolve.labels(s, [r.policy_version_id for r in rows])
    names = {
        d.id: d.name for d in s.execute(select(Division).where(Division.league_id == rnd.league_id)).scalars()
    }
    return [
        RankingView(
            division_id=_pub("division", r.division_id),
            division=names.get(r.division_id),
            rank=r.rank,
            score=r.score,
            policy_version_id=r.policy_version_id,
            label=labels.get(r.policy_version_id),
            result_metadata=dict(r.result_metadata or {}),
        )
        for r in rows
    ]


def round_view(s: Session, rnd: Round, detail: bool = False) -> RoundView:
    league = s.get(League, rnd.league_id)
    graduations = None
    if detail:
        graduations = tuple(
            GraduationView(
                membership_id=_pub("membership", g.membership_id),
                from_division_id=_pub("division", g.from_division_id),
                to_division_id=_pub("division", g.to_division_id),
                reason=g.reason,
            )
            for g in s.execute(
                select(GraduationChangeRow).where(GraduationChangeRow.round_id == rnd.id)
            ).scalars()
        )
    return RoundView(
        id=_pub("round", rnd.id),
        round_number=rnd.round_number,
        league=Ref(_pub("league", league.id), league.name),
        commissioner_key=rnd.commissioner,
        trigger=rnd.trigger,
        status=str(rnd.status),
        error=rnd.error,
        episodes=status_counts(s, EpisodeRequestRow.status, EpisodeRequestRow.round_id == rnd.id),
        failed_slots=rnd.failed_slots,
        round_display=rnd.round_display,
        started_at=rnd.started_at,
        completed_at=rnd.completed_at,
        results=tuple(rankings(s, rnd)) if detail else None,
        graduation_changes=graduations,
    )


def rounds(
    s: Session,
    round_ref: str | None = None,
    league_ref: str | None = None,
    status: str | None = None,
    limit: int = 25,
    offset: int = 0,
) -> RoundPage:
    if round_ref:
        rnd = resolve.round_(s, round_ref, in_league=league_ref)
        return RoundPage((round_view(s, rnd, detail=True),), 1, 1, 0)
    q = select(Round)
    if league_ref:
        q = q.where(Round.league_id == resolve.league(s, league_ref).id)
    if status:
        q = q.where(Round.status == status)
    total = int(s.execute(select(func.count()).select_from(q.subquery())).scalar() or 0)
    rows = s.execute(
        q.order_by(Round.started_at.desc(), Round.round_number.desc()).limit(limit).offset(offset)
    ).scalars()
    return RoundPage(tuple(round_view(s, r) for r in rows), total, limit, offset)


def episode_view(
    e: EpisodeRequestRow, labels: dict[str, str], workspace: Path, key: str | None = None
) -> EpisodeView:
    """`key`: its readable key (resolve.episode_keys), looked up in the row's session when not given."""
    if key is None:
        s = object_session(e)
        key = resolve.episode_keys(s, [e])[e.id] if s is not None else ""
    ws = Path(e.workspace) if e.workspace else workspace
    replay = ws / "replay.json"
    artifacts = e.artifacts or {}
    scores = e.scores or [None] * len(e.policy_version_ids)
    return EpisodeView(
        id=_pub("ereq", e.id),
        key=key,
        request_id=e.request_id,
        league_id=_pub("league", e.league_id),
        round_id=_pub("round", e.round_id),
        division_id=_pub("division", e.division_id),
        variant_id=e.variant_id,
        seed=e.seed,
        status=str(e.status),  # plain strings in views, even when the row holds the enum
        attempts=e.attempt,
        seats=tuple(
            Seat(i, pv, labels.get(pv), None if sc is None else float(sc))
            for i, (pv, sc) in enumerate(zip(e.policy_version_ids, scores, strict=True))
        ),
        error=e.error,
        attempt_errors=tuple(e.attempt_errors or []),
        workspace=str(ws),
        # A local file first; else where the artifact store keeps it (e.g. s3://...).
        replay_path=str(replay)
        if replay.exists()
        else artifacts.get("replay.json.z") or artifacts.get("replay.json"),
        artifacts=e.artifacts,
        wall_seconds=e.wall_seconds,
        created_at=e.created_at,
        finished_at=e.finished_at,
        played_by=e.played_by,
    )


def episodes(
    s: Session,
    workspace_of: Any,
    ereq_ref: str | None = None,
    league_ref: str | None = None,
    round_ref: str | None = None,
    policy_ref: str | None = None,
    status: str | None = None,
    with_replay: bool = False,
    limit: int = 200,
    offset: int = 0,
) -> list[EpisodeView]:
    """Episodes, newest first; `workspace_of(raw id)` is where an episode's files are by default."""
    if ereq_ref is not None:
        e = resolve.episode(s, ereq_ref, in_league=league_ref)
        return [episode_view(e, resolve.labels(s, e.policy_version_ids), workspace_of(e.id))]
    q = select(EpisodeRequestRow)
    if league_ref:
        q = q.where(EpisodeRequestRow.league_id == resolve.league(s, league_ref).id)
    if round_ref:
        q = q.where(EpisodeRequestRow.round_id == resolve.round_(s, round_ref, in_league=league_ref).id)
    if status:
        q = q.where(EpisodeRequestRow.status == status)
    if policy_ref:
        pv = resolve.policy_version(s, policy_ref)
        q = q.where(
            EpisodeRequestRow.id.in_(
                select(EpisodeSlot.ereq_id).where(EpisodeSlot.policy_version_id == pv.id)
            )
        )
    if with_replay:
        q = q.where(EpisodeRequestRow.status == EpisodeStatus.SUCCEEDED)
    rows = (
        s.execute(
            q.order_by(EpisodeRequestRow.created_at.desc(), EpisodeRequestRow.id).limit(limit).offset(offset)
        )
        .scalars()
        .all()
    )
    labels = resolve.labels(s, [pv for e in rows for pv in e.policy_version_ids])
    keys = resolve.episode_keys(s, rows)
    out = [episode_view(e, labels, workspace_of(e.id), keys.get(e.id, "")) for e in rows]
    return [o for o in out if o.replay_path] if with_replay else out


def events(
    s: Session,
    league_ref: str | None = None,
    round_ref: str | None = None,
    event_type: str | None = None,
    policy_ref: str | None = None,
    division_ref: str | None = None,
    limit: int = 50,
    after_id: int | None = None,
) -> list[EventView]:
    """The newest `limit` events matching the filters, oldest first."""
    q = select(Event)
    league = resolve.league(s, league_ref) if league_ref else None
    if league:
        q = q.where(Event.league_id == league.id)
    if round_ref:
        q = q.where(Event.round_id == resolve.round_(s, round_ref, in_league=league_ref).id)
    if division_ref:
        q = q.where(Event.division_id == resolve.division(s, division_ref, league).id)
    if event_type:
        q = q.where(Event.event_type == event_type)
    if policy_ref:
        q = q.where(Event.policy_version_id == resolve.policy_version(s, policy_ref).id)
    if after_id is not None:
        q = q.where(Event.id > after_id)
    rows = s.execute(q.order_by(Event.id.desc()).limit(limit)).scalars().all()
    return [
        EventView(
            id=ev.id,
            event_type=ev.event_type,
            created_at=ev.created_at,
            headline=ev.headline,
            league_id=ids.public("league", ev.league_id),
            division_id=ids.public("division", ev.division_id),
            round_id=ids.public("round", ev.round_id),
            episode_request_id=ids.public("ereq", ev.ereq_id),
            policy_version_id=ev.policy_version_id,
            payload=dict(ev.payload or {}),
        )
        for ev in reversed(rows)
    ]


def event_types(s: Session) -> list[str]:
    """Every event type recorded so far (sorted): what `--type` can match."""
    return sorted(s.execute(select(Event.event_type).distinct()).scalars())
