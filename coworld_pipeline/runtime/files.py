"""Files written whole or not at all.

Readers (a viewer polling live.json, a user opening a bundle, the janitor reading a registry) must see
the old file or the new one, never half of either, and a write that fails must not leave its
temporary behind: data goes to a temporary beside the file (same file system, so the rename is
atomic) and is renamed over it. Temporaries end in `.tmp`, which the artifact listings skip.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


def replace_whole(path: Path, write: Callable[[Path], object]) -> None:
    """Have `write` fill a temporary beside `path`, then rename it over `path` (parent directories
    made); raises what `write` or the rename raised, with nothing left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_whole(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (replace_whole)."""
    replace_whole(path, lambda tmp: tmp.write_bytes(data))
