"""Standings: per division, entrants ranked by conservative rating (mu - 3 sigma), and ratings
recomputed from scratch from the stored per-slot results.

The CLI's `coworld results` usually reads through `standings_reader` (no SQLAlchemy); both build
their rows with `standing_rows`, from the same columns and join.
"""

from __future__ import annotations

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from coworld_pipeline.league import ids, resolve
from coworld_pipeline.league.models import (
    Division,
    EpisodeRequestRow,
    EpisodeSlot,
    League,
    Membership,
    Policy,
    PolicyVersion,
    Rating,
    utcnow,
)
from coworld_pipeline.league.ratings import Standing, apply_episode, credit
from coworld_pipeline.league.standings_reader import standing_rows
from coworld_pipeline.league.unit import Store
from coworld_pipeline.league.views import DivisionRef, DivisionStandings, Ref, StandingRow


def write_rating(row: Rating, st: Standing) -> None:
    """Store a computed standing in its ratings row."""
    row.mu, row.sigma, row.episodes, row.wins, row.score_sum = (
        st.mu,
        st.sigma,
        st.episodes,
        st.wins,
        st.score_sum,
    )
    row.updated_at = utcnow()


def division_rows(s: Session, league: League, div: Division) -> tuple[StandingRow, ...]:
    # The columns and join of standings_reader's query, so both build rows with standing_rows.
    members = s.execute(
        select(
            Membership.policy_version_id,
            Membership.id,
            Membership.status,
            Policy.name,
            PolicyVersion.version,
            Rating.mu,
            Rating.sigma,
            Rating.episodes,
            Rating.wins,
            Rating.score_sum,
        )
        .join(PolicyVersion, PolicyVersion.id == Membership.policy_version_id)
        .join(Policy, Policy.id == PolicyVersion.policy_id)
        .outerjoin(
            Rating,
            and_(
                Rating.division_id == Membership.division_id,
                Rating.policy_version_id == Membership.policy_version_id,
            ),
        )
        .where(Membership.league_id == league.id, Membership.division_id == div.id)
    ).all()
    return standing_rows(members)


def league_divisions(s: Session, league: League) -> list[Division]:
    return list(
        s.execute(select(Division).where(Division.league_id == league.id).order_by(Division.level)).scalars()
    )


def standings(store: Store, league_ref: str, division_ref: str | None = None) -> list[DivisionStandings]:
    """Per division (or only `division_ref`): the ranked standings table."""

    def fn(s: Session) -> list[DivisionStandings]:
        league = resolve.league(s, league_ref)
        divs = [resolve.division(s, division_ref, league)] if division_ref else league_divisions(s, league)
        league_ref_view = Ref(str(ids.public("league", league.id)), league.name)
        return [
            DivisionStandings(
                league_ref_view,
                DivisionRef(str(ids.public("division", d.id)), d.name, d.level),
                division_rows(s, league, d),
            )
            for d in divs
        ]

    return store.read(fn)


def recompute(
    store: Store, league_ref: str | None = None, write: bool = False
) -> dict[tuple[str, str], Standing]:
    """Ratings from scratch from the stored per-slot results, in rating order; optionally store them."""

    def fn(s: Session) -> dict[tuple[str, str], Standing]:
        q = (
            select(
                EpisodeRequestRow.division_id,
                EpisodeRequestRow.rated_seq,
                EpisodeSlot.slot,
                EpisodeSlot.policy_version_id,
                EpisodeSlot.score,
            )
            .join(EpisodeSlot, EpisodeSlot.ereq_id == EpisodeRequestRow.id)
            .where(EpisodeRequestRow.rated_seq.is_not(None))
        )
        if league_ref:
            q = q.where(EpisodeRequestRow.league_id == resolve.league(s, league_ref).id)
        rows = s.execute(
            q.order_by(EpisodeRequestRow.division_id, EpisodeRequestRow.rated_seq, EpisodeSlot.slot)
        )
        tables: dict[str, dict[str, Standing]] = {}
        current: tuple[str, int] | None = None
        pvs: list[str] = []
        scores: list[float] = []
        for div, seq, _slot, pv, score in rows:  # in rating order: apply each episode as it ends
            if (div, seq) != current:
                if current is not None:
                    apply_episode(tables.setdefault(current[0], {}), credit(pvs, scores))
                current, pvs, scores = (div, seq), [], []
            pvs.append(pv)
            scores.append(score)
        if current is not None:
            apply_episode(tables.setdefault(current[0], {}), credit(pvs, scores))
        out = {(d, pv): st for d, t in tables.items() for pv, st in t.items()}
        if write:
            for (d, pv), st in out.items():
                row = s.get(Rating, (d, pv))
                if row is None:
                    row = Rating(division_id=d, policy_version_id=pv)
                    s.add(row)
                write_rating(row, st)
        return out

    return store.write(fn) if write else store.read(fn)
