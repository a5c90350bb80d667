"""Where the league database lives and which schema revision this code expects.

Kept free of SQLAlchemy so that read-only commands can find and check the database cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path

# Keep in step with the newest file in migrations/versions (a test checks it): opening an
# up-to-date database then costs one query instead of loading alembic.
HEAD_REVISION = "0001"


def database_url(home: Path) -> str:
    """`COWORLD_DATABASE_URL`, else an SQLite file in the platform home."""
    return os.environ.get("COWORLD_DATABASE_URL") or f"sqlite:///{(home / 'coworld.db').resolve()}"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> str:
    """The file of an SQLite URL (`sqlite:///rel.db`, `sqlite:////abs.db`); "" or ":memory:" for memory."""
    return url.split("///", 1)[1] if "///" in url else ""
