"""Episode-bundle loading and replay analysis shared by the reporter, grader, diagnoser and optimizer.

Stdlib only (the reporter adds pyarrow for the parquet event log).

A bundle of a failed episode usually has no results and no replay, only ``error_info.json``, the config
and logs: loading it still works (``Bundle.failed``, ``Bundle.error``, ``Bundle.has_replay``), so every role
can say something about the failure. A bundle that is not a zip, or holds a JSON entry that does not parse,
raises `BundleError` (one line, naming the entry), which each role's ``main`` turns into exit code 2.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

from orchard import uris
from orchard.engine import MOVES, manhattan

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
REPLAY_NAMES = ["replay.json", "replay", "replay.json.z", "replay.json.gz"]


class BundleError(ValueError):
    """An episode bundle that cannot be read at all (not a zip, or a corrupt entry)."""


@dataclass
class Bundle:
    results: dict[str, Any] = field(default_factory=dict)  # {} when the episode produced none
    replay: dict[str, Any] | None = None  # None when the bundle has no replay
    config: dict[str, Any] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)  # entry name -> text
    status: str = "success"
    error: dict[str, Any] | None = None  # error_info.json of a failed episode

    @property
    def failed(self) -> bool:
        return self.status != "success"

    def analyzable_replay(self) -> dict[str, Any] | None:
        """The replay when `analyze` can read it (it needs players and at least one frame), else None."""
        replay = self.replay
        if not isinstance(replay, dict):
            return None
        names, frames = replay.get("player_names"), replay.get("frames")
        if isinstance(names, list) and names and isinstance(frames, list) and frames:
            return replay
        return None

    @property
    def has_replay(self) -> bool:
        return self.analyzable_replay() is not None

    @property
    def has_match(self) -> bool:
        """A succeeded episode with a replay to analyse; else the roles report why there is none."""
        return not self.failed and self.has_replay

    @property
    def error_type(self) -> str | None:
        kind = (self.error or {}).get("error_type")
        return str(kind) if kind else None

    @property
    def error_message(self) -> str:
        message = (self.error or {}).get("message")
        return str(message) if message else ""

    @property
    def blamed_slot(self) -> int | None:
        """The slot error_info blames: producers name it ``failed_policy_index`` or ``slot`` (or neither,
        or set one to null: then no player was blamed)."""
        error = self.error or {}
        for key in ("failed_policy_index", "slot"):
            value = error.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
            if isinstance(value, str) and value.isdigit():
                return int(value)
        return None

    @property
    def slot_count(self) -> int:
        """Slots in the episode, from whatever the bundle has: results, replay, config, player logs."""
        scores = self.results.get("scores")
        if isinstance(scores, list) and scores:
            return len(scores)
        replay = self.analyzable_replay()
        if replay is not None:
            return len(replay["player_names"])
        config = self.config or {}
        for key in ("tokens", "players"):
            if isinstance(config.get(key), list) and config[key]:
                return len(config[key])
        return len(self.player_log_names())

    def player_names(self) -> list[str]:
        """Display names per slot, from the replay or else the config (empty when unknown)."""
        replay = self.analyzable_replay()
        if replay is not None:
            return [str(name) for name in replay["player_names"]]
        players = (self.config or {}).get("players")
        if isinstance(players, list) and len(players) == self.slot_count:
            names = [player.get("name") if isinstance(player, dict) else None for player in players]
            if all(isinstance(name, str) for name in names):
                return [str(name) for name in names]
        return []

    def player_log_names(self) -> dict[int, str]:
        """Slot -> the bundle entry of that slot's player log, as the manifest lists them."""
        listed = _files(self.manifest).get("player_logs")
        found: dict[int, str] = {}
        if isinstance(listed, dict):
            for slot, name in listed.items():
                if str(slot).isdigit() and isinstance(name, str) and name in self.logs:
                    found[int(slot)] = name
        return dict(sorted(found.items()))

    def game_log_names(self) -> dict[str, str]:
        """Stream (``stdout``, ``stderr``) -> the bundle entry of that game log, as the manifest lists it."""
        listed = _files(self.manifest).get("game_logs")
        if not isinstance(listed, dict):
            return {}
        return {
            str(stream): name
            for stream, name in listed.items()
            if isinstance(name, str) and name in self.logs
        }

    def player_log(self, slot: int) -> str | None:
        name = self.player_log_names().get(slot) or f"logs/policy_agent_{slot}.log"
        return self.logs.get(name)


def _files(manifest: dict[str, Any]) -> dict[str, Any]:
    files = manifest.get("files")
    return files if isinstance(files, dict) else {}


def _entry(files: dict[str, Any], token: str, fallbacks: list[str], names: set[str]) -> str | None:
    candidate = files.get(token)
    if isinstance(candidate, str) and candidate in names:
        return candidate
    for name in fallbacks:
        if name in names:
            return name
    return None


def _listed_logs(files: dict[str, Any]) -> set[str]:
    """Log entries the manifest names (they need not live under logs/)."""
    names: set[str] = set()
    for token in ("game_logs", "player_logs"):
        listed = files.get(token)
        if isinstance(listed, dict):
            names.update(name for name in listed.values() if isinstance(name, str))
    return names


# What reading or decoding a damaged entry raises: bad JSON or UTF-8 (ValueError), a broken .gz/.z payload
# or a bad CRC (OSError, EOFError, zlib.error, BadZipFile), an encrypted entry or an unsupported compression
# method (RuntimeError, NotImplementedError).
_DAMAGED = (ValueError, RecursionError, OSError, EOFError, RuntimeError, zlib.error, zipfile.BadZipFile)


def _json(archive: zipfile.ZipFile, name: str | None) -> dict[str, Any] | None:
    """Entry ``name`` parsed as a JSON object (None when absent); a damaged one is a BundleError naming it."""
    if name is None:
        return None
    try:
        value = json.loads(uris.decompress(archive.read(name), name))
    except _DAMAGED as exc:
        raise BundleError(f"episode bundle entry {name} is unreadable ({exc})") from None
    if not isinstance(value, dict):
        raise BundleError(f"episode bundle entry {name} is not a JSON object")
    return value


def _read(data: bytes) -> Bundle:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        manifest = _json(archive, "manifest.json" if "manifest.json" in names else None) or {}
        files = _files(manifest)
        results = _json(archive, _entry(files, "results", ["results.json"], names))
        replay = _json(archive, _entry(files, "replay", REPLAY_NAMES, names))
        config = _json(archive, _entry(files, "config", ["config.json"], names))
        error = _json(archive, _entry(files, "error_info", ["error_info.json"], names))
        log_names = {n for n in names if n.startswith("logs/")} | (_listed_logs(files) & names)
        logs = {
            name: archive.read(name).decode("utf-8", errors="replace")
            for name in sorted(log_names)
            if not name.endswith("/")
        }
    if results is None and isinstance(replay, dict) and isinstance(replay.get("results"), dict):
        results = replay["results"]  # a bundle asked for the replay alone: Orchard replays embed results
    status = manifest.get("status")
    if status not in ("success", "failed"):
        # No manifest (or an odd one): an error report or missing results mean the episode failed.
        status = "failed" if error is not None or results is None else "success"
    return Bundle(
        results=results or {},
        replay=replay,
        config=config,
        manifest=manifest,
        logs=logs,
        status=status,
        error=error,
    )


def load_bundle_bytes(data: bytes) -> Bundle:
    try:
        return _read(data)
    except BundleError:
        raise
    except _DAMAGED as exc:
        # The zip itself is damaged (not a zip, truncated, a corrupt log member): say so in one line.
        raise BundleError(f"episode bundle is not a readable zip file ({exc})") from None


def load_bundle(uri: str) -> Bundle:
    return load_bundle_bytes(uris.read_bytes(uri))


def bundle_from_env(role: str, output_var: str) -> tuple[Bundle, str] | None:
    """The bundle at ``COGAME_EPISODE_BUNDLE_URI`` and the output URI in ``output_var``, for a role's
    ``main``; None, after one line on stderr, when either is unset or the bundle cannot be read (the role
    then exits 2)."""
    bundle_uri = os.environ.get("COGAME_EPISODE_BUNDLE_URI")
    output_uri = os.environ.get(output_var)
    if not bundle_uri or not output_uri:
        print(f"orchard.{role} needs COGAME_EPISODE_BUNDLE_URI and {output_var}", file=sys.stderr)
        return None
    try:
        return load_bundle(bundle_uri), output_uri
    except (BundleError, uris.UriError) as exc:
        print(f"orchard.{role}: {exc}", file=sys.stderr)
        return None


def shorten(text: str, limit: int = 500) -> str:
    """``text`` on one line, cut to at most ``limit`` characters (error messages can be whole tracebacks)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def plain(text: str) -> str:
    """Untrusted text from a bundle (entry names, error types) made safe for a heading or an inline code
    span: no backticks, markup or line breaks."""
    return re.sub(r"[^\w./:() -]", "_", text)[:120]


def log_tail(text: str, lines: int = 20, width: int = 400) -> str:
    """The last ``lines`` lines of a log (trailing blank lines dropped), each cut to ``width`` characters so
    that one runaway line (a base64 blob, a minified traceback) cannot bloat a report."""
    tail = text.rstrip().splitlines()[-lines:]
    return "\n".join(line if len(line) <= width else line[: width - 1] + "…" for line in tail)


def fenced(text: str) -> list[str]:
    """Markdown lines showing ``text`` verbatim in a code block. Log text is untrusted: the fence is longer
    than any backtick run in it, so no line of the text can close the block early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, *text.splitlines(), fence]


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
