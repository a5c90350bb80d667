"""Host firewall rules that keep episode networks off the host (players reach the game, nothing else).

Docker's `internal` networks stop forwarding to other networks and the internet, but the host itself
answers on every bridge: a container reaches any host service bound to 0.0.0.0 (the Docker API if it
listens on TCP, a database, a dev server) through its gateway address or any other address of the
host. So each episode network gets one rule per IP family in the host's INPUT chain:

    -A INPUT -i br-<network id[:12]> -m conntrack --ctstate NEW,INVALID
             -m comment --comment coworld-episode-<run id> -j DROP

Only connections *opened* from the episode bridge towards the host are dropped. What the host opens
itself keeps working (replies are ESTABLISHED), traffic between containers on the bridge never
passes INPUT, and Docker's embedded DNS lives inside each container's own namespace. Other episodes
and the internet are Docker's own job (the internal flag and its isolation chains).

The runtime installs the rules right after creating the network, before any container joins it,
and removes them once the network is gone. Rules whose bridge no longer exists (a runner killed by
SIGKILL) are removed by the janitor (`reap_orphan_rules`). If the rules cannot be installed the
episode fails as a platform error rather than run players unconfined; `COWORLD_PLAYER_FIREWALL=off`
opts out (a remote Docker engine, or a host where this process may not change the firewall).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType

COMMENT_PREFIX = "coworld-episode-"
SWITCH_ENV = "COWORLD_PLAYER_FIREWALL"
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])
# Docker's bridge driver names its interface after the network id unless the network sets a name.
_BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
_RULE_COMMENT = re.compile(r"^-A INPUT .*--comment \"?(?P<comment>" + COMMENT_PREFIX + r"[\w.-]+)\"?")
_INTERFACE = re.compile(r"(?:^|\s)-i (\S+)")
# iptables keeps one lock for all its users (Docker too): wait for it instead of failing at once.
_WAIT = ["-w", "10"]
_lock = threading.Lock()  # one process's sandboxes change the rules one at a time


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "on").strip().lower() not in ("off", "0", "false", "no")


def bridge_interface(network: Any) -> str:
    """The host interface of a Docker bridge network (`br-<id[:12]>` unless it was given a name)."""
    options = (network.attrs or {}).get("Options") or {}
    return options.get(_BRIDGE_NAME_OPTION) or f"br-{network.id[:12]}"


def rule_comment(run_id: str) -> str:
    return f"{COMMENT_PREFIX}{run_id}"


def _tools() -> list[str]:
    """iptables (required) and ip6tables (when present): the binaries Docker itself drives."""
    tools = [shutil.which(name, path=_SEARCH_PATH) for name in ("iptables", "ip6tables")]
    if tools[0] is None:
        raise FileNotFoundError("iptables is not installed")
    return [tool for tool in tools if tool is not None]


def _rule(interface: str, run_id: str) -> list[str]:
    return [
        "INPUT",
        "-i",
        interface,
        "-m",
        "conntrack",
        "--ctstate",
        "NEW,INVALID",
        "-m",
        "comment",
        "--comment",
        rule_comment(run_id),
        "-j",
        "DROP",
    ]


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool, *_WAIT, *args], capture_output=True, text=True, timeout=30)


def _per_family(tools: list[str], step: Callable[[str], subprocess.CompletedProcess[str]]) -> list[Any]:
    """`step(tool)` for each IP family at once: one iptables run is a process start, and the
    removal is on the episode's critical path (the families' tables are independent; where they
    share a lock, `-w` waits for it). Each result, or the exception it raised."""
    if len(tools) <= 1:
        try:
            return [step(tool) for tool in tools]
        except (OSError, subprocess.SubprocessError) as exc:
            return [exc]
    with ThreadPoolExecutor(max_workers=len(tools)) as pool:
        futures = [pool.submit(step, tool) for tool in tools]
    return [f.exception() or f.result() for f in futures]


def _interface_exists(interface: str) -> bool:
    return Path("/sys/class/net", interface).exists()


def block_host(network: Any, run_id: str) -> str | None:
    """Drop connections from `network`'s bridge to the host; returns the interface (None if disabled).

    Raises EpisodeFailure(PLATFORM_ERROR) when the rules cannot be installed: players must not run
    with a route to the host's services.
    """
    if not enabled():
        return None
    interface = bridge_interface(network)
    hint = f"; set {SWITCH_ENV}=off to run players without it (they can then reach this host's services)"
    if not _interface_exists(interface):
        raise EpisodeFailure(
            ErrorType.PLATFORM_ERROR,
            f"cannot keep players off the host: the episode network's bridge {interface} is not on "
            f"this host (a remote or virtualised Docker engine?){hint}",
        )
    rule = _rule(interface, run_id)
    try:
        tools = _tools()
    except FileNotFoundError as exc:
        raise EpisodeFailure(
            ErrorType.PLATFORM_ERROR, f"cannot keep players off the host: {exc}{hint}"
        ) from None
    with _lock:
        results = _per_family(tools, lambda tool: _run(tool, "-I", *rule))
        outcomes = list(zip(tools, results, strict=True))
        installed = [t for t, r in outcomes if not isinstance(r, Exception) and r.returncode == 0]
        problems = [
            f"{Path(tool).name}: {r if isinstance(r, Exception) else r.stderr.strip() or r.returncode}"
            for tool, r in outcomes
            if tool not in installed
        ]
        if problems:  # all families or none
            _per_family(installed, lambda tool: _run(tool, "-D", *rule))
            raise EpisodeFailure(
                ErrorType.PLATFORM_ERROR, f"cannot keep players off the host: {'; '.join(problems)}{hint}"
            )
    return interface


def unblock_host(interface: str, run_id: str) -> None:
    """Remove the episode's rules once its bridge is gone; a rule already gone is fine.

    While the bridge still exists (its network could not be removed: a container is still on it),
    the rules keep guarding the host; the janitor removes them together with the network.
    """
    if _interface_exists(interface):
        return
    try:
        tools = _tools()
    except FileNotFoundError:
        return
    rule = _rule(interface, run_id)
    with _lock:
        _per_family(tools, lambda tool: _run(tool, "-D", *rule))


def episode_rules() -> list[tuple[str, str, str]]:
    """(tool, interface, comment) of every episode rule on the host."""
    try:
        tools = _tools()
    except FileNotFoundError:
        return []
    found = []
    for tool in tools:
        proc = _run(tool, "-S", "INPUT")
        for line in proc.stdout.splitlines() if proc.returncode == 0 else []:
            match = _RULE_COMMENT.match(line.strip())
            interface = _INTERFACE.search(line)
            if match and interface:
                found.append((tool, interface.group(1), match.group("comment")))
    return found


def reap_orphan_rules() -> int:
    """Remove episode rules whose bridge is gone (their network was removed; the runner died)."""
    reaped = 0
    for tool, interface, comment in episode_rules():
        if _interface_exists(interface):
            continue  # its network still exists: the rule still guards the host from it
        run_id = comment.removeprefix(COMMENT_PREFIX)
        with _lock:
            if _run(tool, "-D", *_rule(interface, run_id)).returncode == 0:
                reaped += 1
    return reaped
