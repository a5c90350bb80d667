"""One contract model for every generation: 0.1.0, 0.1.11, 0.1.64 and its v1 `apiVersion`."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from coworld_pipeline.contract import ContractError, parse_manifest
from coworld_pipeline.contract.episode_request import parse_episode_request
from coworld_pipeline.contract.extensions import cpu_cores, memory_bytes
from coworld_pipeline.contract.generations import Generation
from tests.conftest import run_cli
from tests.contract.test_manifest import hydrated_paintarena


def as_0_1_0() -> dict[str, Any]:
    """0.1.11's paintarena with only what 0.1.0 manifests have (no role arrays, no source_url)."""
    m = hydrated_paintarena()
    for key in ("reporter", "commissioner", "grader", "diagnoser", "optimizer"):
        m.pop(key, None)
    m["game"].pop("docs", None)
    return m


def as_0_1_64() -> dict[str, Any]:
    m = hydrated_paintarena()
    m["tags"] = ["strategy", "real-time", "multiplayer"]
    m["episode_timeout_minutes"] = 5
    m["game"]["replay_viewer"] = {"bundle": "build/viewer", "replay_compression": "gzip"}
    m["game"]["runnable"]["startup"] = {"port": 9000, "path": "/ready"}
    m["game"]["runnable"]["resources"] = {
        "requests": {"cpu": "500m"},
        "limits": {"cpu": "2", "memory": "512Mi"},
    }
    m["reporter"] = [{"reporter": "softmax/summary@1"}, {"wasm": "./r.wasm", "id": "r", "attributes": {}}]
    for v in m["variants"]:
        v.pop("parent_id", None)
    return m


@pytest.mark.parametrize(
    ("data", "generation"),
    [(as_0_1_0(), "0.1.0"), (hydrated_paintarena(), "0.1.11"), (as_0_1_64(), "0.1.64")],
    ids=["0.1.0", "0.1.11", "0.1.64"],
)
def test_each_generation_loads_and_is_recorded(data: dict[str, Any], generation: str) -> None:
    m = parse_manifest(data)
    assert m.generation == Generation(generation) and m.warnings == []
    # Stored and reloaded (what a league does), it is still the same generation.
    assert parse_manifest(m.to_json_dict()).generation == m.generation


def test_v1_api_version_is_0_1_64_schema_v1() -> None:
    m = parse_manifest({**as_0_1_64(), "apiVersion": "coworld.softmax.com/v1"})
    assert (m.generation, m.schema_version) == (Generation.V0_1_64, "v1")
    with pytest.raises(ContractError) as err:
        parse_manifest({**as_0_1_64(), "apiVersion": "coworld.softmax.com/v9"})
    assert [p.path for p in err.value.problems] == ["$.apiVersion"]


def test_0_1_64_fields_are_modelled() -> None:
    m = parse_manifest(as_0_1_64())
    assert m.game.runnable.startup is not None and m.game.runnable.startup.port == 9000
    assert m.game.runnable.resources is not None
    assert m.game.runnable.resources.effective() == (2.0, 512 * 1024**2)
    assert [r.label for r in m.reporter_references] == ["softmax/summary@1", "wasm:r"]
    assert m.role("reporter") == []  # references run nothing
    assert m.all_images() == ["paintarena:coworld-0123456789ab"]


def test_unknown_fields_are_warnings_with_their_json_path() -> None:
    data = as_0_1_64()
    data["leagues"] = []
    data["game"]["future_thing"] = {"x": 1}
    data["game"]["runnable"]["gpu_hint"] = True
    data["variants"][0]["colour"] = "red"
    data["reporter"][1]["extra"] = 1
    m = parse_manifest(data)
    assert sorted(w.path for w in m.warnings) == [
        "$.game.future_thing",
        "$.game.runnable.gpu_hint",
        "$.leagues",
        "$.reporter[1].extra",
        "$.variants[0].colour",
    ]
    assert "leagues" not in m.to_json_dict()


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda m: m.update(tags="strategy"), "$.tags"),
        (lambda m: m.update(episode_timeout_minutes=0), "$.episode_timeout_minutes"),
        (lambda m: m["game"].update(replay_viewer={"bundle": ""}), "$.game.replay_viewer.bundle"),
        (lambda m: m["game"]["runnable"].update(startup={"path": "/x"}), "$.game.runnable.startup.port"),
        (
            lambda m: m["game"]["runnable"].update(
                resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}
            ),
            "$.game.runnable.resources",
        ),
        (lambda m: m["reporter"].append({"reporter": "a", "wasm": "b"}), "$.reporter[2]"),
        (lambda m: m["player"][0].update(file="player.zip"), "$.player[0]"),
    ],
    ids=["tags", "timeout", "viewer", "startup", "limit-below-request", "reporter-ref", "image-and-file"],
)
def test_a_known_field_with_a_wrong_shape_is_an_error(mutate: Any, path: str) -> None:
    data = as_0_1_64()
    mutate(data)
    with pytest.raises(ContractError) as err:
        parse_manifest(data)
    assert any(p.path.startswith(path) for p in err.value.problems), err.value


def test_0_1_64_token_bounds_are_validity_bounds_and_the_roster_fixes_the_count() -> None:
    data = as_0_1_64()
    schema = data["game"]["config_schema"]
    schema["properties"]["tokens"].update(minItems=2, maxItems=4)
    schema["properties"]["players"].update(minItems=2, maxItems=4)
    schema["required"].remove("players")
    for cfg in [data["certification"]["game_config"], *(v["game_config"] for v in data["variants"])]:
        cfg.pop("players")
    m = parse_manifest(data)
    assert m.slot_rule.describe() == "2-4" and m.slots_for({}, roster=3) == 3
    # A 0.1.11 manifest with the same bounds has no roster to take the count from.
    old = hydrated_paintarena()
    old["game"]["config_schema"] = schema
    old["certification"]["game_config"] = data["certification"]["game_config"]
    old["variants"][0]["game_config"] = data["variants"][0]["game_config"]
    with pytest.raises(ContractError):
        parse_manifest(old)


def test_an_episode_request_embedding_a_newer_manifest_loads() -> None:
    manifest = as_0_1_64()
    manifest["someday"] = 1
    request = {
        "manifest": manifest,
        "game_config": manifest["certification"]["game_config"],
        "players": [{"image": "x", "future": True}, {"image": "y"}],
    }
    parsed = parse_episode_request(copy.deepcopy(request))
    assert parsed.manifest.generation is Generation.V0_1_64
    assert [w.path for w in parsed.manifest.warnings] == ["$.manifest.someday"]


def test_quantities() -> None:
    assert (cpu_cores("500m"), cpu_cores("2")) == (0.5, 2.0)
    assert (memory_bytes("512Mi"), memory_bytes("1G"), memory_bytes("1024")) == (512 * 2**20, 10**9, 1024)


def test_validate_cli_prints_the_generation_and_warnings(tmp_path: Any) -> None:
    data = as_0_1_64()
    data["nonsense"] = True
    path = tmp_path / "coworld_manifest.json"
    path.write_text(json.dumps(data))
    proc = run_cli("validate", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["generation"] == "0.1.64" and out["warnings"][0]["path"] == "$.nonsense"
    assert "$.nonsense" in proc.stderr
