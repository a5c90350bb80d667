"""One episode, start to finish (CONTRACT §3-§4), on any runtime.

The lifecycle: images → tokens and concrete config → game → health → contract probes → players →
first /global message → wait for the game (failing fast when a player dies) → players exit →
optional replay verification → everything removed → results validated → replay compressed.
Artifacts land in the workspace; a failure also writes `error_info.json` and never loses logs.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from coworld_pipeline.contract.bounded_schema import validation_problems
from coworld_pipeline.contract.episode_request import EpisodeRequest
from coworld_pipeline.contract.generations import Generation
from coworld_pipeline.contract.problems import ContractError
from coworld_pipeline.contract.results import validate_results
from coworld_pipeline.runtime import probes
from coworld_pipeline.runtime.base import Launched, LaunchSpec, ResourceLimits, Runtime, Sandbox
from coworld_pipeline.runtime.dialects import GameDialect, runnable_limits, thread_env
from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType
from coworld_pipeline.runtime.player_artifacts import (
    CONTAINER_DIR,
    UPLOAD_URL_ENV,
    PlayerArtifacts,
    artifact_name,
)
from coworld_pipeline.runtime.player_failure import reported_player_error
from coworld_pipeline.runtime.replay_server import log_tail as _tail
from coworld_pipeline.runtime.replay_server import start_replay_server
from coworld_pipeline.runtime.signals import Terminated, shielded

# Files the runner (re)writes; stale copies from an earlier run in the same directory are removed first.
RUN_ARTIFACTS = (
    "config.json",
    "results.json",
    "replay.json",
    "replay.json.z",
    "error_info.json",
    "episode.json",
    "player_failure.json",
)
# How long a player's mid-episode exit waits for the game's own exit to show before the player is
# blamed (a game crash makes its players exit first as far as the runtime can see).
PLAYER_BLAME_GRACE_SECONDS = 2.0

PhaseCallback = Callable[[str, str], None]


@dataclass
class EpisodeLinks:
    """Where a human can watch or play an episode (printed by `coworld play`)."""

    base_url: str
    players: list[str]
    global_url: str
    admin_url: str


@dataclass
class EpisodeOptions:
    timeout_seconds: float = 3600.0
    startup_timeout_seconds: float | None = None  # default: min(timeout, 60)
    probes: bool = True  # route, bad-token and first-/global checks (run-episode, certify)
    verify_replay: bool = False
    secret_env: dict[int, dict[str, str]] = field(default_factory=dict)
    allow_player_egress: bool = False
    player_exit_grace_seconds: float = 10.0
    purpose: str = "run"
    on_phase: PhaseCallback | None = None
    on_game_ready: Callable[[EpisodeLinks], None] | None = None
    # Where the game writes results/replay instead of the workspace (e.g. presigned S3 PUT URLs);
    # `fetch_output(name)` then pulls those bytes back for validation.
    game_output_uris: dict[str, str] | None = None
    fetch_output: Callable[[str], bytes | None] | None = None
    # The package directory (a local manifest's): where a 0.1.64 `replay_viewer.bundle` lives.
    package_dir: Path | None = None


@dataclass
class EpisodeOutcome:
    workspace: Path
    run_id: str
    slot_count: int
    wall_seconds: float
    results: dict[str, Any] | None = None
    scores: list[float] | None = None
    error: EpisodeFailure | None = None
    phase_seconds: dict[str, float] = field(default_factory=dict)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    player_artifacts: dict[int, Path] = field(default_factory=dict)  # 0.1.64 uploads, by slot
    notes: list[str] = field(default_factory=list)  # what was not kept, and why (never a failure)

    @property
    def ok(self) -> bool:
        return self.error is None

    def files(self) -> dict[str, Path]:
        return {
            p.relative_to(self.workspace).as_posix(): p
            for p in sorted(self.workspace.rglob("*"))
            if p.is_file()
        }

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": "success" if self.ok else "failed",
            "slot_count": self.slot_count,
            "scores": self.scores,
            "wall_seconds": round(self.wall_seconds, 3),
            "phase_seconds": {k: round(v, 3) for k, v in self.phase_seconds.items()},
            "error": self.error.to_json() if self.error else None,
            "checks": [{"check": c, "ok": ok, "detail": d} for c, ok, d in self.checks],
            "files": sorted(self.files()),
            "player_artifacts": {str(k): v.name for k, v in sorted(self.player_artifacts.items())},
            "notes": self.notes,
        }


class _Episode:
    def __init__(self, request: EpisodeRequest, workspace: Path, runtime: Runtime, options: EpisodeOptions):
        self.request = request
        self.manifest = request.manifest
        self.workspace = workspace.resolve()
        self.logs = self.workspace / "logs"
        self.runtime = runtime
        self.options = options
        self.run_id = secrets.token_hex(8)
        self.phase = "prepare"
        self.phase_started = time.monotonic()
        self.outcome = EpisodeOutcome(self.workspace, self.run_id, request.slot_count, 0.0)
        self.game: Launched | None = None
        self.players: list[Launched] = []
        self.dialect = GameDialect(self.manifest)
        # 0.1.64 players may upload an artifact (player_artifacts.py); older generations have none.
        self.artifacts = PlayerArtifacts() if self.manifest.generation is Generation.V0_1_64 else None

    # ---- bookkeeping -----------------------------------------------------------------------

    def enter(self, phase: str, detail: str = "") -> None:
        now = time.monotonic()
        self.outcome.phase_seconds[self.phase] = self.outcome.phase_seconds.get(self.phase, 0) + (
            now - self.phase_started
        )
        self.phase, self.phase_started = phase, now
        if self.options.on_phase:
            self.options.on_phase(phase, detail)

    def check(self, name: str, fn: Callable[[], Any], error: ErrorType, slot: int | None = None) -> Any:
        try:
            value = fn()
        except probes.ProbeFailed as exc:
            self.outcome.checks.append((name, False, str(exc)))
            raise self.fail(error, f"{name}: {exc}", slot=slot) from None
        self.outcome.checks.append((name, True, ""))
        return value

    def fail(self, error: ErrorType, message: str, slot: int | None = None) -> EpisodeFailure:
        details: dict[str, Any] = {}
        if error in (ErrorType.GAME_CRASHED, ErrorType.GAME_START_FAILED, ErrorType.GAME_TIMEOUT):
            details["game_stderr_tail"] = _tail(self.logs / "game.stderr.log", 2000)
        if slot is not None:
            details["player_log_tail"] = _tail(self.logs / f"policy_agent_{slot}.log", 2000)
        return EpisodeFailure(error, message, slot=slot, phase=self.phase, details=details)

    # ---- the lifecycle ---------------------------------------------------------------------

    def prepare(self) -> dict[str, Any]:
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        for name in RUN_ARTIFACTS:
            (self.workspace / name).unlink(missing_ok=True)
        for stale in self.workspace.glob("policy_artifact_*.zip"):  # an earlier run's uploads
            stale.unlink()
        for log in self.logs.glob("*.log"):
            log.unlink()
        self.enter("images")
        images = [self.manifest.game.runnable.image] + [p.image for p in self.request.players]
        for image in dict.fromkeys(images):
            self.runtime.check_image(image)
        tokens = [secrets.token_urlsafe(16) for _ in self.request.players]
        config = {**self.request.game_config, "tokens": tokens}
        problems = validation_problems(self.manifest.game.config_schema, config, "$.game_config")
        if problems:
            raise EpisodeFailure(ErrorType.CONFIG_ERROR, "; ".join(map(str, problems)), phase="images")
        (self.workspace / "config.json").write_text(json.dumps(config, indent=2))
        return config

    def game_env(self, box: Sandbox) -> dict[str, str]:
        outputs = self.options.game_output_uris or {}
        env = dict(self.manifest.game.runnable.env)
        env.update(
            {
                "COGAME_CONFIG_URI": box.workspace_uri("config.json"),
                "COGAME_RESULTS_URI": outputs.get("results") or box.workspace_uri("results.json"),
                "COGAME_SAVE_REPLAY_URI": outputs.get("replay") or box.workspace_uri("replay.json"),
                "COGAME_PLAYER_FAILURE_URI": box.workspace_uri("player_failure.json"),
            }
        )
        if self.request.policy_names:
            env["COWORLD_POLICY_NAMES"] = json.dumps(self.request.policy_names)
        return env

    def game_spec(self, box: Sandbox) -> LaunchSpec:
        runnable = self.manifest.game.runnable
        spec = LaunchSpec(
            role="game",
            name="game",
            image=runnable.image,
            run=list(runnable.run),
            env={},
            stdout_path=self.logs / "game.stdout.log",
            stderr_path=self.logs / "game.stderr.log",
            workspace=self.workspace,
            serve=True,
            publish=self.options.on_game_ready is not None,  # links for humans need a host port
            port=self.dialect.port,
            limits=runnable_limits(runnable, self.default_limits("game")),
        )
        # The sandbox decides the URIs (container paths vs host paths) once it knows the workspace.
        box.workspace = self.workspace
        spec.env = self.game_env(box)
        return spec

    def launch_game(self, box: Sandbox, spec: LaunchSpec) -> Launched:
        self.enter("game", spec.image)
        with shielded():
            self.game = box.start(spec)
        return self.game

    def default_limits(self, role: str) -> ResourceLimits:
        return getattr(self.runtime, "limits", {}).get(role) or ResourceLimits()

    def wait_healthy(self, game: Launched) -> None:
        self.enter("health")
        startup = self.options.startup_timeout_seconds or self.dialect.startup_timeout(
            min(self.options.timeout_seconds, 60.0)
        )
        path = self.dialect.health_path
        try:
            probes.wait_healthy(game, startup, path)
        except probes.ProbeFailed as exc:
            message = f"game {exc}"
            if "address already in use" in _tail(self.logs / "game.stderr.log", 4000).lower():
                # A game that binds a fixed port itself (0.1.0 binds 0.0.0.0:8080 and ignores
                # COGAME_PORT) cannot start on a host where that port is taken.
                message += (
                    "; its port was taken: the game binds a fixed port itself instead of COGAME_PORT "
                    "(0.1.0 games bind 0.0.0.0:8080). Free that port, or use --runtime docker"
                )
            raise self.fail(ErrorType.GAME_START_FAILED, message) from None
        self.outcome.checks.append((f"game {path} answers 200", True, ""))

    def probe_game(self, game: Launched, tokens: list[str]) -> None:
        self.enter("probes")
        base = game.base_url
        self.check(
            "player page answers 2xx (/client/player, or /clients/player in 0.1.0)",
            lambda: self.dialect.discover_prefix(base, {"slot": 0, "token": tokens[0]}),
            ErrorType.CONTRACT_VIOLATION,
        )
        bad = probes.ws_url(base, "/player?" + urlencode({"slot": 0, "token": "bad-" + secrets.token_hex(4)}))
        self.check(
            "/player refuses a bad token",
            lambda: probes.expect_refused(bad, "bad token", (401, 403)),
            ErrorType.CONTRACT_VIOLATION,
        )
        self.check(
            f"{self.dialect.route('global')} answers 2xx",
            lambda: probes.check_route(base, self.dialect.route("global")),
            ErrorType.CONTRACT_VIOLATION,
        )

    def prepare_players(
        self, box: Sandbox, game: LaunchSpec, tokens: list[str]
    ) -> list[Callable[[], Launched]]:
        """Let the runtime get players ready (docker: containers started, held back by a gate) while
        the game starts up; the returned starters let them run."""
        known_base = box.player_ws_base_for(game)

        def spec_for(slot: int, player: Any, token: str) -> LaunchSpec:
            assert known_base is not None or self.game is not None
            base = known_base or box.player_ws_base(self.game)  # type: ignore[arg-type]
            url = f"{base}/player?" + urlencode({"slot": slot, "token": token})
            limits = runnable_limits(player, self.default_limits("player"))
            env = {**player.env, **self.dialect.player_env(url), **thread_env(limits)}
            writable: dict[str, Path] = {}
            if self.artifacts is not None:
                upload_dir = self.artifacts.dir_for(slot)
                writable[CONTAINER_DIR] = upload_dir
                env[UPLOAD_URL_ENV] = box.readonly_uri(CONTAINER_DIR, upload_dir, artifact_name(slot))
            return LaunchSpec(
                role="player",
                name=f"player-{slot}",
                image=player.image,
                run=list(player.run),
                env=env,
                secret_env=dict(self.options.secret_env.get(slot, {})),
                stdout_path=self.logs / f"policy_agent_{slot}.log",
                slot=slot,
                limits=limits,
                writable_dirs=writable,
            )

        starters: list[Callable[[], Launched]] = []
        for slot, (player, token) in enumerate(zip(self.request.players, tokens, strict=True)):
            if box.parallel_start and known_base is not None:
                starters.append(box.prepare(spec_for(slot, player, token)))
            else:
                # Host processes start later, once the game's port is settled (it may have ignored
                # COGAME_PORT and been adopted where it listens): their URL is made then.
                starters.append(lambda s=slot, p=player, t=token: box.start(spec_for(s, p, t)))
        return starters

    def start_players(self, box: Sandbox, starters: list[Callable[[], Launched]]) -> None:
        self.enter("players", f"{len(starters)} players")
        # Docker players start together; host processes must start on this thread (PDEATHSIG).
        # The shield keeps an interrupt from landing while a started runnable is not yet tracked.
        errors: list[EpisodeFailure] = []
        with shielded():
            if box.parallel_start and len(starters) > 1:
                with ThreadPoolExecutor(max_workers=len(starters)) as pool:
                    for future in [pool.submit(start) for start in starters]:
                        try:
                            self.players.append(future.result())
                        except EpisodeFailure as exc:
                            errors.append(exc)
            else:
                for start in starters:
                    self.players.append(start())
        if errors:
            raise errors[0]

    def announce(self, game: Launched, tokens: list[str]) -> None:
        if not self.options.on_game_ready:
            return
        base = game.base_url
        if not self.dialect.discovered:  # `play` skips the probes: still link the pages the game has
            with contextlib.suppress(probes.ProbeFailed):
                self.dialect.discover_prefix(base, {"slot": 0, "token": tokens[0]})
        route = self.dialect.route
        links = EpisodeLinks(
            base_url=base,
            players=[
                f"{base}{route('player')}?" + urlencode({"slot": s, "token": t}) for s, t in enumerate(tokens)
            ],
            global_url=f"{base}{route('global')}",
            admin_url=f"{base}{route('admin')}",
        )
        self.options.on_game_ready(links)

    def dead_player(self) -> tuple[int, int] | None:
        for slot, p in enumerate(self.players):
            code = p.poll()
            if code not in (None, 0):
                return slot, code
        return None

    @staticmethod
    def game_exit_within(game: Launched, seconds: float) -> int | None:
        deadline = time.monotonic() + seconds
        while (code := game.poll()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return code

    def wait_game(self, box: Sandbox, game: Launched) -> None:
        self.enter("playing")
        deadline = time.monotonic() + self.options.timeout_seconds
        players_running = True
        while True:
            code = game.poll()
            if code is not None:
                break
            dead = self.dead_player()
            if dead is None and players_running and all(p.poll() is not None for p in self.players):
                players_running = False  # all exited 0, the game is finishing: see `players_finished`
                box.players_finished()
            if dead is not None:
                # A player whose game just crashed exits too, and a runtime may see the game's exit
                # a moment later (docker: its log stream ends last): look again before blaming it.
                code = self.game_exit_within(game, PLAYER_BLAME_GRACE_SECONDS)
                if code is not None:
                    break
                slot, exit_code = dead
                raise self.fail(
                    ErrorType.PLAYER_CRASHED, f"player exited with code {exit_code} mid-episode", slot=slot
                )
            if time.monotonic() >= deadline:
                raise self.fail(
                    ErrorType.GAME_TIMEOUT,
                    f"the game did not finish within {self.options.timeout_seconds:.0f} s",
                )
            time.sleep(0.02)
        failure = self.player_failure()
        if failure is not None:
            raise failure
        if code != 0:
            oom = getattr(game, "oom_killed", False)
            raise self.fail(
                ErrorType.GAME_CRASHED,
                f"the game exited with code {code}" + (" (out of memory)" if oom else ""),
            )

    def player_failure(self) -> EpisodeFailure | None:
        """A game may name a failed slot in player_failure.json (newer contract) instead of results."""
        path = self.workspace / "player_failure.json"
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            slot = int(data["failed_policy_index"])
            message = str(data.get("message", "the game reported a player failure"))
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            return self.fail(ErrorType.CONTRACT_VIOLATION, "player_failure.json is malformed")
        if not 0 <= slot < len(self.players):
            return self.fail(
                ErrorType.CONTRACT_VIOLATION, f"player_failure.json names slot {slot}, out of range"
            )
        return self.fail(reported_player_error(self.players[slot].poll(), message), message, slot=slot)

    def wait_players(self) -> None:
        self.enter("players_exit")
        deadline = time.monotonic() + self.options.player_exit_grace_seconds
        while time.monotonic() < deadline and any(p.poll() is None for p in self.players):
            time.sleep(0.02)
        dead = self.dead_player()
        if dead is not None:
            slot, exit_code = dead
            raise self.fail(ErrorType.PLAYER_CRASHED, f"player exited with code {exit_code}", slot=slot)
        for slot, p in enumerate(self.players):
            if p.poll() is None:
                raise self.fail(
                    ErrorType.PLAYER_CRASHED,
                    f"player still running {self.options.player_exit_grace_seconds:.0f} s "
                    "after the game ended",
                    slot=slot,
                )

    def pull_outputs(self) -> None:
        if not self.options.fetch_output:
            return
        for name, filename in (("results", "results.json"), ("replay", "replay.json")):
            if self.options.game_output_uris and name in self.options.game_output_uris:
                data = self.options.fetch_output(name)
                if data is not None:
                    (self.workspace / filename).write_bytes(data)

    def verify_replay(self, box: Sandbox) -> None:
        self.enter("replay")
        replay_file = self.workspace / "replay.json"
        if not replay_file.exists():
            raise self.fail(ErrorType.MISSING_REPLAY, "the game wrote no replay.json")
        # Imported here: its HTTP server is needed only to verify a replay, not by every episode.
        from coworld_pipeline.runtime.viewer_bundle import ViewerServer, bundle_dir

        bundle = bundle_dir(self.manifest, self.options.package_dir)
        if bundle is not None:
            # 0.1.64: a declared static viewer replaces the game's replay routes (as its certifier).
            viewer = ViewerServer(bundle, replay_file, self.logs)
            try:
                self.check(
                    "replay_viewer bundle serves index.html and the replay",
                    lambda: [probes.check_route(viewer.base_url, p) for p in ("/index.html", "/replay")],
                    ErrorType.REPLAY_FAILED,
                )
            finally:
                viewer.stop()
            return
        uri = box.workspace_uri("replay.json")
        replay = start_replay_server(
            box,
            self.manifest,
            self.workspace,
            self.logs,
            startup_timeout=min(self.options.timeout_seconds, 60.0),
            replay_uri=uri,
        )
        base = replay.base_url
        query = probes.replay_query(uri)
        page = self.dialect.route("replay")
        self.outcome.checks.append(("replay server /healthz answers 200", True, ""))
        self.check(
            f"{page} answers 2xx/3xx",
            lambda: probes.check_route(base, f"{page}?{query}", True),
            ErrorType.REPLAY_FAILED,
        )
        self.check(
            "/replay sends a first message",
            lambda: probes.first_message(
                probes.ws_url(base, f"/replay?{query}"), min(self.options.timeout_seconds, 10.0), "/replay"
            ),
            ErrorType.REPLAY_FAILED,
        )
        if self.dialect.replay_uri_in_query:
            missing = probes.replay_query(box.workspace_uri("missing-replay.json"))
            self.check(
                "/replay refuses a missing replay",
                lambda: probes.expect_refused(
                    probes.ws_url(base, f"/replay?{missing}"), "missing replay", (400, 404)
                ),
                ErrorType.REPLAY_FAILED,
            )
        replay.stop()

    def collect_results(self) -> None:
        self.enter("results")
        path = self.workspace / "results.json"
        if not path.exists():
            raise self.fail(ErrorType.MISSING_RESULTS, "the game exited 0 but wrote no results.json")
        try:
            results = json.loads(path.read_text())
        # ValueError also covers integers past Python's 4300 digits; RecursionError, deep nesting.
        except (ValueError, RecursionError) as exc:
            raise self.fail(ErrorType.INVALID_RESULTS, f"results.json is not JSON: {exc}") from None
        try:
            scores = validate_results(self.manifest, results, self.request.slot_count)
        except ContractError as exc:
            raise self.fail(ErrorType.INVALID_RESULTS, "; ".join(map(str, exc.problems))) from None
        self.outcome.checks.append(("results.json matches results_schema", True, ""))
        replay = self.workspace / "replay.json"
        if not replay.exists():
            raise self.fail(ErrorType.MISSING_REPLAY, "the game wrote no replay.json")
        (self.workspace / "replay.json.z").write_bytes(zlib.compress(replay.read_bytes()))
        self.outcome.results, self.outcome.scores = results, scores

    def run(self) -> EpisodeOutcome:
        started = time.monotonic()
        try:
            config = self.prepare()
            tokens = config["tokens"]
            with self.runtime.sandbox(
                self.run_id, self.options.purpose, self.options.allow_player_egress
            ) as box:
                game_spec = self.game_spec(box)
                # The game's container first: started together, the players' would slow it down.
                game = self.launch_game(box, game_spec)
                starters = self.prepare_players(box, game_spec, tokens)
                self.wait_healthy(game)
                if self.options.probes:
                    self.probe_game(game, tokens)
                    # Checked before the players start (the reference checks after): a fast game
                    # may already have ended by then, and a game waiting for players must be alive.
                    self.check(
                        "/global sends a first message" + (" and a Pong" * self.dialect.requires_pong),
                        lambda: probes.first_message(
                            probes.ws_url(game.base_url, "/global"),
                            min(self.options.timeout_seconds, 10.0),
                            "/global",
                            ping=self.dialect.requires_pong,
                        ),
                        ErrorType.CONTRACT_VIOLATION,
                    )
                self.announce(game, tokens)
                self.start_players(box, starters)
                self.wait_game(box, game)
                self.wait_players()
                self.pull_outputs()
                if self.options.verify_replay:
                    self.verify_replay(box)
                self.enter("cleanup")
            self.collect_results()
        except EpisodeFailure as failure:
            # Raised below the episode (a runtime's image check, a container it cannot create), a
            # failure does not know its phase: it is the one the episode was in ("images", "game", ...).
            failure.phase = failure.phase or self.phase
            self.outcome.error = failure
        except (KeyboardInterrupt, Terminated) as exc:
            self.outcome.error = EpisodeFailure(
                ErrorType.INTERRUPTED, f"interrupted: {exc!r}", phase=self.phase
            )
            self.finish(started)
            raise
        except Exception as exc:  # a platform bug must still leave error_info.json and the logs
            self.outcome.error = EpisodeFailure(
                ErrorType.PLATFORM_ERROR, f"{type(exc).__name__}: {exc}", phase=self.phase
            )
        self.finish(started)
        return self.outcome

    def finish(self, started: float) -> None:
        self.enter("done")
        self.outcome.wall_seconds = time.monotonic() - started
        with contextlib.suppress(OSError):
            self.workspace.mkdir(parents=True, exist_ok=True)
            if self.artifacts is not None:  # every container is gone: what they uploaded is final
                self.outcome.player_artifacts, self.outcome.notes = self.artifacts.collect(self.workspace)
            if self.outcome.error is not None:
                (self.workspace / "error_info.json").write_text(
                    json.dumps(self.outcome.error.to_json(), indent=2)
                )
            (self.workspace / "episode.json").write_text(json.dumps(self.outcome.summary(), indent=2))


def run_episode(
    request: EpisodeRequest, workspace: Path, runtime: Runtime, options: EpisodeOptions | None = None
) -> EpisodeOutcome:
    """Run one episode; never raises for episode failures (see `outcome.error`).

    KeyboardInterrupt / Terminated still propagate after everything was removed and
    `error_info.json` written, so that callers can exit with the right code.
    """
    return _Episode(request, Path(workspace), runtime, options or EpisodeOptions()).run()
