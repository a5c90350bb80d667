"""What crosses between the league and whatever plays its episodes: a `PreparedEpisode` goes out
(from one claim-and-prepare transaction), an `EpisodeOutcome` comes back (recorded in one more).

Both are plain data, so the league's bookkeeping never depends on how an episode was played
(`play.py` has the runtime implementation; tests substitute their own players).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from coworld_pipeline.contract import EpisodeRequest
from coworld_pipeline.league import ids
from coworld_pipeline.runtime.errors import EpisodeFailure


@dataclass(frozen=True)
class PreparedEpisode:
    """A claimed episode (status running, `attempt` = this attempt) with everything needed to play it."""

    ereq_id: str  # raw id
    attempt: int
    request: EpisodeRequest
    workspace: Path
    source_dir: str | None  # the coworld's directory (the process runtime's working directory)
    timeout_seconds: float
    league_id: str  # public ids, for logs and tags
    round_id: str
    # Decrypted secret env per slot: reaches only that slot's player, never a log or a repr.
    secrets: dict[int, dict[str, str]] = field(default_factory=dict, repr=False)
    # Called by the player with the game's live global viewer URL once the game is up (league/live.py).
    on_live: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    @property
    def public_id(self) -> str:
        return str(ids.public("ereq", self.ereq_id))


@dataclass
class EpisodeOutcome:
    """How one attempt ended. `error` None means success with one score per slot."""

    workspace: Path
    wall_seconds: float = 0.0
    scores: list[float] | None = None
    results: dict[str, Any] | None = None
    error: EpisodeFailure | None = None
    artifacts: dict[str, Any] | None = None  # file name -> URI in the artifact store, or {"error": ...}

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def of(cls, result: Any, workspace: Path) -> EpisodeOutcome:
        """From anything with the runtime outcome's attributes (the runtime's own, or a test's)."""
        if isinstance(result, EpisodeOutcome):
            return result
        return cls(
            workspace=Path(getattr(result, "workspace", None) or workspace),
            wall_seconds=float(getattr(result, "wall_seconds", 0.0) or 0.0),
            scores=getattr(result, "scores", None),
            results=getattr(result, "results", None),
            error=getattr(result, "error", None),
            artifacts=getattr(result, "artifacts", None),
        )


class EpisodePlayer(Protocol):
    """Plays prepared episodes. Built once per Dagster run or CLI round, used from several threads."""

    def play(self, episode: PreparedEpisode) -> EpisodeOutcome: ...
