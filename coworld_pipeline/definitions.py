"""The Dagster code location: everything under `coworld_pipeline/defs/`.

`dagster dev` in the repo root serves it (see workspace.yaml / dagster.yaml). Loading touches no
service: the league database is opened on first use by a sensor, schedule or run.

Run from a source checkout with COWORLD_HOME unset, the platform home defaults to the repo's
`.coworld/` (git-ignored) and the orchard demo league is seeded on the first commissioner tick
(`COWORLD_DEMO`, see `coworld_pipeline/defs/league/settings.py`).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

_REPO = Path(__file__).resolve().parent.parent


def _dev_defaults() -> None:
    """In a source checkout, default the platform home to `<repo>/.coworld` and turn the demo on."""
    if os.environ.get("COWORLD_HOME") or not (_REPO / "examples" / "orchard").is_dir():
        return
    os.environ["COWORLD_HOME"] = str(_REPO / ".coworld")
    os.environ.setdefault("COWORLD_DEMO", "1")


_dev_defaults()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
