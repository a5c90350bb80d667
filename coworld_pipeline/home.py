"""The platform's home directory: database, episode workspaces, keys and runtime bookkeeping."""

from __future__ import annotations

import os
from pathlib import Path


def platform_home() -> Path:
    """`COWORLD_HOME`, else `~/.coworld`."""
    return Path(os.environ.get("COWORLD_HOME") or Path.home() / ".coworld").expanduser().resolve()
