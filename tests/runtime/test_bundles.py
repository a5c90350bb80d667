"""Episode bundles (CONTRACT §7) built from real episode workspaces."""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path

import pytest

from coworld_pipeline.runtime.artifacts import LocalArtifactStore
from coworld_pipeline.runtime.bundles import (
    INCLUDE_TOKENS,
    BundleRequest,
    BundleSource,
    build_bundle,
    bundle_slot_count,
    parse_include,
    read_bundle_manifest,
    write_bundle,
)
from tests.fixtures.roles.episodes import play_failed, play_orchard, tree_digest


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return play_orchard(tmp_path_factory.mktemp("bundle") / "results")


def entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_full_bundle_for_an_operator(episode: Path, tmp_path: Path) -> None:
    before = tree_digest(episode)
    bundle = write_bundle(BundleRequest(BundleSource.local(episode), operator=True), tmp_path / "ep.zip")
    files = entries(bundle.path.read_bytes())
    manifest = json.loads(files["manifest.json"])
    assert manifest == read_bundle_manifest(bundle.path.read_bytes()) == bundle.manifest
    assert manifest["status"] == "success" and manifest["ereq_id"] is None
    assert manifest["run_id"] == json.loads((episode / "episode.json").read_text())["run_id"]
    # error_info only exists for failed episodes; every other token is delivered.
    assert manifest["include"] == ["results", "replay", "config", "game_logs", "player_logs"]
    assert manifest["files"] == {
        "results": "results.json",
        "replay": "replay.json",
        "config": "config.json",
        "game_logs": {"stdout": "logs/game.stdout.log", "stderr": "logs/game.stderr.log"},
        "player_logs": {"0": "logs/policy_agent_0.log", "1": "logs/policy_agent_1.log"},
    }
    assert files["replay.json"] == (episode / "replay.json").read_bytes()  # plain JSON, not zlib
    assert files["results.json"] == (episode / "results.json").read_bytes()
    assert sorted(files) == sorted(["manifest.json", "results.json", "replay.json", "config.json",
                                    "logs/game.stdout.log", "logs/game.stderr.log",
                                    "logs/policy_agent_0.log", "logs/policy_agent_1.log"])  # fmt: skip
    assert bundle.dropped == ()
    assert bundle_slot_count(bundle.path.read_bytes()) == 2
    assert tree_digest(episode) == before  # bundling never touches the episode


def test_same_episode_same_bytes(episode: Path) -> None:
    request = BundleRequest(BundleSource.local(episode), owned_slots=frozenset({0}))
    assert build_bundle(request)[0] == build_bundle(request)[0]


def test_player_logs_only_for_the_owners_slots(episode: Path) -> None:
    source = BundleSource.local(episode)
    data, manifest, dropped = build_bundle(BundleRequest(source, owned_slots=frozenset({1})))
    assert manifest["files"]["player_logs"] == {"1": "logs/policy_agent_1.log"}
    assert "logs/policy_agent_0.log" not in entries(data)
    # Nobody's policies: the token silently disappears (never an error), and is reported as dropped.
    data, manifest, dropped = build_bundle(BundleRequest(source, include=("results", "player_logs")))
    assert manifest["include"] == ["results"] and dropped == ("player_logs",)
    assert sorted(entries(data)) == ["manifest.json", "results.json"]


def test_include_tokens(episode: Path) -> None:
    assert parse_include(None) is None
    assert parse_include(["results,replay", "replay", " config "]) == ("results", "replay", "config")
    with pytest.raises(ValueError, match="unknown include token 'replays'"):
        parse_include(["results,replays"])
    for nothing in ([","], [""], [" , "]):
        with pytest.raises(ValueError, match="--include names no token"):
            parse_include(nothing)
    request = BundleRequest(BundleSource.local(episode), include=("game_logs", "error_info"), operator=True)
    data, manifest, dropped = build_bundle(request)
    assert manifest["include"] == ["game_logs"] and dropped == ("error_info",)
    assert sorted(entries(data)) == ["logs/game.stderr.log", "logs/game.stdout.log", "manifest.json"]
    assert set(INCLUDE_TOKENS) == {"results", "replay", "config", "error_info", "game_logs", "player_logs"}


def test_failed_episode_carries_error_info(tmp_path: Path) -> None:
    workspace = play_failed(tmp_path)
    data, manifest, _ = build_bundle(BundleRequest(BundleSource.local(workspace), operator=True))
    files = entries(data)
    assert manifest["status"] == "failed"
    assert manifest["files"]["error_info"] == "error_info.json"
    assert json.loads(files["error_info.json"])["error_type"] == "player_crashed"
    assert "results" not in manifest["include"]
    assert "player crashing on purpose" in files["logs/policy_agent_1.log"].decode()


def test_league_layout_from_a_store_with_only_the_compressed_replay(episode: Path, tmp_path: Path) -> None:
    """A league workspace (<home>/episodes/<ereq>): the id comes from the directory; earlier attempts and
    a missing replay.json (only replay.json.z kept) are handled."""
    store = LocalArtifactStore(tmp_path)
    ereq = "ereq_0123456789abcdef"
    target = store.episode_dir(ereq)
    target.mkdir(parents=True)
    for name in ("results.json", "config.json", "episode.json", "replay.json.z"):
        (target / name).write_bytes((episode / name).read_bytes())
    (target / "previous_attempts" / "attempt-1").mkdir(parents=True)
    (target / "previous_attempts" / "attempt-1" / "results.json").write_text("{}")
    for source in (BundleSource.local(target), BundleSource.store(store, ereq)):
        data, manifest, _ = build_bundle(BundleRequest(source))
        files = entries(data)
        assert manifest["ereq_id"] == ereq
        assert files["replay.json"] == zlib.decompress((episode / "replay.json.z").read_bytes())
        assert not any(name.startswith("previous_attempts") for name in files)


def test_not_an_episode(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        BundleSource.local(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="holds no episode files"):
        build_bundle(BundleRequest(BundleSource.local(tmp_path)))
