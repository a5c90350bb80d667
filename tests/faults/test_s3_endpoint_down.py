"""The S3 endpoint of a league's artifact store goes down (a real S3-compatible server, moto, is
killed): the attempt fails as infrastructure, is retried and charged to nobody, its logs stay in the
local workspace; once the endpoint is back, the next round plays and uploads as usual."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from coworld_pipeline.runtime.artifacts import S3ArtifactStore
from tests.conftest import our_processes, wait_for
from tests.defs.helpers import with_group_kill
from tests.faults.helpers import INFRA_RETRIES, LEAGUE, fault_league

DOWN_PORT = 18211  # nothing listens here
MOTO_PORT = 18212
# Connects 3 s late, so that the game is up and waiting when the endpoint is killed.
LATE_PLAYER = [
    "python",
    "-c",
    "import runpy, time; time.sleep(3); runpy.run_module('testkit.player', run_name='__main__')",
]


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)


def start_moto(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{url}/moto-api/", timeout=1.0).status_code < 500, 30, "moto server")
    return proc


def test_endpoint_down_before_the_round_is_a_platform_error(tmp_path: Path) -> None:
    league = fault_league(tmp_path)
    store = S3ArtifactStore("coworld-faults", "t", endpoint_url=f"http://127.0.0.1:{DOWN_PORT}")
    try:
        run = league.svc.run_round(LEAGUE, runtime_name="process", artifact_store=store)
        assert run.progress is not None and run.progress.status == "completed"
        episode = league.only_episode()
        assert episode.status == "failed" and episode.error_type == "platform_error"
        assert f"127.0.0.1:{DOWN_PORT}" in episode.error["message"]  # says which endpoint failed
        assert episode.error["blame"] == "platform" and episode.attempts == INFRA_RETRIES + 1
        assert league.failures_charged() == {"steady:v1": 0, "faulty:v1": 0}
        assert league.rated_games() == {"steady:v1": 0, "faulty:v1": 0}
    finally:
        league.svc.close()


def test_endpoint_down_mid_episode_then_back(tmp_path: Path) -> None:
    league = fault_league(tmp_path, faulty_run=LATE_PLAYER, connect_timeout=30)
    endpoint = f"http://127.0.0.1:{MOTO_PORT}"
    moto = start_moto(MOTO_PORT)
    try:
        store = S3ArtifactStore("coworld-faults", "t", endpoint_url=endpoint, create_bucket=True)
        outcome: dict[str, object] = {}
        runner = threading.Thread(
            target=lambda: outcome.update(
                run=league.svc.run_round(LEAGUE, runtime_name="process", artifact_store=store)
            )
        )
        runner.start()
        wait_for(lambda: any("testkit.game" in c for c in our_processes()), 60, "the game to start", 0.01)
        with_group_kill(moto)  # the endpoint is gone while the game waits for its late player
        runner.join(timeout=300)
        assert not runner.is_alive()
        episode = league.only_episode()
        assert episode.status == "failed", episode.error
        # Infrastructure both times: the game could not write its results (it crashed on the refused
        # PUT), then the retry could not reach the store at all. Nobody is charged, nothing is rated.
        first, retry = episode.attempt_errors
        assert first["error_type"] == "game_crashed" and first["blame"] == "game", first
        assert retry["error_type"] == "platform_error" and endpoint in retry["message"], retry
        assert episode.attempts == INFRA_RETRIES + 1
        assert league.failures_charged() == {"steady:v1": 0, "faulty:v1": 0}
        assert league.rated_games() == {"steady:v1": 0, "faulty:v1": 0}
        assert league.events("episode_rated") == []
        # Nothing lost: the attempt that played kept its logs (and its error) in the local workspace.
        played = Path(episode.workspace) / "previous_attempts" / "attempt-1"
        assert "testkit game listening" in (played / "logs" / "game.stdout.log").read_text()
        assert (played / "logs" / "policy_agent_0.log").exists()
        assert (played / "error_info.json").exists()
        assert "Connection refused" in (played / "logs" / "game.stderr.log").read_text()  # why it crashed

        moto = start_moto(MOTO_PORT)  # back (empty: moto keeps objects in memory)
        store = S3ArtifactStore("coworld-faults", "t", endpoint_url=endpoint, create_bucket=True)
        again = league.svc.run_round(LEAGUE, runtime_name="process", artifact_store=store)
        errors = [e.attempt_errors for e in league.svc.episodes(round_ref=f"round_{again.round_id}")]
        assert again.progress is not None and again.progress.counts == {"succeeded": 1}, errors
        (replayed,) = league.svc.episodes(round_ref=f"round_{again.round_id}")
        assert {"results.json", "replay.json", "logs/game.stdout.log"} <= set(store.list_files(replayed.id))
        assert league.rated_games() == {"steady:v1": 1, "faulty:v1": 1}  # counted once
        assert len(league.events("episode_rated")) == 1
    finally:
        with_group_kill(moto)
        league.svc.close()
