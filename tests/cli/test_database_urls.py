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


def _leftovers(where: Path) -> list[str]:
    return sorted(p.name for p in where.iterdir())


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.mkdir(), "the league database {db} is a directory, not a database file"),
        (lambda p: os.mkfifo(p), "the league database {db} is a named pipe, not a database file"),
        (lambda p: p.write_text("hello\n"), "the league database file {db} is not an SQLite database"),
    ],
    ids=["directory", "fifo", "not-sqlite"],
)
def test_a_path_that_is_no_database_is_named_and_nothing_is_left(make, expected: str, tmp_path: Path) -> None:
    """It used to be exit 1 "database error: disk I/O error" (a FIFO) or "file is not a database",
    with a `.migrate.lock` left beside the path."""
    where = tmp_path / "given"
    where.mkdir()
    make(where / "league.db")
    before = _leftovers(where)
    proc = leagues(f"sqlite:///{where / 'league.db'}", tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert expected.format(db=where / "league.db") in " ".join(proc.stderr.split()), proc.stderr
    assert _leftovers(where) == before


def test_a_named_database_that_does_not_exist_is_not_created_by_a_listing(tmp_path: Path) -> None:
    """A typo in --db printed an empty table (and created directories and an empty database)."""
    proc = leagues(f"sqlite:///{tmp_path / 'typo' / 'dir' / 'league.db'}", tmp_path)
    assert proc.returncode == 2, proc.stderr
    said = " ".join(proc.stderr.split())
    assert f"there is no league database at {tmp_path / 'typo' / 'dir' / 'league.db'}" in said, said
    assert "upload-coworld" in proc.stderr
    assert _leftovers(tmp_path) == []  # not even the home: nothing was opened


def test_an_upload_creates_a_named_database_but_not_its_missing_directory(tmp_path: Path) -> None:
    env = {**os.environ, "COWORLD_HOME": str(tmp_path / "home")}
    env.pop("COWORLD_DATABASE_URL", None)
    upload = ("upload-policy", "coworld/testkit:dev", "--name", "p")
    proc = run_cli(*upload, "--db", f"sqlite:///{tmp_path / 'typo' / 'league.db'}", env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"the directory {tmp_path / 'typo'} does not exist" in " ".join(proc.stderr.split()), proc.stderr
    assert not (tmp_path / "typo").exists()
    proc = run_cli(*upload, "--db", f"sqlite:///{tmp_path / 'league.db'}", env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = leagues(f"sqlite:///{tmp_path / 'league.db'}", tmp_path, "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr


def test_the_default_database_is_created_by_any_command(tmp_path: Path) -> None:
    env = {**os.environ, "COWORLD_HOME": str(tmp_path / "new" / "home")}
    env.pop("COWORLD_DATABASE_URL", None)
    proc = run_cli("leagues", "--json", env=env, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout) == [], proc.stderr
    assert (tmp_path / "new" / "home" / "coworld.db").is_file()


def test_sqlite_query_arguments_are_refused(tmp_path: Path) -> None:
    """pysqlite ignored `?mode=ro` (with a warning) and wrote anyway, to a file that was not made
    owner-only because the query was taken for part of its name."""
    proc = leagues(f"sqlite:///{tmp_path / 'league.db'}?mode=ro", tmp_path)
    assert proc.returncode == 2 and "query arguments (mode=ro)" in proc.stderr, proc.stderr
    assert "SAWarning" not in proc.stderr
    assert _leftovers(tmp_path) == []
