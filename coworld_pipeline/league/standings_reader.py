"""Standings read straight through the database driver, for `coworld results`.

`coworld results` is the command users run most, and a short CLI command costs mostly start-up:
importing SQLAlchemy alone takes ~0.35 s on a 2-core machine, more than the query. This module
answers the same question as `standings.standings` with the plain DB-API driver (`sqlite3`,
or `psycopg2` for Postgres) and returns exactly the same views (a test compares the two on both
databases).

It only reads, and it only serves a database it fully understands: `read_standings` returns None
(the caller then uses `LeagueService`) when the database does not exist yet, its schema is not
this code's revision, the URL names another driver, or the driver reports any error. Unknown
leagues and divisions raise `NotFound` with the service's messages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from coworld_pipeline.league import ids
from coworld_pipeline.league.confidence import annotate
from coworld_pipeline.league.errors import NotFound, quoted
from coworld_pipeline.league.location import HEAD_REVISION, is_sqlite, sqlite_path
from coworld_pipeline.league.ratings import MU, SIGMA, conservative
from coworld_pipeline.league.standing_views import DivisionRef, DivisionStandings, Ref, StandingRow
from coworld_pipeline.league.status import ELIGIBLE

# One row per member of the division, rated or not (a member moved to another division by
# graduation keeps its old rating row, which must not show here: the join is on the membership's
# current division).
_STANDINGS_SQL = """
SELECT m.policy_version_id, m.id, m.status, p.name, pv.version,
       r.mu, r.sigma, r.episodes, r.wins, r.score_sum
FROM memberships m
JOIN policy_versions pv ON pv.id = m.policy_version_id
JOIN policies p ON p.id = pv.policy_id
LEFT JOIN ratings r ON r.division_id = m.division_id AND r.policy_version_id = m.policy_version_id
WHERE m.league_id = %s AND m.division_id = %s
"""


class _Cursor(Protocol):
    def execute(self, sql: str, params: tuple[Any, ...] = ...) -> Any: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...


class _Unservable(Exception):
    """This database is not one the reader serves; the caller falls back to the service."""


def read_standings(database_url: str, target: str) -> list[DivisionStandings] | None:
    """Standings of a league (every division) or one division (`div_…`), as `standings.standings`."""
    try:
        with _cursor(database_url) as (cur, placeholder):

            def query(sql: str, *params: Any) -> list[tuple[Any, ...]]:
                cur.execute(sql.replace("%s", placeholder), params)
                return cur.fetchall()

            revision = query("SELECT version_num FROM alembic_version")
            if revision != [(HEAD_REVISION,)]:
                return None
            return _standings(query, target)
    except _Unservable:
        return None


def _standings(query: Any, target: str) -> list[DivisionStandings]:
    if target.startswith(ids.PREFIXES["division"]):
        division = _by_id(query, "divisions", "id, name, level, league_id", ids.raw_id("division", target))
        if division is None:
            raise NotFound(f"unknown division {target!r}")
        league = _by_id(query, "leagues", "id, name", division[3])
        divisions = [division[:3]]
    else:
        league = _league(query, target)
        divisions = query(
            "SELECT id, name, level FROM divisions WHERE league_id = %s ORDER BY level", league[0]
        )
    league_ref = Ref(str(ids.public("league", league[0])), league[1])
    return [
        DivisionStandings(
            league_ref,
            DivisionRef(str(ids.public("division", div_id)), name, level),
            standing_rows(query(_STANDINGS_SQL, league[0], div_id)),
        )
        for div_id, name, level in divisions
    ]


def _by_id(query: Any, table: str, columns: str, raw: str) -> tuple[Any, ...] | None:
    if not ids.looks_like_uuid(raw):
        return None
    rows = query(f"SELECT {columns} FROM {table} WHERE id = %s", raw)
    return rows[0] if rows else None


def _league(query: Any, ref: str) -> tuple[Any, ...]:
    league = _by_id(query, "leagues", "id, name", ids.raw_id("league", ref))
    if league is None:
        rows = query("SELECT id, name FROM leagues WHERE name = %s", ref)
        league = rows[0] if rows else None
    if league is None:
        raise NotFound(f"unknown league {quoted(ref)}")
    return league


SECTIONS = ("ranked", "unrated", "inactive")
CONFIDENCE_LEVEL = 0.95  # "settled": the order with both neighbours is known at this level


def section_of(status: str, rated: bool) -> str:
    """Where an entrant is listed: ranked (rated, still playing), unrated (no game yet), inactive."""
    if status not in ELIGIBLE:
        return "inactive"
    return "ranked" if rated else "unrated"


def standing_rows(members: Sequence[Sequence[Any]]) -> tuple[StandingRow, ...]:
    """Ranked standings rows from the members of a division, as `_STANDINGS_SQL` selects them.

    Each member is (policy version id, membership id, status, policy name, version, mu, sigma,
    episodes, wins, score sum); the rating columns are None for a member not yet rated. Rated
    entrants that still play come first, by mu - 3 sigma, ranked 1..n; unrated ones, then quarantined
    and retired ones, are listed apart below them with no rank (a quarantined entrant with 0 games
    must not outrank anyone, and an entrant with no rated episode has no place yet).
    """
    rows: list[tuple[tuple[int, float, str], dict[str, Any]]] = []  # (sort key, fields)
    for pv_id, membership_id, status, name, version, mu, sigma, episodes, wins, score_sum in members:
        rated = mu is not None
        mu, sigma = (mu, sigma) if rated else (MU, SIGMA)
        section = section_of(status, rated and bool(episodes))
        fields = {
            "policy_version_id": pv_id,
            "label": f"{name}:v{version}",
            "membership_id": str(ids.public("membership", membership_id)),
            "status": status,
            "mu": mu,
            "sigma": sigma,
            "rating": conservative(mu, sigma),
            "episodes": episodes if rated else 0,
            "wins": wins if rated else 0,
            "average_score": score_sum / episodes if rated and episodes else None,
            "section": section,
        }
        rows.append(((SECTIONS.index(section), -fields["rating"], fields["label"]), fields))
    rows.sort(key=lambda r: r[0])
    # Each row is built once, after sorting: a dataclass `replace` per row would double the cost.
    ranked = [(f["label"], f["mu"], f["sigma"]) for _, f in rows if f["section"] == "ranked"]
    figures = {c.key: c for c in annotate(ranked, CONFIDENCE_LEVEL)}
    out = []
    for i, (_, fields) in enumerate(rows):
        c = figures.get(fields["label"])
        if c is not None:
            fields.update(skill_low=c.low, skill_high=c.high, p_above_next=c.p_above_next, settled=c.settled)
        # Only ranked rows get a place: ranked rows sort first, so their places are 1..n. An entrant
        # that has not played a rated episode (or may not play) has no place to show, not "rank 1".
        out.append(StandingRow(rank=i + 1 if fields["section"] == "ranked" else None, **fields))
    return tuple(out)


@contextlib.contextmanager
def _cursor(url: str) -> Iterator[tuple[_Cursor, str]]:
    """A read-only cursor and the driver's placeholder; `_Unservable` for anything unexpected."""
    if is_sqlite(url):
        import sqlite3

        path = sqlite_path(url)
        if url.partition("?")[2] or not path or path == ":memory:":
            raise _Unservable
        from urllib.parse import quote

        try:
            # mode=ro: a missing file is an error here (the service creates and migrates it).
            conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=30)
        except sqlite3.Error as exc:
            raise _Unservable from exc
        try:
            yield conn.cursor(), "?"
        except sqlite3.Error as exc:
            raise _Unservable from exc
        finally:
            conn.close()
        return
    scheme = url.partition("://")[0]
    if scheme not in ("postgresql", "postgresql+psycopg2", "postgres"):
        raise _Unservable
    try:
        import psycopg2
    except ImportError as exc:
        raise _Unservable from exc
    try:
        conn = psycopg2.connect("postgresql://" + url.partition("://")[2])
    except psycopg2.Error as exc:
        raise _Unservable from exc
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cur:
            yield cur, "%s"
    except psycopg2.Error as exc:
        raise _Unservable from exc
    finally:
        conn.close()
