"""`coworld episode-logs` and `coworld replays` read a league's artifacts back from S3 (a real
S3-compatible server), not from the local workspaces (deleted here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coworld_pipeline.demo import ensure_demo_league
from coworld_pipeline.league import LeagueService
from coworld_pipeline.runtime.artifacts import S3ArtifactStore
from tests.defs.helpers import REPO, MotoServer


@pytest.fixture
def moto_s3(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    server = MotoServer()
    yield server
    server.stop()


def test_cli_reads_league_artifacts_from_s3(tmp_path: Path, moto_s3: MotoServer):
    home = tmp_path / "home"
    service = LeagueService(home=home)
    league = ensure_demo_league(service, name="s3cli", episodes_per_pair=1, kick_off=False)
    store = S3ArtifactStore("coworld-cli", "t", endpoint_url=moto_s3.url, create_bucket=True)
    played = service.run_round(league.id, parallel=3, runtime_name="process", artifact_store=store)
    assert played.progress is not None and played.progress.status == "completed"
    assert played.round_id is not None
    episodes = service.episodes(round_ref=played.round_id, limit=100)
    assert len(episodes) == 3
    for e in episodes:
        assert {"results.json", "replay.json", "replay.json.z", "logs/game.stdout.log"} <= set(
            store.list_files(e.id)
        )

    shutil.rmtree(home / "episodes")
    env = {
        "COWORLD_HOME": str(home),
        "COWORLD_ARTIFACT_STORE": "s3",
        "COWORLD_S3_BUCKET": "coworld-cli",
        "COWORLD_S3_PREFIX": "t",
        "COWORLD_S3_ENDPOINT_URL": moto_s3.url,
    }
    cli_env = {**os.environ, **env}
    ereq = episodes[0].id
    logs = subprocess.run(
        [sys.executable, "-m", "coworld_cli.main", "episode-logs", ereq, "--game"],
        cwd=REPO,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert logs.returncode == 0, logs.stderr + logs.stdout
    first_line = store.fetch(ereq, "logs/game.stdout.log").decode().splitlines()[0]
    assert first_line[:60] in logs.stdout

    out = tmp_path / "replays"
    replays = subprocess.run(
        [
            sys.executable,
            "-m",
            "coworld_cli.main",
            "replays",
            "--round",
            f"round_{played.round_id}",
            "--download-dir",
            str(out),
        ],
        cwd=REPO,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replays.returncode == 0, replays.stderr + replays.stdout
    for e in episodes:
        assert json.loads((out / f"{e.id}.json").read_text()) == json.loads(store.fetch(e.id, "replay.json"))
