"""Shared plumbing of the built-in roles: URIs, bundles, zips and generic episode facts (stdlib only)."""

from __future__ import annotations

import io
import json
import math
import os
import sys
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

# Decompressed size of one replay, whoever inflates it (replay server, bundles, viewer, roles): far
# above any game's replay, far below what a small zlib bomb expands to. Lives here because the
# built-in roles run without the rest of the package, and everything else imports it from here.
MAX_REPLAY_BYTES = 512 << 20


class InflateError(ValueError):
    """Compressed data that does not decompress, is truncated, or expands beyond its limit."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name} {reason}")
        self.name = name
        self.reason = reason  # "does not decompress (...)" or "is larger than ...": follows a subject


_WBITS = {"zlib": 15, "gzip": 31, "auto": 47}  # 47 = 32 + 15: a zlib or a gzip header, detected


def inflate(data: bytes, name: str, limit: int = MAX_REPLAY_BYTES, kind: str = "auto") -> bytes:
    """zlib or gzip `data` (`kind`; gzip members may follow one another) decompressed, holding at
    most `limit` + 1 bytes of output at any time: `zlib.decompress` would expand a bomb whole first.

    Raises InflateError naming `name` (the file or URL) and what is wrong.
    """
    chunks: list[bytes] = []
    size = 0
    rest = data
    while True:
        inflater = zlib.decompressobj(wbits=_WBITS[kind])
        try:
            # max_length must stay >= 1 (0 would mean "no limit"): size <= limit here.
            chunk = inflater.decompress(rest, limit + 1 - size)
        except zlib.error as exc:
            raise InflateError(name, f"does not decompress ({exc})") from None
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise InflateError(name, f"is larger than {limit >> 20} MiB decompressed")
        if not inflater.eof:  # the output limit was not reached, so the input ran out mid-stream
            raise InflateError(name, "does not decompress (truncated compressed data)")
        rest = inflater.unused_data
        if not rest.strip(b"\0"):  # gzip files may be padded with zeros after the last member
            return b"".join(chunks)


def local_path(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme == "file":
        return urllib.parse.unquote(parts.path)
    if parts.scheme == "":
        return uri
    raise ValueError(f"not a local URI: {uri}")


def read_bytes(uri: str) -> bytes:
    if urllib.parse.urlsplit(uri).scheme in ("http", "https"):
        with urllib.request.urlopen(uri, timeout=60) as response:
            return response.read()
    with open(local_path(uri), "rb") as handle:
        return handle.read()


def write_bytes(uri: str, data: bytes, content_type: str) -> None:
    if urllib.parse.urlsplit(uri).scheme in ("http", "https"):
        request = urllib.request.Request(uri, data=data, method="PUT", headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
        return
    path = local_path(uri)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def dumps(value: Any) -> str:
    """Compact, key-sorted JSON (event-log values, deterministic output)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def pretty(value: Any) -> bytes:
    return (json.dumps(value, sort_keys=True, indent=2) + "\n").encode("utf-8")


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A deterministic zip: sorted entries, fixed timestamps and modes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, entries[name])
    return buffer.getvalue()


def require_env(*names: str) -> list[str] | None:
    values = [os.environ.get(name, "") for name in names]
    missing = [name for name, value in zip(names, values, strict=True) if not value]
    if missing:
        print(f"{os.path.basename(sys.argv[0])}: missing env {', '.join(missing)}", file=sys.stderr)
        return None
    return values


# ---- episode facts --------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A finite number as given (ints stay ints in event-log values), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


@dataclass
class Episode:
    """What a bundle says about an episode, in game-agnostic terms."""

    status: str
    ereq_id: str | None
    results: dict[str, Any]
    replay: Any
    scores: list[float]
    per_slot: dict[str, list[float]] = field(default_factory=dict)  # numeric per-slot result fields
    globals: dict[str, float] = field(default_factory=dict)  # numeric top-level result fields
    names: list[str] = field(default_factory=list)  # display names per slot, when known
    frames: list[tuple[int, list[float]]] = field(default_factory=list)  # (tick, scores) per frame
    length: int | None = None  # ticks / steps / frames, whichever the episode reveals
    error: dict[str, Any] | None = None
    player_logs: dict[int, str] = field(default_factory=dict)  # slot -> log text, where the bundle has it
    slot_count: int = 0  # from the scores, else from the config's tokens (failed episodes)

    @property
    def slots(self) -> int:
        return len(self.scores) or self.slot_count

    def label(self, slot: int) -> str:
        name = self.names[slot] if slot < len(self.names) else ""
        return f"P{slot} {name}".strip()

    def ranks(self) -> list[int]:
        """1-based competition ranks (ties share the better rank)."""
        return [1 + sum(other > mine for other in self.scores) for mine in self.scores]

    def lead_changes(self) -> int:
        """Times the sole leader changed across the replay's frames (0 without frames)."""
        leader, changes = None, 0
        for _, scores in self.frames:
            if not scores:
                continue
            top = max(scores)
            leaders = [slot for slot, value in enumerate(scores) if value == top]
            if len(leaders) != 1 or leaders[0] == leader:
                continue
            if leader is not None:
                changes += 1
            leader = leaders[0]
        return changes


def _frames(replay: Any, slots: int) -> list[tuple[int, list[float]]]:
    frames = replay.get("frames") if isinstance(replay, dict) else replay
    if not isinstance(frames, list):
        return []
    out = []
    for index, frame in enumerate(frames):
        if not isinstance(frame, dict):
            continue
        tick = frame.get("tick", frame.get("step", index))
        scores = frame.get("scores")
        if not isinstance(tick, int) or isinstance(tick, bool) or not isinstance(scores, list):
            continue
        values = [_number(v) for v in scores]
        if len(values) == slots and all(v is not None for v in values):
            out.append((tick, [v for v in values if v is not None]))
    return out


def _names(config: Any, replay: Any, slots: int) -> list[str]:
    for source in (replay, config):
        if not isinstance(source, dict):
            continue
        names = source.get("player_names")
        if isinstance(names, list) and len(names) == slots:
            return [str(n) for n in names]
        players = source.get("players")
        if isinstance(players, list) and len(players) == slots:
            found = [p.get("name") for p in players if isinstance(p, dict)]
            if len(found) == slots and all(isinstance(n, str) for n in found):
                return found
    return []


def _json_entry(archive: zipfile.ZipFile, name: str | None) -> Any:
    if not name or name not in archive.namelist():
        return None
    data = archive.read(name)
    try:
        if name.endswith(".z"):
            data = inflate(data, name)
        return json.loads(data)
    except ValueError:  # InflateError included: an unreadable entry is an absent one
        return None


def read_episode(uri: str) -> Episode | None:
    """The episode of the bundle at `uri`; None, after one line on stderr, when it cannot be read (not a
    zip, truncated, gone): the role then exits 2, as for a missing env var, instead of a traceback."""
    try:
        return load_episode(read_bytes(uri))
    except (OSError, zipfile.BadZipFile) as exc:
        where = uri.split("?", 1)[0]  # a presigned URL's query is a credential
        role = os.path.basename(sys.argv[0])
        print(f"{role}: cannot read the episode bundle {where}: {exc}", file=sys.stderr)
        return None


def load_episode(data: bytes) -> Episode:
    """Read a bundle (CONTRACT §7): paths come from its manifest.json `files`, as the contract says."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest = _json_entry(archive, "manifest.json") or {}
        files = manifest.get("files") or {}
        results = _json_entry(archive, files.get("results", "results.json")) or {}
        replay = _json_entry(archive, files.get("replay", "replay.json"))
        config = _json_entry(archive, files.get("config", "config.json"))
        error = _json_entry(archive, files.get("error_info", "error_info.json"))
        player_logs = {
            int(slot): archive.read(name).decode("utf-8", errors="replace")
            for slot, name in (files.get("player_logs") or {}).items()
            if str(slot).isdigit() and name in archive.namelist()
        }
    if not isinstance(results, dict):
        results = {}
    scores = [v for v in (_number(s) for s in results.get("scores") or []) if v is not None]
    slots = len(scores)
    per_slot: dict[str, list[float]] = {}
    globals_: dict[str, float] = {}
    for key, value in sorted(results.items()):
        if key == "scores":
            continue
        if isinstance(value, list) and slots and len(value) == slots:
            numbers = [_number(v) for v in value]
            if all(n is not None for n in numbers):
                per_slot[key] = [n for n in numbers if n is not None]
        elif _number(value) is not None:
            globals_[key] = value
    frames = _frames(replay, slots) if slots else []
    length = None
    for key in ("ticks", "steps", "max_tick", "length"):
        if isinstance(results.get(key), int) and not isinstance(results.get(key), bool):
            length = int(results[key])
            break
    if length is None and frames:
        length = frames[-1][0]
    elif length is None and isinstance(replay, dict) and isinstance(replay.get("frames"), list):
        length = len(replay["frames"])
    return Episode(
        status=str(manifest.get("status") or ("success" if scores else "failed")),
        ereq_id=manifest.get("ereq_id"),
        results=results,
        replay=replay,
        scores=scores,
        per_slot=per_slot,
        globals=globals_,
        names=_names(config, replay, slots),
        frames=frames,
        length=length,
        error=error if isinstance(error, dict) else None,
        player_logs=player_logs,
        slot_count=len(config["tokens"])
        if isinstance(config, dict) and isinstance(config.get("tokens"), list)
        else 0,
    )


def standing(episode: Episode, slot: int) -> dict[str, Any]:
    """One slot's score against the field: rank, gaps to the best, the mean and the runner-up."""
    scores = episode.scores
    mine = scores[slot]
    others = [s for i, s in enumerate(scores) if i != slot]
    best = max(scores)
    mean = sum(scores) / len(scores)
    return {
        "slot": slot,
        "label": episode.label(slot),
        "score": mine,
        "rank": episode.ranks()[slot],
        "of": len(scores),
        "won": mine == best and scores.count(best) == 1,
        "field_best": best,
        "field_mean": round(mean, 6),
        "gap_to_best": round(best - mine, 6),
        "vs_mean": round(mine - mean, 6),
        "best_other": max(others) if others else None,
    }
