"""Reap what a dead platform process left behind: labelled containers/networks, host processes,
host-firewall rules and scratch directories.

Sandboxes remove their own runnables on every exit path they can see. SIGKILL is the one they cannot:
then the docker labels (owner host + pid), the process registry files and the scratch directories'
names (scratch.py) let any later platform process find and remove the leftovers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
from pathlib import Path

from coworld_pipeline.home import platform_home

LABEL_MANAGED = "io.coworld.managed"
LABEL_RUN = "io.coworld.run"
LABEL_OWNER = "io.coworld.owner"  # "<hostname>:<pid>" of the platform process that started it
LABEL_ROLE = "io.coworld.role"
LABEL_SHARED = "io.coworld.shared"  # long-lived shared objects (the public network); never reaped


def owner_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def process_registry_dir() -> Path:
    return platform_home() / "run" / "processes"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as dead.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def _owner_dead(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def group_has_live_member(pgid: int) -> bool:
    """Whether a process of group `pgid` is running: not exited, and not an unreaped zombie ("Z")."""
    proc = Path("/proc")
    if not proc.is_dir():  # no procfs: only kill(0) can tell, and it counts zombies as alive
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # After the command name (which may hold spaces and parentheses): state, ppid, pgrp, ...
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def reap_processes() -> int:
    """Kill the process groups recorded by sandboxes whose owner process is gone."""
    reaped = 0
    directory = process_registry_dir()
    if not directory.is_dir():
        return 0
    for record_path in directory.glob("*.json"):
        try:
            record = json.loads(record_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if pid_alive(int(record.get("owner_pid", 0))):
            continue
        for pgid in record.get("pgids", []):
            # killpg() succeeds on a group of zombies too: only a group with a live member is a kill.
            if not group_has_live_member(int(pgid)):
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pgid), signal.SIGKILL)
                reaped += 1
        with contextlib.suppress(FileNotFoundError):
            record_path.unlink()
    return reaped


def reap_containers() -> int:
    """Remove labelled containers and networks whose owning process on this host has died."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception:
        return 0
    reaped = 0
    # Sparse: the labels come with the listing. A full listing inspects every container after
    # listing them and fails when one of them is removed meanwhile (live sandboxes remove theirs).
    for container in client.containers.list(all=True, filters={"label": LABEL_MANAGED}, sparse=True):
        if _owner_dead((container.attrs.get("Labels") or {}).get(LABEL_OWNER, "")):
            with contextlib.suppress(Exception):
                container.remove(force=True)
                reaped += 1
    for network in client.networks.list(filters={"label": LABEL_MANAGED}):
        if _owner_dead((network.attrs.get("Labels") or {}).get(LABEL_OWNER, "")):
            with contextlib.suppress(Exception):
                network.remove()
                reaped += 1
    return reaped


def reap_orphans() -> dict[str, int]:
    from coworld_pipeline.runtime.firewall import reap_orphan_rules
    from coworld_pipeline.runtime.scratch import reap_scratch_dirs

    # Rules go after the networks: an episode's host-firewall rule outlives its network only here.
    # Scratch directories go last: the containers they were mounted into are gone by then.
    return {
        "processes": reap_processes(),
        "docker": reap_containers(),
        "firewall_rules": reap_orphan_rules(),
        "scratch_dirs": reap_scratch_dirs(),
    }
