"""Start player containers while the game boots, and let their programs run only once it is ready.

Starting a container (namespaces, mounts, network endpoint, DNS) costs a few tenths of a second,
and players may only run once the game is healthy and probed. So the docker runtime starts each
player container early with a tiny static *gate* as its entrypoint: the gate waits until the
runner creates `/.coworld-gate.d/open` (a read-only bind of a per-episode host directory), then
`execvp`s the player's own entrypoint and command, unchanged: same PID 1, argv, env, user and
working directory. Until then the player's program has not run at all.

The gate is compiled once per host with the system C compiler and cached; without a compiler (or
if the build fails) players start the ordinary way, after the game is ready.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from coworld_pipeline.runtime.scratch import make_scratch_dir

GATE_PATH = "/.coworld-gate"  # where the binary is mounted in a player container
GATE_DIR = "/.coworld-gate.d"  # where the per-episode directory holding `open` is mounted
OPEN_FILE = "open"

_SOURCE = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "coworld start gate: usage: gate OPEN_FILE PROGRAM [ARG...]\n");
        return 127;
    }
    struct timespec pause = {0, 2000000};
    while (access(argv[1], F_OK) != 0) nanosleep(&pause, NULL);
    execvp(argv[2], argv + 2);
    fprintf(stderr, "coworld start gate: cannot run %s: %s\n", argv[2], strerror(errno));
    return 127;
}
"""

_lock = threading.Lock()
_built: dict[str, Path | None] = {}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "coworld"


def gate_binary() -> Path | None:
    """The cached static gate for this host, built on first use; None when it cannot be built."""
    key = hashlib.sha256(f"{_SOURCE}{platform.machine()}".encode()).hexdigest()[:16]
    with _lock:
        if key in _built:
            return _built[key]
        target = _cache_dir() / f"start-gate-{key}"
        if not (target.is_file() and os.access(target, os.X_OK)):
            target = _build(target)
        _built[key] = target
        return target


def _build(target: Path) -> Path | None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            source = Path(tmp) / "gate.c"
            source.write_text(_SOURCE)
            built = Path(tmp) / "gate"
            subprocess.run(
                [compiler, "-static", "-O2", "-s", "-o", str(built), str(source)],
                check=True,
                capture_output=True,
                timeout=60,
            )
            built.chmod(0o755)
            os.replace(built, target)  # atomic: concurrent builders each install a whole binary
    except (OSError, subprocess.SubprocessError):
        return None
    return target


class StartGate:
    """One episode's gate: a host directory mounted read-only into its players; `open` releases them."""

    def __init__(self, binary: Path):
        self.binary = binary
        self.directory = make_scratch_dir("gate")
        self.directory.chmod(0o755)  # players may run as any user: they must see `open`
        self._opened = False

    def wrap(self, argv: list[str]) -> tuple[list[str], list[str]]:
        """(entrypoint, command) running `argv` once the gate opens."""
        return [GATE_PATH], [f"{GATE_DIR}/{OPEN_FILE}", *argv]

    def volumes(self) -> dict[str, dict[str, str]]:
        return {
            str(self.binary): {"bind": GATE_PATH, "mode": "ro"},
            str(self.directory): {"bind": GATE_DIR, "mode": "ro"},
        }

    def open(self) -> None:
        if not self._opened:
            (self.directory / OPEN_FILE).touch()
            self._opened = True

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            shutil.rmtree(self.directory)
