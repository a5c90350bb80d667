"""The unit of work: one short transaction per call, the event written with the change it explains.

Concurrency rules (several processes may drive the same database):

* every write transaction that touches a league locks the league row first (`lock_league`: `FOR
  UPDATE` on Postgres; on SQLite all writers are serialized by `BEGIN IMMEDIATE`), so round state,
  ratings and memberships change one transaction at a time;
* an episode is claimed by a conditional update (`pending → running, attempt + 1`) and its outcome is
  recorded only if the row is still `running` with that attempt, so nothing is run or counted twice;
* at most one open round per league is enforced by a unique column (`rounds.open_marker`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coworld_pipeline.league import ids
from coworld_pipeline.league.db import make_engine, migrate, run_read, run_write
from coworld_pipeline.league.errors import NotFound
from coworld_pipeline.league.location import check_sqlite_file, is_sqlite, league_location, sqlite_path
from coworld_pipeline.league.models import Event, League
from coworld_pipeline.league.secrets import SecretBox, load_or_create_key

T = TypeVar("T")


class Store:
    """The league database (migrated on open), the platform home and the secret box."""

    def __init__(
        self, database_url: str | None = None, home: Path | str | None = None, *, create: bool = True
    ):
        """`create` False: a missing SQLite file is an error (LeagueError), not a new empty database."""
        self.home, self.database_url = league_location(database_url, Path(home) if home else None)
        check_sqlite_file(self.database_url, self.home, create=create)
        self.engine = make_engine(self.database_url)
        migrate(self.engine, self.database_url)
        _owner_only(self.database_url)
        self._box: SecretBox | None = None

    def close(self) -> None:
        self.engine.dispose()

    @property
    def box(self) -> SecretBox:
        if self._box is None:
            self._box = SecretBox(load_or_create_key(self.home))
        return self._box

    def write(self, fn: Callable[[Session], T], integrity_retries: int = 4) -> T:
        """`fn` in one write transaction; a unique-constraint race is retried from the start."""
        for attempt in range(integrity_retries):
            try:
                return run_write(self.engine, fn)
            except IntegrityError:
                if attempt + 1 == integrity_retries:
                    raise
        raise AssertionError("unreachable")

    def read(self, fn: Callable[[Session], T]) -> T:
        return run_read(self.engine, fn)

    def episode_workspace(self, ereq_id: str) -> Path:
        return self.home / "episodes" / str(ids.public("ereq", ids.raw_id("ereq", ereq_id)))


def _owner_only(url: str) -> None:
    """An SQLite league database holds ratings, logs' paths and encrypted secrets: readable by its owner
    only (mode 0600, with its WAL files), whatever the umask."""
    if not is_sqlite(url):
        return
    path = sqlite_path(url)
    if not path or path == ":memory:":
        return
    for name in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(OSError):  # another user's file, or a WAL not created yet
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)


def record_event(
    s: Session,
    event_type: str,
    headline: str,
    *,
    league_id: str | None = None,
    division_id: str | None = None,
    round_id: str | None = None,
    ereq_id: str | None = None,
    policy_version_id: str | None = None,
    **payload: Any,
) -> None:
    """Write one scheduler decision; it commits (or not) with the change it explains."""
    s.add(
        Event(
            event_type=event_type,
            headline=headline,
            league_id=league_id,
            division_id=division_id,
            round_id=round_id,
            ereq_id=ereq_id,
            policy_version_id=policy_version_id,
            payload=payload,
        )
    )


def lock_league(s: Session, league_id: str) -> League:
    """The league row, locked for this transaction: writers of one league go one at a time."""
    league = s.execute(select(League).where(League.id == league_id).with_for_update()).scalar_one_or_none()
    if league is None:
        raise NotFound(f"unknown league {ids.public('league', league_id)}")
    return league


def json_text(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces): stored state and hashed content."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
