"""The fork server behind `PreforkRunLauncher` (defs/prefork.py), as a real process on a real socket.

Runs launched through it end to end are covered by every `dagster dev` test (the repo's dagster.yaml
uses it): tests/defs/test_dagster_dev.py asserts they were forked, and kills one."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from coworld_pipeline.defs.prefork import PreforkRunLauncher, _ForkServerHandle
from coworld_pipeline.runtime.janitor import pid_alive
from tests.defs.helpers import wait_for


@pytest.fixture
def warm_package(tmp_path: Path, monkeypatch) -> Path:
    """A package the fork server preloads (on PYTHONPATH for the server process)."""
    package = tmp_path / "warm_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("LOADED = True\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    return package


def test_fork_server_forks_a_worker_and_notices_code_changes(warm_package: Path):
    server = _ForkServerHandle.start(["warm_pkg"])
    try:
        # A fork per request: its pid comes back at once (this request's run cannot be found, so the
        # child fails and exits; it is reaped, not left a zombie).
        reply = server.request({"run_id": "no-such-run", "instance_ref": "{}"})
        child = int(reply["pid"])
        assert child != server.proc.pid
        wait_for(lambda: not pid_alive(child), 60, "the failed run worker to exit and be reaped", 0.1)

        # A source file of a preloaded package changes: the server says it is stale and exits, so the
        # launcher starts a fresh one instead of running old code.
        later = time.time() + 5
        os.utime(warm_package / "__init__.py", (later, later))
        assert server.request({"run_id": "x", "instance_ref": "{}"}) == {"stale": True}
        wait_for(lambda: not server.alive(), 30, "the stale fork server to exit", 0.1)
    finally:
        server.stop()
    assert not server.path.exists()


def test_fork_server_warms_up_on_an_instance_and_still_forks(warm_package: Path, tmp_path: Path):
    """The launcher's first message lets the server open the instance once (imports and storage set-up
    every run worker would otherwise redo); that leaves no thread or connection behind, so it still
    forks. A ref it cannot open is reported and changes nothing."""
    import dagster as dg
    from dagster._serdes import serialize_value

    server = _ForkServerHandle.start(["warm_pkg"])
    try:
        bad = server.request({"warm": "{}"})
        assert bad["warmed"] is False and bad["error"]
        (tmp_path / "instance").mkdir()
        with dg.DagsterInstance.local_temp(str(tmp_path / "instance")) as instance:
            assert server.request({"warm": serialize_value(instance.get_ref())}) == {"warmed": True}
        reply = server.request({"run_id": "no-such-run", "instance_ref": "{}"})
        assert "pid" in reply, reply  # not "the fork server has threads: refusing to fork"
        wait_for(lambda: not pid_alive(int(reply["pid"])), 60, "the failed run worker to exit", 0.1)
        assert server.alive()
    finally:
        server.stop()


def test_a_fork_server_that_cannot_start_is_reported(tmp_path: Path, monkeypatch):
    """The launcher falls back to spawning the run when this raises (launch_run)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
    with pytest.raises(RuntimeError, match="exited with 1 while starting"):
        _ForkServerHandle.start(["no_such_module_anywhere"])


def test_launcher_config_and_health_of_unknown_workers():
    launcher = PreforkRunLauncher.from_config_value(None, {"preload_modules": ["a.b"]})
    assert launcher._preload == ("a.b",) and launcher.supports_check_run_worker_health
    assert PreforkRunLauncher()._preload == ("coworld_pipeline.definitions",)


def test_health_of_runs_spawned_while_the_fork_server_booted():
    """A spawned run (no fork pid) is judged by the worker its step recorded; never UNKNOWN, which
    run monitoring would turn into a failed run (it did: a healthy demo run was failed that way)."""
    import socket
    import subprocess

    from dagster import DagsterInstance, DagsterRun
    from dagster._core.launcher import WorkerStatus

    with DagsterInstance.ephemeral() as instance:
        launcher = PreforkRunLauncher()
        launcher.register_instance(instance)
        host = socket.gethostname()

        def run_with(tags: dict[str, str]) -> DagsterRun:
            return instance.add_run(DagsterRun(job_name="j", run_id=os.urandom(8).hex(), tags=tags))

        assert launcher.check_run_worker_health(run_with({})).status == WorkerStatus.RUNNING
        alive = run_with({"coworld/worker": f"{host}:{os.getpid()}"})
        assert launcher.check_run_worker_health(alive).status == WorkerStatus.RUNNING
        argv = [sys.executable, "-c", "import os; print(os.getpid())"]
        gone = subprocess.run(argv, capture_output=True, text=True)
        dead = run_with({"coworld/worker": f"{host}:{gone.stdout.strip()}"})
        assert launcher.check_run_worker_health(dead).status == WorkerStatus.FAILED
        elsewhere = run_with({"coworld/worker": f"not-{host}:1"})
        assert launcher.check_run_worker_health(elsewhere).status == WorkerStatus.RUNNING
