"""One reading of Dagster's migration scripts per process, instead of one per SQLite database opened.

Dagster's SQLite storage keeps one database per run (its event log shard). Opening one (the daemon
writing a new run's first events, every run worker at start) checks the database's schema revision
against the head revision of Dagster's alembic scripts, and alembic finds that head by loading all
~90 migration scripts from disk, every time: about 0.09 s per database on these machines, three to
four times on a run's critical path. The scripts are the installed package's files, so their head
cannot change while a process runs; `install()` makes `check_alembic_revision` (dagster/_core/
storage/sql.py) reuse the script directory it loaded first for each script location. The database's
own revision is still read every time, so an outdated database is still reported.

Installed when the run launcher module is imported (the daemon, the code server, the fork server and
its run workers); if Dagster's internals are not as expected it does nothing.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_installed = False


class _CachedScriptDirectory:
    """Stands in for `alembic.script.ScriptDirectory` in dagster/_core/storage/sql.py only."""

    def __init__(self, real: Any):
        self._real = real
        self._by_location: dict[str, Any] = {}
        self._lock = threading.Lock()

    def from_config(self, config: Any) -> Any:
        location = str(config.get_main_option("script_location") or "")
        with self._lock:
            script = self._by_location.get(location)
            if script is None:
                script = self._by_location[location] = self._real.from_config(config)
            return script

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def install() -> bool:
    """Cache the script directories read by Dagster's alembic revision check (idempotent).

    Returns whether the cache is in place."""
    global _installed
    with _lock:
        if _installed:
            return True
        try:
            from alembic.script import ScriptDirectory
            from dagster._core.storage import sql
        except ImportError:
            return False
        if getattr(sql, "ScriptDirectory", None) is not ScriptDirectory or not hasattr(
            sql, "check_alembic_revision"
        ):
            return False  # not the code this was written against: leave it alone
        sql.ScriptDirectory = _CachedScriptDirectory(ScriptDirectory)  # type: ignore[attr-defined]
        _installed = True
        return True
