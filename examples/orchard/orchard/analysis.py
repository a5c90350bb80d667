"""Episode-bundle loading and replay analysis shared by the reporter, grader, diagnoser and optimizer.

Stdlib only (the reporter adds pyarrow for the parquet event log).
"""

from __future__ import annotations

import io
import itertools
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

from orchard import uris
from orchard.engine import MOVES, manhattan

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass
class Bundle:
    results: dict[str, Any]
    replay: dict[str, Any]
    config: dict[str, Any] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)


def _entry(files: dict[str, Any], token: str, fallbacks: list[str], names: set[str]) -> str | None:
    candidate = files.get(token)
    if isinstance(candidate, str) and candidate in names:
        return candidate
    for name in fallbacks:
        if name in names:
            return name
    return None


def load_bundle_bytes(data: bytes) -> Bundle:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        manifest: dict[str, Any] = {}
        if "manifest.json" in names:
            manifest = json.loads(archive.read("manifest.json"))
        files = manifest.get("files", {}) if isinstance(manifest.get("files"), dict) else {}
        results_name = _entry(files, "results", ["results.json"], names)
        replay_name = _entry(
            files, "replay", ["replay.json", "replay", "replay.json.z", "replay.json.gz"], names
        )
        if results_name is None or replay_name is None:
            raise ValueError("episode bundle must contain results.json and replay.json")
        results = json.loads(archive.read(results_name))
        replay = json.loads(uris.decompress(archive.read(replay_name), replay_name))
        config_name = _entry(files, "config", ["config.json"], names)
        config = json.loads(archive.read(config_name)) if config_name else None
        logs = {
            name: archive.read(name).decode("utf-8", errors="replace")
            for name in sorted(names)
            if name.startswith("logs/") and not name.endswith("/")
        }
    return Bundle(results=results, replay=replay, config=config, manifest=manifest, logs=logs)


def load_bundle(uri: str) -> Bundle:
    return load_bundle_bytes(uris.read_bytes(uri))


def deterministic_zip(entries: dict[str, bytes]) -> bytes:
    """Zip with sorted entries and a fixed timestamp, so equal content gives equal bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, entries[name])
    return buffer.getvalue()


def read_zip_json(data: bytes, name: str) -> Any | None:
    """JSON member ``name`` of a zip, or None if absent / not a zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if name in archive.namelist():
                return json.loads(archive.read(name))
    except zipfile.BadZipFile:
        return None
    return None


# --------------------------------------------------------------------------------------------------
# replay analysis
# --------------------------------------------------------------------------------------------------
def slot_label(replay: dict[str, Any], slot: int) -> str:
    names = replay.get("player_names") or []
    name = names[slot] if slot < len(names) else f"slot {slot}"
    policies = replay.get("policy_names") or []
    if slot < len(policies) and policies[slot]:
        return f"P{slot} {name} [{policies[slot]}]"
    return f"P{slot} {name}"


def fruit_list(replay: dict[str, Any]) -> list[dict[str, Any]]:
    fruits = []
    for tree in replay["trees"]:
        for ripe, rot, value in tree["schedule"]:
            fruits.append(
                {"tree": tree["id"], "pos": (tree["x"], tree["y"]), "ripe": ripe, "rot": rot, "value": value}
            )
    return fruits


def analyze(replay: dict[str, Any]) -> dict[str, Any]:
    """Per-slot and whole-episode statistics derived from a replay."""
    frames = replay["frames"]
    slots = len(replay["player_names"])
    max_tick = frames[-1]["tick"]
    width, height = replay["width"], replay["height"]
    per_slot = [
        {
            "slot": slot,
            "label": slot_label(replay, slot),
            "score": frames[-1]["scores"][slot],
            "fruit": 0,
            "shared_harvests": 0,
            "moves": dict.fromkeys(MOVES, 0),
            "wall_bumps": 0,
            "distance": 0,
            "missed_fruit": [],
            "lost_races": [],
        }
        for slot in range(slots)
    ]
    harvested_by: dict[tuple[int, int], list[int]] = {}  # (tree, tick) -> slots
    lead_timeline: list[list[int | None]] = []
    leader = None
    score_timeline = []
    for previous, frame in itertools.pairwise(frames):
        for slot, action in enumerate(frame["actions"] or []):
            stats = per_slot[slot]
            stats["moves"][action] = stats["moves"].get(action, 0) + 1
            before, after = previous["positions"][slot], frame["positions"][slot]
            if action != "stay" and before == after:
                dx, dy = MOVES.get(action, (0, 0))
                if not (0 <= before[0] + dx < width and 0 <= before[1] + dy < height):
                    stats["wall_bumps"] += 1
            stats["distance"] += manhattan(before, after)
        pickers_by_tree: dict[int, list[int]] = {}
        for slot, tree, _share in frame["harvests"]:
            pickers_by_tree.setdefault(tree, []).append(slot)
        for tree, pickers in pickers_by_tree.items():
            harvested_by[(tree, frame["tick"])] = pickers
            for slot in pickers:
                per_slot[slot]["fruit"] += 1
                if len(pickers) > 1:
                    per_slot[slot]["shared_harvests"] += 1
        if frame.get("leader") != leader and frame.get("leader") is not None:
            lead_timeline.append([frame["tick"], frame["leader"]])
            leader = frame["leader"]
        score_timeline.append([frame["tick"], *frame["scores"]])

    positions_at = {frame["tick"]: frame["positions"] for frame in frames}
    fruits = fruit_list(replay)
    harvested_ticks: dict[int, list[tuple[int, list[int]]]] = {}
    for (tree, tick), pickers in harvested_by.items():
        harvested_ticks.setdefault(tree, []).append((tick, pickers))
    rotted = 0
    for fruit in fruits:
        if fruit["ripe"] > max_tick:
            continue
        taken = [
            (tick, pickers)
            for tick, pickers in harvested_ticks.get(fruit["tree"], [])
            if fruit["ripe"] <= tick < fruit["rot"]
        ]
        if not taken:
            if fruit["rot"] > max_tick:
                continue  # still hanging when the episode ended
            rotted += 1
            window = fruit["rot"] - fruit["ripe"]
            positions = positions_at.get(fruit["ripe"])
            if positions is None:
                continue
            for slot in range(slots):
                gap = manhattan(positions[slot], fruit["pos"])
                if gap < window:
                    per_slot[slot]["missed_fruit"].append(
                        {
                            "tree": fruit["tree"],
                            "ripe": fruit["ripe"],
                            "rot": fruit["rot"],
                            "value": fruit["value"],
                            "distance_at_ripe": gap,
                        }
                    )
            continue
        tick, pickers = taken[0]
        positions = positions_at.get(tick - 1)
        if positions is None:
            continue
        for slot in range(slots):
            if slot in pickers:
                continue
            gap = manhattan(positions[slot], fruit["pos"])
            if gap <= 2:
                per_slot[slot]["lost_races"].append(
                    {
                        "tree": fruit["tree"],
                        "tick": tick,
                        "value": fruit["value"],
                        "winner": pickers,
                        "distance_before": gap,
                    }
                )
    results = replay.get("results", {})
    scores = frames[-1]["scores"]
    ranked = sorted(scores, reverse=True)
    return {
        "slots": per_slot,
        "ticks": max_tick,
        "scores": scores,
        "winner": results.get("winner"),
        "lead_changes": results.get("lead_changes", max(0, len(lead_timeline) - 1)),
        "lead_timeline": lead_timeline,
        "score_timeline": score_timeline,
        "margin": (ranked[0] - ranked[1]) if len(ranked) > 1 else ranked[0],
        "total_value": sum(scores),
        "fruit_available": sum(1 for fruit in fruits if fruit["ripe"] <= max_tick),
        "fruit_rotted": rotted,
        "contested_harvests": sum(1 for pickers in harvested_by.values() if len(pickers) > 1),
    }
