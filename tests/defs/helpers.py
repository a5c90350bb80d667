"""Helpers shared by the Dagster-layer tests (imported as `tests.defs.helpers` or `helpers`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from coworld_pipeline.runtime.process_runtime import free_port
from tests.conftest import wait_for

REPO = Path(__file__).resolve().parents[2]


class MotoServer:
    """A real S3-compatible HTTP server (moto) in a subprocess."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: httpx.get(f"{self.url}/moto-api/", timeout=1.0).status_code < 500, 30, "moto server")

    def stop(self) -> None:
        with_group_kill(self.proc)


def with_group_kill(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Kill a process started with start_new_session=True and its whole process group."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=timeout)


def proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def proc_ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def live_pids() -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "stat").read_text().rsplit(") ", 1)[1].startswith("Z"):
                    continue
            except (OSError, IndexError):
                continue
            out.append(int(entry.name))
    return out


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in live_pids():
        ppid = proc_ppid(pid)
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    out, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def orchard_processes(root: int | None = None) -> list[tuple[int, str]]:
    pids = descendants(root) if root is not None else live_pids()
    return [(pid, cmd) for pid in pids if "orchard." in (cmd := proc_cmdline(pid))]
