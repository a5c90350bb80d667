"""The read models of standings, apart from the other views (views.py re-exports them).

`coworld results` is the command users repeat; its fast path (standings_reader) imports only this
module: building the ~25 dataclasses of views.py costs ~25 ms of start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Ref:
    """A named reference to another row (league, division, policy)."""

    id: str
    name: str | None

    def to_json(self) -> JsonDict:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class DivisionRef:
    id: str
    name: str
    level: int

    def to_json(self) -> JsonDict:
        return {"id": self.id, "name": self.name, "level": self.level}


@dataclass(frozen=True)
class StandingRow:
    rank: int | None  # 1..n for ranked rows; None for unrated and inactive ones (listed below them)
    policy_version_id: str
    label: str
    membership_id: str
    status: str
    mu: float
    sigma: float
    rating: float  # mu - 3 sigma: what the table is ordered by
    episodes: int
    wins: int
    average_score: float | None
    section: str = "ranked"  # ranked (rated, still playing) | unrated | inactive (quarantined, retired)
    # Ranked rows only (confidence.py, at CONFIDENCE_LEVEL): the skill interval, the probability that
    # this entrant is really stronger than the next ranked one, and whether its place is settled.
    skill_low: float | None = None
    skill_high: float | None = None
    p_above_next: float | None = None
    settled: bool | None = None

    def to_json(self) -> JsonDict:
        return {
            "policy_version_id": self.policy_version_id,
            "label": self.label,
            "membership_id": self.membership_id,
            "status": self.status,
            "mu": self.mu,
            "sigma": self.sigma,
            "rating": self.rating,
            "episodes": self.episodes,
            "wins": self.wins,
            "average_score": self.average_score,
            "rank": self.rank,
            "section": self.section,
            "skill_interval": None if self.skill_low is None else [self.skill_low, self.skill_high],
            "p_above_next": self.p_above_next,
            "settled": self.settled,
        }


@dataclass(frozen=True)
class DivisionStandings:
    league: Ref
    division: DivisionRef
    standings: tuple[StandingRow, ...]

    def to_json(self, limit: int | None = None) -> JsonDict:
        rows = self.standings[:limit] if limit else self.standings
        return {
            "division": self.division.to_json(),
            "league": self.league.to_json(),
            "standings": [r.to_json() for r in rows],
        }
