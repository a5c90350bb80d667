"""Where the league database lives and which schema revision this code expects.

Kept free of SQLAlchemy so that read-only commands can find and check the database cheaply.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from coworld_pipeline.home import platform_home
from coworld_pipeline.league.errors import LeagueError, shortened

# Keep in step with the newest file in migrations/versions (a test checks it): opening an
# up-to-date database then costs one query instead of loading alembic.
HEAD_REVISION = "0003"


def league_location(database_url: str | None, home: str | Path | None) -> tuple[Path, str]:
    """The platform home and the league database URL, each given or else the default.

    Home: `home`, else `platform_home()` (COWORLD_HOME, a checkout's .coworld/, ~/.coworld).
    Database: `database_url`, else `COWORLD_DATABASE_URL`, else an SQLite file in that home.
    """
    home_dir = Path(home).expanduser().resolve() if home else platform_home()
    url = database_url or os.environ.get("COWORLD_DATABASE_URL")
    return home_dir, url or f"sqlite:///{(home_dir / 'coworld.db').resolve()}"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> str:
    """The file of an SQLite URL (`sqlite:///rel.db`, `sqlite:////abs.db`); "" or ":memory:" for memory."""
    return url.split("///", 1)[1] if "///" in url else ""


def check_sqlite_file(url: str, home: Path, *, create: bool = True) -> None:
    """Refuse, as bad input naming it, an SQLite URL whose file cannot be the league database.

    Checked before SQLAlchemy opens anything, so a wrong `--db` leaves nothing behind (no directories,
    no empty database, no `.migrate.lock`) and says what is wrong instead of "unable to open database
    file" or "disk I/O error" (a named pipe). A missing directory is created only inside the platform
    home (the default database lives there); elsewhere it is most likely a typo. With `create` False
    (a command that only reads) a missing file is refused too: an empty listing would hide the typo.
    Postgres and in-memory URLs are not checked here.
    """
    if not is_sqlite(url):
        return
    path_text, _, query = sqlite_path(url).partition("?")
    if query:
        # pysqlite ignores them (with a warning) unless uri=true, so `?mode=ro` would still write
        raise LeagueError(
            f"the league database URL has query arguments ({shortened(query, 200)}), which we do "
            "not pass to SQLite: give sqlite:///PATH"
        )
    if not path_text or path_text == ":memory:":
        return
    path = Path(path_text)
    shown = shortened(str(path), 200)
    parent = Path(os.path.abspath(path)).parent
    if create and (parent == home or home in parent.parents):
        # The default database lives in the home: make it as on a new machine. An OSError here (a file
        # in the way, a name too long) is about the home, and the caller reports it as such.
        parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if not create:
            raise LeagueError(
                f"there is no league database at {shown} (a wrong --db or COWORLD_DATABASE_URL?); "
                "`coworld upload-coworld` creates one"
            ) from None
        if not parent.is_dir():  # outside the home a missing directory is most likely a typo
            # (a parent that is a file made stat() raise NotADirectoryError, below)
            missing = f"the directory {shortened(str(parent), 200)} does not exist"
            raise LeagueError(f"cannot use the league database file {shown}: {missing}") from None
        return
    except NotADirectoryError:
        raise LeagueError(f"cannot use the league database file {shown}: not a directory") from None
    except OSError as exc:
        raise LeagueError(f"cannot use the league database file {shown}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        from coworld_pipeline.contract.bounded_io import file_kind

        raise LeagueError(f"the league database {shown} is {file_kind(mode)}, not a database file")
    if _not_a_database(path):
        raise LeagueError(f"the league database file {shown} is not an SQLite database (a wrong --db?)")


def _not_a_database(path: Path) -> bool:
    """True when SQLite says the file is no database (SQLITE_NOTADB); an empty file is a new one.

    Asked through SQLite, not by reading the header ourselves: closing a descriptor of our own on the
    file would drop the POSIX locks this process's open league connections hold on it (SQLite shares
    one lock table per file among its own connections, so its connection is safe to close). Any other
    error (busy, locked, unreadable) is left to the engine, which reports it as it does today.
    """
    import sqlite3
    from urllib.parse import quote

    try:
        conn = sqlite3.connect(f"file:{quote(str(path.absolute()))}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return False
    try:
        conn.execute("PRAGMA schema_version").fetchall()
    except sqlite3.DatabaseError as exc:
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB or "not a database" in str(exc)
    finally:
        conn.close()
    return False
