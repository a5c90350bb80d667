"""Checking the league database file before opening it must not disturb open connections to it.

`location.check_sqlite_file` runs every time a service is made. It once read the file's header with a
plain open()/close(): closing that descriptor dropped the POSIX locks this process's SQLite
connections held on the file, so another process closing its connection took itself for the last
one, checkpointed and deleted the WAL and its index, and this process went on reading the deleted
index: every later read saw the database as it was (a `dagster dev` test saw no episode succeed while
the runs played all of them).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from coworld_pipeline.league.service import LeagueService

WRITER = """
import sys
from coworld_pipeline.league.service import LeagueService

svc = LeagueService(sys.argv[1], sys.argv[2])
svc.upload_policy("coworld/testkit:dev", sys.argv[3])
print("written", flush=True)
sys.stdin.readline()  # keep the connection (and its WAL) open until told
svc.close()
"""


def _writer(url: str, home: Path, name: str) -> subprocess.Popen[str]:
    """Another process that uploads a policy and keeps its connection open until its stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(home), name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "written\n"
    return proc


def _done(proc: subprocess.Popen[str]) -> None:
    """Let it close its connection (the last one, it may think: then it checkpoints and deletes the WAL)."""
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=120) == 0


def test_a_second_service_in_the_process_keeps_the_first_one_reading_fresh_data(tmp_path: Path) -> None:
    url, home = f"sqlite:///{tmp_path / 'league.db'}", tmp_path / "home"
    first = LeagueService(url, home)
    try:
        _done(_writer(url, home, "before"))
        assert [p.name for p in first.policies()] == ["before"]  # a connection of `first` is now open
        LeagueService(url, home, create=False).close()  # checks the file again, in this process
        _done(_writer(url, home, "second"))  # with our locks gone, it deleted the WAL `first` has open
        third = _writer(url, home, "third")  # a new WAL, which `first` would not read
        try:
            assert sorted(p.name for p in first.policies()) == ["before", "second", "third"]
        finally:
            _done(third)
    finally:
        first.close()
