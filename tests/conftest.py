"""Shared fixtures: repository paths, an isolated platform home, and leftover checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTKIT_DIR = REPO / "tests" / "fixtures" / "testkit"
ORCHARD_DIR = REPO / "examples" / "orchard"
COWORLD = [sys.executable, "-m", "coworld_cli.main"]
IN_CI = os.environ.get("CI") == "true"

# Marks every process this test session starts (children inherit it), so leftover checks only
# look at our own processes even when other work runs on the machine.
SESSION_MARK = f"CWP_TEST_SESSION={uuid.uuid4().hex}"
os.environ[SESSION_MARK.split("=")[0]] = SESSION_MARK.split("=")[1]


@pytest.fixture(scope="session", autouse=True)
def platform_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("coworld-home")
    os.environ["COWORLD_HOME"] = str(home)
    return home


def our_processes() -> list[str]:
    """Command lines of live processes (not zombies) started by this test session, except pytest."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if SESSION_MARK.encode() not in environ.split(b"\0"):
                continue
            if (entry / "stat").read_text().split(") ", 1)[1].startswith("Z"):
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if cmd:
            found.append(cmd)
    return found


def leftover_runnables() -> list[str]:
    return [c for c in our_processes() if "testkit." in c or "orchard." in c]


def managed_docker_objects(owners: set[str] | None = None) -> list[str]:
    """Names of the labelled containers and networks on the engine; with `owners`, only those whose
    owner label (`<host>:<pid>`, runtime/janitor.py) is one of them."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception:
        return []

    def wanted(labels: dict[str, str] | None) -> bool:
        return owners is None or (labels or {}).get("io.coworld.owner") in owners

    # sparse: names and labels come from the listing itself; a full listing inspects each container
    # again and fails with 404 when another process removes one in between.
    listed = client.containers.list(all=True, sparse=True, filters={"label": "io.coworld.managed"})
    names = [(c.attrs.get("Names") or [c.id])[0].lstrip("/") for c in listed if wanted(c.attrs.get("Labels"))]
    networks = client.networks.list(filters={"label": "io.coworld.managed"})
    names += [n.name for n in networks if wanted(n.attrs.get("Labels"))]
    return names


@pytest.fixture(autouse=True)
def nothing_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    assert leftover_runnables() == [], "game/player processes outlived the test"
    if request.node.get_closest_marker("docker"):
        assert managed_docker_objects() == [], "labelled containers/networks outlived the test"


def docker_ready() -> bool:
    try:
        import docker

        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


def image_present(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


@pytest.fixture
def docker_images() -> None:
    """Docker tests need the engine and the images that scripts/setup.sh builds; CI must have them."""
    missing = [
        t
        for t in ("coworld/testkit:dev", "coworld/orchard:0.1.0")
        if not docker_ready() or not image_present(t)
    ]
    if missing:
        if IN_CI:
            pytest.fail(f"CI must provide a Docker engine and images {missing} (run scripts/setup.sh)")
        pytest.skip(f"needs Docker and images {missing}: run scripts/setup.sh")


def make_testkit(
    dest: Path,
    game_env: dict[str, str] | None = None,
    player_env: dict[str, str] | None = None,
    cert_config: dict[str, Any] | None = None,
    image: str | None = None,
) -> Path:
    """A copy of the testkit Coworld with its manifest adjusted; returns the manifest path."""
    target = dest / "testkit"
    shutil.copytree(TESTKIT_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "results"))
    path = target / "coworld_manifest.json"
    manifest = json.loads(path.read_text())
    if game_env:
        manifest["game"]["runnable"]["env"] = game_env
    if player_env:
        # Slot 1 gets a misbehaving copy of the player; slot 0 stays healthy.
        faulty = {**manifest["player"][0], "id": "faulty", "name": "Faulty", "env": player_env}
        manifest["player"].append(faulty)
        manifest["certification"]["players"][1] = {"player_id": "faulty"}
    if cert_config:
        manifest["certification"]["game_config"].update(cert_config)
    if image:
        manifest["game"]["runnable"]["image"] = image
        for player in manifest["player"]:
            player["image"] = image
    path.write_text(json.dumps(manifest, indent=2))
    return path


def run_cli(*args: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """The `coworld` command, both streams captured (`stderr=subprocess.STDOUT` merges them)."""
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
    return subprocess.run([*COWORLD, *args], text=True, timeout=timeout, cwd=REPO, **streams)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # keep polling through transient errors, report the last one
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error!r})"
            )
        time.sleep(interval)
