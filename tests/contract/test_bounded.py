"""Bounded parsing and schema evaluation: limits hold, and within them nothing changes meaning."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from coworld_pipeline.contract.bounded_schema import (
    MAX_IN_PLACE_CHAIN,
    bounded_validator,
    schema_problems,
    validation_problems,
)
from coworld_pipeline.contract.limits import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    bounds_problems,
    parse_json_text,
)
from coworld_pipeline.contract.manifest import load_manifest, parse_manifest
from coworld_pipeline.contract.problems import ContractError
from coworld_pipeline.contract.results import validate_results

ORCHARD = Path(__file__).resolve().parents[2] / "examples/orchard/coworld_manifest.json"


def problems_of(text: str) -> dict[str, str]:
    with pytest.raises(ContractError) as caught:
        parse_json_text(text, "doc")
    return {p.path: p.message for p in caught.value.problems}


# ---- JSON text ----------------------------------------------------------------------------------


def test_size_limit_is_checked_before_parsing() -> None:
    found = problems_of(json.dumps({"a": "x" * MAX_DOCUMENT_BYTES}))
    assert "at most 1048576 bytes" in found["$"]


def test_depth_limit_names_the_first_value_too_deep() -> None:
    text = '{"game": {"config": ' + '{"k": [' * 40 + "1" + "]}" * 40 + "}}"
    found = problems_of(text)
    (path, message) = next(iter(found.items()))
    assert path.startswith("$.game.config.k[0].k[0]")
    assert f"at most {MAX_DEPTH} levels" in message
    # Brackets inside strings are text, not nesting.
    assert parse_json_text(json.dumps({"s": "[" * 100_000}), "doc") == {"s": "[" * 100_000}
    assert parse_json_text("[" * MAX_DEPTH + "]" * MAX_DEPTH, "doc")


def test_huge_integers_are_never_converted() -> None:
    found = problems_of('{"a": [1, 2, ' + "7" * 100_000 + "]}")
    assert found == {"$.a[2]": "an integer of 100000 digits; at most 32 digits"}
    assert parse_json_text('{"seed": 18446744073709551615}', "doc") == {"seed": 2**64 - 1}


def test_non_json_numbers_and_broken_text() -> None:
    assert "not a JSON number" in problems_of('{"a": NaN}')["$.a"]
    assert "not a JSON number" in problems_of('{"a": -Infinity}')["$.a"]
    assert "not a JSON number" in problems_of('{"a": 1e999}')["$.a"]
    assert "surrogate" in problems_of('{"a": "\\udc00"}')["$.a"]
    assert "invalid JSON at line 1" in problems_of('{"a": ')["$"]


def test_in_process_documents_are_bounded_without_recursion() -> None:
    deep: dict = {}
    node = deep
    for _ in range(200_000):  # far past Python's recursion limit
        node["x"] = {}
        node = node["x"]
    problems = bounds_problems({"game": deep})
    assert problems[0].path.startswith("$.game.x.x.x")
    assert f"deeper than {MAX_DEPTH}" in problems[0].message
    huge = bounds_problems({"n": 10**5000})  # str() of it would raise in Python 3.11
    assert huge[0].path == "$.n" and "digits" in huge[0].message
    with pytest.raises(ContractError):
        parse_manifest({"game": deep})


def test_read_json_document_reads_at_most_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b"0," * (2 * MAX_DOCUMENT_BYTES) + b"0]")
    with pytest.raises(ContractError) as caught:
        load_manifest(big)
    assert "larger than 1024 KiB" in caught.value.problems[0].message


# ---- schemas ------------------------------------------------------------------------------------


def schema_paths(schema: object) -> dict[str, str]:
    return {p.path: p.message for p in schema_problems(schema, "$.s")}


def test_refs_resolve_only_inside_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a $ref was fetched over the network")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    found = schema_paths({"properties": {"a": {"$ref": "https://example.invalid/s.json"}}})
    assert "nothing is fetched" in found["$.s.properties.a['$ref']"]
    assert validation_problems({"$ref": "https://example.invalid/s.json"}, 1, "$.v")
    assert "points to nothing" in schema_paths({"items": {"$ref": "#/$defs/x"}})["$.s.items['$ref']"]
    assert "anchor" in schema_paths({"$ref": "#nope"})["$.s['$ref']"]
    # What does resolve: local pointers, anchors, ids and the published meta-schema.
    assert not schema_paths({"$defs": {"a": {"$anchor": "A", "type": "string"}}, "$ref": "#A"})
    assert not schema_paths({"$ref": "https://json-schema.org/draft/2020-12/schema"})
    assert not schema_paths({"$defs": {"n": {"$id": "urn:n", "type": "integer"}}, "$ref": "urn:n"})


def test_in_place_loops_and_chains_are_refused() -> None:
    assert "never end" in schema_paths({"$ref": "#"})["$.s['$ref']"]
    assert "never end" in schema_paths({"anyOf": [{"not": {"$ref": "#"}}]})["$.s.anyOf[0].not['$ref']"]
    loop = {"$defs": {"a": {"if": {"$ref": "#/$defs/b"}}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}}
    assert any("never end" in m for m in schema_paths(loop).values())
    # Recursion through the value (a tree) is how schemas describe nesting: allowed.
    tree = {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}}
    assert not schema_paths(tree)
    chain = {"$defs": {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(MAX_IN_PLACE_CHAIN + 5)}}
    chain["$defs"][f"d{MAX_IN_PLACE_CHAIN + 5}"] = {"type": "string"}
    assert any("in a row" in m for m in schema_paths(chain).values())


def test_patterns_must_compile_as_re2() -> None:
    found = schema_paths({"properties": {"a": {"pattern": "(?<=x)y"}}, "patternProperties": {"(a)\\1": {}}})
    assert "lookaround" in found["$.s.properties.a.pattern"]
    assert "RE2" in found["$.s.patternProperties['(a)\\\\1']"]
    assert not schema_paths({"pattern": "^[a-z]{1,8}(-[0-9]+)?$", "patternProperties": {"^x-": {}}})


def test_catastrophic_pattern_is_linear() -> None:
    schema = {"type": "string", "pattern": "^(a+)+$"}
    started = time.process_time()
    assert validation_problems(schema, "a" * 200_000 + "!", "$.v")
    assert not validation_problems(schema, "a" * 200_000, "$.v")
    assert time.process_time() - started < 2


def test_expensive_schemas_end_with_a_budget_problem() -> None:
    defs = {f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 6} for i in range(10)}
    defs["d10"] = {"minimum": 5}
    started = time.process_time()
    problems = validation_problems({"$defs": defs, "$ref": "#/$defs/d0"}, 1, "$.v")
    assert time.process_time() - started < 2
    assert problems[0].path == "$.v" and "budget" in problems[0].message


def test_unique_items_is_linear_and_keeps_json_equality() -> None:
    started = time.process_time()
    assert not validation_problems({"uniqueItems": True}, [{"k": i} for i in range(50_000)], "$.v")
    assert time.process_time() - started < 2
    assert validation_problems({"uniqueItems": True}, [{"a": [1, 2]}, {"a": [1.0, 2]}], "$.v")
    assert not validation_problems({"uniqueItems": True}, [1, True, "1", [1], {"1": 1}, 0, False], "$.v")


# Replaced keywords must mean what the stock ones mean on ordinary inputs.
EQUIVALENCE = [
    ({"pattern": "^a.c$"}, ["abc", "a-c", "abd", "xabc", 3]),
    ({"patternProperties": {"^x-": {"type": "integer"}}}, [{"x-a": 1}, {"x-a": "s"}, {"y": "s"}]),
    (
        {"properties": {"a": {}}, "patternProperties": {"^b": {}}, "additionalProperties": False},
        [{"a": 1}, {"b1": 1}, {"c": 1}, {}],
    ),
    ({"properties": {"a": {}}, "additionalProperties": {"type": "string"}}, [{"z": "s"}, {"z": 1}]),
    (
        {
            "allOf": [{"properties": {"a": {}}}],
            "anyOf": [{"patternProperties": {"^p": {}}}, {"required": ["q"]}],
            "unevaluatedProperties": False,
        },
        [{"a": 1}, {"a": 1, "p1": 2}, {"a": 1, "z": 2}, {"q": 1}, {"q": 1, "z": 1}],
    ),
    (
        {
            "if": {"required": ["k"]},
            "then": {"properties": {"k": {}, "t": {}}},
            "else": {"properties": {"e": {}}},
            "unevaluatedProperties": False,
        },
        [{"k": 1, "t": 1}, {"k": 1, "e": 1}, {"e": 1}, {"t": 1}],
    ),
    ({"uniqueItems": True}, [[1, 2], [1, 1], [1, 1.0], [[1], [1]], [{"a": 1}, {"a": 2}]]),
]


@pytest.mark.parametrize(("schema", "instances"), EQUIVALENCE)
def test_replaced_keywords_agree_with_jsonschema(schema: dict, instances: list) -> None:
    for instance in instances:
        expected = Draft202012Validator(schema).is_valid(instance)
        assert bounded_validator(schema).is_valid(instance) == expected, (schema, instance)


def test_results_from_a_game_are_bounded() -> None:
    manifest = load_manifest(ORCHARD)
    deep: list = []
    node = deep
    for _ in range(10_000):
        node.append([])
        node = node[0]
    with pytest.raises(ContractError) as caught:
        validate_results(manifest, {"scores": [1, 2], "extra": deep}, 2)
    assert caught.value.problems[0].path.startswith("$.extra[0]")
