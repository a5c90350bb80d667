"""`coworld convert`: a manifest rewritten for another generation, with what could not be carried over.

Targets are the reference generations a runner may be on: 0.1.11 (CONTRACT.md) and 0.1.64
(EVOLUTION.md). Nothing is invented: where the target needs something the source does not say
(0.1.64's three tags, a README), the note says what to add; where the target cannot express
something (a 2-4 slot range in 0.1.11, a static replay viewer), it is dropped and the note says so.
The output is validated by our own model, which reads every generation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from coworld_pipeline.contract.manifest import CoworldManifest, Role, parse_manifest

TARGETS = ("0.1.11", "0.1.64")

_V64_TOP = ("apiVersion", "tags", "players_per_user", "episode_timeout_minutes")
_V64_GAME = ("replay_viewer", "player_runtime", "memory", "promo", "achievements", "log", "task_environments")
_V64_RUNNABLE = ("resources", "startup", "repository_url")


@dataclass
class Conversion:
    target: str
    manifest: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # "$.path: what happened and why"

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "notes": self.notes}


def convert(manifest: CoworldManifest, target: str) -> Conversion:
    if target not in TARGETS:
        raise ValueError(f"--contract must be one of {', '.join(TARGETS)} (got {target!r})")
    data = copy.deepcopy(manifest.to_json_dict())
    result = Conversion(target, data)
    if target == "0.1.11":
        _to_0_1_11(manifest, result)
    else:
        _to_0_1_64(manifest, result)
    parse_manifest(result.manifest, source=f"converted manifest ({target})")  # must still load here
    return result


def _drop(container: dict[str, Any], key: str, path: str, why: str, result: Conversion) -> None:
    if container.get(key) is not None:
        del container[key]
        result.notes.append(f"{path}.{key}: dropped ({why})")
    else:
        container.pop(key, None)


def _runnables(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [("$.game.runnable", data["game"]["runnable"])]
    for role in Role:
        found += [(f"$.{role.value}[{i}]", r) for i, r in enumerate(data.get(role.value, []))]
    return found


def _to_0_1_11(manifest: CoworldManifest, result: Conversion) -> None:
    data = result.manifest
    for key in _V64_TOP:
        _drop(data, key, "$", "0.1.11 has no such field", result)
    game = data["game"]
    for key in _V64_GAME:
        why = (
            "0.1.11 replays play through the game's own /client/replay"
            if key == "replay_viewer"
            else "0.1.64 only"
        )
        _drop(game, key, "$.game", why, result)
    _drop(game["protocols"], "engine_runtime", "$.game.protocols", "0.1.64 only", result)
    for path, runnable in _runnables(data):
        for key in (*_V64_RUNNABLE, "source_url" if path == "$.game.runnable" else ""):
            if key:
                _drop(runnable, key, path, "0.1.11 runnables have no such field", result)
    refs = [
        i
        for i, r in enumerate(data.get("reporter", []))
        if "image" not in r or r.get("reporter") or r.get("wasm")
    ]
    for i in reversed(refs):
        result.notes.append(f"$.reporter[{i}]: dropped (a reporter reference; 0.1.11 reporters are images)")
        del data["reporter"][i]
    files = [p["id"] for p in data["player"] if p.get("file")]
    if files:
        raise ValueError(f"players {files} are game-hosted files: 0.1.11 runs only player images")
    _fix_slot_count(manifest, result)


def _fix_slot_count(manifest: CoworldManifest, result: Conversion) -> None:
    """0.1.11 fixes the slot count as tokens.minItems == maxItems: keep the certification's count."""
    rule = manifest.slot_rule
    if rule.fixed:
        return
    data = result.manifest
    n = len(manifest.certification.players)
    props = data["game"]["config_schema"]["properties"]
    for key in ("tokens", "players"):
        if isinstance(props.get(key), dict) and "minItems" in props[key]:
            props[key]["minItems"] = props[key]["maxItems"] = n
    result.notes.append(
        f"$.game.config_schema.properties.tokens: the {rule.describe()} slot range became exactly {n} "
        "(0.1.11 fixes the slot count; the certification fixture's count was kept)"
    )
    kept = []
    for i, variant in enumerate(manifest.variants):
        if manifest.slots_for(variant.game_config, n) == n:
            kept.append(data["variants"][i])
        else:
            result.notes.append(
                f"$.variants[{i}]: variant {variant.id!r} dropped (it has a different slot count)"
            )
    ids = {v["id"] for v in kept}
    for v in kept:
        if v.get("parent_id") not in (None, *ids):
            result.notes.append(f"$.variants[id={v['id']}].parent_id: dropped (its parent was dropped)")
            del v["parent_id"]
    data["variants"] = kept


def _to_0_1_64(manifest: CoworldManifest, result: Conversion) -> None:
    data = result.manifest
    game = data["game"]
    for i, variant in enumerate(data["variants"]):
        _drop(variant, "parent_id", f"$.variants[{i}]", "0.1.64 removed variant parents", result)
    reporters = data.get("reporter", [])
    images = [i for i, r in enumerate(reporters) if r.get("image")]
    for i in reversed(images):
        result.notes.append(
            f"$.reporter[{i}]: dropped (reporter {reporters[i].get('id')!r} is an image; 0.1.64 reporters "
            "are registered references or wasm components)"
        )
        del reporters[i]
    docs = game.setdefault("docs", {})
    if not docs.get("readme"):
        docs["readme"] = {"type": "text", "value": game["description"]}
        result.notes.append("$.game.docs.readme: added from game.description (0.1.64 requires a README)")
    tags = data.get("tags") or []
    if len(tags) < 3:
        result.notes.append("$.tags: add at least 3 tags (the 0.1.64 certifier requires them)")
    certified = {p.player_id for p in manifest.certification.players}
    missing = [p.id for p in manifest.player if p.id not in certified]
    if missing:
        result.notes.append(
            f"$.certification.players: players {missing} have no certification slot "
            "(the 0.1.64 certifier requires one per bundled player)"
        )
