"""The `process` runtime: runnables' `run` argv as host processes. Development and tests only.

There is no isolation: images are ignored, limits are not enforced (but for the size of the log
files: output goes through a pipe, copied like the docker runtime's streams) and players share the
host's network. Every child gets its own process group (so a whole tree can be signalled) and, on Linux,
PR_SET_PDEATHSIG so it dies with the process that started it even if that process is SIGKILLed.
A record of live children under the platform home lets the janitor reap anything left over.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from coworld_pipeline.runtime.base import Launched, LaunchSpec, Runtime, Sandbox, copy_capped
from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType
from coworld_pipeline.runtime.files import write_whole
from coworld_pipeline.runtime.janitor import process_registry_dir

_PR_SET_PDEATHSIG = 1
_PLATFORM_PREFIXES = ("COGAME_", "COWORLD_")


# Loaded once, here: the child between fork and exec does as little as it can (see `die_with`).
_LIBC: ctypes.CDLL | None = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):  # not glibc: children then only die with their process group
        _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)


def die_with(parent: int) -> Callable[[], None]:
    """The child's preexec: SIGKILL when its parent dies. A parent SIGKILLed after the fork but
    before `prctl` took effect sends no signal at all, so the child then looks and goes at once
    (its parent is no longer `parent`); else a game could outlive its runner for good."""

    def preexec() -> None:  # runs in the child between fork and exec
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve_argv(run: list[str]) -> list[str]:
    """`python`/`python3` means the platform's interpreter, so host runs use its environment."""
    if run and run[0] in ("python", "python3"):
        return [sys.executable, *run[1:]]
    return list(run)


def _pipe_chunks(fd: int, abandon: threading.Event) -> Iterator[bytes]:
    """What a child writes into the pipe whose read end is `fd`, until every writer has closed it,
    or until `abandon` is set: a grandchild that escaped the process group (and was not killed
    with it) could hold the pipe open for good, and the copier must not outlive the runnable."""
    waiter = select.poll()  # not select.select: a long-lived worker's descriptors pass 1024
    waiter.register(fd, select.POLLIN)
    try:
        while not abandon.is_set():
            if waiter.poll(500):  # data, or the last writer gone (POLLHUP: the read says so)
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return
                yield chunk
    finally:
        os.close(fd)


def _follow(fd: int, path: Path, abandon: threading.Event) -> threading.Thread:
    """Copy the pipe `fd` into the log at `path` (capped, base.copy_capped) in the background."""

    def copy() -> None:
        with contextlib.suppress(OSError):
            copy_capped(_pipe_chunks(fd, abandon), path)

    thread = threading.Thread(target=copy, daemon=True, name=f"log-{path.name}")
    thread.start()
    return thread


class _Process(Launched):
    # How long an exit waits for the log copiers: the pipe ends when the last writer goes, and a
    # grandchild that escaped the process group could hold it open for good.
    LOG_DRAIN_SECONDS = 2.0

    def __init__(
        self,
        spec: LaunchSpec,
        proc: subprocess.Popen,
        port: int | None,
        copiers: list[threading.Thread],
        abandon: threading.Event,
    ):
        self.spec = spec
        self.proc = proc
        self._port = port
        self._copiers = copiers
        self._abandon = abandon  # set by `stop`: copiers still waiting then give up (`_pipe_chunks`)
        self._drained = False

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None and not self._drained:
            self._drain()  # an exit is reported with the logs complete: failures quote their tails
        return code

    def _drain(self) -> None:
        deadline = time.monotonic() + self.LOG_DRAIN_SECONDS
        for thread in self._copiers:
            thread.join(timeout=max(deadline - time.monotonic(), 0.0))
        self._drained = True

    @property
    def host_port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self.spec.name} does not serve")
        return self._port

    def adopt_listening_port(self) -> bool:
        if self._port is None or self.proc.poll() is not None:
            return False
        ports = listening_ports(self.proc.pid)
        if not ports or self._port in ports:
            return False
        # A game that ignores COGAME_PORT (0.1.0 binds 0.0.0.0:8080) is served where it listens.
        self._port = 8080 if 8080 in ports else min(ports)
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        # Kill the whole group even when the leader has exited: grandchildren may linger.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if not self._drained:
            self._drain()
        self._abandon.set()


def _socket_inodes(pgid: int) -> set[str]:
    """Socket inodes held by the processes of a process group (Linux /proc)."""
    inodes: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except (OSError, ValueError, IndexError):
            continue
    return inodes


def tcp_sockets() -> Iterator[tuple[int, str, str]]:
    """(local port, state, inode) of every TCP socket in this network namespace, IPv4 and IPv6, from
    /proc/net/tcp{,6} (nothing where /proc is not available). States are hex: 0A LISTEN, 01 ESTABLISHED."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9:
                yield int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]


def listening_ports(pgid: int) -> set[int]:
    """TCP ports the process group listens on (empty where /proc is not available)."""
    inodes = _socket_inodes(pgid)
    ports: set[int] = set()
    for port, state, inode in tcp_sockets():
        if state == "0A" and inode in inodes:
            ports.add(port)
    return ports


class ProcessSandbox(Sandbox):
    def __init__(self, runtime: ProcessRuntime, run_id: str, purpose: str):
        self.runtime = runtime
        self.run_id = run_id
        self.purpose = purpose
        self.launched: list[_Process] = []
        self._registry = process_registry_dir() / f"{run_id}.json"
        self._closed = False
        self._lock = threading.Lock()

    def _remember(self, launched: _Process) -> None:
        with self._lock:
            self.launched.append(launched)
            record = {"owner_pid": os.getpid(), "pgids": [p.proc.pid for p in self.launched]}
            write_whole(self._registry, json.dumps(record).encode())

    def start(self, spec: LaunchSpec) -> Launched:
        if not spec.run:
            raise EpisodeFailure(
                ErrorType.CONFIG_ERROR,
                f"the process runtime needs a `run` argv for the {spec.name} runnable "
                f"(image {spec.image!r}); the image's own entrypoint cannot run on the host",
                slot=spec.slot,
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith(_PLATFORM_PREFIXES)}
        env.update(spec.env)
        port = None
        if spec.serve:
            port = free_port()
            env["COGAME_HOST"] = "127.0.0.1"
            env["COGAME_PORT"] = str(port)
        env.update(spec.secret_env)
        base = self.runtime.base_dir
        if base is not None:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(base), env.get("PYTHONPATH", "")) if p)
        spec.stdout_path.parent.mkdir(parents=True, exist_ok=True)
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe() if spec.stderr_path else (None, None)
        try:
            proc = subprocess.Popen(
                resolve_argv(spec.run),
                cwd=str(base) if base else None,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out_write,
                stderr=err_write if err_write is not None else subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with(os.getpid()) if sys.platform.startswith("linux") else None,
            )
        except OSError as exc:
            for fd in (out_read, err_read):
                if fd is not None:
                    os.close(fd)
            error = ErrorType.GAME_START_FAILED if spec.role != "player" else ErrorType.PLAYER_CRASHED
            raise EpisodeFailure(error, f"cannot start {spec.name}: {exc}", slot=spec.slot) from None
        finally:  # the child holds its own copies: the pipes end when it (and its children) exit
            for fd in (out_write, err_write):
                if fd is not None:
                    os.close(fd)
        abandon = threading.Event()
        copiers = [_follow(out_read, spec.stdout_path, abandon)]
        if err_read is not None and spec.stderr_path is not None:
            copiers.append(_follow(err_read, spec.stderr_path, abandon))
        launched = _Process(spec, proc, port, copiers, abandon)
        self._remember(launched)
        return launched

    def workspace_uri(self, name: str) -> str:
        assert self.workspace is not None, "start the game first"
        return (self.workspace / name).resolve().as_uri()

    def player_ws_base(self, game: Launched) -> str:
        return f"ws://127.0.0.1:{game.host_port}"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for p in reversed(self.launched):
            p.stop()
        with contextlib.suppress(FileNotFoundError):
            self._registry.unlink()


class ProcessRuntime(Runtime):
    name = "process"

    def __init__(self, base_dir: Path | None = None):
        self.base_dir = Path(base_dir).resolve() if base_dir else None

    def check_image(self, image: str) -> None:
        return None  # images are ignored on the host

    def new_sandbox(self, run_id: str, purpose: str, allow_player_egress: bool = False) -> Sandbox:
        return ProcessSandbox(self, run_id, purpose)
