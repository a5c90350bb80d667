"""The platform's home directory: database, episode workspaces, keys and runtime bookkeeping.

One rule for the CLI and the Dagster code location alike: `COWORLD_HOME`; else, when the code runs
from a source checkout (as `make demo` does), the checkout's git-ignored `.coworld/`; else
`~/.coworld`. So `coworld results orchard-demo` right after `make demo` reads the demo's league.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


def source_checkout_home() -> Path | None:
    """`<repo>/.coworld` when this package runs from a source checkout (not an installed wheel)."""
    if (_REPO / "examples" / "orchard").is_dir() and (_REPO / "pyproject.toml").is_file():
        return _REPO / ".coworld"
    return None


def platform_home() -> Path:
    """`COWORLD_HOME`, else the source checkout's `.coworld/`, else `~/.coworld`."""
    explicit = os.environ.get("COWORLD_HOME")
    home = Path(explicit) if explicit else source_checkout_home() or Path.home() / ".coworld"
    return home.expanduser().resolve()
