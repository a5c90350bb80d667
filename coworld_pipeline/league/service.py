"""`LeagueService`: one object over the league modules, for callers that want a single handle.

It holds the `Store` (database, home, secret box) and delegates: most methods are the module
functions themselves, bound to the store (their signatures and docstrings are the modules'). The work
is done by modules with one job each (see the package docstring). Everything it returns is a typed
view (views.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import func, select

from coworld_pipeline.league import catalogue, claims, ids, reads, resolve, verdicts
from coworld_pipeline.league import overview as league_overview
from coworld_pipeline.league import rounds as round_steps  # `rounds`/`standings` are also method names
from coworld_pipeline.league import standings as standing_tables
from coworld_pipeline.league.errors import LeagueError, NotFound
from coworld_pipeline.league.handoff import EpisodePlayer
from coworld_pipeline.league.play import CallablePlayer, RuntimePlayer, execute_episode
from coworld_pipeline.league.runner import ProgressCallback, RoundRun, run_round
from coworld_pipeline.league.unit import Store
from coworld_pipeline.league.views import EpisodeView, RankingView, RoundProgress, RoundView

if TYPE_CHECKING:
    from coworld_pipeline.runtime.artifacts import ArtifactStore
    from coworld_pipeline.runtime.base import ResourceLimits

DEFAULT_FAILURE_POLICY = catalogue.DEFAULT_FAILURE_POLICY
EpisodeRunner = Callable[[Any, Path, dict[int, dict[str, str]]], Any]
T = TypeVar("T")


def _on_store(fn: Callable[..., T]) -> Callable[..., T]:
    """A facade method running `fn(store, ...)`: the module function does the work in its transaction."""

    @functools.wraps(fn)
    def method(self: LeagueService, *args: Any, **kwargs: Any) -> T:
        return fn(self.store, *args, **kwargs)

    return method


def _read(fn: Callable[..., T]) -> Callable[..., T]:
    """A facade method running the query `fn(session, ...)` in one read transaction."""

    @functools.wraps(fn)
    def method(self: LeagueService, *args: Any, **kwargs: Any) -> T:
        return self.store.read(lambda s: fn(s, *args, **kwargs))

    return method


class LeagueService:
    def __init__(
        self, database_url: str | None = None, home: Path | str | None = None, *, create: bool = True
    ):
        self.store = Store(database_url, home, create=create)

    @property
    def home(self) -> Path:
        return self.store.home

    @property
    def database_url(self) -> str:
        return self.store.database_url

    @property
    def engine(self) -> Any:
        return self.store.engine

    def close(self) -> None:
        self.store.close()

    def episode_workspace(self, ereq_id: str) -> Path:
        return self.store.episode_workspace(ereq_id)

    # ---- catalogue (catalogue.py) ---------------------------------------------------------------
    upload_coworld = _on_store(catalogue.upload_coworld)
    coworlds = _on_store(catalogue.coworlds)
    coworld_manifest = _on_store(catalogue.coworld_manifest)
    upload_policy = _on_store(catalogue.upload_policy)
    policies = _on_store(catalogue.policies)
    create_league = _on_store(catalogue.create_league)
    set_paused = _on_store(catalogue.set_paused)
    submit = _on_store(catalogue.submit)

    # ---- rounds (rounds.py) ---------------------------------------------------------------------
    due_leagues = _on_store(round_steps.due_leagues)
    schedule_decisions = _on_store(round_steps.schedule_decisions)
    open_round = _on_store(round_steps.open_round)
    open_round_for = _on_store(round_steps.open_round_of)
    advance_round = _on_store(round_steps.advance_round)
    cancel_round = _on_store(round_steps.cancel_round)
    round_start_message = _on_store(round_steps.round_start_message)
    commissioner_message = _on_store(round_steps.commissioner_message)
    nothing_to_do = _on_store(round_steps.nothing_to_do)
    partitions_archived = _on_store(round_steps.partitions_archived)

    # ---- claims and verdicts (claims.py, verdicts.py) -------------------------------------------
    pending_episodes = _on_store(claims.pending_episodes)
    claim_and_prepare = _on_store(claims.claim_and_prepare)
    requeue_stale = _on_store(claims.requeue_stale)
    requeue_episodes = _on_store(claims.requeue_episodes)
    record_outcome = _on_store(verdicts.record_outcome)

    # ---- reading (reads.py, standings.py) -------------------------------------------------------
    leagues = _read(reads.leagues)
    rounds = _read(reads.rounds)
    divisions = _read(reads.divisions)
    memberships = _read(reads.memberships)
    submissions = _read(reads.submissions)
    events = _read(reads.events)
    event_types = _read(reads.event_types)
    overview = _read(league_overview.league_overview)  # current round, failures, quarantines, next round
    overviews = _read(league_overview.league_overviews)
    standings = _on_store(standing_tables.standings)
    recompute_standings = _on_store(standing_tables.recompute)

    def episodes(self, ereq_ref: str | None = None, **filters: Any) -> list[EpisodeView]:
        """See `reads.episodes` for the filters."""
        return self.store.read(lambda s: reads.episodes(s, self.store.episode_workspace, ereq_ref, **filters))

    def episode(self, ereq_ref: str, league_ref: str | None = None) -> EpisodeView:
        """An `ereq_…` id or a readable key (`league.rN.eM`; `rN.eM` within `league_ref`)."""
        if not ereq_ref:
            raise LeagueError("an episode id must not be empty")
        return self.episodes(ereq_ref, league_ref=league_ref)[0]

    def episode_keys(self, round_ref: str) -> dict[str, str]:
        """Raw id -> readable key (`league.rN.eM`) of every episode of a round (one read)."""

        def fn(s: Any) -> dict[str, str]:
            rnd = resolve.round_(s, round_ref)
            order = resolve.episode_order(s, rnd.id)
            prefix = resolve.round_key(s, rnd)
            return {raw: f"{prefix}.e{n}" for n, raw in enumerate(order, start=1)}

        return self.store.read(fn)

    def episode_ids(self, refs: list[str]) -> dict[str, str]:
        """Each episode reference (an id or a readable key) -> its raw id, in one read."""
        return self.store.read(lambda s: resolve.episode_ids(s, refs))

    def episode_dir(self, ereq_ref: str) -> Path:
        return Path(self.episode(ereq_ref).workspace)

    def round(self, round_ref: str) -> RoundView:
        """One round with its rankings and graduation changes."""
        return self.rounds(round_ref=round_ref).entries[0]

    def round_rankings(self, round_ref: str) -> list[RankingView]:
        return self.store.read(lambda s: reads.rankings(s, resolve.round_(s, round_ref)))

    def resolve_league_id(self, league_ref: str) -> str:
        return self.store.read(lambda s: resolve.league(s, league_ref).id)

    def counts(self) -> dict[str, int]:
        """Row counts per table (tests and diagnostics)."""
        from coworld_pipeline.league.models import Base

        return self.store.read(
            lambda s: {
                t.name: int(s.execute(select(func.count()).select_from(t)).scalar() or 0)
                for t in Base.metadata.sorted_tables
            }
        )

    # ---- playing (play.py, runner.py) -----------------------------------------------------------

    @staticmethod
    def player(
        runtime_name: str = "process",
        episode_runner: EpisodeRunner | None = None,
        artifact_store: ArtifactStore | None = None,
        limits: dict[str, ResourceLimits] | None = None,
    ) -> EpisodePlayer:
        """The runtime's player, or one calling `episode_runner(request, workspace, secrets)` (tests)."""
        if episode_runner is not None:
            return CallablePlayer(episode_runner)
        return RuntimePlayer(runtime_name, limits, artifact_store)

    def execute_episode(
        self,
        ereq_id: str,
        runtime_name: str = "process",
        artifact_store: ArtifactStore | None = None,
        episode_runner: EpisodeRunner | None = None,
        player: EpisodePlayer | None = None,
    ) -> str:
        """Claim, play and record one pending episode (an id or a readable key); its status afterwards
        (not played unless pending)."""
        player = player or self.player(runtime_name, episode_runner, artifact_store)
        raw = self.episode_ids([ereq_id])[ereq_id]
        return execute_episode(self.store, player, raw).status

    def run_round(
        self,
        league_ref: str,
        parallel: int = 1,
        runtime_name: str = "process",
        player: EpisodePlayer | None = None,
        episode_runner: EpisodeRunner | None = None,
        artifact_store: ArtifactStore | None = None,
        limits: dict[str, ResourceLimits] | None = None,
        trigger: str = "cli",
        on_progress: ProgressCallback | None = None,
    ) -> RoundRun:
        """Open (or join) the league's round and play it to the end (runner.py)."""
        league = self.leagues(league_ref)[0]
        player = player or self.player(runtime_name, episode_runner, artifact_store, limits)
        return run_round(
            self.store,
            ids.raw_id("league", league.id),
            player,
            parallel=parallel,
            trigger=trigger,
            on_progress=on_progress,
        )


__all__ = ["DEFAULT_FAILURE_POLICY", "LeagueError", "LeagueService", "NotFound", "RoundProgress"]
