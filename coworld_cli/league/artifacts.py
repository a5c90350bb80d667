"""Where an episode's files are read from: its local workspace, else the configured artifact store."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coworld_pipeline.league.views import EpisodeView
    from coworld_pipeline.runtime.artifacts import ArtifactStore


class EpisodeArtifacts:
    """An episode's files: the local workspace when it is there, else the configured artifact store
    (COWORLD_ARTIFACT_STORE=s3 ...), so inspection commands work wherever the league kept them."""

    def __init__(self, episode_id: str, workspace: Path):
        self.episode_id = episode_id
        self.workspace = workspace
        self._store: ArtifactStore | None = None

    @classmethod
    def of(cls, episode: EpisodeView) -> EpisodeArtifacts:
        return cls(episode.id, Path(episode.workspace))

    @property
    def store(self) -> ArtifactStore:
        if self._store is None:  # built only when a file is missing locally (S3 clients are slow)
            from coworld_pipeline.runtime.artifacts import store_from_env

            self._store = store_from_env()
        return self._store

    def read(self, name: str) -> bytes | None:
        local = self.workspace / name
        if local.is_file():
            return local.read_bytes()
        return self.store.fetch(self.episode_id, name)

    def names(self, prefix: str = "") -> list[str]:
        if self.workspace.is_dir():
            local = [
                p.relative_to(self.workspace).as_posix() for p in self.workspace.rglob("*") if p.is_file()
            ]
            if local:
                return sorted(n for n in local if n.startswith(prefix))
        return sorted(n for n in self.store.list_files(self.episode_id) if n.startswith(prefix))

    def location(self, name: str) -> str:
        local = self.workspace / name
        return local.as_uri() if local.is_file() else self.store.uri_for(self.episode_id, name)

    def replay_bytes(self) -> bytes | None:
        """The decompressed replay, from replay.json or replay.json.z."""
        data = self.read("replay.json")
        if data is None and (packed := self.read("replay.json.z")) is not None:
            data = zlib.decompress(packed)
        return data
