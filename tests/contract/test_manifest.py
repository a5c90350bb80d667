"""Manifest conformance: what the reference schema accepts loads; each broken variant is named."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from coworld_pipeline.contract import ContractError, load_manifest, parse_manifest
from coworld_pipeline.contract.convert import convert
from tests.conftest import ORCHARD_DIR, TESTKIT_DIR, run_cli

DATA = Path(__file__).parent / "data"
REFERENCE_SCHEMA = json.loads((DATA / "coworld_manifest_schema-0.1.11.json").read_text())
PAINTARENA = json.loads((DATA / "paintarena_manifest_template-0.1.11.json").read_text())


def hydrated_paintarena() -> dict[str, Any]:
    """The template as `coworld build` would write it: a version and concrete images."""
    manifest = copy.deepcopy(PAINTARENA)
    manifest["game"]["version"] = "0.1.11"
    text = json.dumps(manifest).replace("{{PAINTARENA_IMAGE}}", "paintarena:coworld-0123456789ab")
    return json.loads(text)


@pytest.mark.parametrize(
    "manifest",
    [
        hydrated_paintarena(),
        # Orchard ships its 0.1.64 form; its 0.1.11 form is what `coworld convert` writes.
        convert(load_manifest(ORCHARD_DIR / "coworld_manifest.json"), "0.1.11").manifest,
        json.loads((TESTKIT_DIR / "coworld_manifest.json").read_text()),
    ],
    ids=["paintarena", "orchard", "testkit"],
)
def test_manifests_valid_under_the_reference_schema_load(manifest: dict[str, Any]) -> None:
    Draft202012Validator(REFERENCE_SCHEMA).validate(manifest)
    loaded = parse_manifest(manifest)
    assert loaded.to_json_dict()["game"]["name"] == manifest["game"]["name"]


def test_paintarena_template_and_its_facts() -> None:
    m = load_manifest(DATA / "paintarena_manifest_template-0.1.11.json")
    assert m.is_template
    assert m.slot_rule.fixed and m.slot_rule.min_slots == 2
    assert [p.player_id for p in m.certification.players] == ["sweep-painter", "sweep-painter"]
    assert [r.id for r in m.reporter] == ["paint-arena-summarizer", "paint-arena-parquet-stats-reporter"]
    assert m.optimizer[0].source_url is not None


def test_unknown_runnable_fields_are_dropped_like_the_reference() -> None:
    manifest = hydrated_paintarena()
    manifest["player"][0]["gpu"] = True
    assert "gpu" not in parse_manifest(manifest).to_json_dict()["player"][0]


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(m: dict[str, Any]) -> None:
        target = m
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _del(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(m: dict[str, Any]) -> None:
        target = m
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


TOKENS = ["game", "config_schema", "properties", "tokens"]
BROKEN = {
    "unequal token bounds": (
        _set([*TOKENS, "maxItems"], 3),
        "$.game.config_schema.properties.tokens.maxItems",
    ),
    "tokens not an array": (_set([*TOKENS, "type"], "string"), "$.game.config_schema.properties.tokens.type"),
    "tokens not required": (
        _set(["game", "config_schema", "required"], ["players"]),
        "$.game.config_schema.required",
    ),
    "tokens in a variant config": (
        _set(["variants", 0, "game_config", "tokens"], ["a", "b"]),
        "$.variants[0].game_config.tokens",
    ),
    "tokens in the certification config": (
        _set(["certification", "game_config", "tokens"], ["a", "b"]),
        "$.certification.game_config.tokens",
    ),
    "variant config violates config_schema": (
        _set(["variants", 0, "game_config", "width"], 1000),
        "$.variants[0].game_config.width",
    ),
    "results schema without scores": (
        _set(["game", "results_schema", "required"], ["ticks"]),
        "$.game.results_schema.required",
    ),
    "results schema is not a JSON Schema": (
        _set(["game", "results_schema", "type"], 7),
        "$.game.results_schema.type",
    ),
    "unknown certification player": (
        _set(["certification", "players", 1, "player_id"], "nobody"),
        "$.certification.players[1].player_id",
    ),
    "certification player count": (
        _set(["certification", "players"], [{"player_id": "sweep-painter"}]),
        "$.certification.game_config",
    ),
    "duplicate player id": (lambda m: m["player"].append(copy.deepcopy(m["player"][0])), "$.player[1].id"),
    "unknown parent variant": (_set(["variants", 0, "parent_id"], "ghost"), "$.variants[0].parent_id"),
    "version not PEP 440": (_set(["game", "version"], "one point oh"), "$.game.version"),
    "missing game name": (_del(["game", "name"]), "$.game.name"),
    "fewer than three tags (0.1.64 field, wrong shape)": (_set(["tags"], ["a"]), "$.tags"),
    "startup port out of range": (
        _set(["game", "runnable", "startup"], {"port": 80}),
        "$.game.runnable.startup.port",
    ),
    "no players": (_set(["player"], []), "$.player"),
    "uri doc that is not http": (
        _set(["game", "protocols", "player", "value"], "ftp://x"),
        "$.game.protocols.player",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_broken_manifest_names_the_field(case: str) -> None:
    mutate, path = BROKEN[case]
    manifest = hydrated_paintarena()
    mutate(manifest)
    with pytest.raises(ContractError) as err:
        parse_manifest(manifest)
    paths = [p.path for p in err.value.problems]
    assert any(p.startswith(path) for p in paths), paths


def test_slot_range_needs_a_players_array_with_the_same_bounds() -> None:
    orchard = json.loads((ORCHARD_DIR / "coworld_manifest.json").read_text())
    # Without its 0.1.64 fields (where token bounds are only validity bounds), as a 0.1.11 manifest.
    del orchard["tags"], orchard["game"]["results_schema"]["x-coworld-reporters"]
    orchard["reporter"] = []
    m = parse_manifest(orchard)
    assert (m.slot_rule.min_slots, m.slot_rule.max_slots) == (2, 4)
    assert {v.id: m.slots_for(v.game_config) for v in m.variants}["four"] == 4
    orchard["game"]["config_schema"]["properties"]["players"]["maxItems"] = 3
    with pytest.raises(ContractError, match="maxItems"):
        parse_manifest(orchard)


def test_cli_validate_reports_every_problem_with_exit_2(tmp_path: Path) -> None:
    manifest = hydrated_paintarena()
    BROKEN["tokens in a variant config"][0](manifest)
    BROKEN["unknown certification player"][0](manifest)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    proc = run_cli("validate", str(path))
    assert proc.returncode == 2
    assert "$.variants[0].game_config.tokens" in proc.stderr
    assert "$.certification.players[1].player_id" in proc.stderr
    assert "Traceback" not in proc.stderr
    as_json = json.loads(run_cli("validate", str(path), "--json").stdout)
    assert {p["path"] for p in as_json["problems"]} >= {"$.variants[0].game_config.tokens"}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""], ids=["syntax", "array", "empty"])
def test_cli_validate_rejects_non_manifests(tmp_path: Path, content: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(content)
    proc = run_cli("validate", str(path))
    assert proc.returncode == 2
    assert "$" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_validate_missing_file() -> None:
    proc = run_cli("validate", "/nonexistent/coworld_manifest.json")
    assert proc.returncode == 2 and "cannot read" in proc.stderr


def test_cli_validate_summary() -> None:
    proc = run_cli("validate", str(ORCHARD_DIR / "coworld_manifest.json"), "--json")
    assert proc.returncode == 0
    summary = json.loads(proc.stdout)
    assert summary["game"] == "orchard" and summary["slots"] == "2-4"
    assert summary["runnables"]["player"] == ["random", "greedy", "planner"]


@pytest.mark.parametrize("kind", ["manifest", "episode-request"])
def test_cli_schema_prints_a_valid_json_schema(kind: str) -> None:
    proc = run_cli("schema", kind)
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    Draft202012Validator.check_schema(schema)
    if kind == "manifest":
        Draft202012Validator(schema).validate(hydrated_paintarena())
