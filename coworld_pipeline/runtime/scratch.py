"""Host scratch directories of a platform process, named so that the janitor can reap a dead one's.

Episodes keep a few directories outside their workspace: the start gate's (start_gate.py), the
players' upload directories (player_artifacts.py) and the fork server's socket (defs/prefork.py).
Their owner removes them on every exit path it sees. SIGKILL is the one it cannot see, so each is
made as `<tmp>/coworld-<kind>-<owner pid>-<random>`, and `reap_scratch_dirs` removes those whose
owner is no longer running. Names alone carry the owner: a marker file inside would be readable by
the players the directory is mounted into.

The pid is only meaningful in the pid namespace that made it: the temp directory is assumed private
to this host's namespace (it is: run-worker containers have their own `/tmp`). A recycled pid only
keeps a dead owner's directory until that newer process exits too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from coworld_pipeline.runtime.janitor import pid_alive

KINDS = ("gate", "player-artifacts", "prefork")


def make_scratch_dir(kind: str) -> Path:
    """A new private (0700) directory for `kind`, named after this process."""
    if kind not in KINDS:
        raise ValueError(f"unknown scratch kind {kind!r} (known: {', '.join(KINDS)})")
    return Path(tempfile.mkdtemp(prefix=f"coworld-{kind}-{os.getpid()}-"))


def scratch_owner(name: str) -> int | None:
    """The owner pid a scratch directory's name carries; None for any other name."""
    for kind in KINDS:
        prefix = f"coworld-{kind}-"
        if name.startswith(prefix):
            pid, sep, suffix = name[len(prefix) :].partition("-")
            if pid.isdigit() and sep and suffix:
                return int(pid)
    return None


def reap_scratch_dirs(root: Path | None = None) -> int:
    """Remove the scratch directories (under `root`, the temp dir by default) of dead owners."""
    reaped = 0
    base = root or Path(tempfile.gettempdir())
    try:
        entries = list(base.iterdir())
    except OSError:
        return 0
    for entry in entries:
        owner = scratch_owner(entry.name)
        if owner is None or pid_alive(owner) or entry.is_symlink() or not entry.is_dir():
            continue
        shutil.rmtree(entry, ignore_errors=True)
        reaped += not entry.exists()
    return reaped
