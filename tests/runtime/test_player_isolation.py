"""Docker players reach their game and nothing else: not the host, not other episodes.

A real TCP listener on the host's 0.0.0.0 is the thing to protect; real player containers try every
address of the host (the episode bridge's gateway first), a container of another episode, and
their own game. The listener itself testifies: it must accept nothing. A control run with the
firewall switched off shows the same player does get through without the rules.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from coworld_pipeline.contract import load_manifest
from coworld_pipeline.contract.episode_request import certification_request
from coworld_pipeline.runtime import EpisodeOptions, ErrorType, firewall, make_runtime, run_episode
from coworld_pipeline.runtime.base import LaunchSpec
from coworld_pipeline.runtime.errors import EpisodeFailure
from coworld_pipeline.runtime.janitor import LABEL_MANAGED, LABEL_OWNER, LABEL_RUN, reap_orphans
from tests.conftest import make_testkit, wait_for

pytestmark = pytest.mark.docker

HOST_PORT = 18100  # the host service players must not reach
NEIGHBOUR_PORT = 18101  # a runnable of another episode
TESTKIT_IMAGE = "coworld/testkit:dev"

# Runs in the player container before the ordinary testkit player: tries each target (in parallel,
# a dropped SYN only times out), prints what it reached, then plays so that the episode completes.
PROBE = r"""
import json, os, socket, struct, runpy
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

def gateway():
    for line in open("/proc/net/route").read().splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":
            return socket.inet_ntoa(struct.pack("<L", int(fields[2], 16)))

def attempt(target):
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            return "connected"
    except OSError as exc:
        return type(exc).__name__

game = urlparse(os.environ["COWORLD_PLAYER_WS_URL"])
targets = {"game": f"{game.hostname}:{game.port}"}
gw = gateway()
if gw:
    targets["host:gateway"] = f"{gw}:{os.environ['PROBE_HOST_PORT']}"
targets.update(json.loads(os.environ["PROBE_TARGETS"]))
with ThreadPoolExecutor(len(targets)) as pool:
    reached = dict(zip(targets, pool.map(attempt, targets.values())))
print("PROBE " + json.dumps({"targets": targets, "reached": reached}), flush=True)
runpy.run_module("testkit.player", run_name="__main__")
"""


class Listener:
    """A TCP service on 0.0.0.0 that records every connection it accepts."""

    def __init__(self, port: int):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.accepted: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(peer)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    service = Listener(HOST_PORT)
    yield service
    service.close()


def host_addresses() -> list[str]:
    """Every local IPv4 address of this host except loopback (the kernel's own table)."""
    lines = Path("/proc/net/fib_trie").read_text().splitlines()
    found = {
        lines[i - 1].split()[-1] for i, line in enumerate(lines) if line.strip() == "/32 host LOCAL" and i > 0
    }
    return sorted(ip for ip in found if not ip.startswith("127."))


def connects(host: str, port: int) -> bool:
    with socket.create_connection((host, port), 2):
        return True


def container_ips(launched: Any) -> dict[str, str]:
    launched.container.reload()
    networks = launched.container.attrs["NetworkSettings"]["Networks"]
    return {name: net["IPAddress"] for name, net in networks.items()}


def rules_of(run_id: str) -> list[tuple[str, str, str]]:
    return [rule for rule in firewall.episode_rules() if rule[2] == firewall.rule_comment(run_id)]


def probing_manifest(tmp_path: Path, targets: dict[str, str]) -> Path:
    path = make_testkit(tmp_path, cert_config={"player_connect_timeout_seconds": 60})
    manifest = json.loads(path.read_text())
    for player in manifest["player"]:
        player["run"] = ["python", "-c", PROBE]
        player["env"] = {"PROBE_TARGETS": json.dumps(targets), "PROBE_HOST_PORT": str(HOST_PORT)}
    path.write_text(json.dumps(manifest, indent=2))
    return path


def probe_results(workspace: Path) -> list[dict[str, Any]]:
    found = []
    for log in sorted((workspace / "logs").glob("policy_agent_*.log")):
        lines = [line for line in log.read_text().splitlines() if line.startswith("PROBE ")]
        assert lines, f"{log.name} has no probe line:\n{log.read_text()}"
        found.append(json.loads(lines[0].removeprefix("PROBE ")))
    return found


def run_probing_episode(
    tmp_path: Path, targets: dict[str, str], allow_player_egress: bool = False
) -> tuple[Any, list[tuple[str, str, str]]]:
    """One certification episode of probing players; returns the outcome and the rules seen mid-play."""
    runtime = make_runtime("docker")
    request = certification_request(load_manifest(probing_manifest(tmp_path, targets)))
    during: list[tuple[str, str, str]] = []

    def on_phase(phase: str, detail: str) -> None:
        if phase == "playing":
            during.extend(firewall.episode_rules())

    outcome = run_episode(
        request,
        tmp_path / "ws",
        runtime,
        EpisodeOptions(timeout_seconds=120, on_phase=on_phase, allow_player_egress=allow_player_egress),
    )
    return outcome, during


@pytest.fixture
def neighbour(tmp_path: Path, docker_images: None) -> Iterator[dict[str, str]]:
    """A runnable of another episode, on its own episode network and the public one, listening."""
    runtime = make_runtime("docker")
    with runtime.sandbox(os.urandom(8).hex(), "test") as box:
        other = box.start(
            LaunchSpec(
                role="game",
                name="neighbour",
                image=TESTKIT_IMAGE,
                run=["python", "-m", "http.server", str(NEIGHBOUR_PORT)],
                env={},
                stdout_path=tmp_path / "neighbour.log",
                workspace=tmp_path / "neighbour-ws",
                serve=True,
                port=NEIGHBOUR_PORT,
            )
        )
        ips = container_ips(other)
        # The host may open connections to any container: it is how we know the neighbour listens.
        for ip in ips.values():
            wait_for(lambda ip=ip: connects(ip, NEIGHBOUR_PORT), 30, f"the neighbour on {ip}")
        yield {f"neighbour:{name}": f"{ip}:{NEIGHBOUR_PORT}" for name, ip in ips.items()}


@pytest.mark.parametrize("allow_player_egress", [False, True], ids=["internal", "egress"])
def test_players_reach_their_game_but_not_the_host_or_other_episodes(
    tmp_path: Path, listener: Listener, neighbour: dict[str, str], allow_player_egress: bool
) -> None:
    addresses = host_addresses()
    assert addresses, "the host has no address besides loopback"
    for ip in addresses:  # the listener answers on each of them (from the host itself)
        assert connects(ip, HOST_PORT)
    wait_for(lambda: len(listener.accepted) == len(addresses), 10, "the host's own test connections")
    listener.accepted.clear()
    targets = {f"host:{ip}": f"{ip}:{HOST_PORT}" for ip in addresses} | neighbour

    outcome, during = run_probing_episode(tmp_path, targets, allow_player_egress)

    assert outcome.ok, outcome.error
    assert listener.accepted == [], f"a player reached the host service: {listener.accepted}"
    probes = probe_results(outcome.workspace)
    assert len(probes) == 2
    for probe in probes:
        assert probe["reached"]["game"] == "connected", probe
        assert "host:gateway" in probe["reached"], probe
        blocked = {name: how for name, how in probe["reached"].items() if name != "game"}
        assert blocked and all(how != "connected" for how in blocked.values()), probe
    (rule,) = [r for r in during if r[2] == firewall.rule_comment(outcome.run_id) and "ip6" not in r[0]]
    assert rule[1].startswith("br-")
    assert rules_of(outcome.run_id) == [], "the episode's firewall rules outlived it"


def test_without_the_firewall_the_same_player_reaches_the_host(
    tmp_path: Path, listener: Listener, docker_images: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: what the rules stop is real (players get through the bridge without them)."""
    monkeypatch.setenv(firewall.SWITCH_ENV, "off")
    outcome, during = run_probing_episode(tmp_path, {})
    assert outcome.ok, outcome.error
    assert rules_of(outcome.run_id) == [] and not [r for r in during if outcome.run_id in r[2]]
    for probe in probe_results(outcome.workspace):
        assert probe["reached"]["host:gateway"] == "connected", probe
    wait_for(lambda: len(listener.accepted) >= 2, 10, "both players' connections at the listener")


def test_rules_go_when_the_episode_fails(tmp_path: Path, docker_images: None) -> None:
    path = make_testkit(tmp_path, player_env={"TESTKIT_PLAYER": "crash"})
    outcome = run_episode(
        certification_request(load_manifest(path)),
        tmp_path / "ws",
        make_runtime("docker"),
        EpisodeOptions(timeout_seconds=60),
    )
    assert outcome.error is not None and outcome.error.error_type is ErrorType.PLAYER_CRASHED
    assert rules_of(outcome.run_id) == []


def test_janitor_removes_the_rules_of_a_killed_runner(docker_images: None) -> None:
    """SIGKILL skips every cleanup: the janitor removes the network, then its orphaned rules."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    run_id = os.urandom(8).hex()
    client = docker.from_env()
    labels = {LABEL_MANAGED: "1", LABEL_RUN: run_id, LABEL_OWNER: f"{socket.gethostname()}:{dead.pid}"}
    network = client.networks.create(f"coworld-test-{run_id}", driver="bridge", internal=True, labels=labels)
    try:
        interface = firewall.block_host(network, run_id)
        assert interface == f"br-{network.id[:12]}"
        assert {r[1] for r in rules_of(run_id)} == {interface}
        firewall.unblock_host(interface, run_id)  # the network is still there: the rules stay
        assert rules_of(run_id)
        reaped = reap_orphans()
        assert reaped["docker"] >= 1 and reaped["firewall_rules"] >= 1, reaped
        assert rules_of(run_id) == []
        assert not client.networks.list(names=[f"coworld-test-{run_id}"])
    finally:
        with_leftovers = client.networks.list(filters={"label": f"{LABEL_RUN}={run_id}"})
        for net in with_leftovers:
            net.remove()
        firewall.reap_orphan_rules()


def test_a_bridge_not_on_this_host_fails_the_episode_as_platform_error(docker_images: None) -> None:
    class RemoteNetwork:  # what a remote engine's network looks like from here: no local bridge
        id = "f" * 64
        attrs: dict[str, Any] = {"Options": {}}

    with pytest.raises(EpisodeFailure) as caught:
        firewall.block_host(RemoteNetwork(), "remote")
    assert caught.value.error_type is ErrorType.PLATFORM_ERROR
    assert firewall.SWITCH_ENV in caught.value.message and "br-ffffffffffff" in caught.value.message
