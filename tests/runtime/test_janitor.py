"""The janitor kills the process groups a dead platform process left, and counts only real kills."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from coworld_pipeline.runtime.janitor import group_has_live_member, process_registry_dir, reap_processes
from tests.conftest import wait_for


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_zombie_groups_are_not_counted_as_killed() -> None:
    dead_owner = subprocess.Popen(["true"])
    dead_owner.wait()  # exited and reaped: the "platform process that died"
    zombie = subprocess.Popen(["true"], start_new_session=True)  # never waited for: stays a zombie
    live = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        wait_for(lambda: state(zombie.pid) == "Z", 10, "the child to become a zombie", 0.02)
        assert not group_has_live_member(zombie.pid)
        assert group_has_live_member(live.pid)
        record = process_registry_dir() / f"janitor-test-{uuid.uuid4().hex}.json"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"owner_pid": dead_owner.pid, "pgids": [zombie.pid, live.pid]}))
        assert reap_processes() == 1  # the sleeping group; the zombie was dead already
        assert live.wait(timeout=10) == -9
        assert not record.exists()
        assert reap_processes() == 0  # nothing left to reap, nothing counted again
    finally:
        for p in (zombie, live):
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
