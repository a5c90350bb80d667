"""Docker runtime: private network per episode, published loopback port, limits, labels."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from coworld_pipeline.contract import load_manifest
from coworld_pipeline.contract.episode_request import certification_request
from coworld_pipeline.runtime import (
    EpisodeOptions,
    ResourceLimits,
    docker_runtime,
    firewall,
    make_runtime,
    run_episode,
)
from coworld_pipeline.runtime import base as runtime_base
from coworld_pipeline.runtime.base import LaunchSpec
from coworld_pipeline.runtime.janitor import LABEL_OWNER, owner_label
from tests.conftest import TESTKIT_DIR

pytestmark = pytest.mark.docker


def inspect_during_play(allow_player_egress: bool, tmp_path: Path, links: bool = False) -> dict[str, Any]:
    client = docker.from_env()
    seen: dict[str, Any] = {}

    def on_phase(phase: str, detail: str) -> None:
        if phase != "playing":
            return
        # This process's containers and networks only: other runs may share the engine.
        mine = f"{LABEL_OWNER}={owner_label()}"
        for c in client.containers.list(filters={"label": mine}):
            seen[c.labels["io.coworld.role"] + c.name[-20:]] = c.attrs
        for label in (mine, "io.coworld.shared"):
            for n in client.networks.list(filters={"label": label}):
                seen["net:" + n.name] = client.networks.get(n.id).attrs

    limits = {
        "player": ResourceLimits(cpus=0.5, memory="256m", pids=64),
        "game": ResourceLimits(1.0, "512m", 128),
    }
    runtime = make_runtime("docker", limits=limits)
    request = certification_request(load_manifest(TESTKIT_DIR / "coworld_manifest.json"))
    outcome = run_episode(
        request,
        tmp_path / "ws",
        runtime,
        EpisodeOptions(
            timeout_seconds=60,
            on_phase=on_phase,
            allow_player_egress=allow_player_egress,
            on_game_ready=(lambda _links: None) if links else None,
        ),
    )
    assert outcome.ok, outcome.error
    return seen


def test_players_are_confined_to_a_private_network(tmp_path: Path, docker_images: None) -> None:
    seen = inspect_during_play(False, tmp_path)
    players = [a for k, a in seen.items() if k.startswith("player")]
    game = next(a for k, a in seen.items() if k.startswith("game"))
    networks = {a["Name"]: a for k, a in seen.items() if k.startswith("net:")}
    assert len(players) == 2
    for p in players:
        attached = list(p["NetworkSettings"]["Networks"])
        assert len(attached) == 1
        assert networks[attached[0]]["Internal"] is True, "players must have no route out"
        assert p["HostConfig"]["NanoCpus"] == 500_000_000
        assert p["HostConfig"]["Memory"] == 256 * 1024**2
        assert p["HostConfig"]["MemorySwap"] == 256 * 1024**2  # no swap
        assert p["HostConfig"]["PidsLimit"] == 64
        assert not p["HostConfig"]["PortBindings"]
    # The game answers players on the private network under an alias; nobody asked for links, so
    # its port is not published: the runner probed it at its address on the public bridge.
    game_nets = game["NetworkSettings"]["Networks"]
    private = next(n for n in game_nets if networks[n]["Internal"])
    assert any(a.startswith("coworld-game-") for a in game_nets[private]["Aliases"])
    assert not game["HostConfig"]["PortBindings"]
    # Its other network is the shared public bridge, where containers cannot reach one another.
    (public,) = [n for n in game_nets if n != private]
    assert public == "coworld-public" and networks[public]["Internal"] is False
    assert networks[public]["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert networks[public]["Labels"] == {"io.coworld.shared": "public"}
    assert game["HostConfig"]["PidsLimit"] == 128
    for a in [*players, game]:  # the engine's own copy of their output is bounded too
        assert a["HostConfig"]["LogConfig"] == docker_runtime.ENGINE_LOG_CONFIG


def test_a_flooding_player_is_cut_at_the_log_cap_and_still_plays(
    tmp_path: Path, docker_images: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A player writing far more than a log may keep: its log ends at the cap, says what was dropped,
    and the episode plays on (the stream is drained to its end, so the container's exit is seen)."""
    monkeypatch.setattr(runtime_base, "MAX_LOG_BYTES", 100_000)
    flood = "import runpy, sys; sys.stdout.write('x' * 3_000_000 + '\\n'); sys.stdout.flush(); "
    flood += "runpy.run_module('testkit.player', run_name='__main__')"
    request = certification_request(load_manifest(TESTKIT_DIR / "coworld_manifest.json"))
    flooding = request.players[0].model_copy(update={"run": ["python", "-c", flood]})
    request = request.model_copy(update={"players": [flooding, *request.players[1:]]})
    outcome = run_episode(
        request, tmp_path / "ws", make_runtime("docker"), EpisodeOptions(timeout_seconds=60)
    )
    assert outcome.ok, outcome.error
    log = (tmp_path / "ws" / "logs" / "policy_agent_0.log").read_bytes()
    kept, _, note = log.rpartition(b"\n[coworld: ")
    assert kept == b"x" * 100_000
    assert note == b"log cut at 100,000 bytes; 2,900,001 more dropped]\n"
    assert b"[coworld:" not in (tmp_path / "ws" / "logs" / "policy_agent_1.log").read_bytes()


def test_a_game_with_links_is_published_on_loopback_only(tmp_path: Path, docker_images: None) -> None:
    seen = inspect_during_play(False, tmp_path, links=True)
    game = next(a for k, a in seen.items() if k.startswith("game"))
    bindings = game["HostConfig"]["PortBindings"]["8080/tcp"]
    assert bindings[0]["HostIp"] == "127.0.0.1"


def test_player_egress_is_opt_in(tmp_path: Path, docker_images: None) -> None:
    seen = inspect_during_play(True, tmp_path)
    networks = {a["Name"]: a for k, a in seen.items() if k.startswith("net:")}
    for key, attrs in seen.items():
        if key.startswith("player"):
            (name,) = attrs["NetworkSettings"]["Networks"]
            assert networks[name]["Internal"] is False


def test_public_network_is_shared_and_recreated_when_pruned(
    tmp_path: Path, docker_images: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Episodes share one public network; a runtime survives it being removed between episodes.

    On a network of its own: the engine's `coworld-public` is shared with anything else on this
    machine, and an engine that was stopped while a container was attached to it keeps a stale
    endpoint that makes it impossible to remove ("has active endpoints", no container attached).
    """
    name = f"coworld-public-test-{secrets.token_hex(4)}"
    monkeypatch.setattr(docker_runtime, "PUBLIC_NETWORK", name)
    client = docker.from_env()
    runtime = make_runtime("docker")
    request = certification_request(load_manifest(TESTKIT_DIR / "coworld_manifest.json"))
    try:
        first = run_episode(request, tmp_path / "a", runtime, EpisodeOptions(timeout_seconds=60))
        assert first.ok, first.error
        # Every container of the episode is gone when it returns (this process owns no other).
        assert not client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={owner_label()}"})
        (public,) = client.networks.list(names=[name])
        assert public.attrs["Labels"] == {"io.coworld.shared": "public"}
        public.remove()  # what `docker network prune` does to an unused network
        second = run_episode(request, tmp_path / "b", runtime, EpisodeOptions(timeout_seconds=60))
        assert second.ok, second.error
        (again,) = client.networks.list(names=[name])
        assert again.id != public.id
    finally:
        for network in client.networks.list(names=[name]):
            network.remove()


def _until(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    """Whether `condition` holds within `seconds` (asked again as Docker's own work proceeds)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_players_network_goes_once_every_player_has_exited(tmp_path: Path, docker_images: None) -> None:
    """`players_finished`: the game, still running, leaves the players' private network, which is
    removed with its host firewall rule while the game shuts down, not in the cleanup after it."""
    client = docker.from_env()
    runtime = make_runtime("docker")
    run_id = secrets.token_hex(8)
    spec = LaunchSpec(
        role="game",
        name="game",
        image="coworld/testkit:dev",
        run=["sleep", "60"],  # a game that is still finishing
        env={},
        stdout_path=tmp_path / "game.stdout.log",
        stderr_path=tmp_path / "game.stderr.log",
        workspace=tmp_path,
        serve=True,
        publish=False,
    )
    with runtime.sandbox(run_id, "test") as box:
        game = box.start(spec)
        private = f"coworld-test-{run_id}"

        def game_networks() -> set[str]:
            attrs = client.containers.get(f"coworld-test-game-{run_id}").attrs
            return set(attrs["NetworkSettings"]["Networks"])

        assert _until(lambda: private in game_networks())  # attached while it boots
        box.players_finished()
        assert _until(lambda: not client.networks.list(names=[private]))
        assert game.poll() is None, "the game keeps running"
        assert game_networks() == {"coworld-public"}
        if firewall.enabled():
            comment = firewall.rule_comment(run_id)
            assert _until(lambda: all(c != comment for *_, c in firewall.episode_rules()))
    assert not client.containers.list(all=True, filters={"name": f"coworld-test-game-{run_id}"})
