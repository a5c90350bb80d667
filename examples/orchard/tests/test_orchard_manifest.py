"""The manifest follows the 0.1.64 manifest schema and the game's own schemas.

(The 0.1.11 form, written by `coworld convert --contract 0.1.11`, is checked in tests/generations.)
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from orchard.engine import play_episode, validate_config
from orchard.players import greedy, planner, random
from orchard_testlib import ORCHARD_DIR

# The reference 0.1.64 package's own schema, from its venv (scripts/reference-venvs.sh).
REFERENCE_SCHEMAS = sorted(
    (ORCHARD_DIR.parents[1] / ".refvenvs" / "0.1.64").glob(
        "lib/python3*/site-packages/coworld/manifest/v0/schema.json"
    )
)


def _validator(schema):
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def test_manifest_validates_against_reference_schema(manifest):
    if not REFERENCE_SCHEMAS:
        pytest.skip("reference 0.1.64 schema not installed (scripts/reference-venvs.sh)")
    schema = json.loads(REFERENCE_SCHEMAS[0].read_text())
    errors = sorted(_validator(schema).iter_errors(manifest), key=str)
    assert not errors, [error.message for error in errors]


def test_manifest_files_are_generated_and_current():
    result = subprocess.run(
        [sys.executable, str(ORCHARD_DIR / "make_manifest.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_template_matches_manifest_except_version_and_images(manifest):
    template = json.loads((ORCHARD_DIR / "coworld_manifest_template.json").read_text())
    assert "version" not in template["game"]
    assert manifest["game"]["version"] == "0.1.0"
    images = {manifest["game"]["runnable"]["image"]}
    template_images = {template["game"]["runnable"]["image"]}
    for role in ("player", "grader", "diagnoser", "optimizer"):
        images |= {entry["image"] for entry in manifest[role]}
        template_images |= {entry["image"] for entry in template[role]}
    # The reporter is a reference, implemented by the package image (no image of its own).
    assert (
        manifest["reporter"] == template["reporter"] == [{"reporter": "coworldexamples/orchard-reporter@1"}]
    )
    implementation = manifest["game"]["results_schema"]["x-coworld-reporters"][
        manifest["reporter"][0]["reporter"]
    ]
    assert implementation["run"] == ["python", "-m", "orchard.reporter"] and "image" not in implementation
    assert images == {"coworld/orchard:0.1.0"}
    assert template_images == {"{{ORCHARD_IMAGE}}"}
    compose = (ORCHARD_DIR / "docker-compose.yml").read_text()
    assert "\n  orchard:\n" in compose  # service name -> {{ORCHARD_IMAGE}}


def test_config_schema_token_rules_and_variants(manifest):
    game = manifest["game"]
    config_schema = game["config_schema"]
    assert "tokens" in config_schema["required"]
    tokens = config_schema["properties"]["tokens"]
    assert tokens["type"] == "array" and tokens["items"]["type"] == "string"
    validator = _validator(config_schema)
    configs = [variant["game_config"] for variant in manifest["variants"]]
    configs.append(manifest["certification"]["game_config"])
    for config in configs:
        assert "tokens" not in config
        slots = len(config["players"])
        full = {**config, "tokens": [f"token-{i}" for i in range(slots)]}
        assert not list(validator.iter_errors(full))
        validate_config(full)  # the server's own validation agrees
    assert {variant["id"] for variant in manifest["variants"]} == {"duel", "duel-live", "four"}
    cert = manifest["certification"]
    assert [p["player_id"] for p in cert["players"]] == ["greedy", "planner", "random"]
    assert len(manifest["tags"]) >= 3
    assert len(cert["players"]) == len(cert["game_config"]["players"])
    player_ids = [entry["id"] for entry in manifest["player"]]
    assert sorted(player_ids) == ["greedy", "planner", "random"]
    assert manifest["game"]["runnable"]["run"] == ["python", "-m", "orchard.game"]


def test_engine_results_validate_against_results_schema(manifest):
    validator = _validator(manifest["game"]["results_schema"])
    config = dict(manifest["certification"]["game_config"])
    game = play_episode(config, [greedy.choose_action, planner.choose_action, random.choose_action])
    results = {**game.results(), "episode_seconds": 0.5}
    assert not list(validator.iter_errors(results))
    assert list(validator.iter_errors({**results, "surprise": 1}))


def test_docs_pages_are_inline_text(manifest):
    docs = manifest["game"]["docs"]
    ids = [page["id"] for page in docs["pages"]]
    assert "rules.md" in ids and "play_orchard.md" in ids
    for page in docs["pages"]:
        assert page["content"]["type"] == "text" and page["content"]["value"].strip()
    for key in ("player", "global"):
        assert manifest["game"]["protocols"][key]["type"] == "text"
