"""Every game and player fault, in a real league round: the failure is typed and keeps its logs (of
every attempt), it is counted once (an infrastructure failure is retried and charged to nobody, a
player failure is charged once to that player's membership), nothing is rated, and no process,
container or network is left (the autouse `nothing_left_behind` fixture of tests/conftest.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.helpers import INFRA_RETRIES, LEAGUE, FaultLeague, fault_league


@dataclass(frozen=True)
class Fault:
    error_type: str
    phase: str  # the lifecycle phase it is found in (error_info.json `phase`)
    game_env: dict[str, str] | None = None
    player_env: dict[str, str] | None = None
    episode_timeout: float = 60.0
    players_started: bool = True

    @property
    def charged_to_player(self) -> bool:
        return self.player_env is not None


FAULTS = {
    "game_crash": Fault("game_crashed", "playing", game_env={"TESTKIT_FAULT": "crash"}),
    "game_hang": Fault("game_timeout", "playing", game_env={"TESTKIT_FAULT": "hang"}, episode_timeout=6.0),
    "game_never_healthy": Fault(
        "game_start_failed", "health", game_env={"TESTKIT_FAULT": "never_healthy"}, players_started=False
    ),
    "game_bad_results": Fault("invalid_results", "results", game_env={"TESTKIT_FAULT": "bad_results"}),
    "game_missing_results": Fault("missing_results", "results", game_env={"TESTKIT_FAULT": "no_results"}),
    "game_no_replay": Fault("missing_replay", "results", game_env={"TESTKIT_FAULT": "no_replay"}),
    "player_crash": Fault("player_crashed", "playing", player_env={"TESTKIT_PLAYER": "crash"}),
    # Plays, then never exits: killed after the exit grace, and charged as a crash.
    "player_hang": Fault("player_crashed", "players_exit", player_env={"TESTKIT_PLAYER": "linger"}),
    "player_never_connects": Fault(
        "player_never_connected", "playing", player_env={"TESTKIT_PLAYER": "never_connect"}
    ),
}
DOCKER_FAULTS = ("game_crash", "game_hang", "player_crash", "player_hang", "player_never_connects")
CASES = [pytest.param(name, "process", id=f"{name}-process") for name in FAULTS] + [
    pytest.param(name, "docker", id=f"{name}-docker", marks=pytest.mark.docker) for name in DOCKER_FAULTS
]


def assert_logs_kept(workspace: Path, fault: Fault) -> None:
    logs = workspace / "logs"
    assert (logs / "game.stdout.log").exists() and (logs / "game.stderr.log").exists(), workspace
    if fault.players_started:
        assert (logs / "policy_agent_0.log").exists() and (logs / "policy_agent_1.log").exists()
    info = json.loads((workspace / "error_info.json").read_text())
    assert info["error_type"] == fault.error_type and info["phase"] == fault.phase, info


def assert_counted_once(league: FaultLeague, fault: Fault) -> None:
    episode = league.only_episode()
    assert episode.status == "failed" and episode.error_type == fault.error_type, episode.error
    assert league.rated_games() == {"steady:v1": 0, "faulty:v1": 0}  # nothing rated, for nobody
    assert league.events("episode_rated") == []
    assert len(league.events("episode_failed")) == 1
    workspace = Path(episode.workspace)
    assert_logs_kept(workspace, fault)
    if fault.charged_to_player:
        # Charged once, to the faulty entrant's seat; played once.
        assert episode.attempts == 1 and league.events("episode_retried") == []
        faulty_slot = next(s.position for s in episode.seats if s.label == "faulty:v1")
        assert episode.error["slot"] == faulty_slot and episode.error["blame"] == "player"
        assert league.failures_charged() == {"steady:v1": 0, "faulty:v1": 1}
        member = next(m for m in league.svc.memberships(LEAGUE) if m.policy_version.label == "faulty:v1")
        assert len(member.failure_episode_ids) == 1
    else:
        # Infrastructure: retried, then failed; every attempt's error and logs kept; nobody charged.
        assert episode.attempts == INFRA_RETRIES + 1
        assert [a["attempt"] for a in episode.attempt_errors] == list(range(1, INFRA_RETRIES + 2))
        assert {a["error_type"] for a in episode.attempt_errors} == {fault.error_type}
        assert len(league.events("episode_retried")) == INFRA_RETRIES
        assert league.failures_charged() == {"steady:v1": 0, "faulty:v1": 0}
        assert_logs_kept(workspace / "previous_attempts" / "attempt-1", fault)


@pytest.mark.parametrize(("name", "runtime"), CASES)
def test_fault_is_typed_kept_and_counted_once(
    tmp_path: Path, name: str, runtime: str, request: pytest.FixtureRequest
) -> None:
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    fault = FAULTS[name]
    league = fault_league(
        tmp_path, game_env=fault.game_env, player_env=fault.player_env, episode_timeout=fault.episode_timeout
    )
    try:
        run = league.svc.run_round(LEAGUE, runtime_name=runtime)
        assert run.progress is not None and run.progress.status == "completed", run.to_json()
        assert_counted_once(league, fault)
    finally:
        league.svc.close()
