"""0.1.64 player artifacts: one optional zip per slot, uploaded to COWORLD_PLAYER_ARTIFACT_UPLOAD_URL.

EVOLUTION.md §5 (PLAYER_ARTIFACT): a player may upload a `.zip` of at most 200 MiB; each upload
replaces the previous; hosted it is a PUT URL, locally a `file://` URL. As the reference's local
runner does, every player gets a directory of its own (seen by no other slot and not by the game),
mounted at /coworld-artifact in its container; once the episode is over the file it wrote there is
kept in the workspace as `policy_artifact_{slot}.zip` and the directory is removed.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from coworld_pipeline.runtime.scratch import make_scratch_dir

UPLOAD_URL_ENV = "COWORLD_PLAYER_ARTIFACT_UPLOAD_URL"
CONTAINER_DIR = "/coworld-artifact"
MAX_BYTES = 209_715_200  # 200 MiB


def artifact_name(slot: int) -> str:
    return f"policy_artifact_{slot}.zip"


class PlayerArtifacts:
    """The per-slot upload directories of one episode (outside its workspace, which the game sees)."""

    def __init__(self) -> None:
        self._root: Path | None = None
        self._dirs: dict[int, Path] = {}

    def dir_for(self, slot: int) -> Path:
        if self._root is None:
            self._root = make_scratch_dir("player-artifacts")
        directory = self._root / f"slot-{slot}"
        directory.mkdir(exist_ok=True)
        # A player image may run as any user: the directory must be writable by it (as the reference).
        directory.chmod(0o777)
        self._dirs[slot] = directory
        return directory

    def collect(self, workspace: Path) -> tuple[dict[int, Path], list[str]]:
        """Move what the players uploaded into the workspace; remove the directories.

        Returns the kept artifacts by slot and a note for each one refused (not a regular file, or
        over 200 MiB); an artifact is optional, so neither is an episode failure.
        """
        kept: dict[int, Path] = {}
        notes: list[str] = []
        try:
            for slot, directory in sorted(self._dirs.items()):
                uploaded = directory / artifact_name(slot)
                if not uploaded.exists() and not uploaded.is_symlink():
                    continue
                if uploaded.is_symlink() or not uploaded.is_file():
                    notes.append(f"slot {slot}: {artifact_name(slot)} is not a regular file; not kept")
                    continue
                size = uploaded.stat().st_size
                if size > MAX_BYTES:
                    notes.append(f"slot {slot}: artifact of {size} bytes is over {MAX_BYTES}; not kept")
                    continue
                target = workspace / artifact_name(slot)
                shutil.copyfile(uploaded, target)
                kept[slot] = target
        finally:
            if self._root is not None:
                with contextlib.suppress(OSError):
                    shutil.rmtree(self._root)
                self._root = None
        return kept, notes
