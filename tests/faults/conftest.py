"""The fault tests' leftover check: this test's own processes, and the containers and networks that
this pytest process owns.

The shared check (tests/conftest.py) sees every labelled container on the Docker engine; other test
sessions on the same machine have their own there. The fault tests run their leagues in-process, so
the runtime's owner label (`<host>:<pid>`, runtime/janitor.py) names this process on everything they
create: an object with that label after the test is one the fault left behind.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from tests.conftest import leftover_runnables, managed_docker_objects


def owned_docker_objects(owner_pids: set[int] | None = None) -> list[str]:
    """Names of labelled containers and networks whose owner is this process (or one of `owner_pids`)."""
    pids = {os.getpid(), *(owner_pids or set())}
    return managed_docker_objects({f"{socket.gethostname()}:{pid}" for pid in pids})


@pytest.fixture(autouse=True)
def nothing_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    assert leftover_runnables() == [], "game/player processes outlived the test"
    if request.node.get_closest_marker("docker"):
        assert owned_docker_objects() == [], "labelled containers/networks outlived the test"
