"""Where the league database lives and which schema revision this code expects.

Kept free of SQLAlchemy so that read-only commands can find and check the database cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path

from coworld_pipeline.home import platform_home

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
