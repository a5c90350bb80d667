"""Which Coworld generation a manifest is written for, and fields that no generation knows.

Generations are the published reference packages: 0.1.0 (first public release), 0.1.11 (CONTRACT.md)
and 0.1.64 (EVOLUTION.md; with `apiVersion: coworld.softmax.com/v1` its v1 author schema). A
manifest's generation is the oldest one whose schema holds every field the manifest uses: 0.1.0 and
0.1.11 manifests differ only by `source_url` on role entries, so a 0.1.11 manifest without one reads
as 0.1.0. Behaviour that differs between generations at run time (the browser route prefix, whether a
game honours COGAME_PORT) is discovered from the running game, never inferred from this label.

A field that no generation defines is dropped with a warning naming its JSON path, so that a
manifest written for a future generation still runs; a known field with a wrong shape stays an error.
"""

from __future__ import annotations

import types
import typing
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from coworld_pipeline.contract.problems import Problem, json_path


class Generation(StrEnum):
    V0_1_0 = "0.1.0"
    V0_1_11 = "0.1.11"
    V0_1_64 = "0.1.64"


GENERATIONS = list(Generation)

_V64_TOP = ("apiVersion", "tags", "players_per_user", "episode_timeout_minutes")
_V64_GAME = ("replay_viewer", "player_runtime", "memory", "promo", "achievements", "log", "task_environments")
_V64_RUNNABLE = ("resources", "startup")
_V64_ROLE = ("file", "repository_url")


def detect_generation(data: dict[str, Any]) -> Generation:
    """The oldest generation whose manifest schema holds every (non-empty) field of `data`."""
    game = data.get("game") if isinstance(data.get("game"), dict) else {}
    runnable = game.get("runnable") if isinstance(game.get("runnable"), dict) else {}
    roles = [
        entry
        for key in ("player", "reporter", "commissioner", "grader", "diagnoser", "optimizer")
        for entry in (data.get(key) or [])
        if isinstance(entry, dict)
    ]
    protocols = game.get("protocols") if isinstance(game.get("protocols"), dict) else {}
    newest = (
        any(data.get(k) is not None for k in _V64_TOP)
        or any(game.get(k) is not None for k in _V64_GAME)
        or protocols.get("engine_runtime") is not None
        or any(runnable.get(k) is not None for k in (*_V64_RUNNABLE, "source_url"))
        or any(r.get(k) is not None for r in roles for k in (*_V64_RUNNABLE, *_V64_ROLE))
        or any("image" not in r for r in roles)  # reporter references, game-hosted player files
    )
    if newest:
        return Generation.V0_1_64
    if any(r.get("source_url") is not None for r in roles):
        return Generation.V0_1_11
    return Generation.V0_1_0


# ---- unknown fields --------------------------------------------------------------------------


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every pydantic model an annotation can hold (through Optional, unions, lists, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []  # dict[str, Any] (schemas, configs, env) and scalars: free-form or checked by type


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_list(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation))
    return origin is list


def _known_fields(models: list[type[BaseModel]]) -> dict[str, list[Any]]:
    """Key (alias or name) -> annotations of that key across the given models."""
    known: dict[str, list[Any]] = {}
    for model in models:
        for name, info in model.model_fields.items():
            for key in {info.alias or name, name}:
                known.setdefault(key, []).append(info.annotation)
    return known


def strip_unknown(
    data: Any, models: list[type[BaseModel]], path: list[Any] | None = None
) -> tuple[Any, list[Problem]]:
    """A copy of `data` without keys unknown to `models` (recursively), and a warning for each."""
    path = path or []
    if not isinstance(data, dict) or not models:
        return data, []
    known = _known_fields(models)
    out: dict[str, Any] = {}
    warnings: list[Problem] = []
    for key, value in data.items():
        if key not in known:
            warnings.append(
                Problem(json_path([*path, key]), "no Coworld generation defines this field; ignored")
            )
            continue
        annotations = known[key]
        nested = [m for a in annotations for m in _models_in(a)]
        if nested and isinstance(value, list) and any(_is_list(a) for a in annotations):
            items = []
            for i, item in enumerate(value):
                cleaned, found = strip_unknown(item, nested, [*path, key, i])
                items.append(cleaned)
                warnings += found
            out[key] = items
        elif nested and isinstance(value, dict):
            out[key], found = strip_unknown(value, nested, [*path, key])
            warnings += found
        else:
            out[key] = value
    return out, warnings
