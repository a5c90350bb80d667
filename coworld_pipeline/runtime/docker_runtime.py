"""The `docker` runtime: every runnable in its own container, via the docker SDK.

Per episode: a private network (internal, so players have no route out unless egress is allowed,
and closed to the host itself by firewall rules: firewall.py) on which the game answers at an
alias. The game also joins `coworld-public`, one shared bridge with inter-container traffic
disabled, so its port can be published on 127.0.0.1 for browsers and it can reach out (artifact
uploads). A game nobody will open in a browser is not published: the runner, next to a local
engine, probes it at its address on that bridge. Every per-episode container and network carries
labels naming its owner, and the sandbox removes all of them when closed; exited containers go as
soon as their logs are complete. The Engine API calls themselves are docker_api.py's.
"""

from __future__ import annotations

import contextlib
import platform
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from coworld_pipeline.contract.image_reference import image_reference_problem
from coworld_pipeline.runtime import firewall
from coworld_pipeline.runtime.base import (
    Launched,
    LaunchSpec,
    ResourceLimits,
    Runtime,
    Sandbox,
    copy_capped,
    docker_memory_bytes,
)
from coworld_pipeline.runtime.docker_api import Container, DockerError, Engine, Network, not_found
from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType
from coworld_pipeline.runtime.janitor import (
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_ROLE,
    LABEL_RUN,
    LABEL_SHARED,
    owner_label,
)
from coworld_pipeline.runtime.start_gate import GATE_PATH, StartGate, gate_binary

PUBLIC_NETWORK = "coworld-public"
# The engine's own copy (json-file, the source of our log stream) is capped too, well above what the
# stream keeps (each line costs ~60 bytes of JSON there): until removal it is on the engine's disk.
ENGINE_LOG_CONFIG = {"Type": "json-file", "Config": {"max-size": "256m", "max-file": "2"}}
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def docker_client() -> Engine:
    try:
        client = Engine(timeout=60)
        client.version()
    except Exception as exc:
        raise EpisodeFailure(
            ErrorType.PLATFORM_ERROR,
            f"no Docker engine answers ({exc}); start one (see scripts/setup.sh) or use --runtime process",
        ) from None
    return client


class _Container(Launched):
    def __init__(self, sandbox: DockerSandbox, spec: LaunchSpec, container: Container):
        self.sandbox = sandbox
        self.spec = spec
        self.container = container
        self._port: int | None = None
        self.published = True  # serving, with its port on 127.0.0.1 (else: see `base_url`)
        self._address: str | None = None  # unpublished: its address on the public bridge
        self._exit: int | None = None
        self.oom_killed = False
        self._followers: list[threading.Thread] = []
        self._open_streams = 0
        self._lock = threading.Lock()
        self._removed = False  # claimed by whoever removes it (a log follower, or stop)
        self._removal_done = threading.Event()
        self._asked_at = time.monotonic()
        self.episode_net: Future[Network] | None = None  # the game's: joined once it has started
        self._logs_complete = threading.Event()  # every log stream ended (the container stopped)
        self.gated = False  # started early behind the sandbox's start gate (start_gate.py)
        self._waiter: threading.Thread | None = None  # blocks in the engine's `wait` until it exits
        self._exited = threading.Event()  # the waiter recorded its exit

    def watch_exit(self) -> None:
        """Learn its exit from the engine as it happens: one blocking `wait` call, no polling."""
        self._waiter = threading.Thread(target=self._wait_exit, daemon=True)
        self._waiter.start()

    def _wait_exit(self) -> None:
        try:
            code = self.container.wait()
        except Exception:
            return  # the daemon is asked instead (`poll`)
        oom = False
        if code != 0:  # only a failure says whether the kernel killed it for memory
            with contextlib.suppress(Exception):
                self.container.reload()
                oom = bool(self.container.attrs.get("State", {}).get("OOMKilled"))
        with self._lock:
            if self._exit is None:
                self.oom_killed = oom  # first: whoever sees the exit code may ask for it at once
                self._exit = code
        self._exited.set()

    def poll(self) -> int | None:
        if self._exit is not None:
            return self._exit
        # While the waiter blocks in the engine's `wait`, the container runs: the lifecycle's
        # frequent polls cost no daemon round trip (they would compete with the containers for
        # CPU). Without a waiter (its call failed), open log streams say the same, and the daemon
        # is still asked once a second: a stream must not be the only way to see an exit.
        if self._waiter is not None and self._waiter.is_alive():
            return None
        if self._exited.is_set():
            return self._exit
        now = time.monotonic()
        if any(thread.is_alive() for thread in self._followers) and now - self._asked_at < 1.0:
            return None
        self._asked_at = now
        return self._settle()

    def _settle(self) -> int | None:
        """Ask the daemon whether it exited; remember the exit code and OOM flag once it has."""
        with self._lock:
            if self._exit is not None:
                return self._exit
            if self._removed:  # removed without a recorded exit (stopped): it is gone all the same
                self._exit = -1
                return self._exit
            try:
                self.container.reload()
            except Exception:
                self._exit = -1
                return self._exit
            state = self.container.attrs.get("State", {})
            if state.get("Status") in ("exited", "dead"):
                self._exit = int(state.get("ExitCode", -1))
                self.oom_killed = bool(state.get("OOMKilled"))
            return self._exit

    @property
    def base_url(self) -> str:
        if self.published:
            return super().base_url
        if self._address is None:  # not published (see `DockerSandbox._create`): the bridge address
            self.container.reload()
            networks = self.container.attrs["NetworkSettings"]["Networks"]
            address = (networks.get(PUBLIC_NETWORK) or {}).get("IPAddress")
            if not address:
                raise RuntimeError(f"{self.spec.name} has no address on {PUBLIC_NETWORK}")
            self._address = address
        return f"http://{self._address}:{self.spec.port}"

    @property
    def host_port(self) -> int:
        if self._port is None:
            self.container.reload()
            bindings = self.container.attrs["NetworkSettings"]["Ports"].get(f"{self.spec.port}/tcp") or []
            if not bindings:
                raise RuntimeError(f"{self.spec.name} has no published port")
            self._port = int(bindings[0]["HostPort"])
        return self._port

    def follow_logs(self) -> None:
        """Stream stdout/stderr into the log files while the container runs."""
        spec = self.spec
        streams = [(spec.stdout_path, True, spec.stderr_path is None)]
        if spec.stderr_path is not None:
            streams.append((spec.stderr_path, False, True))
        self._open_streams = len(streams)
        for path, stdout, stderr in streams:
            thread = threading.Thread(target=self._copy_stream, args=(path, stdout, stderr), daemon=True)
            thread.start()
            self._followers.append(thread)

    def _copy_stream(self, path: Path, stdout: bool, stderr: bool) -> None:
        with contextlib.suppress(Exception):
            copy_capped(self.container.logs(stdout=stdout, stderr=stderr), path)
        with self._lock:
            self._open_streams -= 1
            last = self._open_streams == 0
        if last:
            self._logs_complete.set()
            self._remove_if_exited()

    def _remove_if_exited(self) -> None:
        """Once its logs are complete and its exit code recorded, an exited container can go at once.

        Removing it here, while the rest of the episode finishes, keeps it off the cleanup's
        critical path; `stop` joins this thread, so the sandbox never removes networks under it.
        The waiter records the exit as the streams end: waited for briefly, it saves a daemon call.
        """
        if self._waiter is not None and self._waiter.is_alive():
            self._exited.wait(timeout=1.0)
        if self._settle() is None:
            return
        self._remove()

    def _remove(self) -> None:
        with self._lock:
            claimed, self._removed = self._removed, True
        if claimed:  # someone else is removing it: wait, the network can only go after it
            self._removal_done.wait(timeout=60)
            return
        try:
            with contextlib.suppress(Exception):
                self.container.remove(force=True)
        finally:
            self._removal_done.set()

    def stop(self) -> None:
        self.halt()
        self._remove()

    def remove_halted(self) -> None:
        """`stop` for one already halted: only the removal is left (a log follower may be doing it)."""
        for thread in self._followers:
            thread.join(timeout=5)
        self._remove()

    def halt(self) -> None:
        """Make sure it is no longer running (killed if need be) and its logs are complete."""
        if self.poll() is None:
            with contextlib.suppress(Exception):
                self.container.kill()
        if self._followers:  # the log streams end when the container stops (not: once it is removed)
            self._logs_complete.wait(timeout=5)


class DockerSandbox(Sandbox):
    parallel_start = True

    def __init__(self, runtime: DockerRuntime, run_id: str, purpose: str, allow_player_egress: bool):
        self.runtime = runtime
        self.client = runtime.client
        self.run_id = run_id
        self.prefix = f"coworld-{purpose}"
        self.alias = f"coworld-game-{run_id}"
        self.labels = {LABEL_MANAGED: "1", LABEL_RUN: run_id, LABEL_OWNER: owner_label()}
        self.launched: list[_Container] = []
        self.networks: list[Network] = []
        self._closed = False
        self.allow_player_egress = allow_player_egress
        self._episode_net: Network | None = None
        self._guarded_bridge: str | None = None  # its host-firewall rules (firewall.py), once installed
        self._lock = threading.Lock()
        self._creator = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"coworld-{run_id}")
        self._pending: list[Future[_Container]] = []
        self._game_attached: Future[None] | None = None  # the game joining its episode network
        self._gate: StartGate | None = None  # holds early-started players back (start_gate.py)

    def _network(self, name: str, internal: bool) -> Network:
        net = self.client.create_network(
            name, Driver="bridge", Internal=internal, Labels=self.labels, CheckDuplicate=True
        )
        self.networks.append(net)
        return net

    @property
    def episode_net(self) -> Network:
        with self._lock:
            if self._episode_net is None:
                internal = not self.allow_player_egress
                net = self._network(f"{self.prefix}-{self.run_id}", internal=internal)
                self._guarded_bridge = firewall.block_host(net, self.run_id)  # before anything joins
                self._episode_net = net
            return self._episode_net

    def start(self, spec: LaunchSpec) -> Launched:
        return self._run(self._create(spec))

    def prepare(self, spec: LaunchSpec) -> Callable[[], Launched]:
        """Create the container in the background (the slow part); starting it later is quick.

        A player is even started in the background, behind the start gate (start_gate.py) when
        this host has one: its program runs once the returned starter opens the gate.
        """
        with self._lock:
            if self._closed:
                raise EpisodeFailure(ErrorType.INTERRUPTED, "the sandbox is closed")
            gate = self._start_gate() if spec.role == "player" else None
            future = self._creator.submit(self._create_gated, spec, gate)
            self._pending.append(future)
        return lambda: self._release(future.result())

    def _start_gate(self) -> StartGate | None:
        """The sandbox's gate, made on first use (caller holds the lock); None if the host has none."""
        if self._gate is None and self.runtime.local_engine:
            binary = gate_binary()
            self._gate = StartGate(binary) if binary is not None else None
        return self._gate

    def _create_gated(self, spec: LaunchSpec, gate: StartGate | None) -> _Container:
        launched = self._create(spec, gate)
        if launched.gated:
            self._start(launched)
        return launched

    def _release(self, launched: _Container) -> _Container:
        if not launched.gated:
            return self._run(launched)
        if self._game_attached is not None:
            self._game_attached.result()  # the game's alias must resolve before a player connects
        assert self._gate is not None
        self._gate.open()
        return launched

    def _create(self, spec: LaunchSpec, gate: StartGate | None = None) -> _Container:
        limits = spec.limits or self.runtime.limits.get(spec.role, ResourceLimits())
        volumes: dict[str, dict[str, str]] = {}
        if spec.workspace is not None:
            volumes[str(spec.workspace.resolve())] = {"bind": "/coworld", "mode": "rw"}
        for container_dir, host_dir in spec.readonly_dirs.items():
            volumes[str(host_dir.resolve())] = {"bind": container_dir, "mode": "ro"}
        for container_dir, host_dir in spec.writable_dirs.items():
            volumes[str(host_dir.resolve())] = {"bind": container_dir, "mode": "rw"}
        env = dict(spec.env)
        if spec.serve:
            env.update({"COGAME_HOST": "0.0.0.0", "COGAME_PORT": str(spec.port)})
        env.update(spec.secret_env)
        name = f"{self.prefix}-{spec.name}-{self.run_id}"
        memory = docker_memory_bytes(limits.memory)
        host: dict[str, Any] = {
            "NanoCpus": int(limits.cpus * 1e9),
            "Memory": memory,
            "MemorySwap": memory,  # no swap
            "PidsLimit": limits.pids,
            "LogConfig": ENGINE_LOG_CONFIG,
        }
        config: dict[str, Any] = {
            "Image": spec.image,
            "Env": [f"{key}={value}" for key, value in env.items()],
            "Labels": {**self.labels, LABEL_ROLE: spec.role},
            "HostConfig": host,
        }
        argv = list(spec.run) or (self.runtime.image_argv(spec.image) if gate is not None else [])
        if gate is not None and argv:
            config["Entrypoint"], config["Cmd"] = gate.wrap(argv)
            volumes.update(gate.volumes())
        elif spec.run:
            config["Entrypoint"] = [spec.run[0]]
            config["Cmd"] = list(spec.run[1:])
        host["Binds"] = [f"{path}:{bind['bind']}:{bind['mode']}" for path, bind in volumes.items()]
        episode_net: Future[Network] | None = None
        if spec.role == "game":  # its network is made while the container is created
            episode_net = self._creator.submit(lambda: self.episode_net)
        if spec.serve:
            # The replay server needs no episode network; the game joins it below with its alias.
            network = self.runtime.public_network().id
            if spec.publish or not self.runtime.local_engine:
                port = f"{spec.port}/tcp"
                config["ExposedPorts"] = {port: {}}
                host["PortBindings"] = {port: [{"HostIp": "127.0.0.1", "HostPort": ""}]}
        else:
            network = self.episode_net.name
        host["NetworkMode"] = network
        config["NetworkingConfig"] = {"EndpointsConfig": {network: {}}}
        try:
            container = self.client.create_container(name, config)
        except Exception as exc:
            kind = ErrorType.PLAYER_CRASHED if spec.role == "player" else ErrorType.GAME_START_FAILED
            if "No such image" in str(exc):
                kind = ErrorType.IMAGE_MISSING
            raise EpisodeFailure(
                kind, f"cannot create {spec.name} container: {exc}", slot=spec.slot
            ) from None
        launched = _Container(self, spec, container)
        launched.published = "PortBindings" in host
        launched.gated = config.get("Entrypoint") == [GATE_PATH]
        with self._lock:
            self.launched.append(launched)
        launched.episode_net = episode_net
        return launched

    def _attach_game(self, launched: _Container) -> None:
        """Join the started game to its episode network (under its alias) while it boots.

        Attaching a running container is as good as attaching it before start, and doing it here
        takes the second network's setup off the critical path of `container.start`. Players start
        only after `_game_attached` is done (see `_run`), so the alias always resolves for them.
        """
        assert launched.episode_net is not None
        try:
            launched.episode_net.result().connect(launched.container, aliases=[self.alias])
        except EpisodeFailure:
            raise
        except Exception as exc:
            raise EpisodeFailure(
                ErrorType.GAME_START_FAILED, f"cannot attach the game to its network: {exc}"
            ) from None

    def _run(self, launched: _Container) -> _Container:
        spec = launched.spec
        if spec.role == "player" and self._game_attached is not None:
            self._game_attached.result()  # the game's alias must resolve before a player connects
        self._start(launched)
        if launched.episode_net is not None:
            self._game_attached = self._creator.submit(self._attach_game, launched)
        return launched

    def _start(self, launched: _Container) -> None:
        spec = launched.spec
        try:
            launched.container.start()
            launched.watch_exit()
            launched.follow_logs()
        except Exception as exc:
            kind = ErrorType.PLAYER_CRASHED if spec.role == "player" else ErrorType.GAME_START_FAILED
            raise EpisodeFailure(kind, f"cannot start {spec.name} container: {exc}", slot=spec.slot) from None

    def workspace_uri(self, name: str) -> str:
        return f"file:///coworld/{name}"

    def readonly_uri(self, container_dir: str, host_dir: Path, name: str) -> str:
        return f"file://{container_dir}/{name}"

    def player_ws_base(self, game: Launched) -> str:
        return self.player_ws_base_for(game.spec)

    def player_ws_base_for(self, game: LaunchSpec) -> str:
        return f"ws://{self.alias}:{game.port}"

    def players_finished(self) -> None:
        """The players are gone: take their episode network down while the game shuts down.

        Only the players and the game are on it, and the game needs it no more: its outputs go to
        the workspace, or out over the public bridge. Disconnected and removed now, the game's exit
        has one endpoint fewer to tear down and the cleanup no network to remove (together 0.1-0.2 s
        of every episode). Whatever fails here is left to `close`, which removes it as before.
        """
        with self._lock:
            if self._closed or self._episode_net is None:
                return
            self._creator.submit(self._release_episode_net, self._episode_net)  # `close` waits for it

    def _release_episode_net(self, net: Network) -> None:
        try:
            for game in [c for c in self.launched if c.spec.role == "game"]:
                if game.poll() is None:  # an exited game's endpoint went with its exit
                    net.disconnect(game.container)
            net.remove()
        except Exception:
            return
        with self._lock:
            self.networks.remove(net)
            bridge, self._guarded_bridge = self._guarded_bridge, None
        if bridge is not None:
            firewall.unblock_host(bridge, self.run_id)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        # Containers still being created must be tracked before removal, or they would leak (and
        # an early release of the episode network, `players_finished`, must be done or given up).
        self._creator.shutdown(wait=True)
        # An exited container no longer holds an endpoint on its networks: once every container
        # has exited, the networks are removed while the containers are (instead of after them).
        # A network that still refuses (a container that would not stop) is tried again after.
        workers = max(1, len(self.launched) + len(self.networks))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda c: c.halt(), self.launched))
            removals = [pool.submit(c.remove_halted) for c in self.launched]
            refused = [n for n in pool.map(_removed, self.networks) if n is not None]
            for removal in removals:
                removal.result()
        for net in refused:
            _remove_quietly(net)
        if self._guarded_bridge is not None:  # kept while its network remains; then the janitor's
            firewall.unblock_host(self._guarded_bridge, self.run_id)
        if self._gate is not None:
            self._gate.remove()


def _remove_quietly(obj: Network) -> None:
    with contextlib.suppress(Exception):
        obj.remove()


def _removed(network: Network) -> Network | None:
    """Remove a network; the network itself when that failed (to be tried again), else None."""
    try:
        network.remove()
    except Exception as exc:
        return None if not_found(exc) else network
    return None


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(self, limits: dict[str, ResourceLimits] | None = None):
        self.client = docker_client()
        # A local engine's bridges are reachable from this host: the runner can talk to an
        # unpublished game at its bridge address (a remote engine's bridges are not).
        self.local_engine = self.client.base_url.startswith("http+docker://")
        self.limits = {"game": ResourceLimits(), "player": ResourceLimits(), "replay": ResourceLimits()}
        self.limits.update(limits or {})
        self._checked: set[str] = set()
        self._argv: dict[str, list[str]] = {}  # image -> its entrypoint + command (inspected once)
        self._public: Network | None = None
        self._public_lock = threading.Lock()

    def public_network(self) -> Network:
        """The shared network through which games are published on 127.0.0.1 and reach out.

        One long-lived bridge for every episode (like the reference runner's `coworld-local`), with
        inter-container traffic disabled so that games on it cannot reach each other. Creating and
        removing a network per episode cost ~0.2 s of every episode's critical path.
        """
        with self._public_lock:
            if self._public is not None and not self._still_there(self._public):
                self._public = None  # removed behind our back (`docker network prune`): make it again
            if self._public is None:
                self._public = self._find_public() or self._create_public()
            return self._public

    def _still_there(self, network: Network) -> bool:
        try:
            network.reload()
        except DockerError as exc:
            if not_found(exc):
                return False
            raise
        return True

    def _find_public(self) -> Network | None:
        found = [n for n in self.client.networks(name=[PUBLIC_NETWORK]) if n.name == PUBLIC_NETWORK]
        if not found:
            return None
        # Two processes racing to create it may both succeed: every one of them uses the oldest.
        net = min(found, key=lambda n: (n.attrs.get("Created", ""), n.id))
        if net.attrs.get("Labels", {}).get(LABEL_SHARED) != "public":
            raise EpisodeFailure(
                ErrorType.PLATFORM_ERROR,
                f"a Docker network named {PUBLIC_NETWORK!r} exists but was not created by coworld; "
                "remove or rename it",
            )
        return net

    def _create_public(self) -> Network:
        try:
            self.client.create_network(
                PUBLIC_NETWORK,
                Driver="bridge",
                Labels={LABEL_SHARED: "public"},
                Options={"com.docker.network.bridge.enable_icc": "false"},
                CheckDuplicate=True,
            )
        except DockerError:
            pass  # created by another process meanwhile: use that one
        net = self._find_public()
        if net is None:
            raise EpisodeFailure(ErrorType.PLATFORM_ERROR, f"cannot create the {PUBLIC_NETWORK!r} network")
        return net

    def check_image(self, image: str) -> None:
        if image in self._checked:
            return
        if problem := image_reference_problem(image):  # the engine answers such a name uselessly
            raise EpisodeFailure(ErrorType.IMAGE_MISSING, problem)
        try:
            info = self.client.image(image)
        except DockerError as exc:
            if not_found(exc):
                raise EpisodeFailure(
                    ErrorType.IMAGE_MISSING,
                    f"image {image!r} is not present locally (no registry is consulted): "
                    "build or load it first",
                ) from None
            raise EpisodeFailure(
                ErrorType.IMAGE_MISSING, f"image {image!r} cannot be inspected: {exc}"
            ) from None
        if not isinstance(info, dict):  # an empty answer: never a present image
            raise EpisodeFailure(ErrorType.IMAGE_MISSING, f"image {image!r} cannot be inspected: no answer")
        host_arch = _ARCH.get(platform.machine(), platform.machine())
        if info.get("Os") != "linux" or info.get("Architecture") != host_arch:
            raise EpisodeFailure(
                ErrorType.IMAGE_MISSING,
                f"image {image!r} is {info.get('Os')}/{info.get('Architecture')}; rebuild it with "
                f"--platform linux/{host_arch}",
            )
        config = info.get("Config") or {}
        self._argv[image] = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
        self._checked.add(image)

    def image_argv(self, image: str) -> list[str]:
        """What a container of `image` runs when nothing overrides it (empty: unknown)."""
        if image not in self._argv:
            with contextlib.suppress(EpisodeFailure):
                self.check_image(image)
        return self._argv.get(image, [])

    def new_sandbox(self, run_id: str, purpose: str, allow_player_egress: bool = False) -> Sandbox:
        return DockerSandbox(self, run_id, purpose, allow_player_egress)
