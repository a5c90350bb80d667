"""A two-entrant testkit league whose game or `faulty` player misbehaves on request."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coworld_pipeline.league.service import LeagueService
from coworld_pipeline.league.views import EpisodeView
from tests.conftest import make_testkit

LEAGUE = "faults"
TESTKIT_IMAGE = "coworld/testkit:dev"
PLAYER_RUN = ["python", "-m", "testkit.player"]
INFRA_RETRIES = 1  # one retry: an infrastructure failure is played exactly twice


@dataclass
class FaultLeague:
    svc: LeagueService
    home: Path

    def only_episode(self) -> EpisodeView:
        (episode,) = self.svc.episodes(league_ref=LEAGUE)
        return episode

    def events(self, kind: str) -> list[Any]:
        return self.svc.events(LEAGUE, event_type=kind)

    def rated_games(self) -> dict[str, int]:
        """label -> episodes counted in the ratings."""
        return {r.label: r.episodes for g in self.svc.standings(LEAGUE) for r in g.standings}

    def failures_charged(self) -> dict[str, int]:
        """label -> consecutive player failures charged to that membership."""
        return {m.policy_version.label: m.consecutive_failures for m in self.svc.memberships(LEAGUE)}


def fault_league(
    tmp_path: Path,
    db_url: str | None = None,
    game_env: dict[str, str] | None = None,
    player_env: dict[str, str] | None = None,
    image: str | None = None,
    episode_timeout: float = 60.0,
    faulty_run: list[str] | None = None,
    connect_timeout: float = 3.0,
) -> FaultLeague:
    """`steady` and `faulty` (the testkit player with `player_env`) in a one-episode round-robin."""
    home = tmp_path / "home"
    svc = LeagueService(db_url or f"sqlite:///{home / 'league.db'}", home)
    manifest = make_testkit(tmp_path, game_env=game_env, image=image)
    cw = svc.upload_coworld(manifest)
    svc.upload_policy(image or TESTKIT_IMAGE, "steady", run=PLAYER_RUN)
    faulty = faulty_run or PLAYER_RUN
    svc.upload_policy(image or TESTKIT_IMAGE, "faulty", run=faulty, env=dict(player_env or {}))
    svc.create_league(
        LEAGUE,
        cw.id,
        variants=["default"],
        commissioner_config={"episodes_per_pair": 1},
        config_overrides={"player_connect_timeout_seconds": connect_timeout},
        failure_policy={
            "infra_retries": INFRA_RETRIES,
            "quarantine_after": 5,
            "episode_timeout_seconds": episode_timeout,
        },
    )
    for name in ("steady", "faulty"):
        svc.submit(name, LEAGUE)
    return FaultLeague(svc, home)
