"""`coworld convert`: a manifest rewritten for another generation, with what could not be carried over.

Targets are the reference generations a runner may be on: 0.1.11 (CONTRACT.md) and 0.1.64
(EVOLUTION.md). Nothing is invented: where the target needs something the source does not say
(0.1.64's three tags, a README), the note says what to add; where the target cannot express
something (a 2-4 slot range in 0.1.11, a static replay viewer), it is dropped and the note says so.
The output is validated by our own model, which reads every generation.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from coworld_pipeline.contract.extensions import (
    REPORTERS_EXTENSION,
    ReporterReference,
    platform_reference,
    reporter_implementations,
    reporter_name,
)
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
    _references_to_images(manifest, result)
    files = [p["id"] for p in data["player"] if p.get("file")]
    if files:
        raise ValueError(f"players {files} are game-hosted files: 0.1.11 runs only player images")
    _fix_slot_count(manifest, result)


def _references_to_images(manifest: CoworldManifest, result: Conversion) -> None:
    """0.1.11 reporters are images: a reference the package implements becomes that image entry."""
    data = result.manifest
    implemented, _ = reporter_implementations(manifest.game.results_schema)
    entries: list[dict[str, Any]] = []
    for i, (entry, raw) in enumerate(zip(manifest.reporter, data.get("reporter", []), strict=True)):
        if not isinstance(entry, ReporterReference):
            entries.append(raw)
            continue
        impl = implemented.get(entry.reporter) if entry.reporter else None
        if impl is None:
            result.notes.append(
                f"$.reporter[{i}]: dropped (reference {entry.label}; 0.1.11 reporters are images)"
            )
            continue
        ident = impl.id or reporter_name(entry.label)
        entries.append(
            {
                "type": "reporter",
                "id": ident,
                "name": impl.name or ident,
                "description": impl.description or f"implements {entry.label}",
                "image": impl.image or manifest.game.runnable.image,
                "run": impl.run,
                "env": impl.env,
            }
        )
        result.notes.append(
            f"$.reporter[{i}]: reference {entry.label} became the image reporter {ident!r} that implements "
            f"it ({REPORTERS_EXTENSION}); 0.1.11 reporters are images"
        )
    data["reporter"] = entries
    if data["game"]["results_schema"].pop(REPORTERS_EXTENSION, None) is not None:
        result.notes.append(
            f"$.game.results_schema.{REPORTERS_EXTENSION}: dropped (its reporters are image entries now)"
        )


def _fix_slot_count(manifest: CoworldManifest, result: Conversion) -> None:
    """0.1.11 fixes the slot count as tokens.minItems == maxItems.

    The certification fixture's count is kept when a variant has it; otherwise the count most
    variants have, and the fixture is cut (or its players repeated) to that count.
    """
    rule = manifest.slot_rule
    if rule.fixed:
        return
    data = result.manifest
    n = len(manifest.certification.players)
    counts = Counter(manifest.slots_for(v.game_config, n) for v in manifest.variants)
    if n not in counts:
        n = max(counts, key=lambda count: (counts[count], -count))
        _resize_certification(data, n, result)
    props = data["game"]["config_schema"]["properties"]
    for key in ("tokens", "players"):
        if isinstance(props.get(key), dict) and "minItems" in props[key]:
            props[key]["minItems"] = props[key]["maxItems"] = n
    result.notes.append(
        f"$.game.config_schema.properties.tokens: the {rule.describe()} slot range became exactly {n} "
        "(0.1.11 fixes the slot count to one that the certification fixture and the kept variants share)"
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


def _resize_certification(data: dict[str, Any], n: int, result: Conversion) -> None:
    cert = data["certification"]
    players = cert["players"]
    before = [p["player_id"] for p in players]
    cert["players"] = [players[i % len(players)] for i in range(n)]
    names = cert["game_config"].get("players")
    if isinstance(names, list) and names:
        cert["game_config"]["players"] = [names[i % len(names)] for i in range(n)]
    after = [p["player_id"] for p in cert["players"]]
    result.notes.append(
        f"$.certification.players: {before} became {after} (no variant has {len(before)} slots; "
        f"{n} is the count most variants have)"
    )


def _to_0_1_64(manifest: CoworldManifest, result: Conversion) -> None:
    data = result.manifest
    game = data["game"]
    for i, variant in enumerate(data["variants"]):
        _drop(variant, "parent_id", f"$.variants[{i}]", "0.1.64 removed variant parents", result)
    _images_to_references(result)
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


def _images_to_references(result: Conversion) -> None:
    """0.1.64 reporters are references: an image reporter becomes a reference this package implements.

    The reference names a platform reporter `{game}-{id}` (the reference's naming for reporters a
    package submits) under the owner `local`; the image and argv move to `x-coworld-reporters`, where
    this platform finds them. A 0.1.64 platform needs the reporter registered under a real owner.
    """
    data = result.manifest
    game = data["game"]
    schema = game["results_schema"]
    declared = schema.get(REPORTERS_EXTENSION) or {}
    for i, entry in enumerate(data.get("reporter", [])):
        if not entry.get("image"):
            continue
        ident = entry["id"]
        name = ident if ident.startswith(f"{game['name']}-") else f"{game['name']}-{ident}"
        reference = platform_reference("local", name)
        impl: dict[str, Any] = {"id": ident, "name": entry["name"], "description": entry["description"]}
        impl["run"] = entry.get("run") or []
        if entry["image"] != game["runnable"]["image"]:
            impl["image"] = entry["image"]
        if entry.get("env"):
            impl["env"] = entry["env"]
        if not impl["run"]:
            result.notes.append(
                f"$.reporter[{i}]: dropped (image reporter {ident!r} has no run argv, which a reference's "
                "implementation needs; 0.1.64 reporters are references)"
            )
            data["reporter"][i] = None
            continue
        declared[reference] = impl
        data["reporter"][i] = {"reporter": reference}
        result.notes.append(
            f"$.reporter[{i}]: image reporter {ident!r} became the reference {reference} implemented by its "
            f"image in $.game.results_schema.{REPORTERS_EXTENSION} (register it under your owner on a "
            "0.1.64 platform)"
        )
    data["reporter"] = [r for r in data.get("reporter", []) if r is not None]
    if declared:
        schema[REPORTERS_EXTENSION] = declared
