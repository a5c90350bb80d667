"""`PreforkRunLauncher`: Dagster runs forked from a warm process instead of a fresh interpreter.

Dagster's `DefaultRunLauncher` asks the code server to *spawn* a new Python process per run, which
imports Dagster and the code location from scratch: about 2 s of wall time and most of the ~7 CPU-s
a run costs on these 2-core machines, before the first episode can start. A league run is short
(a few episodes), so that start-up was the largest share of a round's overhead.

This launcher keeps one *fork server* per launching process (the daemon): a single-threaded Python
process, started on first use, that has imported Dagster and preloaded the code location
(`preload_modules`, default `coworld_pipeline.definitions`, whose definitions it loads once). Each
launch is a fork of it: the child opens the instance from the run's instance ref and executes the
run through Dagster's own run-worker body (the one `dagster api execute_run` uses), so events,
logs, run status and failure handling are Dagster's. What stays the same as a spawned run worker:
the environment (the daemon's, which `dagster dev` gives the code server too), the working
directory, and the process group (stopping `dagster dev` stops the runs).

Safety:
* The fork server refuses to fork if it has more than one thread (forking a threaded process is
  unsafe) and holds no database connection or socket but its listener.
* Code changes are noticed: it fingerprints the preloaded packages' source files (mtimes) at start
  and before every fork; on a change it answers "stale" and exits, and the launcher starts a fresh
  one, so a run never executes code older than the code location's.
* Any failure to use it (cannot start, stale, refused) falls back to `DefaultRunLauncher` for that
  run, with an engine event on the run saying why.
* Run monitoring is supported: the run's worker is a local pid (`coworld/run_worker_pid` tag);
  a dead or zombie pid of an unfinished run is reported FAILED, so the monitoring daemon fails it.
* `terminate` marks the run CANCELING and sends SIGINT (Dagster's run worker turns it into an
  interrupt: the episodes asset closes its batch and the run ends CANCELED).

The fork server is started in the background by the first launch (which, like any launch while it
boots, is spawned the usual way: no run waits for it); it exits when its parent is gone. Once up, it
opens the launching instance once (`_warm`), so that a forked run worker does not import and set up
Dagster's storage from scratch (~0.7 s before its first event on these machines). The code location's
definitions are built once per process (`coworld_pipeline/definitions.py`), so a forked run does not
load them again either.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, DagsterRun
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher
from dagster._serdes import ConfigurableClass, ConfigurableClassData, deserialize_value, serialize_value

from coworld_pipeline.defs import alembic_heads
from coworld_pipeline.runtime.scratch import make_scratch_dir

alembic_heads.install()  # every process that launches or runs our runs (alembic_heads.py says why)

TAG_PID = "coworld/run_worker_pid"
TAG_HOST = "coworld/run_worker_host"
TAG_LAUNCHED_BY = "coworld/launched_by"
DEFAULT_PRELOAD = ("coworld_pipeline.definitions",)
START_TIMEOUT_SECONDS = 60.0
REPLY_TIMEOUT_SECONDS = 30.0


class PreforkRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run as a fork of a warm process that has Dagster and the code location loaded."""

    def __init__(self, inst_data: ConfigurableClassData | None = None, preload_modules: Sequence[str] = ()):
        self._inst_data = inst_data
        self._preload = tuple(preload_modules) or DEFAULT_PRELOAD
        self._fallback = DefaultRunLauncher()
        self._server: _ForkServerHandle | None = None
        self._warming: threading.Thread | None = None
        self._lock = threading.Lock()
        super().__init__()

    # ---- ConfigurableClass --------------------------------------------------------------------
    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        from dagster import Array, Field, Noneable

        return {"preload_modules": Field(Noneable(Array(str)), is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> Any:
        return cls(inst_data=inst_data, preload_modules=config_value.get("preload_modules") or ())

    def register_instance(self, instance: DagsterInstance) -> None:
        super().register_instance(instance)
        self._fallback.register_instance(instance)

    # ---- RunLauncher --------------------------------------------------------------------------
    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        if not self._server_ready():  # its first runs do not wait for the fork server to boot
            self._fallback.launch_run(context)
            return
        try:
            pid = self._fork(run)
        except Exception as exc:  # never lose a run over the fast path: spawn it the usual way
            self._instance.report_engine_event(
                f"coworld: the fork server could not start this run ({exc}); spawning it instead", run
            )
            self._fallback.launch_run(context)
            return
        self._instance.add_run_tags(
            run.run_id, {TAG_PID: str(pid), TAG_HOST: socket.gethostname(), TAG_LAUNCHED_BY: "prefork"}
        )

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        pid = self._local_pid(run)
        if pid is None:
            return self._fallback.terminate(run_id)
        self._instance.report_run_canceling(run)
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return False
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        from coworld_pipeline.runtime.janitor import pid_alive

        pid = self._local_pid(run)
        if pid is None:
            # Spawned the usual way (while the fork server booted; DefaultRunLauncher cannot check
            # health). Judge it by the worker it recorded when its step began (`coworld/worker`);
            # before that there is nothing to judge. Never UNKNOWN: run monitoring fails such runs.
            host, _, worker = run.tags.get("coworld/worker", "").rpartition(":")
            if host != socket.gethostname() or not worker.isdigit():
                return CheckRunHealthResult(WorkerStatus.RUNNING, "spawned run worker, not yet known")
            pid = int(worker)
        if pid_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        fresh = self._instance.get_run_by_id(run.run_id)
        if fresh is not None and fresh.is_finished:
            return CheckRunHealthResult(WorkerStatus.SUCCESS)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {pid} exited")

    def dispose(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.stop()
                self._server = None

    # ---- internals ----------------------------------------------------------------------------
    @staticmethod
    def _local_pid(run: DagsterRun) -> int | None:
        pid, host = run.tags.get(TAG_PID, ""), run.tags.get(TAG_HOST, "")
        return int(pid) if pid.isdigit() and host == socket.gethostname() else None

    def _server_ready(self) -> bool:
        """True when a fork server is up; otherwise starts one in the background (once at a time)."""
        with self._lock:
            if self._server is not None and self._server.alive():
                return True
            if self._warming is None or not self._warming.is_alive():
                self._warming = threading.Thread(target=self._warm_up, name="coworld-prefork", daemon=True)
                self._warming.start()
            return False

    def _warm_up(self) -> None:
        try:
            server = _ForkServerHandle.start(self._preload)
        except Exception as exc:  # runs keep being spawned; the next launch tries again
            logging.getLogger("dagster").warning(f"coworld: the fork server did not start: {exc}")
            return
        # Let it open this instance once, so that its first forked run does not start cold (a failure
        # costs that run's speed only: the server warms itself after its first fork).
        with contextlib.suppress(Exception):
            server.request({"warm": serialize_value(self._instance.get_ref())})
        with self._lock:
            self._server = server

    def _fork(self, run: DagsterRun) -> int:
        with self._lock:
            server = self._server
        if server is None:
            raise RuntimeError("no fork server")
        request = {"run_id": run.run_id, "instance_ref": serialize_value(self._instance.get_ref())}
        reply = server.request(request)
        if "pid" in reply:
            return int(reply["pid"])
        with self._lock:  # stale (the code changed) or refused: the next launch starts a fresh one
            if self._server is server:
                self._server = None
        server.stop()
        raise RuntimeError("the code changed since it started" if reply.get("stale") else str(reply))


class _ForkServerHandle:
    """The launching side: the fork server's process and socket."""

    def __init__(self, proc: subprocess.Popen, path: Path):
        self.proc, self.path = proc, path

    @classmethod
    def start(cls, preload: Sequence[str]) -> _ForkServerHandle:
        directory = make_scratch_dir("prefork")  # 0700: only this user connects
        path = directory / "sock"
        proc = subprocess.Popen(
            [sys.executable, "-m", "coworld_pipeline.defs.prefork", str(path), *preload],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not path.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"the fork server exited with {proc.returncode} while starting")
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the fork server did not start in time")
            time.sleep(0.02)  # waiting for another process's start-up: there is nothing to wait on
        return cls(proc, path)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(REPLY_TIMEOUT_SECONDS)
            conn.connect(str(self.path))
            conn.sendall(json.dumps(message).encode() + b"\n")
            return json.loads(_read_line(conn) or b"{}")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            self.path.unlink()
            self.path.parent.rmdir()


def _read_line(conn: socket.socket, limit: int = 1 << 20) -> bytes:
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# ---- the fork server process -------------------------------------------------------------------


def _fingerprint(packages: Sequence[str]) -> tuple[int, int]:
    """(file count, newest mtime in ns) of the preloaded top-level packages' Python sources."""
    count, newest = 0, 0
    for name in packages:
        module = sys.modules.get(name.split(".")[0])
        root = Path(module.__file__).parent if module is not None and module.__file__ else None
        if root is None:
            continue
        for path in root.rglob("*.py"):
            with contextlib.suppress(OSError):
                newest = max(newest, path.stat().st_mtime_ns)
                count += 1
    return count, newest


def _preload(modules: Sequence[str]) -> None:
    for name in modules:
        module = import_module(name)
        for value in vars(module).values():  # load `@dg.definitions` functions once: imports defs/
            if type(value).__name__ == "LazyDefinitions":
                value()


def _warm(instance_ref: str, run_id: str | None = None) -> None:
    """Open the instance once and read from it, then close it: what a run worker imports and
    initializes on its first storage access (storage modules, SQLAlchemy dialects and compiled
    statements, ~0.7 s on these machines) is then done in every forked child. It holds nothing open
    afterwards (Dagster's SQLite storages connect per call), so forking stays safe."""
    with DagsterInstance.from_ref(deserialize_value(instance_ref)) as instance:
        if run_id is not None:
            instance.get_run_by_id(run_id)
        instance.get_run_records(limit=1)


def _run_child(run_id: str, instance_ref: str) -> int:
    from dagster._cli.api import _execute_run_command_body
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts(), DagsterInstance.from_ref(deserialize_value(instance_ref)) as instance:
        _execute_run_command_body(run_id, instance, lambda _event: None, set_exit_code_on_failure=False)
    return 0


def _reap(_signum: int, _frame: Any) -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def serve(path: str, modules: Sequence[str]) -> None:
    parent = os.getppid()
    _preload(modules)
    fingerprint = _fingerprint(modules)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    os.rename(path + ".tmp", path)  # appears only once bound: the launcher waits for it
    listener.listen(16)
    listener.settimeout(1.0)
    signal.signal(signal.SIGCHLD, _reap)
    warmed: set[str] = set()
    while os.getppid() == parent:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        except InterruptedError:
            continue
        with conn:
            conn.settimeout(REPLY_TIMEOUT_SECONDS)
            try:
                message = json.loads(_read_line(conn) or b"{}")
            except ValueError:
                conn.sendall(b'{"error": "unreadable request"}\n')
                continue
            if _fingerprint(modules) != fingerprint:
                conn.sendall(b'{"stale": true}\n')
                break
            if "warm" in message:
                reply = {"warmed": True}
                try:
                    _warm(str(message["warm"]))
                    warmed.add(str(message["warm"]))
                except Exception as exc:  # a cold child is slower, not wrong
                    reply = {"warmed": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
                conn.sendall(json.dumps(reply).encode() + b"\n")
                continue
            if threading.active_count() > 1:
                conn.sendall(b'{"error": "the fork server has threads: refusing to fork"}\n')
                break
            pid = os.fork()
            if pid == 0:  # the run worker
                listener.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
                conn.close()
                code = 1
                try:
                    code = _run_child(str(message["run_id"]), str(message["instance_ref"]))
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            ref = str(message["instance_ref"])
            if ref not in warmed:  # an instance the launcher did not warm: the next child starts warm
                with contextlib.suppress(Exception):
                    _warm(ref, str(message["run_id"]))
                warmed.add(ref)
    listener.close()
    with contextlib.suppress(OSError):
        os.unlink(path)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
