"""What every runtime (docker, process) provides to the episode lifecycle.

A runtime starts runnables inside a *sandbox*: one per episode (or replay session). The sandbox
owns everything it started and removes all of it when closed, on every exit path.
"""

from __future__ import annotations

import abc
import contextlib
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coworld_pipeline.contract.extensions import MAX_CPU_CORES, MAX_MEMORY_BYTES

GAME_PORT = 8080  # the port games listen on inside a container, per the contract

# "role": a supporting runnable (reporter, grader, ...): sandboxed like a player, no serving port.
LaunchRole = Literal["game", "player", "replay", "role"]


@dataclass
class ResourceLimits:
    """Per-container limits (docker runtime). The process runtime cannot enforce them."""

    cpus: float = 1.0
    memory: str = "1g"
    pids: int = 512


# What one log file of an episode keeps (game stdout, game stderr, each player's), on every runtime:
# a runnable that floods its output cannot fill the host's disk; the rest is dropped, and the file
# says so.
MAX_LOG_BYTES = 64 << 20


def copy_capped(chunks: Iterable[bytes], path: Path, limit: int | None = None) -> None:
    """Append `chunks` to the log at `path`, keeping at most `limit` bytes (MAX_LOG_BYTES) in it.

    Reads `chunks` to their end even once the log is full (a runnable writing into a pipe nobody
    drains would block), then ends the file with a note saying how much was dropped.
    """
    limit = MAX_LOG_BYTES if limit is None else limit
    dropped = 0
    with open(path, "ab") as f:
        room = max(limit - f.tell(), 0)
        for chunk in chunks:
            kept = chunk[:room]
            dropped += len(chunk) - len(kept)
            room -= len(kept)
            if kept:
                f.write(kept)
                f.flush()
        if dropped:
            f.write(f"\n[coworld: log cut at {limit:,} bytes; {dropped:,} more dropped]\n".encode())


_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)([kmg]?)b?$", re.IGNORECASE)  # Docker's `512m`, `1g`, bytes
MIN_MEMORY_BYTES = 6 * 1024**2  # Docker refuses containers with less
MIN_CPUS = 0.01  # Docker's smallest CPU quota
MAX_PIDS = 4_194_304  # Linux's ceiling for pid_max


def docker_memory_bytes(text: str) -> int:
    """A container memory size as Docker writes it (contract.extensions.memory_bytes reads the
    Kubernetes quantities of manifests) (`512m`, `1g`, `1073741824`) in bytes; ValueError if it is none."""
    match = _MEMORY.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a memory size like 512m, 2g or a byte count")
    number, unit = match.groups()
    size = float(number) * 1024 ** " kmg".index(unit.lower() or " ")
    if not math.isfinite(size):  # 400 digits are a float's infinity, which no int can hold
        raise ValueError(f"{text[:40]!r}... is not a memory size a machine can have")
    return int(size)


class LimitsError(ValueError):
    """Limits no container could run with; `problems` maps each setting (`game_cpus`, ...) to why."""

    def __init__(self, problems: dict[str, str]):
        super().__init__("; ".join(f"{key}: {why}" for key, why in problems.items()))
        self.problems = problems


def _limit_problems(cpus: Any, memory: Any, role: str) -> dict[str, str]:
    """Docker would refuse some of these late (as a failed episode) and read others wrongly (NaN
    CPUs fail the conversion to its integer quota)."""
    problems = {}
    if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not MIN_CPUS <= cpus <= MAX_CPU_CORES:
        problems[f"{role}_cpus"] = f"{cpus!r} is not a CPU count from {MIN_CPUS} to {MAX_CPU_CORES}"
    try:
        size = docker_memory_bytes(str(memory))
        if not MIN_MEMORY_BYTES <= size <= MAX_MEMORY_BYTES:
            problems[f"{role}_memory"] = f"{memory!r} is not between 6m and 1 PiB"
    except ValueError as exc:
        problems[f"{role}_memory"] = str(exc)
    return problems


def role_limits(
    game_cpus: float, game_memory: str, player_cpus: float, player_memory: str, pids: int
) -> dict[str, ResourceLimits]:
    """The limits of each launch role: a replay server runs as its game does. LimitsError if a
    setting is not one a container can run with (bad settings fail before anything starts)."""
    problems = {
        **_limit_problems(game_cpus, game_memory, "game"),
        **_limit_problems(player_cpus, player_memory, "player"),
    }
    if (
        isinstance(pids, bool) or not isinstance(pids, int) or not 1 <= pids <= MAX_PIDS
    ):  # Docker: <= 0 is none
        problems["pids_limit"] = f"{pids!r} is not a process count from 1 to {MAX_PIDS:,}"
    if problems:
        raise LimitsError(problems)
    return {
        "game": ResourceLimits(game_cpus, game_memory, pids),
        "replay": ResourceLimits(game_cpus, game_memory, pids),
        "player": ResourceLimits(player_cpus, player_memory, pids),
    }


@dataclass
class LaunchSpec:
    role: LaunchRole
    name: str  # "game", "player-0", "replay"
    image: str
    run: list[str]
    env: dict[str, str]  # manifest env first, platform env after (platform wins on collision)
    stdout_path: Path
    stderr_path: Path | None = None  # None: stderr merged into stdout (players)
    secret_env: dict[str, str] = field(default_factory=dict)
    workspace: Path | None = None  # game/replay: read-write workspace (/coworld in containers)
    readonly_dirs: dict[str, Path] = field(default_factory=dict)  # container path -> host dir
    writable_dirs: dict[str, Path] = field(default_factory=dict)  # container path -> host dir (rw)
    serve: bool = False  # game/replay: reachable from the host on a loopback port
    # A serving runnable nobody outside this host's runner will open (no human links asked for):
    # a local Docker engine may then skip publishing its port (the runner reaches it by its
    # address on the bridge); publishing costs a proxy process and NAT rules at start and removal.
    publish: bool = True
    slot: int | None = None
    port: int = GAME_PORT  # where a serving runnable listens in its container (0.1.64 `startup.port`)
    limits: ResourceLimits | None = None  # overrides the runtime's per-role limits (manifest `resources`)


class Launched(abc.ABC):
    """A started runnable."""

    spec: LaunchSpec

    @abc.abstractmethod
    def poll(self) -> int | None:
        """Exit code, or None while running."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop it now (idempotent). Logs collected so far stay on disk."""

    @property
    @abc.abstractmethod
    def host_port(self) -> int:
        """Loopback port on the host where a serving runnable answers."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.host_port}"

    def adopt_listening_port(self) -> bool:
        """Serve on the port the runnable actually listens on, when it ignored the one it was given.

        Only the process runtime can: 0.1.0 games bind 0.0.0.0:8080 whatever COGAME_PORT says.
        """
        return False


class Sandbox(abc.ABC):
    """Everything one episode started; closing it removes all of it."""

    # Whether runnables may be started from worker threads. Host processes must not be: their
    # PR_SET_PDEATHSIG fires when the *thread* that forked them exits.
    parallel_start = False
    # Host directory of the episode workspace; the lifecycle sets it before asking for URIs.
    workspace: Path | None = None

    @abc.abstractmethod
    def start(self, spec: LaunchSpec) -> Launched: ...

    def prepare(self, spec: LaunchSpec) -> Callable[[], Launched]:
        """Do the slow part of starting `spec` now, if the runtime can; return what starts it."""
        return lambda: self.start(spec)

    @abc.abstractmethod
    def workspace_uri(self, name: str) -> str:
        """URI of a workspace file as the game sees it (`file:///coworld/...` in containers)."""

    @abc.abstractmethod
    def player_ws_base(self, game: Launched) -> str:
        """Base websocket URL at which players reach the game (`ws://host:port`)."""

    def player_ws_base_for(self, game: LaunchSpec) -> str | None:
        """`player_ws_base` before the game has started, when the sandbox knows it already (docker:
        an alias and a fixed port); None when it is known only once the game runs."""
        return None

    def readonly_uri(self, container_dir: str, host_dir: Path, name: str) -> str:
        return f"file://{host_dir / name}"

    def players_finished(self) -> None:
        """Every player has exited 0 while the game may still be shutting down: whatever only the
        players needed may go now, off the cleanup's critical path. Called at most once."""
        return None  # nothing of the kind by default (host processes share no such resources)

    @abc.abstractmethod
    def close(self) -> None:
        """Stop and remove everything; collect logs first. Idempotent."""


class Runtime(abc.ABC):
    name: str

    @abc.abstractmethod
    def check_image(self, image: str) -> None:
        """Raise EpisodeFailure(image_missing) when the image cannot be run."""

    @abc.abstractmethod
    def new_sandbox(self, run_id: str, purpose: str, allow_player_egress: bool = False) -> Sandbox: ...

    @contextlib.contextmanager
    def sandbox(self, run_id: str, purpose: str, allow_player_egress: bool = False) -> Iterator[Sandbox]:
        from coworld_pipeline.runtime.signals import shielded

        with shielded():
            box = self.new_sandbox(run_id, purpose, allow_player_egress)
        try:
            yield box
        finally:
            with shielded():
                box.close()
