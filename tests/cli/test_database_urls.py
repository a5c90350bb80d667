"""The league database URL is an argument like any other: one the platform cannot open is a usage
error (exit 2) saying which forms work, never a traceback, and never echoing the URL (it may carry a
password); the bare Postgres spellings people paste (`postgresql://`, `postgres://`) open with the
driver we ship (SQLAlchemy 2.1 reads bare `postgresql://` as psycopg 3, which we do not)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.league.conftest import postgres_url

BAD_URLS = {
    "a-path": "/etc/passwd",
    "a-word": "nan",
    "unknown-dialect": "foo://user:hunter2@host/db",
    "driver-not-installed": "mysql://user:hunter2@host/db",
}


def leagues(db: str, tmp_path: Path, *extra: str):
    env = {**os.environ, "COWORLD_HOME": str(tmp_path / "home")}
    env.pop("COWORLD_DATABASE_URL", None)
    return run_cli("leagues", "--db", db, *extra, env=env, timeout=60)


@pytest.mark.parametrize("url", list(BAD_URLS.values()), ids=list(BAD_URLS))
def test_a_url_no_engine_can_open_is_a_usage_error(url: str, tmp_path: Path) -> None:
    proc = leagues(url, tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert "the league database URL" in proc.stderr and "sqlite:///PATH" in proc.stderr, proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout


def test_the_json_error_says_the_same(tmp_path: Path) -> None:
    proc = leagues("foo://user:hunter2@host/db", tmp_path, "--json")
    assert proc.returncode == 2, proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error.startswith("the league database URL is not one we can open") and "hunter2" not in error


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:"])
def test_an_in_memory_database_is_refused(url: str, tmp_path: Path) -> None:
    """Each command is a process of its own: an in-memory league would be empty every time."""
    proc = leagues(url, tmp_path)
    assert proc.returncode == 2 and "in-memory SQLite database" in proc.stderr, proc.stderr


def test_a_database_file_the_system_refuses_is_named(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("in the way\n")
    proc = leagues(f"sqlite:///{tmp_path / 'a-file' / 'league.db'}", tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    expected = f"cannot use the league database file {tmp_path / 'a-file' / 'league.db'}: not a directory"
    assert expected in proc.stderr, proc.stderr


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_bare_postgres_schemes_open_with_our_driver(scheme: str, tmp_path: Path) -> None:
    url = postgres_url()
    assert url is not None
    bare = f"{scheme}://{url.partition('://')[2]}"
    proc = leagues(bare, tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert isinstance(json.loads(proc.stdout), list)
