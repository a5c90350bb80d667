"""Simulated hosts for the Celery scale-out test and benchmark: Redis, a second Docker engine, and
Celery workers that each believe they run on a host of their own.

A worker runs in its own UTS namespace (`unshare --uts`) with its own hostname, so everything that
identifies a host by `socket.gethostname()` sees another host: its Celery name (`b@cw-host-b`), the
owner label of its containers and the `coworld/worker` run tag (the commissioner sensor judges
only processes of its own host), and the janitor. Pids stay visible, so the test can kill a worker.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import wait_for

REPO = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))
WORKER_APP = "coworld_pipeline.defs.league.celery_executor"
MAIN_ENGINE = "unix:///var/run/docker.sock"


def script(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run one of the project's scripts; its stdout (the URL or DOCKER_HOST it prints)."""
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / args[0]), *args[1:]],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout.strip()


def redis_answers(port: int) -> bool:
    if shutil.which("redis-cli") is None:  # not installed yet: scripts/redis-up.sh installs it
        return False
    done = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
    return done.returncode == 0 and "PONG" in done.stdout


def as_host(hostname: str, argv: list[str]) -> list[str]:
    """`argv` run as if on host `hostname` (own UTS namespace; network, pids and files shared)."""
    return ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', hostname, *argv]


@dataclass
class CeleryWorker:
    """One `celery worker` of the Dagster executor's app, as host `hostname` on engine `docker_host`."""

    name: str  # Celery node name prefix: the worker is `<name>@<hostname>`
    hostname: str
    docker_host: str
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def node(self) -> str:
        return f"{self.name}@{self.hostname}"

    def start(self) -> CeleryWorker:
        argv = [CELERY, "-A", WORKER_APP, "worker", "-n", f"{self.name}@%h", "-Q", "dagster"]
        argv += ["-c", "1", "--prefetch-multiplier=1", "-l", "INFO", "--without-gossip", "--without-mingle"]
        env = {**os.environ, **self.env, "DOCKER_HOST": self.docker_host, "PYTHONUNBUFFERED": "1"}
        env.pop("COWORLD_WORKER_NAME", None)  # the worker names itself (its Celery node name)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            as_host(self.hostname, argv),
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the main process and its pool child
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = 90) -> None:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.node} exited: {self.log_tail()}")
            return " ready." in self.log_path.read_text(errors="replace")

        wait_for(ready, timeout, f"celery worker {self.node}", 0.5)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool child), as a host that dies would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it has not exited within 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        try:  # its pool child may outlive a main process that was killed
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def janitor_as(hostname: str, docker_host: str, env: dict[str, str]) -> str:
    """`coworld janitor` run on host `hostname` against its engine (what that host's next platform
    process does): removes what its dead processes left there."""
    done = subprocess.run(
        as_host(hostname, [str(Path(sys.executable).with_name("coworld")), "janitor", "--json"]),
        cwd=REPO,
        env={**os.environ, **env, "DOCKER_HOST": docker_host},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"janitor on {hostname} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def labelled_objects(docker_host: str, owner_host: str | None = None) -> list[str]:
    """Labelled containers and networks on that engine (of owners on `owner_host`, if given)."""
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=10)
    try:

        def ours(labels: dict[str, str] | None) -> bool:
            owner = (labels or {}).get("io.coworld.owner", "")
            return owner_host is None or owner.rpartition(":")[0] == owner_host

        listed = client.containers.list(all=True, sparse=True, filters={"label": "io.coworld.managed"})
        found = [
            f"container {c.attrs['Names'][0].lstrip('/')}" for c in listed if ours(c.attrs.get("Labels"))
        ]
        networks = client.networks.list(filters={"label": "io.coworld.managed"})
        found += [
            f"network {n.name}"
            for n in networks
            if ours(n.attrs.get("Labels")) and (n.attrs.get("Labels") or {}).get("io.coworld.shared") is None
        ]
        return found
    finally:
        client.close()
