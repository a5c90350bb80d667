"""Episode requests written for the reference load unchanged; bad ones are named precisely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from coworld_pipeline.contract import ContractError, load_manifest, parse_episode_request, parse_manifest
from coworld_pipeline.contract.convert import convert
from coworld_pipeline.contract.episode_request import certification_request
from tests.conftest import ORCHARD_DIR

DATA = Path(__file__).parent / "data"
REQUEST_SCHEMA = json.loads((DATA / "episode_request_schema-0.1.11.json").read_text())
# Orchard in its 0.1.11 form (`coworld convert`), so that its requests fit the 0.1.11 request schema.
MANIFEST = parse_manifest(convert(load_manifest(ORCHARD_DIR / "coworld_manifest.json"), "0.1.11").manifest)


def request_dict(**changes: object) -> dict:
    data = certification_request(MANIFEST).to_json_dict()
    data.update(changes)
    return data


def test_reference_shaped_request_loads() -> None:
    data = request_dict(episode_tags={"source": "test"}, policy_names=["Greedy", "Planner"])
    Draft202012Validator(REQUEST_SCHEMA).validate(data)
    request = parse_episode_request(data, MANIFEST)
    assert request.slot_count == 2 and request.policy_names == ["Greedy", "Planner"]


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"policy_names": ["only one"]}, "$.policy_names"),
        (
            {"game_config": {**MANIFEST.certification.game_config, "tokens": ["a", "b"]}},
            "$.game_config.tokens",
        ),
        ({"players": [{"image": "x"}]}, "$.game_config"),
        ({"players": "nope"}, "$.players"),
        ({"surprise": 1}, "$.surprise"),
    ],
    ids=["policy-names-count", "tokens", "slot-count", "players-type", "unknown-field"],
)
def test_bad_requests_name_the_field(changes: dict, path: str) -> None:
    with pytest.raises(ContractError) as err:
        parse_episode_request(request_dict(**changes), MANIFEST)
    assert any(p.path.startswith(path) for p in err.value.problems), err.value.problems


def test_request_manifest_must_match_the_command_line_manifest() -> None:
    data = request_dict()
    data["manifest"]["game"]["description"] = "a different package"
    with pytest.raises(ContractError, match="does not match"):
        parse_episode_request(data, MANIFEST)
