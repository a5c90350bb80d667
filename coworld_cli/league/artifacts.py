"""Where an episode's files are read from: its local workspace, else the configured artifact store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coworld_pipeline.league.views import EpisodeView
    from coworld_pipeline.runtime.artifacts import ArtifactStore


class EpisodeArtifacts:
    """An episode's files: the local workspace when it is there, else the configured artifact store
    (COWORLD_ARTIFACT_STORE=s3 ...), so inspection commands work wherever the league kept them."""

    def __init__(self, episode_id: str, workspace: Path, under: str = ""):
        self.episode_id = episode_id
        self.workspace = workspace
        self.under = under  # `previous_attempts/attempt-N/` for an earlier attempt's files
        self._store: ArtifactStore | None = None

    @classmethod
    def of(cls, episode: EpisodeView, attempt: int | None = None) -> EpisodeArtifacts:
        """The files of the episode's last attempt, or of an earlier `attempt` (1-based)."""
        earlier = attempt is not None and attempt < episode.attempts
        return cls(episode.id, Path(episode.workspace), f"previous_attempts/attempt-{attempt}/" * earlier)

    @property
    def store(self) -> ArtifactStore:
        if self._store is None:  # built only when a file is missing locally (S3 clients are slow)
            from coworld_pipeline.runtime.artifacts import store_from_env

            self._store = store_from_env()
        return self._store

    def read(self, name: str) -> bytes | None:
        local = self.workspace / self.under / name
        if local.is_file():
            return local.read_bytes()
        return self.store.fetch(self.episode_id, self.under + name)

    def names(self, prefix: str = "") -> list[str]:
        """Names (relative to this attempt) of the files under `prefix`."""
        wanted = self.under + prefix
        if self.workspace.is_dir():
            local = [
                p.relative_to(self.workspace).as_posix() for p in self.workspace.rglob("*") if p.is_file()
            ]
            if local:
                return sorted(n[len(self.under) :] for n in local if n.startswith(wanted))
        files = self.store.list_files(self.episode_id)
        return sorted(n[len(self.under) :] for n in files if n.startswith(wanted))

    def location(self, name: str) -> str:
        local = self.workspace / self.under / name
        if local.is_file():
            return local.as_uri()
        return self.store.uri_for(self.episode_id, self.under + name)

    def replay_bytes(self) -> bytes | None:
        """The decompressed replay, from replay.json or replay.json.z.

        Raises InflateError (a ValueError) naming the file when replay.json.z does not decompress
        or expands beyond MAX_REPLAY_BYTES (a zlib bomb is never inflated whole).
        """
        from coworld_pipeline.runtime.default_roles.common import inflate

        data = self.read("replay.json")
        if data is None and (packed := self.read("replay.json.z")) is not None:
            data = inflate(packed, self.location("replay.json.z"))
        return data

    def read_json(self, name: str) -> Any:
        """The parsed JSON file `name`, or None when absent; raises ValueError naming the file and
        what is wrong when it does not parse (a truncated results.json is bad data, not a crash)."""
        data = self.read(name)
        return None if data is None else self.parse_json(name, data)

    def parse_json(self, name: str, data: bytes) -> Any:
        """`data`, the bytes of file `name`, parsed; ValueError naming the file when they do not."""
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError included
            raise ValueError(f"{self.location(name)} is not valid JSON ({exc})") from None
