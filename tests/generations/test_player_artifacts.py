"""0.1.64 players get COWORLD_PLAYER_ARTIFACT_UPLOAD_URL: a private place for one zip, kept afterwards."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest

from coworld_pipeline.contract import load_manifest
from coworld_pipeline.contract.episode_request import certification_request
from coworld_pipeline.runtime import EpisodeOptions, make_runtime, run_episode
from tests.conftest import make_testkit

# The testkit player, after it uploaded a zip naming everything it can see where it uploads.
UPLOADING_PLAYER = """
import os, pathlib, runpy, sys, urllib.parse, zipfile
url = os.environ["COWORLD_PLAYER_ARTIFACT_UPLOAD_URL"]
path = pathlib.Path(urllib.parse.urlparse(url).path)
with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("seen.json", __import__("json").dumps([url, sorted(os.listdir(path.parent))]))
sys.argv = ["testkit.player"]
runpy.run_module("testkit.player", run_name="__main__")
"""


def uploading_testkit(tmp_path: Path, newest: bool = True) -> Path:
    path = make_testkit(tmp_path)
    data = json.loads(path.read_text())
    if newest:
        data["tags"] = ["test", "grid", "counter"]  # a 0.1.64 field: the manifest's generation
    data["player"][0]["run"] = ["python", "-c", UPLOADING_PLAYER]
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("runtime", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_each_player_uploads_to_its_own_place_and_the_zip_is_kept(
    tmp_path: Path, runtime: str, request: pytest.FixtureRequest
) -> None:
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    path = uploading_testkit(tmp_path)
    manifest = load_manifest(path)
    workspace = tmp_path / "ws"
    outcome = run_episode(
        certification_request(manifest),
        workspace,
        make_runtime(runtime, base_dir=path.parent),
        EpisodeOptions(timeout_seconds=60),
    )
    assert outcome.ok, outcome.error
    assert sorted(outcome.player_artifacts) == [0, 1]
    for slot in (0, 1):
        kept = workspace / f"policy_artifact_{slot}.zip"
        assert outcome.player_artifacts[slot] == kept
        with zipfile.ZipFile(kept) as archive:
            url, seen = json.loads(archive.read("seen.json"))
        # Its own file only: no other slot's upload, nothing of the game's.
        assert seen == [f"policy_artifact_{slot}.zip"]
        assert url.startswith("file://") and urlparse(url).path.endswith(f"/policy_artifact_{slot}.zip")
        if runtime == "docker":
            assert url == f"file:///coworld-artifact/policy_artifact_{slot}.zip"  # as the reference
        else:
            assert not Path(urlparse(url).path).parent.exists()  # the upload directory is gone
            assert workspace not in Path(urlparse(url).path).parents  # never where the game writes
    summary = json.loads((workspace / "episode.json").read_text())
    assert summary["player_artifacts"] == {"0": "policy_artifact_0.zip", "1": "policy_artifact_1.zip"}
    game_env = (workspace / "logs" / "game.stdout.log").read_text()
    assert "coworld-artifact" not in game_env and "player-artifacts" not in game_env


def test_older_generations_get_no_upload_url(tmp_path: Path) -> None:
    path = make_testkit(tmp_path, player_env={"TESTKIT_PLAYER": "print_env"})
    outcome = run_episode(
        certification_request(load_manifest(path)),
        tmp_path / "ws",
        make_runtime("process", base_dir=path.parent),
        EpisodeOptions(timeout_seconds=60),
    )
    assert outcome.ok, outcome.error
    log = (tmp_path / "ws" / "logs" / "policy_agent_1.log").read_text()
    assert "ENV_KEYS=" in log and "COWORLD_PLAYER_ARTIFACT_UPLOAD_URL" not in log
    assert outcome.player_artifacts == {}
