"""`LeagueService`: one object over the league modules, for callers that want a single handle.

It holds the `Store` (database, home, secret box) and delegates; the work is done by modules with
one job each (see the package docstring). Everything it returns is a typed view (views.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from coworld_pipeline.league import catalogue, claims, ids, reads, resolve, rounds, standings, verdicts
from coworld_pipeline.league.errors import LeagueError, NotFound
from coworld_pipeline.league.handoff import EpisodeOutcome, EpisodePlayer, PreparedEpisode
from coworld_pipeline.league.play import CallablePlayer, RuntimePlayer, execute_episode
from coworld_pipeline.league.ratings import Standing
from coworld_pipeline.league.runner import ProgressCallback, RoundRun, run_round
from coworld_pipeline.league.unit import Store
from coworld_pipeline.league.views import (
    CoworldView,
    DivisionStandings,
    DivisionView,
    EpisodeView,
    EventView,
    LeagueView,
    MembershipView,
    PolicyVersionView,
    RankingView,
    RoundOpening,
    RoundPage,
    RoundProgress,
    RoundView,
    SubmissionView,
)

if TYPE_CHECKING:
    from coworld_pipeline.runtime.artifacts import ArtifactStore
    from coworld_pipeline.runtime.base import ResourceLimits

DEFAULT_FAILURE_POLICY = catalogue.DEFAULT_FAILURE_POLICY
EpisodeRunner = Callable[[Any, Path, dict[int, dict[str, str]]], Any]


class LeagueService:
    def __init__(self, database_url: str | None = None, home: Path | str | None = None):
        self.store = Store(database_url, home)

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

    # ---- catalogue ------------------------------------------------------------------------------

    def upload_coworld(self, manifest_path: str | Path) -> CoworldView:
        return catalogue.upload_coworld(self.store, manifest_path)

    def coworlds(self) -> list[CoworldView]:
        return catalogue.coworlds(self.store)

    def coworld_manifest(self, ref: str) -> dict[str, Any]:
        return catalogue.coworld_manifest(self.store, ref)

    def upload_policy(
        self,
        image: str,
        name: str,
        run: list[str] | None = None,
        env: dict[str, str] | None = None,
        secret_env: dict[str, str] | None = None,
    ) -> PolicyVersionView:
        return catalogue.upload_policy(self.store, image, name, run, env, secret_env)

    def policies(self) -> list[PolicyVersionView]:
        return catalogue.policies(self.store)

    def create_league(self, name: str, coworld: str, **settings: Any) -> LeagueView:
        """See `catalogue.create_league` for the settings."""
        return catalogue.create_league(self.store, name, coworld, **settings)

    def set_paused(self, league_ref: str, paused: bool) -> LeagueView:
        return catalogue.set_paused(self.store, league_ref, paused)

    def submit(self, policy_ref: str, league_ref: str) -> SubmissionView:
        return catalogue.submit(self.store, policy_ref, league_ref)

    # ---- rounds ---------------------------------------------------------------------------------

    def due_leagues(self, now: datetime | None = None) -> list[str]:
        return rounds.due_leagues(self.store, now)

    def open_round(self, league_ref: str, trigger: str = "manual") -> RoundOpening:
        return rounds.open_round(self.store, league_ref, trigger)

    def open_round_for(self, league_ref: str) -> str | None:
        return rounds.open_round_of(self.store, league_ref)

    def advance_round(self, round_id: str) -> RoundProgress:
        return rounds.advance_round(self.store, round_id)

    def cancel_round(self, round_id: str, reason: str = "cancelled by user") -> RoundView:
        return rounds.cancel_round(self.store, round_id, reason)

    def round_start_message(self, round_id: str) -> dict[str, Any]:
        return rounds.round_start_message(self.store, round_id)

    def commissioner_message(self, round_id: str, message: Any) -> list[dict[str, Any]]:
        return rounds.commissioner_message(self.store, round_id, message)

    def nothing_to_do(self, league_ref: str, reason: str, **payload: Any) -> None:
        rounds.nothing_to_do(self.store, league_ref, reason, **payload)

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
        league = self.leagues(league_ref)[0]
        player = player or self.player(runtime_name, episode_runner, artifact_store, limits)
        return run_round(
            self.store,
            ids.raw_id("league", league.id),
            player,
            parallel=parallel,
            trigger=trigger,
            timeout_seconds=league.episode_timeout_seconds,
            on_progress=on_progress,
        )

    # ---- episodes -------------------------------------------------------------------------------

    @staticmethod
    def player(
        runtime_name: str = "process",
        episode_runner: EpisodeRunner | None = None,
        artifact_store: ArtifactStore | None = None,
        limits: dict[str, ResourceLimits] | None = None,
    ) -> EpisodePlayer:
        if episode_runner is not None:
            return CallablePlayer(episode_runner)
        return RuntimePlayer(runtime_name, limits, artifact_store)

    def pending_episodes(self, round_id: str) -> list[str]:
        return claims.pending_episodes(self.store, round_id)

    def claim_and_prepare(self, ereq_id: str) -> tuple[PreparedEpisode | None, str]:
        return claims.claim_and_prepare(self.store, ereq_id)

    def record_outcome(self, ereq_id: str, attempt: int, outcome: EpisodeOutcome) -> EpisodeView:
        return verdicts.record_outcome(self.store, ereq_id, attempt, outcome)

    def execute_episode(
        self,
        ereq_id: str,
        runtime_name: str = "process",
        artifact_store: ArtifactStore | None = None,
        episode_runner: EpisodeRunner | None = None,
        player: EpisodePlayer | None = None,
    ) -> str:
        """Claim, play and record one pending episode; its status afterwards (not played unless pending)."""
        player = player or self.player(runtime_name, episode_runner, artifact_store)
        return execute_episode(self.store, player, ereq_id).status

    def requeue_stale(self, older_than_seconds: float) -> list[str]:
        return claims.requeue_stale(self.store, older_than_seconds)

    def requeue_episodes(self, ereq_ids: list[str], reason: str) -> list[str]:
        return claims.requeue_episodes(self.store, ereq_ids, reason)

    # ---- reading --------------------------------------------------------------------------------

    def leagues(self, ref: str | None = None) -> list[LeagueView]:
        return self.store.read(lambda s: reads.leagues(s, ref))

    def resolve_league_id(self, league_ref: str) -> str:
        return self.store.read(lambda s: resolve.league(s, league_ref).id)

    def standings(self, league_ref: str, division_ref: str | None = None) -> list[DivisionStandings]:
        return standings.standings(self.store, league_ref, division_ref)

    def recompute_standings(
        self, league_ref: str | None = None, write: bool = False
    ) -> dict[tuple[str, str], Standing]:
        return standings.recompute(self.store, league_ref, write)

    def rounds(
        self,
        round_ref: str | None = None,
        league_ref: str | None = None,
        status: str | None = None,
        limit: int = 25,
        offset: int = 0,
    ) -> RoundPage:
        return self.store.read(lambda s: reads.rounds(s, round_ref, league_ref, status, limit, offset))

    def round(self, round_ref: str) -> RoundView:
        """One round with its rankings and graduation changes."""
        return self.rounds(round_ref=round_ref).entries[0]

    def round_rankings(self, round_id: str) -> list[RankingView]:
        return self.store.read(lambda s: reads.rankings(s, resolve.round_(s, round_id)))

    def divisions(self, division_ref: str | None = None, league_ref: str | None = None) -> list[DivisionView]:
        return self.store.read(lambda s: reads.divisions(s, division_ref, league_ref))

    def memberships(
        self,
        league_ref: str | None = None,
        division_ref: str | None = None,
        policy_ref: str | None = None,
        status: str | None = None,
        limit: int = 1000,
    ) -> list[MembershipView]:
        return self.store.read(
            lambda s: reads.memberships(s, league_ref, division_ref, policy_ref, status, limit)
        )

    def submissions(
        self, league_ref: str | None = None, policy_ref: str | None = None, limit: int = 1000
    ) -> list[SubmissionView]:
        return self.store.read(lambda s: reads.submissions(s, league_ref, policy_ref, limit))

    def episodes(
        self,
        ereq_ref: str | None = None,
        league_ref: str | None = None,
        round_ref: str | None = None,
        policy_ref: str | None = None,
        status: str | None = None,
        with_replay: bool = False,
        limit: int = 200,
        offset: int = 0,
    ) -> list[EpisodeView]:
        return self.store.read(
            lambda s: reads.episodes(
                s,
                self.store.episode_workspace,
                ereq_ref,
                league_ref,
                round_ref,
                policy_ref,
                status,
                with_replay,
                limit,
                offset,
            )
        )

    def episode(self, ereq_ref: str) -> EpisodeView:
        if not ereq_ref:
            raise LeagueError("an episode id must not be empty")
        return self.episodes(ereq_ref=ereq_ref)[0]

    def episode_dir(self, ereq_ref: str) -> Path:
        return Path(self.episode(ereq_ref).workspace)

    def events(
        self,
        league_ref: str | None = None,
        round_ref: str | None = None,
        event_type: str | None = None,
        policy_ref: str | None = None,
        division_ref: str | None = None,
        limit: int = 50,
        after_id: int | None = None,
    ) -> list[EventView]:
        return self.store.read(
            lambda s: reads.events(
                s, league_ref, round_ref, event_type, policy_ref, division_ref, limit, after_id
            )
        )

    def counts(self) -> dict[str, int]:
        """Row counts per table (tests and diagnostics)."""
        from coworld_pipeline.league.models import Base

        return self.store.read(
            lambda s: {
                t.name: int(s.execute(select(func.count()).select_from(t)).scalar() or 0)
                for t in Base.metadata.sorted_tables
            }
        )


__all__ = ["DEFAULT_FAILURE_POLICY", "LeagueError", "LeagueService", "NotFound", "RoundProgress"]
