"""The janitor kills the process groups a dead platform process left, and counts only real kills;
it removes the scratch directories of dead owners only."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

from coworld_pipeline.runtime.janitor import group_has_live_member, process_registry_dir, reap_processes
from coworld_pipeline.runtime.scratch import make_scratch_dir, reap_scratch_dirs, scratch_owner
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


def test_only_scratch_directories_of_dead_owners_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = tmp_path / f"coworld-gate-{dead.pid}-x1y2z3"
    (gone / "slot-0").mkdir(parents=True)
    (gone / "slot-0" / "policy_artifact_0.zip").write_bytes(b"half an upload")
    kept = {
        "live owner": tmp_path / f"coworld-player-artifacts-{os.getpid()}-a1b2c3",
        "a user's output": tmp_path / f"coworld-play-{dead.pid}-d4e5f6",  # `play` keeps its workspace
        "made before owners were named": tmp_path / "coworld-prefork-abc123",
    }
    for path in kept.values():
        path.mkdir()
    assert reap_scratch_dirs(tmp_path) == 1
    assert not gone.exists()
    assert {what: path.exists() for what, path in kept.items()} == dict.fromkeys(kept, True)
    assert reap_scratch_dirs(tmp_path) == 0


def test_scratch_directories_carry_their_owner() -> None:
    made = make_scratch_dir("gate")
    try:
        assert scratch_owner(made.name) == os.getpid()
        assert made.stat().st_mode & 0o777 == 0o700
        assert reap_scratch_dirs(made.parent) >= 0 and made.exists()  # this process is alive
    finally:
        made.rmdir()
