"""Engine creation, migrations on open, and short retried transactions.

SQLite (default): WAL journal, a 30 s busy timeout, and `BEGIN IMMEDIATE` for every write transaction
so that two processes never deadlock upgrading a read lock; "database is locked" is retried as well.
Postgres: writers lock the league row (`SELECT … FOR UPDATE`) first, and deadlock/serialization
errors are retried.
"""

from __future__ import annotations

import contextlib
import fcntl
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session

from coworld_pipeline.league.errors import LeagueError
from coworld_pipeline.league.location import HEAD_REVISION, is_sqlite, sqlite_path

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

T = TypeVar("T")

_RETRYABLE_PG_CODES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available


# SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, which we do not ship; postgres:// (Heroku's
# and many providers' spelling) it does not know at all. Both mean the driver we ship.
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
URL_FORMS = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


def engine_url(url: str) -> str:
    """`url` with a bare Postgres scheme given our driver (psycopg2); any other URL unchanged."""
    for scheme in _POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


def make_engine(url: str) -> Engine:
    """The engine for `url`; a URL no engine can be made of is a LeagueError saying which forms work.

    The message never repeats the URL: it may carry a password.
    """
    try:
        return _make_engine(engine_url(url))
    except ArgumentError as exc:  # unparseable, or an unknown dialect
        raise LeagueError(
            f"the league database URL is not one we can open ({exc}); give {URL_FORMS}"
        ) from None
    except ImportError as exc:  # a dialect whose driver is not installed (mysql://, postgresql+asyncpg://)
        raise LeagueError(
            f"the league database URL needs a driver that is not installed ({exc.name}); give {URL_FORMS}"
        ) from None


def _make_engine(url: str) -> Engine:
    if is_sqlite(url):
        # location.check_sqlite_file has checked the file and made its directory
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:  # pragma: no cover - exercised by every test
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn) -> None:
            conn.exec_driver_sql(
                "BEGIN IMMEDIATE" if conn.get_execution_options().get("coworld_write") else "BEGIN"
            )

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError):
        msg = str(exc).lower()
        if "database is locked" in msg or "database is busy" in msg or "deadlock" in msg:
            return True
    if isinstance(exc, DBAPIError):
        code = getattr(exc.orig, "pgcode", None)
        if code in _RETRYABLE_PG_CODES:
            return True
    return False


def run_write(engine: Engine, fn: Callable[[Session], T], attempts: int = 12) -> T:
    """Run `fn(session)` in one write transaction, retrying on lock contention."""
    delay = 0.02
    for attempt in range(attempts):
        try:
            with engine.connect() as conn:
                conn.execution_options(coworld_write=True)
                with Session(bind=conn, expire_on_commit=False, autoflush=True) as session, conn.begin():
                    result = fn(session)
                    session.flush()
                return result
        except DBAPIError as exc:
            if attempt + 1 < attempts and is_retryable(exc):
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)
                continue
            raise
    raise AssertionError("unreachable")


def run_read(engine: Engine, fn: Callable[[Session], T]) -> T:
    with engine.connect() as conn, Session(bind=conn, expire_on_commit=False) as session, conn.begin():
        return fn(session)


@contextlib.contextmanager
def _migration_lock(engine: Engine, url: str) -> Iterator[None]:
    """Only one process migrates at a time: a file lock (SQLite) or an advisory lock (Postgres)."""
    if is_sqlite(url):
        path = sqlite_path(url)
        if not path or path == ":memory:":
            yield
            return
        lock_path = Path(path + ".migrate.lock")
        with open(lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(7305402718)"))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(7305402718)"))
            conn.commit()


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


def migrate(engine: Engine, url: str) -> None:
    """Bring the schema to the newest revision (no-op when it already is)."""
    if current_revision(engine) == HEAD_REVISION:
        return
    from alembic import command
    from alembic.config import Config

    with _migration_lock(engine, url):
        if current_revision(engine) == HEAD_REVISION:
            return
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
