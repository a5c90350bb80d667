"""A missing image is a platform failure of the `images` phase, found before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import make_testkit, run_cli
from tests.faults.conftest import owned_docker_objects
from tests.faults.helpers import INFRA_RETRIES, LEAGUE, fault_league

MISSING = "coworld/no-such-image:0"
pytestmark = pytest.mark.docker


def test_run_episode_names_the_image_and_the_phase(tmp_path: Path, docker_images: None) -> None:
    manifest = make_testkit(tmp_path, image=MISSING)
    workspace = tmp_path / "ws"
    proc = run_cli("run-episode", str(manifest), "--runtime", "docker", "-o", str(workspace), "--json")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    info = json.loads((workspace / "error_info.json").read_text())
    assert info["error_type"] == "image_missing" and info["phase"] == "images", info
    assert info["blame"] == "platform" and MISSING in info["message"]
    assert json.loads(proc.stdout)["error"]["phase"] == "images"
    assert (workspace / "logs").is_dir() and (workspace / "episode.json").exists()


def test_league_retries_a_missing_image_and_charges_nobody(tmp_path: Path, docker_images: None) -> None:
    league = fault_league(tmp_path, image=MISSING)
    try:
        run = league.svc.run_round(LEAGUE, runtime_name="docker")
        assert run.progress is not None and run.progress.status == "completed"
        episode = league.only_episode()
        assert episode.status == "failed" and episode.error_type == "image_missing"
        assert episode.error["phase"] == "images" and episode.error["blame"] == "platform"
        assert episode.attempts == INFRA_RETRIES + 1
        assert [a["phase"] for a in episode.attempt_errors] == ["images"] * (INFRA_RETRIES + 1)
        assert league.failures_charged() == {"steady:v1": 0, "faulty:v1": 0}
        assert league.rated_games() == {"steady:v1": 0, "faulty:v1": 0}
        assert len(league.events("episode_failed")) == 1 and league.events("episode_rated") == []
        workspace = Path(episode.workspace)
        for attempt_dir in (workspace, workspace / "previous_attempts" / "attempt-1"):
            assert json.loads((attempt_dir / "error_info.json").read_text())["error_type"] == "image_missing"
        assert owned_docker_objects() == []  # nothing was created: the image check comes first
    finally:
        league.svc.close()
