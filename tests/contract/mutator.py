"""Seeded mutations of real manifests and episode requests, and the named hostile inputs of issue 12.

Mutations work on JSON text where Python objects cannot hold the input (a 5,000-digit integer cannot
be `json.dumps`ed, 100k-deep nesting cannot be built recursively), and on decoded documents
otherwise. Everything is driven by one `random.Random(seed)`, so a failing case is reproduced by
its seed and index.
"""

from __future__ import annotations

import copy
import glob
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
_SEED_FILES = [
    REPO / "examples/orchard/coworld_manifest.json",
    REPO / "tests/contract/data/paintarena_manifest_template-0.1.11.json",
]
# The reference packages' example games, when scripts/reference-venvs.sh has installed them.
_REFERENCE_GLOB = str(
    REPO / ".refvenvs/*/lib/python*/site-packages/coworld/examples/*/coworld_manifest*.json"
)

HUGE_INT = "9" * 5000
REDOS_PATTERN = "^(a+)+$"
REDOS_VALUE = "a" * 50_000 + "!"


def seed_manifests() -> dict[str, dict[str, Any]]:
    """Real manifests: Orchard, the 0.1.11 template in tests/contract/data, the reference examples."""
    paths = [*_SEED_FILES, *sorted(Path(p) for p in glob.glob(_REFERENCE_GLOB))]
    seeds = {}
    for path in paths:
        label = path.relative_to(REPO).as_posix()
        # Templates name images `{{PAINTARENA_IMAGE}}`: hydrated as `coworld build` would, since a
        # request's images must be Docker references.
        text = re.sub(
            r"\{\{(\w+)\}\}", lambda m: f"coworld/{m[1].lower().replace('_', '-')}:seed", path.read_text()
        )
        seeds[label] = json.loads(text)
    return seeds


def request_for(manifest: dict[str, Any]) -> dict[str, Any]:
    """The certification request of a manifest, as a request file would hold it."""
    from coworld_pipeline.contract.episode_request import certification_request
    from coworld_pipeline.contract.manifest import parse_manifest

    return certification_request(parse_manifest(manifest)).to_json_dict()


def orchard() -> dict[str, Any]:
    return json.loads(_SEED_FILES[0].read_text())


def _schema(m: dict[str, Any]) -> dict[str, Any]:
    return m["game"]["config_schema"]


def _with(fn: Callable[[dict[str, Any]], Any]) -> str:
    m = orchard()
    fn(m)
    return json.dumps(m)


def _tokens(n: int) -> Callable[[dict[str, Any]], None]:
    def edit(m: dict[str, Any]) -> None:
        tokens = _schema(m)["properties"]["tokens"]
        tokens["minItems"] = tokens["maxItems"] = n

    return edit


def _deep_schema(levels: int) -> str:
    """Orchard with a `levels`-deep object schema (built as text: json.dumps would recurse)."""
    deep = '{"type": "object", "properties": {"x": ' * levels + '{"type": "string"}' + "}}" * levels
    return _with(_set(["game", "config_schema", "properties", "deep"], "@DEEP@")).replace('"@DEEP@"', deep)


def _redos(m: dict[str, Any]) -> None:
    _schema(m)["properties"]["label"] = {"type": "string", "pattern": REDOS_PATTERN}
    m["variants"][0]["game_config"]["label"] = REDOS_VALUE


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(m: dict[str, Any]) -> None:
        node = m
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return edit


def nasty_manifests() -> dict[str, str]:
    """The manifests issue 12 found crashing or hanging `validate` / `upload-coworld`, by name."""
    text = json.dumps(orchard())
    return {
        "int_5000_digits": text.replace('"minItems": 2', f'"minItems": {HUGE_INT}', 1),
        "nesting_100k": '{"game": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "ref_to_nowhere": _with(_set(["game", "config_schema", "properties", "a"], {"$ref": "#/$defs/none"})),
        "ref_to_itself": _with(_set(["game", "config_schema", "$ref"], "#")),
        "ref_loop": _with(
            _set(
                ["game", "config_schema", "$defs"],
                {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}},
            )
        ),
        "ref_remote": _with(
            _set(["game", "config_schema", "properties", "a"], {"$ref": "http://127.0.0.1:9/x"})
        ),
        "results_properties_not_object": _with(_set(["game", "results_schema", "properties"], ["scores"])),
        "config_properties_not_object": _with(_set(["game", "config_schema", "properties"], 7)),
        "schema_700_deep": _deep_schema(700),
        "tokens_5e6": _with(_tokens(5_000_000)),
        "tokens_1e8": _with(_tokens(100_000_000)),
        "tokens_float_1e8": text.replace('"minItems": 2', '"minItems": 1e8', 1),
        "pattern_redos": _with(_redos),
        "unique_items_quadratic": _with(
            lambda m: (
                _schema(m)["properties"].__setitem__("bag", {"type": "array", "uniqueItems": True}),
                m["variants"][0]["game_config"].__setitem__("bag", [{"k": i} for i in range(30_000)]),
            )
        ),
        "anyof_fan_out": _with(_fan_out),
        "nan_literal": text.replace('"minItems": 2', '"minItems": NaN', 1),
        "lone_surrogate": text.replace('"orchard"', '"orch\\ud800ard"', 1),
        "over_1_mib": _with(_set(["game", "description"], "x" * (1024 * 1024 + 10))),
        "nul_in_run": _with(_set(["player", 0, "run"], ["python", "-c", "print(1)\u0000"])),
        "env_name_with_equals": _with(_set(["player", 0, "env"], {"A=B": "1"})),
        "env_name_empty": _with(_set(["game", "runnable", "env"], {"": "1"})),
        "env_value_200k": _with(_set(["game", "runnable", "env"], {"BIG": "x" * 200_000})),
        "schema_30k_properties": _with(
            lambda m: _schema(m)["properties"].update({f"p{i}": {"type": "integer"} for i in range(30_000)})
        ),
        "anyof_20k_branches": _with(
            _set(
                ["game", "results_schema", "properties", "x"],
                {"anyOf": [{"minLength": i} for i in range(20_000)]},
            )
        ),
        "resources_1e999": _with(
            _set(
                ["game", "runnable", "resources"],
                {"requests": {"memory": "1e999"}, "limits": {"memory": "2e999"}},
            )
        ),
    }


def _fan_out(m: dict[str, Any], width: int = 8, levels: int = 8) -> None:
    """anyOf of `width` equal branches per level: width**levels evaluations for a stock validator."""
    defs = {f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}] * width} for i in range(levels)}
    defs[f"d{levels}"] = {"type": "integer", "minimum": 10}
    _schema(m)["$defs"] = defs
    _schema(m)["properties"]["fan"] = {"$ref": "#/$defs/d0"}
    m["variants"][0]["game_config"]["fan"] = 1


def nasty_requests() -> dict[str, str]:
    """The episode requests issue 12 saw pass validation and then fail as platform_error."""
    base = request_for(orchard())

    def edit(fn: Callable[[dict[str, Any]], None]) -> str:
        r = copy.deepcopy(base)
        fn(r)
        return json.dumps(r)

    return {
        "nul_in_run": edit(lambda r: r["players"][0].__setitem__("run", ["sh", "-c", "a\u0000b"])),
        "nul_in_env_value": edit(lambda r: r["players"][1].__setitem__("env", {"A": "x\u0000y"})),
        "env_name_empty": edit(lambda r: r["players"][0].__setitem__("env", {"": "1"})),
        "env_name_with_equals": edit(lambda r: r["players"][0].__setitem__("env", {"A=B": "1"})),
        "policy_names_1mb": edit(lambda r: r.__setitem__("policy_names", ["p" * 500_000, "q" * 500_000])),
        "arg_over_128k": edit(lambda r: r["players"][0].__setitem__("run", ["y" * 140_000])),
        "players_over_limit": edit(lambda r: r.__setitem__("players", r["players"] * 200)),
        "int_5000_digits": edit(lambda r: r["game_config"].__setitem__("x", "@HUGE@")).replace(
            '"@HUGE@"', HUGE_INT
        ),
        "nesting_100k": '{"manifest": ' + '{"a":' * 100_000 + "1" + "}" * 100_000 + "}",
    }


# ---- random mutations ---------------------------------------------------------------------------

_WEIRD_STRINGS = ["", " ", "[/]", "[bold]x", "\u0000", "a\u0000b", "\ud800", "é" * 3, "x" * 5000, "=", "A=B",
                  "../../etc/passwd", "$ref", "#", "null", "0", "-1"]  # fmt: skip
_WEIRD_NUMBERS = [
    0,
    -1,
    1,
    2,
    3,
    1.5,
    -0.0,
    1e308,
    2**63,
    2**64 + 1,
    5_000_000,
    100_000_000,
    10**31,
    True,
    False,
]


class Mutator:
    """Applies 1-3 random mutations to a document; `text()` returns the JSON text to validate."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    # Where in a document things live, to pick places uniformly among containers and leaves.
    def _places(self, doc: Any) -> list[tuple[Any, Any]]:
        """(container, key) of every value in the document (iterative walk)."""
        places: list[tuple[Any, Any]] = []
        todo = [doc]
        while todo:
            node = todo.pop()
            if isinstance(node, dict):
                for k, v in node.items():
                    places.append((node, k))
                    todo.append(v)
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    places.append((node, i))
                    todo.append(v)
        return places

    def _value(self, depth: int = 0) -> Any:
        rng = self.rng
        kind = rng.randrange(9)
        if kind == 0:
            return rng.choice(_WEIRD_STRINGS)
        if kind == 1:
            return rng.choice(_WEIRD_NUMBERS)
        if kind == 2:
            return None
        if kind == 3 and depth < 3:
            return [self._value(depth + 1) for _ in range(rng.randrange(4))]
        if kind == 4 and depth < 3:
            return {
                rng.choice(["type", "properties", "items", "$ref", "x", "pattern", "minItems"]): self._value(
                    depth + 1
                )
            }
        if kind == 5:
            return rng.choice(
                [
                    {"$ref": "#"},
                    {"$ref": "#/nowhere"},
                    {"pattern": REDOS_PATTERN},
                    {"type": "array", "uniqueItems": True},
                    {"requests": {"memory": "1e999"}, "limits": {"cpu": "9" * 40}},
                    {"limits": {"memory": "512Mi", "cpu": "500m"}},
                    {"port": 70000, "timeout_seconds": 10**12},
                ]
            )
        if kind == 6:
            return {"type": "string", "format": rng.choice(["regex", "email", "date-time", "ipv4", "uri"])}
        return rng.choice(["game", "player", {}, [], "token-0", 42])

    def mutate(self, doc: Any) -> Any:
        """A mutated deep copy of `doc`."""
        doc = copy.deepcopy(doc)
        for _ in range(self.rng.randint(1, 3)):
            doc = self._mutate_once(doc)
        return doc

    def _mutate_once(self, doc: Any) -> Any:
        rng = self.rng
        places = self._places(doc)
        if not places:
            return self._value()
        container, key = rng.choice(places)
        op = rng.randrange(10)
        if op == 0 and isinstance(container, dict):
            del container[key]
        elif op == 1:
            container[key] = self._value()
        elif op == 2 and isinstance(container, dict):
            keys = ["extra", "$ref", "pattern", "tokens", "players", "run", "env", "", "resources", "startup"]
            container[rng.choice(keys)] = self._value()
        elif op == 3 and isinstance(container[key], list) and container[key]:
            item = container[key]
            item.extend(copy.deepcopy(rng.choice(item)) for _ in range(rng.choice([1, 2, 300])))
        elif op == 4 and isinstance(container[key], list):
            container[key] = []
        elif op == 5 and isinstance(container[key], str):
            container[key] = container[key] + rng.choice(_WEIRD_STRINGS)
        elif op == 6 and isinstance(container[key], int | float):
            container[key] = rng.choice(_WEIRD_NUMBERS)
        elif op == 7 and isinstance(container[key], dict):
            container[key] = {}
        elif op == 8:
            container[key] = [container[key]] if rng.random() < 0.5 else {"wrapped": container[key]}
        else:
            container[key] = copy.deepcopy(rng.choice(places)[0])  # a container copied elsewhere
        return doc

    def text(self, doc: Any) -> str:
        """The JSON text of a mutated `doc`, sometimes with a text-level mutation on top."""
        text = json.dumps(self.mutate(doc))
        roll = self.rng.random()
        if roll < 0.03:
            return text.replace(": 2", f": {HUGE_INT}", 1)
        if roll < 0.05:
            return text.replace(": {", ": " + "[" * 3000 + "{", 1)
        if roll < 0.07:
            cut = self.rng.randrange(len(text))
            return text[:cut]  # truncated JSON
        if roll < 0.08:
            return text.replace('"', "", 1)
        return text
