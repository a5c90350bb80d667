"""The runtime's own Engine API client on both transports: the local socket, and the SDK's (DOCKER_HOST)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from coworld_pipeline.runtime import docker_api
from coworld_pipeline.runtime.docker_api import DockerError, Engine, not_found

pytestmark = pytest.mark.docker

IMAGE = "coworld/testkit:dev"
SCRIPT = "echo out-1; echo err-1 >&2; head -c 70000 /dev/zero | tr '\\0' x; echo; echo out-2; exit 3"


@pytest.fixture(params=["unix", "sdk"])
def engine(request: pytest.FixtureRequest, docker_images: None) -> Iterator[Engine]:
    engine = Engine()
    if request.param == "sdk":  # what a tcp://, TLS or ssh:// DOCKER_HOST gets
        engine.transport = docker_api._SdkTransport(60)
    yield engine
    engine.transport.close()


def test_a_container_runs_and_its_exit_code_and_framed_output_come_back(engine: Engine) -> None:
    name = f"coworld-test-api-{secrets.token_hex(6)}"
    config = {
        "Image": IMAGE,
        "Entrypoint": ["sh", "-c", SCRIPT],
        "Labels": {"io.coworld.test": "docker-api"},
        "HostConfig": {"NetworkMode": "none"},
    }
    container = engine.create_container(name, config)
    try:
        container.start()
        assert container.wait() == 3
        out = b"".join(container.logs(stdout=True, stderr=False))
        err = b"".join(container.logs(stdout=False, stderr=True))
        # A frame larger than one read (70000 bytes) arrives whole; the streams stay apart.
        assert out == b"out-1\n" + b"x" * 70000 + b"\nout-2\n"
        assert err == b"err-1\n"
        container.reload()
        assert container.attrs["State"]["ExitCode"] == 3
    finally:
        container.remove(force=True)
    with pytest.raises(DockerError) as gone:
        container.reload()
    assert not_found(gone.value)


def test_a_missing_image_is_not_found(engine: Engine) -> None:
    with pytest.raises(DockerError) as missing:
        engine.image("coworld/no-such-image:never")
    assert not_found(missing.value) and "404" in str(missing.value)
