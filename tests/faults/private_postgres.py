"""A PostgreSQL server of the test's own (initdb in a temporary directory), which a test may stop and
start again: the shared test server (COWORLD_TEST_POSTGRES_URL) must never go down under others."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import IN_CI


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


class PrivatePostgres:
    """`start()` / `stop()` (immediate: like a crash, no clean shutdown) on 127.0.0.1:`port`."""

    def __init__(self, port: int):
        bin_dir = _bin_dir()
        if bin_dir is None:
            if IN_CI:
                pytest.fail("CI must have PostgreSQL's initdb (apt install postgresql)")
            pytest.skip("needs PostgreSQL's initdb and pg_ctl (apt install postgresql)")
        self.bin = bin_dir
        self.port = port
        # Not under pytest's tmp_path: as root, the server runs as `postgres`, which must reach it.
        self.dir = Path(tempfile.mkdtemp(prefix="coworld-pg-"))
        self.data = self.dir / "data"
        self.user: str | None = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root without a `postgres` user to run the server as")
            self.user = "postgres"
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "coworld", "--no-sync", "-E", "UTF8")

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bin / tool), *args]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://coworld@127.0.0.1:{self.port}/league"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "server.log"), "-w", "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def create_database(self) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="coworld", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE league")
        conn.close()

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop()
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
