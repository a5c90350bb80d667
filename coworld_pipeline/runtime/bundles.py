"""Episode bundles (CONTRACT §7): one zip of an episode's artifacts, handed to supporting roles.

A bundle is assembled on demand from an episode workspace (what `coworld run-episode -o DIR` writes,
and what a league keeps under ``$COWORLD_HOME/episodes/<ereq>``) or from an artifact store. It holds
the requested *include tokens* and a root ``manifest.json`` saying what was delivered::

    {"ereq_id": "ereq_…" | null, "run_id": "…" | null, "status": "success" | "failed",
     "include": ["results", "replay", "config", "game_logs", "player_logs"],
     "files": {"results": "results.json", "replay": "replay.json", "config": "config.json",
               "game_logs": {"stdout": "logs/game.stdout.log", "stderr": "logs/game.stderr.log"},
               "player_logs": {"0": "logs/policy_agent_0.log"}}}

Tokens: ``results``, ``replay`` (stored as plain JSON, decompressed from ``replay.json.z`` when only that
is left), ``config``, ``error_info`` (failed episodes), ``game_logs``, ``player_logs``. Access rule:
everything but ``player_logs`` goes to anyone with episode access; player logs only for the slots the
requester owns (``owned_slots``), or every slot when an operator asks (``operator=True``). A requested
token that is not permitted, or absent from the episode, is silently dropped (listed in
`EpisodeBundle.dropped` for callers that want to say so). Entries are sorted with a fixed timestamp,
so the same episode and request give byte-identical zips (cacheable, hashable).

Usage::

    from coworld_pipeline.runtime.bundles import BundleRequest, BundleSource, write_bundle

    source = BundleSource.local(Path("results"))                 # or BundleSource.store(store, "ereq_…")
    bundle = write_bundle(BundleRequest(source, include=("results", "replay"), owned_slots=frozenset({1})),
                          Path("ep.zip"))
    bundle.path, bundle.manifest["include"], bundle.sha256, bundle.dropped
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The built-in roles carry the one deterministic zip writer: they must run without this package.
from coworld_pipeline.runtime.default_roles.common import InflateError, inflate, zip_bytes
from coworld_pipeline.runtime.files import write_whole

INCLUDE_TOKENS = ("results", "replay", "config", "error_info", "game_logs", "player_logs")
_PLAYER_LOG = re.compile(r"^logs/policy_agent_(\d+)\.log$")


def parse_include(values: Iterable[str] | None) -> tuple[str, ...] | None:
    """`--include` values (repeatable, comma-separated) as tokens; None means every permitted token.

    Raises ValueError naming the unknown token (a typo must not silently shrink a bundle), and when
    the values name no token at all.
    """
    if values is None:
        return None
    tokens: list[str] = []
    for value in values:
        for token in (t.strip() for t in value.split(",")):
            if not token:
                continue
            if token not in INCLUDE_TOKENS:
                raise ValueError(f"unknown include token {token!r} (known: {', '.join(INCLUDE_TOKENS)})")
            if token not in tokens:
                tokens.append(token)
    if not tokens:  # `--include ,` or an unset shell variable: not "everything"
        raise ValueError(f"--include names no token (choose from: {', '.join(INCLUDE_TOKENS)})")
    return tuple(tokens)


@dataclass(frozen=True)
class BundleSource:
    """Where an episode's files are read from: names are workspace-relative, ``/``-separated."""

    label: str  # shown in errors: a directory or "<store>:<episode id>"
    episode_id: str | None
    list_names: Callable[[], list[str]]
    read: Callable[[str], bytes | None]

    @classmethod
    def local(cls, workspace: Path, episode_id: str | None = None) -> BundleSource:
        root = Path(workspace).resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"{workspace} is not an episode directory")

        def names() -> list[str]:
            # Top-level files and logs/ only: earlier attempts (previous_attempts/) are not this episode.
            found = [p.name for p in root.iterdir() if p.is_file()]
            logs = root / "logs"
            if logs.is_dir():
                found += [f"logs/{p.name}" for p in logs.iterdir() if p.is_file()]
            return sorted(found)

        def read(name: str) -> bytes | None:
            path = root / name
            return path.read_bytes() if path.is_file() else None

        ereq = episode_id or (root.name if root.name.startswith("ereq_") else None)
        return cls(str(root), ereq, names, read)

    @classmethod
    def store(cls, store: Any, episode_id: str) -> BundleSource:
        """An `ArtifactStore` (runtime/artifacts.py): `list_files` and `fetch` by episode id."""
        return cls(
            f"{store!r}:{episode_id}",
            episode_id,
            lambda: list(store.list_files(episode_id)),
            lambda name: store.fetch(episode_id, name),
        )


@dataclass(frozen=True)
class BundleRequest:
    source: BundleSource
    include: tuple[str, ...] | None = None  # None: every permitted token
    owned_slots: frozenset[int] = frozenset()  # slots whose player logs the requester may read
    operator: bool = False  # staff: every slot's player log


@dataclass(frozen=True)
class EpisodeBundle:
    path: Path
    manifest: dict[str, Any]
    sha256: str
    size: int
    dropped: tuple[str, ...] = field(default=())  # requested (or implied) tokens not delivered

    @property
    def status(self) -> str:
        return str(self.manifest["status"])


def _episode_status(source: BundleSource, names: set[str]) -> tuple[str, str | None]:
    run_id = None
    if "episode.json" in names:
        try:
            summary = json.loads(source.read("episode.json") or b"{}")
            run_id = summary.get("run_id")
            if summary.get("status") in ("success", "failed"):
                return summary["status"], run_id
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            pass
    ok = "results.json" in names and "error_info.json" not in names
    return ("success" if ok else "failed"), run_id


class UnreadableEpisodeFile(ValueError):
    """An episode file a bundle needs that is corrupt: the message names the file and the fault."""


def _replay_bytes(source: BundleSource, names: set[str]) -> bytes | None:
    if "replay.json" in names:
        return source.read("replay.json")
    if "replay.json.z" in names:
        data = source.read("replay.json.z")
        if data is None:
            return None
        try:  # bounded: a few MB of zlib bomb would otherwise expand to gigabytes in memory
            return inflate(data, f"{source.label}/replay.json.z")
        except InflateError as exc:
            raise UnreadableEpisodeFile(str(exc)) from None
    return None


def _json_file(source: BundleSource, names: set[str], name: str) -> bytes | None:
    """A small JSON file of the episode (results, config), refused when it does not parse: a role
    given a truncated results.json fails far from the cause, or grades garbage."""
    data = source.read(name) if name in names else None
    if data is not None:
        try:
            json.loads(data)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
            raise UnreadableEpisodeFile(f"{source.label}/{name} is not valid JSON ({exc})") from None
    return data


def assemble(request: BundleRequest) -> tuple[dict[str, bytes], dict[str, Any], tuple[str, ...]]:
    """The bundle's entries (name -> bytes, manifest.json included), its manifest and dropped tokens."""
    source = request.source
    names = set(source.list_names())
    if not names:
        raise FileNotFoundError(f"{source.label} holds no episode files")
    status, run_id = _episode_status(source, names)
    wanted = request.include if request.include is not None else INCLUDE_TOKENS
    entries: dict[str, bytes] = {}
    files: dict[str, Any] = {}
    delivered: list[str] = []
    dropped: list[str] = []

    def drop(token: str) -> None:
        if request.include is not None:  # only what was asked for by name counts as dropped
            dropped.append(token)

    def single(token: str, name: str, data: bytes | None) -> None:
        if data is None:
            drop(token)
            return
        entries[name] = data
        files[token] = name
        delivered.append(token)

    for token in wanted:
        if token == "results":
            single(token, "results.json", _json_file(source, names, "results.json"))
        elif token == "replay":
            single(token, "replay.json", _replay_bytes(source, names))
        elif token == "config":
            single(token, "config.json", _json_file(source, names, "config.json"))
        elif token == "error_info":
            has = status == "failed" and "error_info.json" in names
            single(token, "error_info.json", source.read("error_info.json") if has else None)
        elif token == "game_logs":
            logs = {}
            for stream in ("stdout", "stderr"):
                name = f"logs/game.{stream}.log"
                data = source.read(name) if name in names else None
                if data is not None:
                    entries[name] = data
                    logs[stream] = name
            if logs:
                files[token] = logs
                delivered.append(token)
            else:
                drop(token)
        elif token == "player_logs":
            logs = {}
            for name in sorted(names):
                match = _PLAYER_LOG.match(name)
                if not match:
                    continue
                slot = int(match.group(1))
                if not (request.operator or slot in request.owned_slots):
                    continue  # not the requester's policy: silently left out (CONTRACT §7)
                data = source.read(name)
                if data is not None:
                    entries[name] = data
                    logs[str(slot)] = name
            if logs:
                files[token] = dict(sorted(logs.items(), key=lambda kv: int(kv[0])))
                delivered.append(token)
            else:
                drop(token)
    manifest = {
        "ereq_id": source.episode_id,
        "run_id": run_id,
        "status": status,
        "include": delivered,
        "files": files,
    }
    entries["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    return entries, manifest, tuple(dropped)


def build_bundle(request: BundleRequest) -> tuple[bytes, dict[str, Any], tuple[str, ...]]:
    """The bundle as bytes, its manifest and the dropped tokens (nothing written to disk)."""
    entries, manifest, dropped = assemble(request)
    return zip_bytes(entries), manifest, dropped


def write_bundle(request: BundleRequest, dest: Path) -> EpisodeBundle:
    """Build the bundle and write it atomically to `dest` (parent directories created)."""
    data, manifest, dropped = build_bundle(request)
    dest = Path(dest)
    write_whole(dest, data)
    return EpisodeBundle(dest, manifest, hashlib.sha256(data).hexdigest(), len(data), dropped)


def read_bundle_manifest(data: bytes) -> dict[str, Any]:
    """The root manifest.json of a bundle (raises KeyError/BadZipFile when it is not one)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return json.loads(archive.read("manifest.json"))


def bundle_slot_count(data: bytes) -> int | None:
    """Slots of the episode in a bundle, from its results' scores or its config's tokens (None: unknown)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            files = json.loads(archive.read("manifest.json")).get("files", {})
            present = set(archive.namelist())

            def entry(token: str) -> bytes | None:
                name = files.get(token)
                return archive.read(name) if isinstance(name, str) and name in present else None

            return _slot_count(entry("results"), entry("config"))
    except (KeyError, ValueError, AttributeError, zipfile.BadZipFile):
        return None


def episode_slot_count(source: BundleSource) -> int | None:
    """Slots of the episode behind `source`, the same way (None: unknown)."""
    return _slot_count(source.read("results.json"), source.read("config.json"))


def _slot_count(results: bytes | None, config: bytes | None) -> int | None:
    for data, key in ((results, "scores"), (config, "tokens")):
        try:
            value = json.loads(data).get(key) if data is not None else None
        except (ValueError, AttributeError, RecursionError):  # unreadable: the other file may say
            continue
        if isinstance(value, list):
            return len(value)
    return None
