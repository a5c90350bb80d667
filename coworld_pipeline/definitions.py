"""The Dagster code location: everything under `coworld_pipeline/defs/`.

`dagster dev` in the repo root serves it (see workspace.yaml / dagster.yaml). Loading touches no
service and writes no environment variable: the league database is opened on first use by a
sensor, schedule or run.

Run from a source checkout with COWORLD_HOME unset, the platform home defaults to the repo's
`.coworld/` (git-ignored, `defs/league/resources.py`) and the orchard demo league is seeded on the
first commissioner tick (`COWORLD_DEMO`, see `coworld_pipeline/defs/league/settings.py`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return _load()


@functools.cache
def _load() -> dg.Definitions:
    """Built once per process. Dagster calls `defs` again for every run it executes (to reconstruct
    the job); a run forked from the warm fork server (`defs/prefork.py`) then inherits the built
    definitions instead of loading the defs folder again (~0.4 s before its first step). Reloading
    the code location starts a new code server process, so nothing stale is ever served."""
    from coworld_pipeline.defs.league import settings

    settings.use_checkout_defaults()  # before the sensor and schedule modules read SETTINGS
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
