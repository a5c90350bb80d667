"""The commissioner dialogue (CONTRACT §9): what the platform tells a round's commissioner and what
it accepts back.

Commissioners run in-process (commissioners.py): `pump` delivers messages and acts on every answer
in the same transaction. A container commissioner's messages would enter through
`commissioner_message` (the `/round` driver's entry point) and are validated identically: an
invalid message is an event and changes nothing else.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coworld_pipeline.contract import CoworldManifest
from coworld_pipeline.contract.commissioner import (
    MAX_ROUND_EPISODES,
    MAX_STATE_BYTES,
    CommissionerProtocolError,
    DivisionInfo,
    EpisodeFailed,
    EpisodeResult,
    EpisodesAccepted,
    EpisodeScore,
    EpisodesRejected,
    LeagueInfo,
    MembershipInfo,
    RecentResult,
    RoundComplete,
    RoundStart,
    ScheduleEpisodes,
    VariantInfo,
    parse_commissioner_message,
    state_size,
)
from coworld_pipeline.league import ids
from coworld_pipeline.league.commissioners import make_commissioner
from coworld_pipeline.league.models import (
    CoworldVersion,
    Division,
    EpisodeRequestRow,
    EpisodeSlot,
    League,
    Membership,
    Round,
    RoundResult,
)
from coworld_pipeline.league.status import ELIGIBLE, EpisodeStatus, RoundStatus
from coworld_pipeline.league.unit import json_text, record_event


class RoundFailure(Exception):
    """The round cannot go on (a commissioner bug, an invalid message, a spent failure budget)."""


def league_manifest(s: Session, league: League) -> CoworldManifest:
    return CoworldManifest.model_validate(s.get(CoworldVersion, league.coworld_version_id).manifest)


def variant_config(manifest: CoworldManifest, league: League, variant_id: str) -> dict[str, Any]:
    """The game config a league plays a variant with: the variant's own, then the league's overrides."""
    return {**manifest.variant(variant_id).game_config, **league.config_overrides}


def _recent_results(s: Session, league: League) -> tuple[list[RecentResult], Any]:
    """Rankings of the last three completed rounds, and the state the newest one carried over."""
    recent_rounds = s.execute(
        select(Round)
        .where(Round.league_id == league.id, Round.status == RoundStatus.COMPLETED)
        .order_by(Round.round_number.desc())
        .limit(3)
    ).scalars()
    recent, carry = [], None
    for i, r in enumerate(recent_rounds):
        if i == 0 and r.carry_state:
            carry = json.loads(r.carry_state)
        for rr in s.execute(select(RoundResult).where(RoundResult.round_id == r.id)).scalars():
            recent.append(
                RecentResult(
                    round_id=r.id,
                    division_id=rr.division_id,
                    round_number=r.round_number,
                    policy_version_id=rr.policy_version_id,
                    rank=rr.rank,
                    score=rr.score,
                )
            )
    return recent, carry


def round_start(s: Session, league: League, rnd: Round) -> RoundStart:
    manifest = league_manifest(s, league)
    divs = s.execute(
        select(Division).where(Division.league_id == league.id).order_by(Division.level)
    ).scalars()
    members = s.execute(
        select(Membership)
        .where(Membership.league_id == league.id, Membership.status.in_(ELIGIBLE))
        .order_by(Membership.created_at, Membership.id)
    ).scalars()
    recent, carry = _recent_results(s, league)
    variants = []
    for vid in league.variants:
        cfg = variant_config(manifest, league, vid)
        variants.append(
            VariantInfo(
                id=vid, name=manifest.variant(vid).name, game_config=cfg, slot_count=manifest.slots_for(cfg)
            )
        )
    return RoundStart(
        round_id=rnd.id,
        round_number=rnd.round_number,
        league=LeagueInfo(id=league.id, commissioner_config=league.commissioner_config),
        divisions=[DivisionInfo(id=d.id, name=d.name, level=d.level) for d in divs],
        memberships=[
            MembershipInfo(id=m.id, division_id=m.division_id, policy_version_id=m.policy_version_id)
            for m in members
        ],
        recent_results=recent,
        variants=variants,
        state=carry,
    )


def pump(s: Session, league: League, rnd: Round, inbound: list[dict[str, Any]]) -> list[str]:
    """Deliver messages to the in-process commissioner and act on everything it sends back.

    Returns the raw ids of the episode requests it scheduled. Raises RoundFailure.
    """
    try:
        commissioner = make_commissioner(league.commissioner, league.commissioner_config)
    except ValueError as exc:  # a config stored before a bound it breaks: its rounds fail, saying why
        raise RoundFailure(f"the league's commissioner config is invalid: {exc}") from None
    state = json.loads(rnd.commissioner_state) if rnd.commissioner_state else None
    queue = list(inbound)
    created: list[str] = []
    while queue:
        msg = queue.pop(0)
        try:
            state, out = commissioner.handle(msg, state)
        except Exception as exc:  # a commissioner bug or an impossible config fails the round, visibly
            raise RoundFailure(
                f"commissioner failed handling {msg.get('type')}: {type(exc).__name__}: {exc}"
            ) from None
        for raw in out:
            answers, new = receive(s, league, rnd, raw)
            created += new
            queue += answers
    text = json_text(state)
    if len(text.encode()) > MAX_STATE_BYTES:
        raise RoundFailure(
            f"commissioner working state is {len(text.encode())} bytes; the limit is {MAX_STATE_BYTES}"
        )
    rnd.commissioner_state = text
    return created


def receive(
    s: Session, league: League, rnd: Round, raw: Any, strict: bool = False
) -> tuple[list[dict[str, Any]], list[str]]:
    """Act on one commissioner message: (the platform's answers, raw ids of episodes it created).

    An invalid message is recorded as an event; then it fails the round (in-process) or raises
    CommissionerProtocolError (`strict`, a container's message: the caller's transaction rolls back
    everything but what it chooses to keep).
    """
    try:
        msg = parse_commissioner_message(raw)
    except CommissionerProtocolError as err:
        oversize = (
            isinstance(raw, dict)
            and raw.get("type") == "round_complete"
            and state_size(raw.get("state")) > MAX_STATE_BYTES
        )
        if not oversize:
            record_event(
                s,
                "commissioner_message_rejected",
                f"invalid message from the commissioner: {err}",
                league_id=league.id,
                round_id=rnd.id,
                problems=[p.as_dict() for p in err.problems],
            )
            if strict:
                raise
            raise RoundFailure(f"invalid message from the commissioner: {err}") from None
        size = state_size(raw.get("state"))
        record_event(
            s,
            "commissioner_state_rejected",
            f"round_complete state is {size} bytes (limit {MAX_STATE_BYTES}): "
            "results kept, state not persisted",
            league_id=league.id,
            round_id=rnd.id,
            size=size,
        )
        msg = parse_commissioner_message({**raw, "state": None})
    if isinstance(msg, RoundComplete):
        rnd.complete_message = msg.to_json_dict()
        record_event(
            s,
            "round_complete_received",
            "commissioner sent round_complete",
            league_id=league.id,
            round_id=rnd.id,
            divisions=len(msg.results),
            graduation_changes=len(msg.graduation_changes),
        )
        return [], []
    assert isinstance(msg, ScheduleEpisodes)
    return _accept_schedule(s, league, rnd, msg)


def _episode_seed(round_id: str, request_id: str) -> int:
    """A seed derived from the round and request ids, so a re-run round replays the same games."""
    return (
        int.from_bytes(hashlib.sha256(f"{round_id}:{request_id}".encode()).digest()[:4], "big") & 0x7FFFFFFF
    )


def _refusal(
    ep: Any, league: League, manifest: CoworldManifest, members: dict[str, Membership], used: set[str]
) -> str | None:
    """Why one scheduled episode cannot be played, or None."""
    if ep.request_id in used:
        return f"duplicate request_id {ep.request_id!r} in this round"
    if len(used) >= MAX_ROUND_EPISODES:
        return f"the round already has {len(used):,} episodes, the most a round may schedule"
    if ep.variant_id not in league.variants:
        return f"unknown variant {ep.variant_id!r} (this league plays: {', '.join(league.variants)})"
    slots = manifest.slots_for(variant_config(manifest, league, ep.variant_id))
    if len(ep.policy_version_ids) != slots:
        return (
            f"wrong slot count: variant {ep.variant_id} has {slots} slots, got "
            f"{len(ep.policy_version_ids)} policy versions"
        )
    for pv in ep.policy_version_ids:
        m = members.get(pv)
        if m is None:
            return f"unknown policy version {pv} (not a member of league {league.name})"
        if m.status not in ELIGIBLE:
            return f"policy version {pv} is {m.status} ({m.status_reason})"
    if len({members[pv].division_id for pv in ep.policy_version_ids}) != 1:
        return "policy versions from different divisions cannot share an episode"
    return None


def _accept_schedule(
    s: Session, league: League, rnd: Round, msg: ScheduleEpisodes
) -> tuple[list[dict[str, Any]], list[str]]:
    manifest = league_manifest(s, league)
    members = {
        m.policy_version_id: m
        for m in s.execute(select(Membership).where(Membership.league_id == league.id)).scalars()
    }
    used = set(
        s.execute(select(EpisodeRequestRow.request_id).where(EpisodeRequestRow.round_id == rnd.id)).scalars()
    )
    has_seed = "seed" in (manifest.game.config_schema.get("properties") or {})
    accepted: list[str] = []
    errors: dict[str, str] = {}
    created: list[str] = []
    for ep in msg.episodes:
        reason = _refusal(ep, league, manifest, members, used)
        if reason is not None:
            errors[ep.request_id] = reason
            continue
        used.add(ep.request_id)
        seed = ep.seed if ep.seed is not None else _episode_seed(rnd.id, ep.request_id)
        cfg = variant_config(manifest, league, ep.variant_id)
        if has_seed:
            cfg = {**cfg, "seed": seed}
        row = EpisodeRequestRow(
            round_id=rnd.id,
            league_id=league.id,
            division_id=members[ep.policy_version_ids[0]].division_id,
            request_id=ep.request_id,
            variant_id=ep.variant_id,
            seed=seed,
            game_config=cfg,
            policy_version_ids=list(ep.policy_version_ids),
            tags=dict(ep.tags),
            status=EpisodeStatus.PENDING,
            attempt=0,
            attempt_errors=[],
            reported=False,
        )
        s.add(row)
        s.flush()
        for slot, pv in enumerate(ep.policy_version_ids):
            s.add(EpisodeSlot(ereq_id=row.id, slot=slot, policy_version_id=pv))
        accepted.append(ep.request_id)
        created.append(row.id)
    answers: list[dict[str, Any]] = []
    if accepted:
        answers.append(EpisodesAccepted(request_ids=accepted).to_json_dict())
        record_event(
            s,
            "episodes_scheduled",
            f"{len(accepted)} episode(s) scheduled in round {rnd.round_number}",
            league_id=league.id,
            round_id=rnd.id,
            request_ids=accepted,
            ereq_ids=[ids.public("ereq", e) for e in created],
        )
    if errors:
        answers.append(EpisodesRejected(request_ids=list(errors), errors=errors).to_json_dict())
        record_event(
            s,
            "episodes_rejected",
            f"{len(errors)} episode(s) rejected: "
            + "; ".join(f"{k}: {v}" for k, v in list(errors.items())[:3]),
            league_id=league.id,
            round_id=rnd.id,
            errors=errors,
        )
    return answers, created


def report_message(e: EpisodeRequestRow) -> dict[str, Any]:
    """`episode_result` or `episode_failed` for a finished episode (blame only for a player's own fault)."""
    if e.status == EpisodeStatus.SUCCEEDED:
        return EpisodeResult(
            request_id=e.request_id,
            scores=[
                EpisodeScore(policy_version_id=pv, score=float(sc))
                for pv, sc in zip(e.policy_version_ids, e.scores or [], strict=True)
            ],
            game_results=e.results,
        ).to_json_dict()
    err = e.error or {}
    slot = err.get("slot")
    blamed = e.policy_version_ids[slot] if isinstance(slot, int) and err.get("blame") == "player" else None
    return EpisodeFailed(
        request_id=e.request_id,
        error=f"{err.get('error_type', e.status)}: {err.get('message', '')}"[:2000],
        error_type=err.get("error_type"),
        failed_policy_index=slot if blamed else None,
        failed_policy_version_id=blamed,
    ).to_json_dict()
